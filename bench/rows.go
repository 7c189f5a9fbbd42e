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

	// setup, if set, runs once before the row's repetitions and returns the
	// teardown that runs after them (also when a repetition fails). It is for
	// fixtures too slow to build per repetition, such as a network of 50
	// peers: setup builds both sides' fixtures, and juxta and base reach them
	// through their closures. Each repetition then measures on the same
	// fixture, so it must leave it as it found it.
	setup func(context.Context) (teardown func() error, err error)
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
	{
		name:   "attribute query via super-peer, 50 peers, p50",
		unit:   "ms",
		better: lower,
		setup:  queryP50.setup,
		juxta:  queryP50.juxta,
		base:   queryP50.base,
		note:   "1 super-peer + 49 edges, each edge publishing one file advertisement (\"file-NN.txt\"); Find(type, name = \"file-3*\", SourceSuperPeers) drained (10 results; each signature is verified on first receipt, and byte-identical envelopes already cached skip the check), the edges asking in turn, back to back, 400 queries per repetition, the repetition's median shown; discovery.Config.QueryRate is 10^6/s so that the default per-peer limit (20/s) refuses none; the network is built once per row; baseline is one stream round trip (100 B request, 1 KiB answer) between two connected libp2p.New hosts",
	},
	{
		name:   "attribute query via super-peer, 50 peers, p99",
		unit:   "ms",
		better: lower,
		setup:  queryP99.setup,
		juxta:  queryP99.juxta,
		base:   queryP99.base,
		note:   "as the p50 row (a network of its own), each repetition's 99th percentile",
	},
	{
		name:   "exact DHT query",
		unit:   "ms",
		better: lower,
		setup:  exactDHT.setup,
		juxta:  exactDHT.juxta,
		base:   exactDHT.base,
		note:   "3 super-peers (DHT servers) + 17 edges (DHT clients), QueryRate as above; one edge publishes, the 16 others take turns: Find(type, sha256 = exact, SourceDHT) = FindProvidersAsync + fetch from the provider; 32 queries per repetition, median shown; baseline is 3 kad-dht servers + 17 clients on libp2p.New hosts (prefix /juxta-bench, juxta's filters): FindProvidersAsync drained with the same limit (100), then one stream round trip (100 B, 1 KiB) to the provider",
	},
}

// Fixtures of the rows with a setup: one per row.
var (
	queryP50 = newQueryFixture(50)
	queryP99 = newQueryFixture(99)
	exactDHT = &dhtFixture{}
)
