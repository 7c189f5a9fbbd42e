package main

import "context"

// Directions of "better" for a row.
const (
	higher = "higher"
	lower  = "lower"
)

// row is one line of the table: one quantity measured on juxta and on a
// baseline built from go-libp2p alone.
type row struct {
	name   string // unique; -run matches it
	unit   string
	better string // higher or lower

	// juxta and base each measure one repetition and return the value in
	// unit. They build what they need and close all of it before returning;
	// the harness calls them alternately.
	juxta, base func(context.Context) (float64, error)

	// target, if not 0, is an acceptance bound on juxta ÷ baseline: a
	// minimum when better is higher, a maximum when better is lower. It is
	// reported, never enforced.
	target float64

	// note says in one line what the baseline is, printed under the table.
	note string
}

// rows is the registry, in table order. To add a row, append an entry; put its
// measurement in a file of its own.
var rows = []row{
	{
		name:   "setup + first stream RTT",
		unit:   "ms",
		better: lower,
		juxta:  setupRTT(newJuxta),
		base:   setupRTT(newRaw),
		target: 1.5,
		note:   "connect + new stream + 1-byte echo between two fresh hosts (TCP and QUIC on 127.0.0.1), host start-up not timed; go-libp2p's dial ranker picks QUIC on both sides; baseline is libp2p.New with only listen addresses set",
	},
	{
		name:   "stream throughput TCP",
		unit:   "MB/s",
		better: higher,
		juxta:  throughput(newJuxta, loopbackTCP),
		base:   throughput(newRaw, loopbackTCP),
		target: 1.3,
		note:   "one stream, one way, 64 KiB writes, 10^6 B per MB; baseline is libp2p.New with only the TCP listen address set (go-libp2p's default security: TLS preferred, Noise second)",
	},
	{
		name:   "stream throughput QUIC",
		unit:   "MB/s",
		better: higher,
		juxta:  throughput(newJuxta, loopbackQUIC),
		base:   throughput(newRaw, loopbackQUIC),
		note:   "as the TCP row, over QUIC",
	},
	{
		name:   "idle memory per peer",
		unit:   "KiB",
		better: lower,
		juxta:  idleMemory(newJuxta),
		base:   idleMemory(newSameServices),
		note:   "live heap (runtime.MemStats.HeapAlloc after GC) added per idle, unconnected peer, over -peers peers; baseline is a libp2p host with juxta's services (TCP+QUIC, Noise+TLS, relay client, hole punching, AutoNAT v2, kad-dht client with prefix /juxta, metrics off)",
	},
}
