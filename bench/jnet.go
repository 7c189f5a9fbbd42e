package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	jpeer "github.com/juxta-p2p/juxta/peer"
)

// Networks of juxta peers running discovery, for the discovery rows and the
// messages table. Every peer is peer.TestConfig or peer.TestSuperPeerConfig:
// in memory, on 127.0.0.1, no mDNS.

// fileType is the advertisement type the discovery measurements publish.
const fileType = "fileshare.file"

// unlimited is the discovery configuration of the latency rows: the
// defaults, but a query rate per asking peer (Config.QueryRate, default 20/s
// in bursts of 40) so high that back-to-back queries from a few dozen edges
// are never refused. The limiter still runs on every query.
var unlimited = discovery.Config{QueryRate: 1e6}

// startConcurrency bounds how many peers start or close at once.
const startConcurrency = 4

// jnode is a juxta peer running discovery.
type jnode struct {
	p *jpeer.Peer
	d *discovery.Service
}

func startJNode(ctx context.Context, cfg jpeer.Config, dcfg discovery.Config) (*jnode, error) {
	p, err := jpeer.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	d, err := discovery.New(ctx, p, dcfg)
	if err != nil {
		p.Close()
		return nil, err
	}
	return &jnode{p: p, d: d}, nil
}

func (n *jnode) close() error { return errors.Join(n.d.Close(), n.p.Close()) }

// jnet is a network of juxta peers running discovery.
type jnet struct {
	sps   []*jnode // super-peers
	edges []*jnode // edges (in a flooding network, every peer)
}

func (nw *jnet) all() []*jnode { return slices.Concat(nw.sps, nw.edges) }

// close closes the edges, then the super-peers.
func (nw *jnet) close() error {
	return errors.Join(closeAll(nw.edges), closeAll(nw.sps))
}

// sent is the number of discovery messages the network's peers have sent.
func (nw *jnet) sent() uint64 {
	var n uint64
	for _, x := range nw.all() {
		n += x.d.Stats().MessagesSent
	}
	return n
}

// closeAll closes the non-nil nodes, a few at a time.
func closeAll(nodes []*jnode) error {
	errs := make([]error, len(nodes))
	sem := make(chan struct{}, startConcurrency)
	var wg sync.WaitGroup
	for i, n := range nodes {
		if n == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = n.close()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// startMany runs start(i) for every i in [0, n), a few at a time, and returns
// the nodes in the order of i. On error it closes those that started.
func startMany(ctx context.Context, n int, start func(ctx context.Context, i int) (*jnode, error)) ([]*jnode, error) {
	nodes := make([]*jnode, n)
	errs := make([]error, n)
	sem := make(chan struct{}, startConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			nodes[i], errs[i] = start(ctx, i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, closeAll(nodes))
	}
	return nodes, nil
}

// superPeerNet starts nsp super-peers, each configured with those started
// before it (so that they all know each other), and nedges edges, edge i
// configured with super-peer i mod nsp. It returns once every peer with a
// super-peer configured is ready (see peer.Peer.Ready). Every peer runs
// discovery with dcfg.
func superPeerNet(ctx context.Context, nsp, nedges int, dcfg discovery.Config) (_ *jnet, err error) {
	start := time.Now()
	nw := &jnet{}
	defer func() {
		if err != nil {
			err = errors.Join(err, nw.close())
		}
	}()
	for i := range nsp {
		cfg := jpeer.TestSuperPeerConfig()
		for _, sp := range nw.sps {
			cfg.SuperPeers = append(cfg.SuperPeers, sp.p.Invite())
		}
		n, err := startJNode(ctx, cfg, dcfg)
		if err != nil {
			return nil, fmt.Errorf("super-peer %d: %w", i, err)
		}
		nw.sps = append(nw.sps, n)
		if err := n.p.Ready(ctx); err != nil {
			return nil, fmt.Errorf("super-peer %d: %w", i, err)
		}
	}
	// Each super-peer's operator trusts the others: the earlier ones are in its
	// configuration, the later ones are not.
	for _, sp := range nw.sps {
		for _, o := range nw.sps {
			if o != sp {
				sp.d.TrustSuperPeers(o.p.ID())
			}
		}
	}
	nw.edges, err = startMany(ctx, nedges, func(ctx context.Context, i int) (*jnode, error) {
		cfg := jpeer.TestConfig()
		cfg.SuperPeers = []string{nw.sps[i%nsp].p.Invite()}
		n, err := startJNode(ctx, cfg, dcfg)
		if err != nil {
			return nil, fmt.Errorf("edge %d: %w", i, err)
		}
		if err := n.p.Ready(ctx); err != nil {
			return nil, errors.Join(fmt.Errorf("edge %d: %w", i, err), n.close())
		}
		return n, nil
	})
	if err != nil {
		return nil, err
	}
	logf("    started %d super-peers and %d edges in %.1fs", nsp, nedges, time.Since(start).Seconds())
	return nw, nil
}

// fileAd is the advertisement of a file with the given name.
func fileAd(id, name string) discovery.Advertisement {
	return discovery.Advertisement{Type: fileType, ID: id, Attrs: map[string]string{"name": name}}
}

// find runs q on n to completion and returns what it found.
func find(ctx context.Context, n *jnode, q discovery.Query) ([]discovery.Result, error) {
	var out []discovery.Result
	for r, err := range n.d.Find(ctx, q) {
		if err != nil {
			return out, err
		}
		out = append(out, r)
	}
	return out, nil
}

// waitFor polls cond every interval until it holds, ctx ends or limit passes.
func waitFor(ctx context.Context, what string, interval, limit time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := cond()
		if err != nil {
			return fmt.Errorf("waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", limit, what)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}
