package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/pipes"
)

// The propagate rows: time from Publish until every member of a propagate
// pipe has the message, among n members attached to one super-peer, against
// raw GossipSub on plain libp2p hosts wired the same way.
const (
	propagatePipe    = "bench-news"
	propagateMsgs    = 20 // messages per repetition and side
	propagatePayload = 64 // bytes of a message, its tag included
	// meshSettle follows "every member has a topic peer": GossipSub grafts
	// its mesh on its heartbeat (1 s).
	meshSettle = 1500 * time.Millisecond
)

// propagateFixture is a juxta network whose members joined one propagate
// pipe, and a raw GossipSub network of plain hosts with the same connection
// graph among the members, built once per row.
type propagateFixture struct {
	n int

	nw     *pnet
	topics []*pipes.Topic
	jarr   *arrivals
	jnext  int
	raw    *rawGossip
	rarr   *arrivals
	rnext  int
	cancel context.CancelFunc // stops the receivers
	wg     sync.WaitGroup
}

func newPropagateFixture(n int) *propagateFixture { return &propagateFixture{n: n} }

// setup starts the juxta network, joins every member to the pipe, waits for
// the mesh, then copies the members' connection graph to a raw network.
func (f *propagateFixture) setup(ctx context.Context) (_ func() error, err error) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(context.Background())
	f.cancel, f.jnext, f.rnext = stop, 0, 0
	f.topics, f.raw = nil, nil
	if f.nw, err = startPNet(sctx, f.n, false); err != nil {
		stop()
		return nil, err
	}
	teardown := f.teardown
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()

	logf("    members' graph before joining: %s", graphStats(f.n, f.nw.links()))
	start := time.Now()
	f.topics = make([]*pipes.Topic, f.n)
	err = parallel(f.n, func(i int) (err error) {
		f.topics[i], err = f.nw.members[i].s.Join(sctx, propagatePipe)
		return err
	})
	if err != nil {
		return nil, err
	}
	f.jarr = newArrivals(f.n)
	for i, t := range f.topics {
		f.wg.Go(func() {
			for {
				m, err := t.Next(rctx)
				if err != nil {
					return
				}
				f.jarr.saw(i, tagOf(m.Data))
			}
		})
	}
	err = waitFor(sctx, "every member to have a topic peer", 20*time.Millisecond, time.Minute, func() (bool, error) {
		for _, t := range f.topics {
			if len(t.Peers()) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	time.Sleep(meshSettle)
	links := f.nw.links()
	logf("    juxta: every member has a topic peer %.1fs after joining; members' graph: %s", time.Since(start).Seconds()-meshSettle.Seconds(), graphStats(f.n, links))

	if f.raw, f.rarr, err = startRawBaseline(sctx, rctx, f.n, links, &f.wg); err != nil {
		return nil, err
	}
	if err := settle(sctx); err != nil {
		return nil, err
	}
	return teardown, nil
}

func (f *propagateFixture) teardown() error {
	f.cancel()
	var errs []error
	for _, t := range f.topics {
		if t != nil {
			errs = append(errs, t.Close())
		}
	}
	if f.raw != nil {
		errs = append(errs, f.raw.close())
	}
	f.wg.Wait()
	if f.nw != nil {
		errs = append(errs, f.nw.close())
	}
	return errors.Join(errs...)
}

func (f *propagateFixture) juxta(ctx context.Context) (float64, error) {
	return timeToAll(ctx, f.jarr, propagateMsgs, &f.jnext, func(ctx context.Context, from int, tag string) error {
		return f.topics[from].Publish(ctx, payload(tag))
	})
}

func (f *propagateFixture) base(ctx context.Context) (float64, error) {
	return timeToAll(ctx, f.rarr, propagateMsgs, &f.rnext, f.raw.publish)
}

// payload is a propagatePayload-byte message carrying tag, then padding.
func payload(tag string) []byte {
	b := make([]byte, propagatePayload)
	for i := range b {
		b[i] = '.'
	}
	copy(b, tag+"|")
	return b
}

// tagOf reads the tag of a payload.
func tagOf(b []byte) string {
	for i, c := range b {
		if c == '|' {
			return string(b[:i])
		}
	}
	return ""
}

// rawGossip is n plain libp2p hosts (libp2p.New, loopback TCP and QUIC,
// metrics off as on juxta's hosts) each running go-libp2p-pubsub's GossipSub,
// subscribed to one topic. The router has juxta's options
// (pipes/propagate.go: StrictSign, which is also the default, peer exchange
// on prune, the seen-messages TTL), so that a ratio shows juxta's layer and
// not a difference in settings. Without peer exchange, a member whose few
// connections all go to hubs can be pruned from every mesh and, backed off
// for a minute, miss messages that gossip does not happen to repair in time.
type rawGossip struct {
	hosts  []host.Host
	topics []*pubsub.Topic
	subs   []*pubsub.Subscription
	cancel context.CancelFunc
}

const rawTopic = "juxta-bench/raw"

// startRawGossip starts n hosts, joins them to the topic and connects host
// i to host j for every link.
func startRawGossip(ctx context.Context, n int, links [][2]int) (_ *rawGossip, err error) {
	start := time.Now()
	psCtx, cancel := context.WithCancel(context.Background())
	r := &rawGossip{cancel: cancel}
	defer func() {
		if err != nil {
			err = errors.Join(err, r.close())
		}
	}()
	for i := range n {
		// Metrics off, as on juxta's hosts: go-libp2p's default Prometheus
		// metrics cost the baseline about a tenth of its fan-out time.
		h, err := libp2p.New(libp2p.ListenAddrStrings(loopbackBoth...), libp2p.DisableMetrics())
		if err != nil {
			return nil, fmt.Errorf("raw host %d: %w", i, err)
		}
		r.hosts = append(r.hosts, h)
		ps, err := pubsub.NewGossipSub(psCtx, h,
			pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
			pubsub.WithPeerExchange(true),
			pubsub.WithSeenMessagesTTL(pipes.SeenMessagesTTL),
		)
		if err != nil {
			return nil, fmt.Errorf("raw host %d: gossipsub: %w", i, err)
		}
		t, err := ps.Join(rawTopic)
		if err != nil {
			return nil, fmt.Errorf("raw host %d: join: %w", i, err)
		}
		r.topics = append(r.topics, t)
		sub, err := t.Subscribe(pubsub.WithBufferSize(256))
		if err != nil {
			return nil, fmt.Errorf("raw host %d: subscribe: %w", i, err)
		}
		r.subs = append(r.subs, sub)
	}
	err = parallel(len(links), func(i int) error {
		l := links[i]
		a, b := r.hosts[l[0]], r.hosts[l[1]]
		if err := a.Connect(ctx, lpeer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
			return fmt.Errorf("raw link %d-%d: %w", l[0], l[1], err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(links) > 0 {
		if c := r.hosts[links[0][0]].Network().ConnsToPeer(r.hosts[links[0][1]].ID()); len(c) > 0 {
			logf("    raw: %d hosts, %d links, started in %.1fs, over %s", n, len(links), time.Since(start).Seconds(), c[0].RemoteMultiaddr())
		}
	}
	return r, nil
}

// waitMesh waits until every host has a topic peer, then for GossipSub's
// heartbeat to graft the mesh.
func (r *rawGossip) waitMesh(ctx context.Context) error {
	err := waitFor(ctx, "every raw host to have a topic peer", 20*time.Millisecond, time.Minute, func() (bool, error) {
		for _, t := range r.topics {
			if len(t.ListPeers()) == 0 {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	time.Sleep(meshSettle)
	return nil
}

func (r *rawGossip) publish(ctx context.Context, from int, tag string) error {
	return r.topics[from].Publish(ctx, payload(tag))
}

func (r *rawGossip) close() error {
	for _, s := range r.subs {
		s.Cancel()
	}
	r.cancel() // stops the routers; their topics go with them
	var errs []error
	for _, h := range r.hosts {
		errs = append(errs, h.Close())
	}
	return errors.Join(errs...)
}
