package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	mh "github.com/multiformats/go-multihash"

	"github.com/juxta-p2p/juxta/discovery"
	jpeer "github.com/juxta-p2p/juxta/peer"
)

// The messages-per-query table: how many protocol messages one query costs
// the whole network under each search strategy, at two network sizes. It
// tests the claim that flooding's cost grows with the network while a
// super-peer's does not.

// msgsName names the table for -run and -list.
const msgsName = "messages per query"

var flagMsgs = flag.Bool("msgs", true, "print the \""+msgsName+"\" table after the main one (-run selects it by that name too)")

var (
	msgsSizes = []int{20, 50} // network sizes, in peers
	// msgsRepeat is how many times each query runs; the table shows the
	// median count.
	msgsRepeat = 3
)

// msgsFar is the advertisement the queries look for, published by a peer far
// from the asker.
var msgsFar = fileAd("far", "far-away.txt")

// count is what one query cost.
type count struct {
	msgs  int // discovery messages (in the flat DHT: of the fetch)
	rpcs  int // kad-dht RPCs of the lookup
	peers int // distinct peers the RPCs went to
	dups  int // super-peers that answered the query more than once, summed over extra answers
}

// total is the messages of a count, a DHT RPC counting as two.
func (c count) total() int { return c.msgs + 2*c.rpcs }

func (c count) String() string {
	if c.rpcs == 0 {
		return fmt.Sprint(c.msgs)
	}
	return fmt.Sprintf("%d = %d fetch + %d DHT (%d RPCs to %d peers)", c.total(), c.msgs, 2*c.rpcs, c.rpcs, c.peers)
}

// msgsLine is one line of the table: one network size.
type msgsLine struct {
	n             int
	links         int // links of the flooding network
	flood         count
	sp1, sp3, dht count
	flat          count // a lookup in a flat DHT of n servers, then a fetch
}

// messagesTable builds, for each size, a flooding network, a network with one
// super-peer and one with three, runs one query in each and counts.
func messagesTable(ctx context.Context) ([]msgsLine, error) {
	var lines []msgsLine
	for _, n := range msgsSizes {
		l := msgsLine{n: n}
		var err error
		if l.flood, l.links, err = countFlood(ctx, n); err != nil {
			return lines, fmt.Errorf("%d peers, flooding: %w", n, err)
		}
		if l.sp1, _, err = countSuperPeers(ctx, 1, n); err != nil {
			return lines, fmt.Errorf("%d peers, 1 super-peer: %w", n, err)
		}
		if l.sp3, l.dht, err = countSuperPeers(ctx, 3, n); err != nil {
			return lines, fmt.Errorf("%d peers, 3 super-peers: %w", n, err)
		}
		if l.flat, err = countFlatDHT(ctx, n); err != nil {
			return lines, fmt.Errorf("%d peers, flat DHT: %w", n, err)
		}
		lines = append(lines, l)
	}
	return lines, nil
}

// countFlood floods a query from peer 0 of a random connected network of n
// flooding peers with 2n links (average degree 4) to the peer farthest from
// it, with TTL discovery.MaxTTL. It returns the median count and the links.
func countFlood(ctx context.Context, n int) (c count, links int, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	graph := randomGraph(n, 2*n, rand.New(rand.NewPCG(1, uint64(n))))
	dist := hops(n, graph, 0)
	far := 0
	for i, d := range dist {
		if d > dist[far] {
			far = i
		}
	}
	if dist[far] > discovery.MaxTTL+1 {
		return c, 0, fmt.Errorf("the farthest peer is %d hops away, beyond TTL %d", dist[far], discovery.MaxTTL)
	}
	start := time.Now()
	nw := &jnet{}
	defer func() { err = errors.Join(err, nw.close()) }()
	nw.edges, err = startMany(ctx, n, func(ctx context.Context, i int) (*jnode, error) {
		return startJNode(ctx, jpeer.TestConfig(), discovery.Config{Flood: true})
	})
	if err != nil {
		return c, 0, err
	}
	for _, l := range graph {
		a, b := nw.edges[l[0]], nw.edges[l[1]]
		if _, err := a.p.Connect(ctx, b.p.Addr()); err != nil {
			return c, 0, fmt.Errorf("link %d-%d: %w", l[0], l[1], err)
		}
	}
	logf("    flooding network: %d peers, %d links, started in %.1fs; the publisher is %d hops from the asker", n, len(graph), time.Since(start).Seconds(), dist[far])
	pub := nw.edges[far]
	if _, err := pub.d.Publish(ctx, msgsFar); err != nil {
		return c, 0, err
	}
	q := discovery.Query{Type: fileType, Attr: "name", Value: "far-*", TTL: discovery.MaxTTL, Sources: discovery.SourceFlood}
	c, err = countRepeated(ctx, nw, nw.edges[0], q, lpeer.ID(pub.p.ID()))
	return c, len(graph), err
}

// countSuperPeers counts a wildcard query through nsp super-peers in a
// network of n peers, from the first edge (on the first super-peer) to the
// last edge on the last super-peer. With more than one super-peer it also
// counts the exact query through the DHT.
func countSuperPeers(ctx context.Context, nsp, n int) (sp, dht count, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	nw, err := superPeerNet(ctx, nsp, n-nsp, discovery.Config{})
	if err != nil {
		return sp, dht, err
	}
	defer func() { err = errors.Join(err, nw.close()) }()
	asker, pub := nw.edges[0], nw.edges[0]
	for i, e := range nw.edges {
		if i%nsp == nsp-1 {
			pub = e // the last edge of the last super-peer
		}
	}
	if _, err := pub.d.Publish(ctx, msgsFar); err != nil {
		return sp, dht, err
	}
	last := nw.sps[nsp-1]
	err = waitFor(ctx, "the super-peer's index", 20*time.Millisecond, 10*time.Second, func() (bool, error) {
		ads, err := last.d.Local(discovery.Query{Type: fileType})
		return len(ads) > 0, err
	})
	if err != nil {
		return sp, dht, err
	}
	q := discovery.Query{Type: fileType, Attr: "name", Value: "far-*", Sources: discovery.SourceSuperPeers}
	if sp, err = countRepeated(ctx, nw, asker, q, lpeer.ID(pub.p.ID())); err != nil || nsp == 1 {
		return sp, dht, err
	}

	q = discovery.Query{Type: fileType, Attr: "name", Value: msgsFar.Attrs["name"], Sources: discovery.SourceDHT}
	err = waitFor(ctx, "the provider record", 100*time.Millisecond, 30*time.Second, func() (bool, error) {
		res, _ := find(ctx, nw.edges[1], q)
		return len(res) > 0, nil
	})
	if err != nil {
		return sp, dht, err
	}
	dht, err = countRepeated(ctx, nw, asker, q, lpeer.ID(pub.p.ID()))
	return sp, dht, err
}

// countRepeated runs countQuery msgsRepeat times and returns the median.
func countRepeated(ctx context.Context, nw *jnet, asker *jnode, q discovery.Query, want lpeer.ID) (count, error) {
	var cs []count
	for range msgsRepeat {
		c, err := countQuery(ctx, nw, asker, q, want)
		if err != nil {
			return count{}, err
		}
		logf("    %-11s %v", q.Sources, c)
		cs = append(cs, c)
	}
	return medianCount(cs), nil
}

// medianCount is the count of median total (the lower middle one when even).
func medianCount(cs []count) count {
	s := slices.Clone(cs)
	slices.SortStableFunc(s, func(a, b count) int { return a.total() - b.total() })
	return s[(len(s)-1)/2]
}

// countRPCs registers ctx for kad-dht's query events. Lookups run with the
// returned context publish a routing.SendingQuery event per RPC; stop ends
// the registration and returns the RPCs and the distinct peers they went to.
func countRPCs(ctx context.Context) (_ context.Context, stop func() (rpcs, peers int)) {
	ctx, cancel := context.WithCancel(ctx)
	ctx, events := routing.RegisterForQueryEvents(ctx)
	done := make(chan [2]int)
	go func() {
		seen := map[lpeer.ID]bool{}
		n := 0
		for ev := range events {
			if ev.Type == routing.SendingQuery {
				n++
				seen[ev.ID] = true
			}
		}
		done <- [2]int{n, len(seen)}
	}()
	return ctx, func() (int, int) {
		cancel()
		c := <-done
		return c[0], c[1]
	}
}

// countQuery runs q from asker to completion, checks that it found exactly
// the advertisement want published, and returns the discovery messages the
// whole network sent meanwhile and the DHT RPCs asker's lookup sent (kad-dht
// publishes a routing.SendingQuery event for each on a context registered
// with routing.RegisterForQueryEvents).
func countQuery(ctx context.Context, nw *jnet, asker *jnode, q discovery.Query, want lpeer.ID) (c count, err error) {
	before := nw.sent()
	served := make([]uint64, len(nw.sps))
	for i, sp := range nw.sps {
		served[i] = sp.d.Stats().QueriesServed
	}
	qctx, stop := countRPCs(ctx)
	res, err := find(qctx, asker, q)
	c.rpcs, c.peers = stop()
	if err != nil {
		return c, err
	}
	if len(res) != 1 || lpeer.ID(res[0].Publisher) != want {
		return c, fmt.Errorf("found %d advertisements, want the far one", len(res))
	}
	// Every forwarded request is answered before the answer that carries it,
	// so the count is complete when Find returns; wait for it to stay still
	// anyway.
	after := nw.sent()
	err = waitFor(ctx, "the network to fall silent", 100*time.Millisecond, 3*time.Second, func() (bool, error) {
		now := nw.sent()
		still := now == after
		after = now
		return still, nil
	})
	c.msgs = int(after - before)
	for i, sp := range nw.sps {
		if n := int(sp.d.Stats().QueriesServed - served[i]); n > 1 {
			c.dups += n - 1
		}
	}
	return c, err
}

// countFlatDHT counts the RPCs of a provider lookup in a flat kad-dht, every
// one of its n peers a server (raw go-libp2p hosts, as in the exact-DHT-query
// row's baseline): the DHT as the seeds describe it, for comparison with
// juxta's, which holds only the super-peers. Server i bootstraps from the
// first and the previous one, then every server refreshes its routing table;
// the last provides, the first looks up with discovery's default limit and
// fetches from the provider with one round trip.
func countFlatDHT(ctx context.Context, n int) (_ count, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	start := time.Now()
	var rs []*rawDHT
	defer func() { err = errors.Join(err, closeRawDHTs(rs)) }()
	info := func(r *rawDHT) lpeer.AddrInfo { return lpeer.AddrInfo{ID: r.h.ID(), Addrs: r.h.Addrs()} }
	for i := range n {
		var boot []lpeer.AddrInfo
		switch {
		case i == 1:
			boot = []lpeer.AddrInfo{info(rs[0])}
		case i > 1:
			boot = []lpeer.AddrInfo{info(rs[0]), info(rs[i-1])}
		}
		r, err := startRawDHT(ctx, true, boot)
		if err != nil {
			return count{}, fmt.Errorf("server %d: %w", i, err)
		}
		rs = append(rs, r)
	}
	logf("    flat DHT: %d servers started in %.1fs", n, time.Since(start).Seconds())
	refreshed := make([]<-chan error, n)
	for i, r := range rs {
		refreshed[i] = r.d.RefreshRoutingTable()
	}
	for i, ch := range refreshed {
		if err := <-ch; err != nil {
			return count{}, fmt.Errorf("server %d: refresh: %w", i, err)
		}
	}
	logf("    flat DHT: %d servers started and refreshed in %.1fs", n, time.Since(start).Seconds())
	sum, err := mh.Sum([]byte("juxta-bench flat DHT"), mh.SHA2_256, -1)
	if err != nil {
		return count{}, err
	}
	key := cid.NewCidV1(cid.Raw, sum)
	pub, seeker := rs[n-1], rs[0]
	pub.h.SetStreamHandler(rrProto, rrServe)
	if err := pub.d.Provide(ctx, key, true); err != nil {
		return count{}, fmt.Errorf("provide: %w", err)
	}
	var cs []count
	for range msgsRepeat {
		qctx, stop := countRPCs(ctx)
		found := false
		for ai := range seeker.d.FindProvidersAsync(qctx, key, discovery.DefaultLimit) {
			found = found || ai.ID == pub.h.ID()
		}
		c := count{msgs: 2} // and the fetch: a request and its answer
		c.rpcs, c.peers = stop()
		if !found {
			return c, errors.New("the provider was not found")
		}
		if err := roundTrip(ctx, seeker.h, pub.h.ID()); err != nil {
			return c, err
		}
		logf("    flat DHT    %v", c)
		cs = append(cs, c)
	}
	return medianCount(cs), nil
}

// randomGraph returns m distinct links among n nodes that connect them all: a
// random tree first, then random links.
func randomGraph(n, m int, r *rand.Rand) [][2]int {
	have := map[[2]int]bool{}
	var links [][2]int
	add := func(a, b int) {
		if a == b {
			return
		}
		l := [2]int{min(a, b), max(a, b)}
		if !have[l] {
			have[l] = true
			links = append(links, l)
		}
	}
	for i := 1; i < n; i++ {
		add(r.IntN(i), i)
	}
	for len(links) < min(m, n*(n-1)/2) {
		add(r.IntN(n), r.IntN(n))
	}
	return links
}

// hops returns every node's distance in links from node from.
func hops(n int, links [][2]int, from int) []int {
	adj := make([][]int, n)
	for _, l := range links {
		adj[l[0]] = append(adj[l[0]], l[1])
		adj[l[1]] = append(adj[l[1]], l[0])
	}
	dist := slices.Repeat([]int{-1}, n)
	dist[from] = 0
	queue := []int{from}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, y := range adj[x] {
			if dist[y] < 0 {
				dist[y] = dist[x] + 1
				queue = append(queue, y)
			}
		}
	}
	return dist
}

// printMessages writes the table and its notes.
func printMessages(w io.Writer, lines []msgsLine) {
	fmt.Fprintf(w, "## %s\n\n", msgsName)
	fmt.Fprintln(w, "| peers | flooding | super-peer (1) | super-peers (3, forwarding) | duplicate answers among the 3 | DHT (3 super-peers) | flat DHT, not juxta (every peer a server) |")
	fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range lines {
		fmt.Fprintf(w, "| %d | %v (%d links) | %v | %v | %d | %v | %v |\n", l.n, l.flood, l.links, l.sp1, l.sp3, l.sp3.dups, l.dht, l.flat)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "Messages sent network-wide for one query that finds one advertisement, published by a peer far from the asker (median of %d queries).\n", msgsRepeat)
	fmt.Fprintln(w, "Discovery messages are protocol frames (requests, answers, forwarded requests), summed over every peer's discovery Stats().MessagesSent;")
	fmt.Fprintln(w, "a DHT RPC counts as 2 messages (request and response), counted from kad-dht's routing.SendingQuery events. Connection set-up is not counted.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "- flooding: every peer floods (discovery.Config.Flood); a random connected network with twice as many links as peers (average degree 4); wildcard query, TTL discovery.MaxTTL, from peer 0 to the farthest peer.")
	fmt.Fprintln(w, "- super-peer (1): 1 super-peer and N−1 edges attached to it; wildcard query from one edge, the advertisement published by another.")
	fmt.Fprintln(w, "- super-peers (3, forwarding): 3 super-peers that know each other, edges attached round robin; wildcard query from an edge of the first, published by an edge of the third, so the first forwards (default TTL) with a visited list (each super-peer trusts the other two: discovery TrustSuperPeers). Duplicate answers: times a super-peer served the same query more than once (Stats().QueriesServed).")
	fmt.Fprintln(w, "- DHT: the same network; exact query (SourceDHT): FindProvidersAsync with the default limit, then the advertisement fetched from the provider. Edges are DHT clients, so the DHT holds only the 3 super-peers.")
	fmt.Fprintln(w, "- flat DHT: not juxta: N raw go-libp2p hosts, every one a kad-dht server (k = 20), routing tables refreshed; the same lookup, then one stream round trip to the provider (2 messages).")
}
