package groups

import (
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

func TestPresenceTwentyMembers(t *testing.T) {
	if testing.Short() {
		t.Skip("20 members")
	}
	sp := superPeer(t)
	ctx := testCtx(t)
	const n = 20
	nodes := make([]*node, n)
	groups := make([]*Group, n)
	for i := range nodes {
		nodes[i] = member(t, sp, fmt.Sprintf("m%02d", i))
	}
	g0, err := nodes[0].g.Create(ctx, Spec{Name: "twenty", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	groups[0] = g0
	for i := 1; i < n; i++ {
		if groups[i], err = nodes[i].g.JoinPassword(ctx, g0.Info(), secret); err != nil {
			t.Fatal(err)
		}
	}
	meshed(t, groups...)

	// One member changes state; everyone sees it within a second.
	subs := make([]*MemberSubscription, n)
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
	bound := time.Second
	if raceEnabled {
		bound = 10 * time.Second
	}
	if worst > bound {
		t.Fatalf("slowest member saw the change after %s", worst)
	}
}

func TestPresenceOfflineAndInvisible(t *testing.T) {
	sp := superPeer(t)
	alice, bob, carol := member(t, sp, "alice"), member(t, sp, "bob"), member(t, sp, "carol")
	ctx := testCtx(t)
	ga, _ := alice.g.Create(ctx, Spec{Name: "trio"})
	gb, err := bob.g.JoinOpen(ctx, ga.Info())
	if err != nil {
		t.Fatal(err)
	}
	gc, _ := carol.g.JoinOpen(ctx, ga.Info())
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
	eventually(t, 3*time.Second, "bob to look offline", func() bool { return stateOf(ga, bob.p.ID()) == Offline })
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
	// He stays offline across heartbeats.
	time.Sleep(3 * fastPresence.Heartbeat)
	if stateOf(ga, bob.p.ID()) != Offline {
		t.Fatal("invisible member reappeared")
	}

	// Killed without leaving: shown offline within OfflineAfter (plus a sweep).
	sub := ga.SubscribeMembers(ctx, 0)
	killed := time.Now()
	carol.close()
	for ev := range sub.C {
		if ev.Member.ID == carol.p.ID() && ev.Member.State == Offline {
			break
		}
	}
	took := time.Since(killed)
	t.Logf("killed member shown offline after %s (timeout %s)", took, fastPresence.OfflineAfter)
	if took > fastPresence.OfflineAfter+time.Second {
		t.Fatalf("offline after %s", took)
	}

	// Leaving announces offline at once.
	if err := gb.SetPresence(Online, ""); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Second, "bob back online", func() bool { return stateOf(ga, bob.p.ID()) == Online })
	left := time.Now()
	gb.Leave(ctx)
	eventually(t, 3*time.Second, "bob's leave", func() bool { return stateOf(ga, bob.p.ID()) == Offline })
	if time.Since(left) > fastPresence.OfflineAfter {
		t.Fatal("leave was not announced; it timed out instead")
	}
	if err := ga.SetPresence("sleepy", ""); err == nil {
		t.Fatal("unknown state accepted")
	}
}
