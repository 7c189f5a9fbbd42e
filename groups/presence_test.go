package groups

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
)

func TestPresenceManyMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("many members")
	}
	sp := superPeer(t)
	ctx := testCtx(t)
	// Twelve members; eight under the race detector, which makes each one
	// five to ten times as costly and is here to find races, not to scale.
	// Scale is the bench's (the presence rows); twenty members took most of
	// the package's ten-minute test budget on a loaded machine.
	n := 12
	if raceEnabled {
		n = 8
	}
	nodes := make([]*node, n)
	groups := make([]*Group, n)
	for i := range nodes {
		nodes[i] = member(t, sp, fmt.Sprintf("m%02d", i))
	}
	g0, err := nodes[0].g.Create(ctx, Spec{Name: "many", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	groups[0] = g0
	for i := 1; i < n; i++ {
		if groups[i], err = nodes[i].g.Join(ctx, Password(g0.Info(), secret)); err != nil {
			t.Fatal(err)
		}
	}
	meshed(t, groups...)

	// One member changes state; everyone sees it. The latency is logged; the
	// presence bench row measures it against raw GossipSub.
	subs := make([]*event.Subscription[MemberEvent], n)
	for i := 1; i < n; i++ {
		subs[i] = groups[i].SubscribeMembers(ctx, 0)
	}
	start := time.Now()
	if err := g0.SetPresence(Away, "lunch"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	lat := make([]time.Duration, n)
	for i := 1; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range subs[i].C {
				if ev.Member.ID == nodes[0].p.ID() && ev.Member.State == Away && ev.Member.Text == "lunch" {
					lat[i] = time.Since(start)
					subs[i].Cancel()
					return
				}
			}
		}()
	}
	wg.Wait()
	var worst time.Duration
	for i := 1; i < n; i++ {
		if lat[i] == 0 {
			t.Fatalf("member %d never saw the change", i)
		}
		worst = max(worst, lat[i])
	}
	t.Logf("state change seen by all %d members in %s", n-1, worst)
}

func TestPresenceOfflineAndInvisible(t *testing.T) {
	sp := superPeer(t)
	alice, bob, carol := member(t, sp, "alice"), member(t, sp, "bob"), member(t, sp, "carol")
	ctx := testCtx(t)
	ga, _ := alice.g.Create(ctx, Spec{Name: "trio"})
	gb, err := bob.g.Join(ctx, Open(ga.Info()))
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := carol.g.Join(ctx, Open(ga.Info()))
	meshed(t, ga, gb, gc)

	// Invisible: others see bob offline, yet his pipes work.
	l, err := gb.Pipes().Listen(ctx, "bob-inbox")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("still here"))
			c.Close()
		}
	}()
	gb.SetPresence(Invisible, "")
	eventually(t, "bob to look offline", func() bool { return stateOf(ga, bob.p.ID()) == Offline })
	if stateOf(gb, bob.p.ID()) != Invisible {
		t.Fatal("bob does not see himself invisible")
	}
	c, err := ga.Pipes().Dial(ctx, "bob-inbox")
	if err != nil {
		t.Fatalf("invisible member's pipe: %v", err)
	}
	if b, _ := io.ReadAll(c); string(b) != "still here" {
		t.Fatalf("read %q", b)
	}
	// He stays offline while heartbeats flow: alice hears three of carol's.
	heartbeats(t, ga, carol.p.ID(), 3)
	if stateOf(ga, bob.p.ID()) != Offline {
		t.Fatal("invisible member reappeared")
	}

	// Killed without leaving: shown offline once silent for OfflineAfter.
	sub := ga.SubscribeMembers(ctx, 0)
	killed := time.Now()
	carol.close()
	for ev := range sub.C {
		if ev.Member.ID == carol.p.ID() && ev.Member.State == Offline {
			break
		}
	}
	if ctx.Err() != nil {
		t.Fatal("killed member never shown offline")
	}
	took := time.Since(killed)
	t.Logf("killed member shown offline after %s (timeout %s)", took, fastPresence.OfflineAfter)
	if err := ga.SetPresence("sleepy", ""); err == nil {
		t.Fatal("unknown state accepted")
	} else if !strings.Contains(err.Error(), "online") {
		t.Fatalf("the error does not list the valid states: %v", err)
	}
}

// Leaving announces offline at once. The members here would time a silent
// member out only after ten minutes, so offline can only come from the
// goodbye.
func TestPresenceLeaveAnnounced(t *testing.T) {
	slow := Config{Heartbeat: fastPresence.Heartbeat, OfflineAfter: 10 * time.Minute}
	sp := newNode(t, peer.TestSuperPeerConfig(), slow)
	alice, bob := memberWith(t, sp, "alice", slow), memberWith(t, sp, "bob", slow)
	ctx := testCtx(t)
	ga, _ := alice.g.Create(ctx, Spec{Name: "duo"})
	gb, err := bob.g.Join(ctx, Open(ga.Info()))
	if err != nil {
		t.Fatal(err)
	}
	meshed(t, ga, gb)
	// A heartbeat bob built just before leaving, delivered after his goodbye.
	late := announcement(t, gb, Online)
	if err := gb.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's goodbye", func() bool { return stateOf(ga, bob.p.ID()) == Offline })
	ga.presence.receive(bob.p.ID(), late, time.Now())
	if stateOf(ga, bob.p.ID()) != Offline {
		t.Fatal("a heartbeat sent before the goodbye showed a member who left online again")
	}
}

// The invisible-member leak: bob's heartbeat goroutine took his state
// ("online") just before he went invisible; SetPresence sent "offline"; then
// the heartbeat went out. GossipSub does not keep one sender's messages in
// order, so a receiver could get "offline" first and "online" last, and show
// an invisible member online to everyone until he next changed state. Every
// announcement now carries a sequence number taken with the state, and a
// receiver drops an announcement older than the last it applied.
func TestPresenceLateHeartbeatAfterInvisible(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	ga, _ := alice.g.Create(ctx, Spec{Name: "duo"})
	gb, err := bob.g.Join(ctx, Open(ga.Info()))
	if err != nil {
		t.Fatal(err)
	}
	meshed(t, ga, gb)
	late := announcement(t, gb, Online) // the heartbeat in flight
	gb.SetPresence(Invisible, "")
	eventually(t, "bob to look offline", func() bool { return stateOf(ga, bob.p.ID()) == Offline })
	// The heartbeat arrives last, as GossipSub may deliver it.
	ga.presence.receive(bob.p.ID(), late, time.Now())
	if stateOf(ga, bob.p.ID()) != Offline {
		t.Fatal("invisible member reappeared: a stale heartbeat arriving late showed him online")
	}
	// A new announcement still applies: visibility comes back at once.
	gb.SetPresence(Busy, "back")
	eventually(t, "bob busy", func() bool { return stateOf(ga, bob.p.ID()) == Busy })
}

// announcement builds the announcement g's heartbeat would send next, as the
// heartbeat goroutine does (state and sequence number under the lock).
func announcement(t *testing.T, g *Group, st State) []byte {
	t.Helper()
	pr := g.presence
	pr.mu.Lock()
	m := pr.messageLocked(st, "")
	pr.mu.Unlock()
	b, err := encMode.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// heartbeats waits until g has heard n more announcements from id.
func heartbeats(t *testing.T, g *Group, id peer.ID, n int) {
	t.Helper()
	lastSeen := func() time.Time {
		for _, m := range g.Members() {
			if m.ID == id {
				return m.LastSeen
			}
		}
		return time.Time{}
	}
	for i := 0; i < n; i++ {
		was := lastSeen()
		eventually(t, "a heartbeat", func() bool { return lastSeen().After(was) })
	}
}

func TestAwaitPresence(t *testing.T) {
	sp := superPeer(t)
	alice := member(t, sp, "alice")
	ctx := testCtx(t)
	g, err := alice.g.Create(ctx, Spec{Name: "await", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.AwaitPresence(ctx); err != nil {
		t.Fatalf("await presence: %v", err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	// Joined already: a done ctx does not matter.
	if err := g.AwaitPresence(done); err != nil {
		t.Fatalf("await presence after joining: %v", err)
	}
}

// A member forgotten after a long silence must not be listed again by a
// replay of one of its old signed announcements: only a newer one lists it.
func TestPresenceReplayAfterForget(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	ga, _ := alice.g.Create(ctx, Spec{Name: "duo"})
	gb, err := bob.g.Join(ctx, Open(ga.Info()))
	if err != nil {
		t.Fatal(err)
	}
	meshed(t, ga, gb)
	old := announcement(t, gb, Online) // captured by an eavesdropping member
	eventually(t, "bob listed", func() bool { return stateOf(ga, bob.p.ID()) == Online })
	if err := gb.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	eventually(t, "bob's goodbye", func() bool { return stateOf(ga, bob.p.ID()) == Offline })
	// Long after: the sweep shows bob offline, then forgets him.
	later := time.Now().Add(alice.g.cfg.OfflineAfter + time.Second)
	ga.presence.sweep(later)
	ga.presence.sweep(later.Add(alice.g.cfg.ForgetAfter + time.Second))
	if stateOf(ga, bob.p.ID()) != "" {
		t.Fatalf("bob still listed (%q) after being forgotten", stateOf(ga, bob.p.ID()))
	}
	ga.presence.receive(bob.p.ID(), old, time.Now())
	if st := stateOf(ga, bob.p.ID()); st != "" {
		t.Fatalf("a replayed announcement listed a forgotten member again as %q", st)
	}
	// A genuinely newer announcement (his next run) lists him again.
	pm := presenceMsg{State: string(Away), Name: "bob", Seq: uint64(time.Now().UnixNano()) + 1<<40}
	b, err := encMode.Marshal(pm)
	if err != nil {
		t.Fatal(err)
	}
	ga.presence.receive(bob.p.ID(), b, time.Now())
	if st := stateOf(ga, bob.p.ID()); st != Away {
		t.Fatalf("a newer announcement after forgetting: state %q, want away", st)
	}
}
