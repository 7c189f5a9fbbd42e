package main

import (
	"context"

	"github.com/juxta-p2p/juxta/groups"
)

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
	// the harness calls them alternately. base may be nil where nothing in
	// go-libp2p does the same work: the row then shows juxta alone, with no
	// ratio (say why in note).
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

	// big marks a row that builds a network of 50 peers; -big=false skips it.
	big bool

	// lab marks a row that runs in a netlab lab (labRows): it needs root
	// on Linux, and is skipped, saying why, elsewhere; -lab=false leaves it
	// out.
	lab bool

	// n, if not 0, caps the row's measured repetitions (and it has no
	// warm-up): for rows whose one repetition takes many seconds.
	n int

	// derive, if set, makes a row of rows measured before it in the same run
	// instead of measuring: it returns the juxta and baseline values from
	// their results. juxta and base are then nil.
	derive func(done []result) (juxta, base []float64, err error)
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
		name:   "stream throughput TCP, go-libp2p both orders",
		unit:   "MB/s",
		better: higher,
		juxta:  throughput(newJuxta, loopbackTCP),
		base:   tcpStock.base,
		note:   "one stream, one way, 64 KiB writes, 10^6 B per MB; juxta in the security order of the header; each baseline repetition runs stock go-libp2p (libp2p.New with only the TCP listen address) twice, TLS first (go-libp2p's default) and Noise first (security order reversed), alternating which runs first, and shows the faster of the two",
	},
	{
		name:   "stream throughput TCP, go-libp2p TLS first",
		unit:   "MB/s",
		better: higher,
		derive: oneStock("stream throughput TCP, go-libp2p both orders", tcpStock, true),
		note:   "from the both-orders row: its juxta repetitions against its TLS-first transfers",
	},
	{
		name:   "stream throughput TCP, go-libp2p Noise first",
		unit:   "MB/s",
		better: higher,
		derive: oneStock("stream throughput TCP, go-libp2p both orders", tcpStock, false),
		note:   "from the both-orders row: its juxta repetitions against its Noise-first transfers",
	},
	{
		name:   "stream throughput TCP",
		unit:   "MB/s",
		better: higher,
		derive: fasterStock("stream throughput TCP, go-libp2p both orders", tcpStock),
		target: 1.0,
		note:   "from the both-orders row: juxta against the stock order whose median is higher (both measured in this run, interleaved with juxta); acceptance ≥ 1.0, stretch goal 1.3",
	},
	{
		name:   "CPU per GiB, stream TCP, go-libp2p TLS first",
		unit:   "CPU s/GiB",
		better: lower,
		juxta:  cpuPerGiB(newJuxta, loopbackTCP),
		base:   cpuPerGiB(newRaw, loopbackTCP),
		note:   "the TCP throughput transfer (-mib MiB, 64 KiB writes) measured in CPU seconds (user + system, getrusage of this process, which runs both ends) per GiB; unlike MB/s it barely moves with the machine's load; baseline stock go-libp2p, TLS first",
	},
	{
		name:   "CPU per GiB, stream TCP, go-libp2p Noise first",
		unit:   "CPU s/GiB",
		better: lower,
		juxta:  cpuPerGiB(newJuxta, loopbackTCP),
		base:   cpuPerGiB(newRawNoiseFirst, loopbackTCP),
		note:   "as the row above; baseline stock go-libp2p with Noise first",
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
		big:    true,
		note:   "1 super-peer + 49 edges, each edge publishing one file advertisement (\"file-NN.txt\"); Find(type, name = \"file-3*\", SourceSuperPeers) drained (10 results; each signature is verified on first receipt, and byte-identical envelopes already cached skip the check), the edges asking in turn, back to back, 400 queries per repetition, the repetition's median shown; discovery.Config.QueryRate is 10^6/s so that the default per-peer limit (20/s) refuses none; the network is built once per row; baseline is one stream round trip (100 B request, 1 KiB answer) between two connected libp2p.New hosts",
	},
	{
		name:   "attribute query via super-peer, 50 peers, p99",
		unit:   "ms",
		better: lower,
		setup:  queryP99.setup,
		juxta:  queryP99.juxta,
		base:   queryP99.base,
		big:    true,
		note:   "as the p50 row (a network of its own), each repetition's 99th percentile",
	},
	{
		name:   "exact DHT query",
		unit:   "ms",
		better: lower,
		setup:  exactDHT.setup,
		juxta:  exactDHT.juxta,
		base:   exactDHT.base,
		target: 1.1,
		note:   "3 super-peers (DHT servers) + 17 edges (DHT clients), QueryRate as above; one edge publishes, the 16 others take turns: Find(type, sha256 = exact, SourceDHT) = FindProvidersAsync + fetch from the provider; 32 queries per repetition, median shown; baseline is 3 kad-dht servers + 17 clients on libp2p.New hosts (prefix /juxta-bench, juxta's filters): FindProvidersAsync drained with the same limit (100), then one stream round trip (100 B, 1 KiB) to the provider",
	},
	{
		name:   "exact DHT query, same hosts",
		unit:   "ms",
		better: lower,
		setup:  exactDHTSame.setup,
		juxta:  exactDHTSame.juxta,
		base:   exactDHTSame.base,
		note:   "as the row above (a network of its own), but the baseline runs on the juxta network's own hosts: the publishing edge's kad-dht provides a key, and the seeking edges look it up with their kad-dht (FindProvidersAsync drained, limit 100), then make one stream round trip (100 B, 1 KiB) to it; so the ratio is discovery's cost over kad-dht's own lookup plus one round trip, without the hosts' differences",
	},
	{
		name:   "pipe stream throughput TCP",
		unit:   "MB/s",
		better: higher,
		setup:  pipeStreamTCP.setup,
		juxta:  pipeStreamTCP.juxta,
		base:   pipeStreamTCP.base,
		target: 0.95,
		note:   "a stream pipe (Listen/Dial, net.Conn) between two juxta peers (discovery and pipes running) listening on TCP only, one way, -mib MiB in 64 KiB writes, timed to the receiver's acknowledgement; Dial (binding resolved through discovery) not timed; baseline is a raw libp2p stream (Host().NewStream, custom protocol) on the same connection between the same peers, so the ratio is the pipe layer's cost",
	},
	{
		name:   "pipe stream throughput QUIC",
		unit:   "MB/s",
		better: higher,
		setup:  pipeStreamQUIC.setup,
		juxta:  pipeStreamQUIC.juxta,
		base:   pipeStreamQUIC.base,
		target: 0.95,
		note:   "as the TCP row, on QUIC only",
	},
	{
		name:   "CPU per GiB, direct pipe TCP",
		unit:   "CPU s/GiB",
		better: lower,
		setup:  pipeCPU.setup,
		juxta:  pipeCPU.juxta,
		base:   cpuPerGiB(newRaw, loopbackTCP),
		note:   "the pipe stream throughput TCP transfer (a stream pipe between two juxta peers with discovery and pipes running) in CPU seconds per GiB (getrusage of this process: both ends); baseline is a raw stream between two stock go-libp2p hosts (libp2p.New, TCP only, default security order), so the ratio is juxta's whole cost: its security order, its muxer and the pipe layer",
	},
	{
		name:   "CPU per GiB, through a super-peer's relay",
		unit:   "CPU s/GiB",
		better: lower,
		juxta:  relayCPU(true),
		base:   relayCPU(false),
		note:   "128 MiB per repetition (after 1 s for the three fresh hosts to settle) on a stream through a circuit v2 relay on loopback TCP (the receiver reserves a slot, the sender dials its /p2p-circuit address only, the stream checked to run on the /p2p-circuit connection), CPU seconds per GiB of the relay and both ends (all in this process, getrusage); juxta: a super-peer (peer.TestSuperPeerConfig, relay data limit raised for the transfer) and two juxta peers; baseline: stock libp2p.New hosts, the relay with EnableRelayService(WithInfiniteLimits)",
	},
	{
		name:   "message RTT p50",
		unit:   "µs",
		better: lower,
		setup:  msgRTTReliable.setup,
		juxta:  msgRTTReliable.juxta,
		base:   msgRTTReliable.base,
		target: 1.1,
		note:   "ping-pong of a 64 B message over a reliable message pipe (MsgConn Send, then Recv of the listener's echo, which gives each message back with Release after its Send, as the baseline's echo gives back its go-msgio buffer), 2,000 per repetition, the repetition's median shown; two connected juxta peers (TCP and QUIC; go-libp2p picks QUIC); baseline is the same ping-pong on a raw libp2p stream on the same connection with the same framing (go-msgio varint length + payload)",
	},
	{
		name:   "message RTT p50, unreliable",
		unit:   "µs",
		better: lower,
		setup:  msgRTTUnreliable.setup,
		juxta:  msgRTTUnreliable.juxta,
		base:   msgRTTUnreliable.base,
		target: 1.1,
		note:   "as the reliable row, over a message pipe without MessageConfig.Reliable (no sequence numbers or acknowledgements)",
	},
	{
		name:   "reliable message throughput 1 KB",
		unit:   "msgs/s",
		better: higher,
		setup:  msgBulk.setup,
		juxta:  msgBulk.juxta,
		base:   msgBulk.base,
		target: 0.9,
		note:   "50,000 messages of 1 KiB through a new reliable message pipe per repetition (Send back to back, default window: 256 messages, 8 MiB), timed from the first Send to the receiver's Recv of the last, every message checked for order and given back (MsgConn.Release); baseline is as many go-msgio-framed 1 KiB messages written to one raw libp2p stream on the same connection, timed to the receiver's read of the last (each given back, go-msgio ReleaseMsg)",
	},
	{
		name:   "propagate time-to-all, 20 peers",
		unit:   "ms",
		better: lower,
		setup:  propagate20.setup,
		juxta:  propagate20.juxta,
		base:   propagate20.base,
		target: 1.2,
		note:   "20 members (juxta edges of one super-peer, which indexes the bindings and is not a member) joined to a propagate pipe (Join); after every member has a topic peer and 1.5 s for a GossipSub heartbeat, members publish in turn 64 B messages, each once the previous one reached everyone; time from Publish until the last other member's Next returns it; 20 per repetition, median shown; the network is built once per row; baseline is go-libp2p-pubsub GossipSub with juxta's router options (StrictSign, peer exchange, seen-messages TTL) on 20 plain libp2p.New hosts (metrics off, as juxta's) connected exactly as the juxta members were once their mesh formed (connection graph copied), same messages",
	},
	{
		name:   "propagate time-to-all, 50 peers",
		unit:   "ms",
		better: lower,
		setup:  propagate50.setup,
		juxta:  propagate50.juxta,
		base:   propagate50.base,
		target: 1.2,
		big:    true,
		note:   "as the 20-peer row, with 50 members",
	},
	{
		name:   "presence propagation, 20 members, password group",
		unit:   "ms",
		better: lower,
		setup:  presencePw20.setup,
		juxta:  presencePw20.juxta,
		base:   presencePw20.base,
		note:   "a password group (presence sealed with XChaCha20-Poly1305, opened in GossipSub's validator and again on delivery) of 20 members, edges of one super-peer that is not a member, groups.Config defaults (5 s heartbeat); after every member lists every other online and 1.5 s, members in turn call SetPresence with a new state and text, each once the previous change reached everyone; time until the last other member's SubscribeMembers delivers it; 20 per repetition, median shown; baseline is raw GossipSub publish of a 64 B message to all, on 20 plain libp2p.New hosts wired like the members, as in the propagate rows",
	},
	{
		name:   "presence propagation, 20 members, open group",
		unit:   "ms",
		better: lower,
		setup:  presenceOpen20.setup,
		juxta:  presenceOpen20.juxta,
		base:   presenceOpen20.base,
		note:   "as the password-group row, in an open group (presence in the clear, no validator)",
	},
	{
		name:   "presence propagation, 50 members, password group",
		unit:   "ms",
		better: lower,
		setup:  presencePw50.setup,
		juxta:  presencePw50.juxta,
		base:   presencePw50.base,
		big:    true,
		note:   "as the 20-member password-group row, with 50 members",
	},
	{
		name:   "presence propagation, 50 members, open group",
		unit:   "ms",
		better: lower,
		setup:  presenceOpen50.setup,
		juxta:  presenceOpen50.juxta,
		base:   presenceOpen50.base,
		big:    true,
		note:   "as the 20-member open-group row, with 50 members",
	},
	{
		name:   "join latency, open",
		unit:   "ms",
		better: lower,
		setup:  joinOpen.setup,
		juxta:  joinOpen.juxta,
		note:   "Join (Open) by a fresh peer (an edge of the super-peer, connected to the creator beforehand) with the group's Info in hand; it does no network I/O (presence starts in the background after it returns), so no baseline",
	},
	{
		name:   "join latency, password",
		unit:   "ms",
		better: lower,
		setup:  joinPassword.setup,
		juxta:  joinPassword.juxta,
		base:   joinPassword.baseArgon2,
		note:   "Join (Password) by a fresh peer as above: argon2id (19 MiB, 2 passes, 1 lane) dominates, checked against the verifier locally, nothing sent; baseline is that argon2id derivation alone, so the ratio is what Join adds to its KDF",
	},
	{
		name:   "join latency, invite",
		unit:   "ms",
		better: lower,
		setup:  joinInvite.setup,
		juxta:  joinInvite.juxta,
		base:   joinInvite.baseRoundTripSigs,
		note:   "Join (Invited) by a fresh peer, connected to the creator beforehand, with a credential the creator issued to it: parse, verify the credential's signature, fetch the group key from the issuer (a new stream on the existing connection; the issuer knows the credential's bytes as its own and does not verify them again) while verifying the group advertisement's, then verify the signed revocation list that carries the key's hash (3 Ed25519 checks in all, the key used only once all hold); 5 joins per repetition, each by a fresh peer, median shown; baseline is one raw stream round trip (100 B request, 1 KiB answer) from a fresh peer, connected the same way, to the creator, plus the 3 Ed25519 signature checks the join needs (400-byte messages), in series; acceptance: ≤ 1.3×",
	},
	{
		name:   "10,000 files searchable, PublishBatch",
		unit:   "s",
		better: lower,
		juxta:  batchPublish(true),
		base:   batchPublish(false),
		note:   "one edge publishes 10,000 file advertisements (4-7 made-up words each) to its super-peer, timed until the last is found by a keyword query at the super-peer and all are indexed; juxta: PublishBatch (1,024 signed advertisements per frame, each verified); baseline: the same edge publishing them one by one with Publish (one stream each, as before batches); default rates and quotas; acceptance: juxta ≤ 10 s",
	},
	{
		name:   "keyword query, 100,000 ads, p50",
		unit:   "ms",
		better: lower,
		setup:  scale.setup,
		juxta:  scale.keywordQuery(50),
		base:   scale.rawScan(50),
		big:    true,
		note:   "one super-peer indexing 100,000 advertisements from 50 publishers x 2,000 (PublishBatch); three keywords per query (two words and a 3-letter prefix of a third, from a random indexed name), ranked, first 50, asked at the super-peer (LocalResults: the index, no network), 1,000 queries per repetition; baseline: a raw scan of the same 100,000 lowercased names with strings.Contains per word (100 scans per repetition); acceptance: juxta p50 ≤ 2 ms",
	},
	{
		name:   "keyword query, 100,000 ads, p99",
		unit:   "ms",
		better: lower,
		setup:  scale.setup,
		juxta:  scale.keywordQuery(99),
		base:   scale.rawScan(99),
		big:    true,
		note:   "as the p50 row, on the same super-peer; acceptance: juxta p99 ≤ 10 ms",
	},
	{
		name:   "memory per indexed ad, 100,000 ads",
		unit:   "KiB",
		better: lower,
		setup:  scale.setup,
		juxta:  func(context.Context) (float64, error) { return scale.rssPer, nil },
		base:   func(context.Context) (float64, error) { return scale.rawPer, nil },
		big:    true,
		note:   "the process's RSS (after GC and FreeOSMemory) with the super-peer holding the 100,000 advertisements, minus before its publishers started (they are closed again), per advertisement: cache, signed envelopes, decoded attributes and the inverted index; baseline: the signed envelope alone (bytes per advertisement), so the ratio is the overhead factor; measured once per run, repeated; acceptance: juxta ≤ 2 KiB",
	},
}

// Fixtures of the rows with a setup: one per row.
var (
	queryP50     = newQueryFixture(50)
	queryP99     = newQueryFixture(99)
	exactDHT     = &dhtFixture{}
	exactDHTSame = &dhtFixture{sameHosts: true}

	tcpStock         = &stockOrders{listen: loopbackTCP}
	pipeStreamTCP    = &pipeStreamFixture{listen: loopbackTCP}
	pipeCPU          = &pipeStreamFixture{listen: loopbackTCP, send: cpuBulk}
	pipeStreamQUIC   = &pipeStreamFixture{listen: loopbackQUIC}
	msgRTTReliable   = &msgRTTFixture{reliable: true}
	msgRTTUnreliable = &msgRTTFixture{}
	msgBulk          = &msgBulkFixture{}
	propagate20      = newPropagateFixture(20)
	propagate50      = newPropagateFixture(50)
	presencePw20     = newPresenceFixture(20, groups.PolicyPassword)
	presenceOpen20   = newPresenceFixture(20, groups.PolicyOpen)
	presencePw50     = newPresenceFixture(50, groups.PolicyPassword)
	presenceOpen50   = newPresenceFixture(50, groups.PolicyOpen)
	joinOpen         = &joinFixture{policy: groups.PolicyOpen}
	joinPassword     = &joinFixture{policy: groups.PolicyPassword}
	joinInvite       = &joinFixture{policy: groups.PolicyInvite, joins: 5}
)
