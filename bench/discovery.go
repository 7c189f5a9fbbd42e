package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/internal/stats"
)

// The attribute-query rows: a wildcard query through one super-peer, in a
// network of 1 super-peer and 49 edges.
const (
	queryPeers    = 50  // 1 super-peer, the rest edges
	queriesPerRep = 400 // queries per repetition and side
	queryPattern  = "file-3*"
)

// queryFixture is the network of a query row, built once per row, and the
// pair of raw hosts of its baseline. Each repetition runs queriesPerRep
// queries and reports the pct-th percentile of their latency.
type queryFixture struct {
	pct float64

	nw      *jnet
	want    int   // advertisements the query matches
	a, b    *node // baseline: b asks a
	closeAB func() error

	next int // the edge that asks next
}

func newQueryFixture(pct float64) *queryFixture { return &queryFixture{pct: pct} }

// setup starts the network (each edge publishes "file-NN.txt", NN its index),
// waits until the super-peer's index holds every file, and starts and connects
// the baseline pair.
func (f *queryFixture) setup(ctx context.Context) (_ func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	f.nw, err = superPeerNet(ctx, 1, queryPeers-1, unlimited)
	if err != nil {
		return nil, err
	}
	teardown := f.nw.close
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()
	f.want, f.next = 0, 0
	for i, e := range f.nw.edges {
		name := fmt.Sprintf("file-%02d.txt", i)
		if _, err := e.d.Publish(ctx, fileAd(fmt.Sprint(i), name)); err != nil {
			return nil, fmt.Errorf("edge %d: publish: %w", i, err)
		}
		if strings.HasPrefix(name, strings.TrimSuffix(queryPattern, "*")) {
			f.want++
		}
	}
	sp := f.nw.sps[0]
	err = waitFor(ctx, "the super-peer's index", 20*time.Millisecond, 10*time.Second, func() (bool, error) {
		ads, err := sp.d.Local(discovery.Query{Type: fileType})
		return len(ads) == len(f.nw.edges), err
	})
	if err != nil {
		return nil, err
	}
	if c := f.nw.edges[0].p.Libp2p().Host.Network().ConnsToPeer(lp(sp.p.ID())); len(c) > 0 {
		logf("    edges reach the super-peer over %s", c[0].RemoteMultiaddr())
	}

	if f.a, f.b, f.closeAB, err = pair(ctx, newRaw, loopbackBoth); err != nil {
		return nil, err
	}
	teardown = func() error { return errors.Join(f.closeAB(), f.nw.close()) }
	f.a.host.SetStreamHandler(rrProto, rrServe)
	if err := f.b.connect(ctx, f.a.addrInfo()); err != nil {
		return nil, fmt.Errorf("baseline connect: %w", err)
	}
	// Let the edges' DHT provides and other start-up work finish.
	time.Sleep(time.Second)
	if err := settle(ctx); err != nil {
		return nil, err
	}
	return teardown, nil
}

// juxta runs the wildcard query from the edges in turn, back to back, each
// draining Find.
func (f *queryFixture) juxta(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	q := discovery.Query{Type: fileType, Attr: "name", Value: queryPattern, Sources: discovery.SourceSuperPeers}
	lat := make([]float64, 0, queriesPerRep)
	for range queriesPerRep {
		i := f.next % len(f.nw.edges)
		f.next++
		start := time.Now()
		res, err := find(ctx, f.nw.edges[i], q)
		elapsed := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("edge %d: find: %w", i, err)
		}
		if len(res) != f.want {
			return 0, fmt.Errorf("edge %d: found %d advertisements, want %d", i, len(res), f.want)
		}
		lat = append(lat, ms(elapsed))
	}
	return stats.Percentile(lat, f.pct), nil
}

// base runs as many raw request/response round trips between the pair.
func (f *queryFixture) base(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	lat := make([]float64, 0, queriesPerRep)
	for range queriesPerRep {
		start := time.Now()
		if err := roundTrip(ctx, f.b.host, f.a.host.ID()); err != nil {
			return 0, err
		}
		lat = append(lat, ms(time.Since(start)))
	}
	return stats.Percentile(lat, f.pct), nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
