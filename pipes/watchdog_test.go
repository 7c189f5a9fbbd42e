package pipes

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// resetPubsubStreams resets a's GossipSub streams to b in the given
// direction, the way a connection that closes under them does.
func resetPubsubStreams(a, b *node, dir network.Direction) int {
	n := 0
	for _, c := range a.p.Libp2p().Host.Network().ConnsToPeer(lp(b.p.ID())) {
		for _, s := range c.GetStreams() {
			if strings.HasPrefix(string(s.Protocol()), "/meshsub/") && s.Stat().Direction == dir {
				s.Reset()
				n++
			}
		}
	}
	return n
}

// hears publishes from src until dst receives one of its messages.
func hears(t *testing.T, ctx context.Context, src, dst *Topic, what string) {
	t.Helper()
	got := make(chan struct{})
	go func() {
		defer close(got)
		for {
			m, err := dst.Next(ctx)
			if err != nil || m.From == src.s.p.ID() {
				return
			}
		}
	}()
	deadline := time.Now().Add(patience)
	for k := 0; ; k++ {
		if err := src.Publish(ctx, []byte(what)); err != nil {
			t.Fatal(err)
		}
		select {
		case <-got:
			if ctx.Err() != nil {
				t.Fatalf("%s: %v", what, ctx.Err())
			}
			return
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s (a's topic peers %v, pubsub peers %d)",
				what, src.Peers(), len(src.topic.ListPeers()))
		}
	}
}

// GossipSub (v0.17.0, and v0.19.0 alike) forgets a peer's subscriptions when
// its own outbound stream to that peer dies while the two stay connected (a
// second connection closing, a reset): handleDeadPeers clears the topic state
// learned from the peer's inbound stream and respawns only the writer. The
// peer's subscriptions came once, in its hello on that inbound stream, which
// is still open, so they are never sent again: a stops sending to b for good
// while b still sends to a. The watchdog notices that b, connected, has a
// binding of the pipe but is not a topic peer (or that a hears b directly on
// the topic), and resets both streams, so both sides send their
// subscriptions again.
func TestWatchdogRestoresForgottenSubscription(t *testing.T) {
	sp := superPeer(t)
	a, b := edge(t, sp), edge(t, sp)
	ctx := testCtx(t)
	id := NewID()
	ta, err := a.s.Join(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.s.Join(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a and b to know each other subscribe", func() bool {
		return slices.Contains(ta.Peers(), b.p.ID()) && slices.Contains(tb.Peers(), a.p.ID())
	})
	hears(t, ctx, ta, tb, "b hears a before")
	if n := resetPubsubStreams(a, b, network.DirOutbound); n == 0 {
		t.Fatal("a has no outbound GossipSub stream to b")
	}
	// a forgets that b subscribes, while b still knows a does.
	waitFor(t, "a to respawn its writer", func() bool {
		return slices.Contains(tb.Peers(), a.p.ID())
	})
	// b keeps quiet: a learns that b is a member from b's binding.
	hears(t, ctx, ta, tb, "b hears a after the reset")
	hears(t, ctx, tb, ta, "a hears b after the reset")
	if !slices.Contains(ta.Peers(), b.p.ID()) {
		t.Fatal("a still does not list b as a topic peer")
	}
	if a.s.ps.wd.repairCount() == 0 {
		t.Fatal("b was heard again without a repair: the reset did not make a forget b")
	}
}

// After MaxBackoffAttempts (4) writer deaths within 10 minutes GossipSub
// stops respawning the writer and forgets the connected peer altogether,
// for every topic: the watchdog reconnects, which GossipSub treats as a new
// peer.
func TestWatchdogReconnectsForgottenPeer(t *testing.T) {
	sp := superPeer(t)
	a, b := edge(t, sp), edge(t, sp)
	ctx := testCtx(t)
	id := NewID()
	ta, err := a.s.Join(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.s.Join(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	hears(t, ctx, ta, tb, "b hears a before")
	hears(t, ctx, tb, ta, "a hears b before")
	// Kill a's writer to b again and again, until GossipSub gives up on b.
	waitFor(t, "GossipSub to give up on b", func() bool {
		resetPubsubStreams(a, b, network.DirOutbound)
		return !slices.Contains(a.s.ps.ps.ListPeers(""), lp(b.p.ID()))
	})
	hears(t, ctx, ta, tb, "b hears a after GossipSub gave up")
	hears(t, ctx, tb, ta, "a hears b after GossipSub gave up")
	if a.s.ps.wd.repairCount() == 0 {
		t.Fatal("b was heard again without a repair")
	}
}

// A hostile peer sending on many topics cannot grow the watchdog's memory.
func TestWatchdogBounded(t *testing.T) {
	a := edge(t, nil)
	if _, err := a.s.Join(testCtx(t), NewID()); err != nil {
		t.Fatal(err)
	}
	w := a.s.ps.wd
	for i := range 2 * watchMaxHeard {
		w.suspect(fmt.Sprint("topic ", i), "attacker")
	}
	w.mu.Lock()
	n := len(w.heard)
	w.mu.Unlock()
	if n != watchMaxHeard {
		t.Fatalf("%d entries, bound %d", n, watchMaxHeard)
	}
}
