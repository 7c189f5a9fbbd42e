package peer

import (
	"os"
	"runtime/debug"
)

// SuperPeerMemoryLimit is the soft memory limit a super-peer process runs
// under (runtime/debug.SetMemoryLimit), unless GOMEMLIMIT says otherwise.
//
// Go's collector lets the heap grow to twice what is live before it
// collects. A super-peer indexing 10,000 advertisements of 32 attributes
// holds about 140 MiB, and the garbage of answering queries (a glob attack:
// issue 12, item 4) took it past issue 12's bound of 256 MiB. Under this
// limit the collector works earlier instead; it is soft, so a super-peer
// whose live heap needs more still runs, and collects often.
const SuperPeerMemoryLimit = 192 << 20

// LimitSuperPeerMemory sets SuperPeerMemoryLimit for this process unless the
// GOMEMLIMIT environment variable sets one, and returns the limit in force.
// Call it from a process that is a super-peer and nothing else: the limit
// is the whole process's.
func LimitSuperPeerMemory() int64 {
	if os.Getenv("GOMEMLIMIT") != "" {
		return debug.SetMemoryLimit(-1)
	}
	debug.SetMemoryLimit(SuperPeerMemoryLimit)
	return SuperPeerMemoryLimit
}
