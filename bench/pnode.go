package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/internal/stats"
	jpeer "github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Juxta peers as an application runs them, for the pipes and groups rows:
// peer, discovery (defaults), pipes and, if asked, groups (defaults).

// pnode is a juxta peer with discovery, pipes and optionally groups.
type pnode struct {
	p *jpeer.Peer
	d *discovery.Service
	s *pipes.Service
	g *groups.Service // nil unless started withGroups
}

// startPNode starts a pnode with cfg and, if cfg names super-peers, waits
// until it is ready (peer.Peer.Ready).
func startPNode(ctx context.Context, cfg jpeer.Config, withGroups bool) (_ *pnode, err error) {
	n := &pnode{}
	defer func() {
		if err != nil {
			err = errors.Join(err, n.close())
		}
	}()
	if n.p, err = jpeer.New(ctx, cfg); err != nil {
		return nil, err
	}
	if n.d, err = discovery.New(ctx, n.p, discovery.Config{}); err != nil {
		return nil, err
	}
	if n.s, err = pipes.New(ctx, n.p, n.d); err != nil {
		return nil, err
	}
	if withGroups {
		if n.g, err = groups.New(ctx, n.p, n.d, n.s, groups.Config{}); err != nil {
			return nil, err
		}
	}
	if err := n.p.Ready(ctx); err != nil {
		return nil, err
	}
	return n, nil
}

// close stops what started, last started first.
func (n *pnode) close() error {
	var errs []error
	if n.g != nil {
		errs = append(errs, n.g.Close())
	}
	if n.s != nil {
		errs = append(errs, n.s.Close())
	}
	if n.d != nil {
		errs = append(errs, n.d.Close())
	}
	if n.p != nil {
		errs = append(errs, n.p.Close())
	}
	return errors.Join(errs...)
}

// pnodePair starts two pnodes with cfg (no super-peer) and connects the
// second to the first.
func pnodePair(ctx context.Context, cfg jpeer.Config) (a, b *pnode, closeBoth func() error, err error) {
	if a, err = startPNode(ctx, cfg, false); err != nil {
		return nil, nil, nil, err
	}
	if b, err = startPNode(ctx, cfg, false); err != nil {
		return nil, nil, nil, errors.Join(err, a.close())
	}
	closeBoth = func() error { return errors.Join(b.close(), a.close()) }
	if _, err := b.p.Connect(ctx, a.p.Addr()); err != nil {
		return nil, nil, nil, errors.Join(fmt.Errorf("connect: %w", err), closeBoth())
	}
	return a, b, closeBoth, nil
}

// pnet is one super-peer and the members: edges configured with it. The
// super-peer is infrastructure (the index members find each other's bindings
// in), not a member.
type pnet struct {
	sp      *pnode
	members []*pnode
}

// startPNet starts a super-peer and n member edges, a few at a time, each
// ready when it returns.
func startPNet(ctx context.Context, n int, withGroups bool) (_ *pnet, err error) {
	start := time.Now()
	nw := &pnet{}
	defer func() {
		if err != nil {
			err = errors.Join(err, nw.close())
		}
	}()
	if nw.sp, err = startPNode(ctx, jpeer.TestSuperPeerConfig(), withGroups); err != nil {
		return nil, fmt.Errorf("super-peer: %w", err)
	}
	nw.members, err = startEach(ctx, n, func(ctx context.Context, i int) (*pnode, error) {
		m, err := startPNode(ctx, nw.edgeConfig(), withGroups)
		if err != nil {
			return nil, fmt.Errorf("member %d: %w", i, err)
		}
		return m, nil
	}, (*pnode).close)
	if err != nil {
		return nil, err
	}
	logf("    started a super-peer and %d members in %.1fs", n, time.Since(start).Seconds())
	return nw, nil
}

// edgeConfig is the configuration of an edge attached to the super-peer.
func (nw *pnet) edgeConfig() jpeer.Config {
	cfg := jpeer.TestConfig()
	cfg.SuperPeers = []string{nw.sp.p.Invite()}
	return cfg
}

// close closes the members, then the super-peer.
func (nw *pnet) close() error {
	errs := []error{closeEach(nw.members, (*pnode).close)}
	if nw.sp != nil {
		errs = append(errs, nw.sp.close())
	}
	return errors.Join(errs...)
}

// links is the connection graph among the members: the pairs (i < j) that
// hold a connection.
func (nw *pnet) links() [][2]int {
	var out [][2]int
	for i, a := range nw.members {
		for j := i + 1; j < len(nw.members); j++ {
			if a.p.Libp2p().Host.Network().Connectedness(lp(nw.members[j].p.ID())) == network.Connected {
				out = append(out, [2]int{i, j})
			}
		}
	}
	return out
}

// graphStats describes a graph of n nodes for -v: links and degrees.
func graphStats(n int, links [][2]int) string {
	deg := make([]int, n)
	for _, l := range links {
		deg[l[0]]++
		deg[l[1]]++
	}
	return fmt.Sprintf("%d links, degree min %d, max %d, mean %.1f", len(links), slices.Min(deg), slices.Max(deg), 2*float64(len(links))/float64(n))
}

// startEach runs start(i) for every i in [0, n), a few at a time, and returns
// the results in the order of i. On error it closes those that started.
func startEach[T comparable](ctx context.Context, n int, start func(ctx context.Context, i int) (T, error), closeFn func(T) error) ([]T, error) {
	out := make([]T, n)
	errs := make([]error, n)
	sem := make(chan struct{}, startConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = start(ctx, i)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, errors.Join(err, closeEach(out, closeFn))
	}
	return out, nil
}

// closeEach closes the non-zero elements of xs, a few at a time.
func closeEach[T comparable](xs []T, closeFn func(T) error) error {
	var zero T
	errs := make([]error, len(xs))
	sem := make(chan struct{}, startConcurrency)
	var wg sync.WaitGroup
	for i, x := range xs {
		if x == zero {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = closeFn(x)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// parallel runs f(i) for every i in [0, n), a few at a time, and joins the
// errors.
func parallel(n int, f func(i int) error) error {
	errs := make([]error, n)
	sem := make(chan struct{}, startConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = f(i)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// arrivals follows one message at a time through a group of n members: it
// records when the last member other than the publisher received it.
type arrivals struct {
	mu   sync.Mutex
	tag  string // the message in flight; "" when none
	from int    // its publisher
	seen []bool
	left int
	last time.Time
	done chan struct{}
	seq  int // messages expected so far, for fresh tags
}

func newArrivals(n int) *arrivals { return &arrivals{seen: make([]bool, n)} }

// next starts following a new message from member from, and returns its tag
// (unique across the arrivals' life) and a channel closed once every other
// member has seen it.
func (a *arrivals) next(from int) (string, <-chan struct{}) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	a.tag, a.from = fmt.Sprintf("m%d", a.seq), from
	clear(a.seen)
	a.left = len(a.seen) - 1
	a.done = make(chan struct{})
	return a.tag, a.done
}

// saw records that member received the message tagged tag; stale and repeated
// receipts are ignored.
func (a *arrivals) saw(member int, tag string) {
	now := time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if tag != a.tag || member == a.from || a.seen[member] {
		return
	}
	a.seen[member] = true
	a.left--
	if a.left == 0 {
		a.last = now
		close(a.done)
	}
}

// timeToAll sends msgs messages, from the members in turn (*next says whose
// turn it is), each once the previous one reached every member, and returns
// the median, in ms, of the time from calling send until the last member
// received the message.
func timeToAll(ctx context.Context, a *arrivals, msgs int, next *int, send func(ctx context.Context, from int, tag string) error) (float64, error) {
	lat := make([]float64, 0, msgs)
	for range msgs {
		from := *next % len(a.seen)
		*next++
		tag, done := a.next(from)
		start := time.Now()
		if err := send(ctx, from, tag); err != nil {
			return 0, fmt.Errorf("member %d: send: %w", from, err)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.mu.Lock()
			left := a.left
			a.mu.Unlock()
			return 0, fmt.Errorf("message %s from member %d: %d of %d members did not receive it in 10s", tag, from, left, len(a.seen)-1)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		a.mu.Lock()
		lat = append(lat, ms(a.last.Sub(start)))
		a.mu.Unlock()
	}
	return stats.Median(lat), nil
}

// startRawBaseline starts raw GossipSub on n plain hosts wired as links (the
// juxta members' graph), records in the returned arrivals what each host
// receives (readers run on wg until rctx ends), and waits for the mesh.
func startRawBaseline(sctx, rctx context.Context, n int, links [][2]int, wg *sync.WaitGroup) (*rawGossip, *arrivals, error) {
	raw, err := startRawGossip(sctx, n, links)
	if err != nil {
		return nil, nil, err
	}
	arr := newArrivals(n)
	for i, sub := range raw.subs {
		wg.Go(func() {
			for {
				m, err := sub.Next(rctx)
				if err != nil {
					return
				}
				arr.saw(i, tagOf(m.Data))
			}
		})
	}
	if err := raw.waitMesh(sctx); err != nil {
		return raw, arr, err
	}
	return raw, arr, nil
}
