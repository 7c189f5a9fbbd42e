package pipes

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/juxta-p2p/juxta/peer"
)

// The mesh watchdog repairs a GossipSub state that go-libp2p-pubsub (v0.17.0
// to v0.19.0 at least) can leave for good: a connected peer whose
// subscriptions this peer has forgotten.
//
// GossipSub keeps two streams per peer: its own outbound stream, on which it
// writes, and the peer's, on which the peer's subscriptions arrive once, in
// its hello. When the outbound stream dies while the two stay connected (a
// second connection closes under it, a reset), handleDeadPeers clears every
// subscription learned from the peer and respawns only the writer. The peer's
// stream is still open, so its hello is never sent again: this peer stops
// sending to it for good, while the peer still sends here. After
// MaxBackoffAttempts (4) such deaths within 10 minutes GossipSub also stops
// respawning the writer, and forgets the connected peer altogether.
//
// The watchdog notices the signs of it: a message on a topic arriving
// straight from a peer that is not among the topic's peers, or a connected
// peer whose binding of the pipe says it joined (a member that keeps quiet
// sends nothing to hear). It then resets both GossipSub streams with that peer, so
// that each side respawns its writer and sends its subscriptions again; if
// GossipSub has forgotten the peer altogether, it closes the connections and
// dials again, which GossipSub treats as a new peer.
const (
	// watchEvery is how often the watchdog looks.
	watchEvery = 2 * time.Second
	// watchHeard is how long a message straight from a peer counts as a sign
	// that the peer subscribes.
	watchHeard = 30 * time.Second
	// watchGrace is how long a peer heard from stays missing from the
	// topic's peers before the watchdog repairs: the hello that brings its
	// subscriptions may lag the first message on a loaded machine.
	watchGrace = 5 * time.Second
	// watchBackoff is the first wait between repairs for the same peer; it
	// doubles up to watchBackoffMax.
	watchBackoff    = 15 * time.Second
	watchBackoffMax = 8 * time.Minute
	// watchMaxHeard bounds the (topic, peer) pairs remembered: a hostile peer
	// sending on many topics cannot grow the map past it.
	watchMaxHeard = 4096
)

type heardKey struct {
	topic string
	from  lpeer.ID
}

type watchdog struct {
	host host.Host
	p    *peer.Peer
	log  *slog.Logger
	ps   *pubsub.PubSub // set before run starts

	mu      sync.Mutex
	heard   map[heardKey]time.Time // last message straight from a peer; guarded by mu
	missing map[heardKey]time.Time // since when a heard peer is not a topic peer
	repairs map[lpeer.ID]repairState
	// repaired counts repairs, for tests.
	repaired int
}

type repairState struct {
	next time.Time
	wait time.Duration
}

func newWatchdog(h host.Host, p *peer.Peer, log *slog.Logger) *watchdog {
	return &watchdog{
		host: h, p: p, log: log,
		heard:   make(map[heardKey]time.Time),
		missing: make(map[heardKey]time.Time),
		repairs: make(map[lpeer.ID]repairState),
	}
}

// note records a message that arrived straight from its sender's connection.
// It runs inside GossipSub's event loop and validation: cheap, never blocks
// on GossipSub.
func (w *watchdog) note(m *pubsub.Message) {
	if m == nil || m.ReceivedFrom == "" || m.ReceivedFrom == w.host.ID() || m.Topic == nil {
		return
	}
	w.suspect(*m.Topic, m.ReceivedFrom)
}

// suspect records another sign that from subscribes to topic: it is
// connected and its binding of the pipe says it joined. A member that keeps
// quiet sends nothing the watchdog could hear.
func (w *watchdog) suspect(topic string, from lpeer.ID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := heardKey{topic, from}
	if _, ok := w.heard[k]; !ok && len(w.heard) >= watchMaxHeard {
		return
	}
	w.heard[k] = time.Now()
}

// repairCount is how many repairs the watchdog started.
func (w *watchdog) repairCount() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.repaired
}

// run checks every watchEvery until ctx ends.
func (w *watchdog) run(ctx context.Context) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, id := range w.check(time.Now()) {
			w.repair(ctx, id)
		}
	}
}

// check returns the peers to repair now.
func (w *watchdog) check(now time.Time) []lpeer.ID {
	w.mu.Lock()
	keys := make([]heardKey, 0, len(w.heard))
	for k, at := range w.heard {
		if now.Sub(at) > watchHeard {
			delete(w.heard, k)
			delete(w.missing, k)
			continue
		}
		keys = append(keys, k)
	}
	w.mu.Unlock()

	topicPeers := make(map[string][]lpeer.ID)
	var due []lpeer.ID
	for _, k := range keys {
		peers, ok := topicPeers[k.topic]
		if !ok {
			peers = w.ps.ListPeers(k.topic)
			topicPeers[k.topic] = peers
		}
		ok = slices.Contains(peers, k.from) || w.host.Network().Connectedness(k.from) != network.Connected
		w.mu.Lock()
		if ok {
			delete(w.missing, k)
		} else if since, seen := w.missing[k]; !seen {
			w.missing[k] = now
		} else if now.Sub(since) >= watchGrace && now.After(w.repairs[k.from].next) && !slices.Contains(due, k.from) {
			due = append(due, k.from)
			r := w.repairs[k.from]
			r.wait = min(max(2*r.wait, watchBackoff), watchBackoffMax)
			r.next = now.Add(r.wait)
			w.repairs[k.from] = r
			w.repaired++
		}
		w.mu.Unlock()
	}
	w.mu.Lock()
	for id, r := range w.repairs {
		if now.Sub(r.next) > watchBackoffMax {
			delete(w.repairs, id) // healthy for long enough: forget the backoff
		}
	}
	w.mu.Unlock()
	return due
}

// repair makes GossipSub and the peer exchange subscriptions again.
func (w *watchdog) repair(ctx context.Context, id lpeer.ID) {
	if !slices.Contains(w.ps.ListPeers(""), id) {
		// GossipSub gave up on the peer: only a new connection brings it back.
		w.log.Info("gossipsub forgot a connected peer; reconnecting", "peer", peer.ID(id))
		_ = w.host.Network().ClosePeer(id)
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, err := w.p.Connect(cctx, peer.Addr{ID: peer.ID(id)}); err != nil {
			w.log.Debug("reconnect after gossipsub repair", "peer", peer.ID(id), "err", err)
		}
		return
	}
	n := 0
	for _, c := range w.host.Network().ConnsToPeer(id) {
		for _, s := range c.GetStreams() {
			if isGossipSub(s.Protocol()) {
				_ = s.Reset()
				n++
			}
		}
	}
	w.log.Info("gossipsub forgot a peer's subscriptions; reset its streams", "peer", peer.ID(id), "streams", n)
}

func isGossipSub(p protocol.ID) bool {
	return strings.HasPrefix(string(p), "/meshsub/") || strings.HasPrefix(string(p), "/floodsub/")
}

// The rest of pubsub.RawTracer: the watchdog needs only the messages.

func (w *watchdog) DeliverMessage(m *pubsub.Message)          { w.note(m) }
func (w *watchdog) DuplicateMessage(m *pubsub.Message)        { w.note(m) }
func (w *watchdog) OnNewOutboundStream(lpeer.ID, protocol.ID) {}
func (w *watchdog) OnClosedOutboundStream(lpeer.ID)           {}
func (w *watchdog) Join(string)                               {}
func (w *watchdog) Leave(string)                              {}
func (w *watchdog) Graft(lpeer.ID, string)                    {}
func (w *watchdog) Prune(lpeer.ID, string)                    {}
func (w *watchdog) ValidateMessage(*pubsub.Message)           {}
func (w *watchdog) RejectMessage(*pubsub.Message, string)     {}
func (w *watchdog) ThrottlePeer(lpeer.ID)                     {}
func (w *watchdog) RecvRPC(*pubsub.RPC)                       {}
func (w *watchdog) SendRPC(*pubsub.RPC, lpeer.ID)             {}
func (w *watchdog) DropRPC(*pubsub.RPC, lpeer.ID)             {}
func (w *watchdog) UndeliverableMessage(*pubsub.Message)      {}
