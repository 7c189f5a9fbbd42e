package peer

import (
	"runtime/debug"
	"testing"
)

func TestLimitSuperPeerMemory(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	if got := LimitSuperPeerMemory(); got != SuperPeerMemoryLimit || debug.SetMemoryLimit(-1) != SuperPeerMemoryLimit {
		t.Fatalf("limit %d, in force %d", got, debug.SetMemoryLimit(-1))
	}
	// An operator's GOMEMLIMIT wins: the limit in force is left alone.
	debug.SetMemoryLimit(1 << 30)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if got := LimitSuperPeerMemory(); got != 1<<30 || debug.SetMemoryLimit(-1) != 1<<30 {
		t.Fatalf("with GOMEMLIMIT: %d", got)
	}
}
