package pipes

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

// PropagateHooks let a scope (a group) validate and transform the payloads of
// its propagate pipes. All are optional.
type PropagateHooks struct {
	// Validate runs in GossipSub's validation, before a message is forwarded
	// or delivered: false drops it, so it reaches no one through this peer.
	Validate func(from peer.ID, payload []byte) bool
	// Seal transforms a payload before it is published (for example, encrypts
	// it with the group key).
	Seal func(payload []byte) ([]byte, error)
	// Open reverses Seal on receipt; an error drops the message.
	Open func(from peer.ID, sealed []byte) ([]byte, error)
}

// pubsubState is the peer's one GossipSub router, started on first Join.
type pubsubState struct {
	ps     *pubsub.PubSub
	wd     *watchdog
	cancel context.CancelFunc
	done   chan struct{} // closed when the watchdog returns
}

func (ps *pubsubState) close() {
	ps.cancel()
	<-ps.done
}

// SeenMessagesTTL is how long GossipSub remembers a message ID, dropping
// copies seen again within it.
const SeenMessagesTTL = 10 * time.Minute

// MaxPropagateMessage bounds a propagate-pipe payload (GossipSub's own limit
// is 1 MiB per RPC).
const MaxPropagateMessage = 512 << 10

func (c *core) pubsub() (*pubsub.PubSub, error) {
	var err error
	c.psOnce.Do(func() {
		ctx, cancel := context.WithCancel(c.ctx)
		wd := newWatchdog(c.host, c.p, c.log)
		var ps *pubsub.PubSub
		ps, err = pubsub.NewGossipSub(ctx, c.host,
			pubsub.WithRawTracer(wd),
			pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
			pubsub.WithPeerExchange(true),
			// A peer's own messages go to every member known to subscribe,
			// not only to its mesh: a message published before GossipSub
			// grafted a mesh (in its first heartbeat) would otherwise reach
			// no one. Forwarding stays on the mesh.
			pubsub.WithFloodPublish(true),
			// Remember message IDs as long as groups accept a sealed
			// message's age, so a captured message cannot be replayed.
			pubsub.WithSeenMessagesTTL(SeenMessagesTTL),
		)
		if err != nil {
			cancel()
			return
		}
		wd.ps = ps
		c.ps = &pubsubState{ps: ps, wd: wd, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(c.ps.done)
			wd.run(ctx)
		}()
	})
	if err != nil {
		return nil, fmt.Errorf("pipes: start GossipSub: %w", err)
	}
	if c.ps == nil {
		if c.ctx.Err() != nil { // Close ran first and made sure none starts
			return nil, fmt.Errorf("pipes: %w", net.ErrClosed)
		}
		return nil, errors.New("pipes: GossipSub failed to start earlier")
	}
	return c.ps.ps, nil
}

// Topic is a joined propagate pipe: every message published reaches every
// member, each with its sender's verified peer ID.
type Topic struct {
	s      *Service
	id     string
	name   string
	topic  *pubsub.Topic
	sub    *pubsub.Subscription
	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	drops  atomic.Uint64
}

// Message is one propagate-pipe message.
type Message struct {
	// From is the sender, verified from GossipSub's signature.
	From peer.ID
	// Data is the payload, opened by the scope's hooks.
	Data []byte
}

// Join subscribes to the propagate pipe id: it publishes this peer's binding,
// connects to other members it finds through discovery so that GossipSub can
// build its mesh, and delivers every message published to the pipe.
func (s *Service) Join(ctx context.Context, id string) (*Topic, error) {
	if err := checkID("pipe", id); err != nil {
		return nil, err
	}
	ps, err := s.pubsub()
	if err != nil {
		return nil, err
	}
	name := string(s.protocolFor(KindPropagate, id))
	if v := s.hooks.Propagate.Validate; v != nil {
		// Inline: the hooks are cheap (a decrypt, a cached credential check),
		// and a goroutine hand-off per hop costs more than they do.
		err := ps.RegisterTopicValidator(name, func(_ context.Context, _ lpeer.ID, m *pubsub.Message) bool {
			return v(peer.ID(m.GetFrom()), m.Data)
		}, pubsub.WithValidatorInline(true))
		if err != nil {
			return nil, fmt.Errorf("pipes: join %s: %w", id, err)
		}
	}
	topic, err := ps.Join(name)
	if err != nil {
		_ = ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("pipes: join %s: %w", id, err)
	}
	sub, err := topic.Subscribe(pubsub.WithBufferSize(256))
	if err != nil {
		topic.Close()
		_ = ps.UnregisterTopicValidator(name)
		return nil, fmt.Errorf("pipes: subscribe %s: %w", id, err)
	}
	t := &Topic{s: s, id: id, name: name, topic: topic, sub: sub}
	t.ctx, t.cancel = context.WithCancel(s.ctx)
	if !s.track(t, func() { t.Close() }) {
		t.Close()
		return nil, fmt.Errorf("pipes: join: %w", net.ErrClosed)
	}
	if err := s.publish(ctx, KindPropagate, id, listenOpts{public: true}); err != nil {
		t.Close()
		return nil, fmt.Errorf("pipes: bind %s: %w", id, err)
	}
	t.wg.Add(1)
	go t.meet()
	return t, nil
}

// meetLimit bounds the members a peer dials to seed the GossipSub mesh.
const meetLimit = 8

// meet connects to other members found through discovery, now and then, so that
// members who share no connection find each other.
func (t *Topic) meet() {
	defer t.wg.Done()
	wait := 100 * time.Millisecond
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
		if len(t.topic.ListPeers()) >= meetLimit {
			continue
		}
		q := discovery.Query{Type: discovery.TypePipe, Attr: "id", Value: t.id, Limit: 32}
		var cands []peer.ID
		// Nearby sources first; the DHT (slow to say "nobody") only when they
		// know no other member.
		for _, src := range []discovery.Source{discovery.DefaultSources &^ discovery.SourceDHT, discovery.SourceDHT} {
			q.Sources = src
			for r, err := range t.s.disc.Scoped(t.s.discoveryScope()).Find(t.ctx, q) {
				if err != nil || r.Attrs["kind"] != string(KindPropagate) || r.Publisher == t.s.p.ID() {
					continue
				}
				if t.s.p.PathTo(r.Publisher) == peer.PathNone {
					if !slices.Contains(cands, r.Publisher) {
						cands = append(cands, r.Publisher)
					}
				} else if !slices.Contains(t.topic.ListPeers(), lpeer.ID(r.Publisher)) {
					// Connected and joined, yet not a topic peer: GossipSub
					// may have forgotten its subscriptions (see watchdog).
					t.s.ps.wd.suspect(t.name, lpeer.ID(r.Publisher))
				}
			}
			if len(cands) > 0 || len(t.topic.ListPeers()) > 0 {
				break
			}
		}
		// Shuffled, so that members do not all dial the same early joiners
		// and turn them into hubs.
		rand.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
		dialled := 0
		for _, id := range cands {
			if dialled >= meetLimit {
				break
			}
			ctx, cancel := context.WithTimeout(t.ctx, 5*time.Second)
			if _, err := t.s.p.Connect(ctx, peer.Addr{ID: id}); err == nil {
				dialled++
			}
			cancel()
		}
	}
}

// Publish sends data to every member.
func (t *Topic) Publish(ctx context.Context, data []byte) error {
	if len(data) > MaxPropagateMessage {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(data), MaxPropagateMessage)
	}
	if seal := t.s.hooks.Propagate.Seal; seal != nil {
		var err error
		if data, err = seal(data); err != nil {
			return fmt.Errorf("pipes: seal: %w", err)
		}
	}
	if err := t.topic.Publish(ctx, data); err != nil {
		return fmt.Errorf("pipes: publish to %s: %w", t.id, err)
	}
	return nil
}

// Next returns the next message, own messages included. Messages the scope's
// Open hook rejects are dropped and counted in Dropped.
func (t *Topic) Next(ctx context.Context) (Message, error) {
	for {
		m, err := t.sub.Next(ctx)
		if err != nil {
			if t.ctx.Err() != nil {
				return Message{}, fmt.Errorf("pipes: topic %s: %w", t.id, net.ErrClosed)
			}
			return Message{}, err
		}
		from := peer.ID(m.GetFrom())
		data := m.Data
		if open := t.s.hooks.Propagate.Open; open != nil {
			if data, err = open(from, data); err != nil {
				t.drops.Add(1)
				continue
			}
		}
		return Message{From: from, Data: data}, nil
	}
}

// Peers are the members this peer exchanges messages with directly.
func (t *Topic) Peers() []peer.ID {
	lps := t.topic.ListPeers()
	out := make([]peer.ID, len(lps))
	for i, id := range lps {
		out[i] = peer.ID(id)
	}
	return out
}

// Dropped counts received messages the Open hook rejected.
func (t *Topic) Dropped() uint64 { return t.drops.Load() }

// Close leaves the pipe and withdraws the binding. A second call returns
// net.ErrClosed.
func (t *Topic) Close() error {
	first := false
	t.once.Do(func() {
		first = true
		t.cancel()
		t.sub.Cancel()
		t.wg.Wait()
		_ = t.topic.Close()
		if t.s.hooks.Propagate.Validate != nil && t.s.ps != nil {
			_ = t.s.ps.ps.UnregisterTopicValidator(t.name)
		}
		t.s.untrack(t)
		t.s.unbind(t.id)
	})
	if !first {
		return fmt.Errorf("pipes: close: %w", net.ErrClosed)
	}
	return nil
}
