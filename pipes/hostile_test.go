package pipes

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/internal/attack"
	"github.com/juxta-p2p/juxta/peer"
)

// helloFlood opens n reliable sessions on the victim's message pipe from h,
// each a stream that says hello and resets: the attack of issue 12 item 5.
func helloFlood(ctx context.Context, h host.Host, victim *node, pipe string, n int) (refused int) {
	proto := victim.s.protocolFor(KindMessage, pipe)
	for range n {
		str, err := h.NewStream(ctx, lp(victim.p.ID()), proto)
		if err != nil {
			return refused
		}
		var sid [sidLen]byte
		_, _ = rand.Read(sid[:])
		hello := append([]byte{fHello, helloReliable}, sid[:]...)
		hello = binary.AppendUvarint(hello, 0)
		_ = msgio.NewVarintWriter(str).WriteMsg(hello)
		b, err := msgio.NewVarintReaderSize(str, 64).ReadMsg()
		if err == nil && len(b) > 0 && b[0] == fRefuse {
			refused++
		}
		str.Reset()
	}
	return refused
}

// TestHostileSessionFlood: raw hosts say hello on a reliable message pipe and
// reset, thousands of times. Sessions stay under MaxSessionsPerPeer per
// identity, idle ones end after idleResumeTimeout, and an honest dialer's
// round trips go on.
func TestHostileSessionFlood(t *testing.T) {
	victim, honest := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	l, err := victim.s.ListenMessages(ctx, "inbox", MessageConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The application accepts everything, as the messenger does; echo.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer l.Close()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept(ctx)
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					b, err := c.Recv(ctx)
					if err != nil {
						return
					}
					if _, err := c.Send(ctx, b); err != nil {
						return
					}
				}
			}()
		}
	}()

	before := attack.Goroutines()
	peak := attack.Watch(100 * time.Millisecond)
	attackers := attack.Hosts(t, 2)
	const perAttacker = 600
	var awg sync.WaitGroup
	refused := make([]int, len(attackers))
	for i, h := range attackers {
		if err := attack.Connect(ctx, h, victim.p.Libp2p().Host); err != nil {
			t.Fatal(err)
		}
		awg.Add(1)
		go func() {
			defer awg.Done()
			refused[i] = helloFlood(ctx, h, victim, "inbox", perAttacker)
		}()
	}

	// The honest peer's reliable pipe, timed while the flood runs.
	var lat attack.Latencies
	if _, err := honest.p.Connect(ctx, victim.p.Addr()); err != nil {
		t.Fatal(err)
	}
	hc, err := honest.s.DialMessages(ctx, "inbox", MessageConfig{Reliable: true}, ToPeer(victim.p.ID()))
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	done := make(chan struct{})
	go func() { awg.Wait(); close(done) }()
	for i := 0; ; i++ {
		select {
		case <-done:
		default:
			err := lat.Time(func() error {
				if _, err := hc.Send(ctx, fmt.Appendf(nil, "m%d", i)); err != nil {
					return err
				}
				_, err := hc.Recv(ctx)
				return err
			})
			if err != nil {
				t.Fatalf("honest round trip under attack: %v", err)
			}
			continue
		}
		break
	}
	_, peakG := peak.Stop()
	total, _ := victim.s.Sessions("")
	for i, h := range attackers {
		_, mine := victim.s.Sessions(peer.ID(h.ID()))
		if mine > MaxSessionsPerPeer {
			t.Fatalf("attacker %d holds %d sessions, bound %d", i, mine, MaxSessionsPerPeer)
		}
	}
	if total > len(attackers)*MaxSessionsPerPeer+1 {
		t.Fatalf("%d sessions after %d hellos", total, len(attackers)*perAttacker)
	}
	// Each session costs a few goroutines: the bound is on sessions, so
	// goroutines stay in the hundreds, not the tens of thousands.
	if grown := peakG - before; grown > 40*(len(attackers)*MaxSessionsPerPeer+1)+200 {
		t.Fatalf("goroutines grew by %d", grown)
	}
	t.Logf("%d hellos, %v refused, sessions %d, goroutine peak +%d; %s", len(attackers)*perAttacker, refused, total, peakG-before, lat.String())
	// Idle sessions whose stream broke end after idleResumeTimeout.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		total, _ = victim.s.Sessions("")
		if total <= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions still kept long after their streams reset", total)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The honest session survived and still works.
	if _, err := hc.Send(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if b, err := hc.Recv(ctx); err != nil || string(b) != "after" {
		t.Fatalf("honest session after the flood: %q %v", b, err)
	}
}

// TestDialerChecksListener: a scope's dialer admits only listeners that pass
// the scope's Authorize hook, so a non-member binding the same pipe name
// never receives a member's stream (issue 12 item 6, the pipes half).
func TestDialerChecksListener(t *testing.T) {
	member, outsider := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	errNotMember := errors.New("not a member")
	hooks := Hooks{Authorize: func(_ ctxT, remote ID) error {
		if remote == outsider.p.ID() {
			return errNotMember
		}
		return nil
	}}
	// The outsider binds the group's pipe name in the group's scope, with no
	// check of its own.
	l, err := outsider.s.Scoped("club", Hooks{}).Listen(ctx, "secrets")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	member.p.Connect(ctx, outsider.p.Addr())
	_, err = member.s.Scoped("club", hooks).Dial(ctx, "secrets", ToPeer(outsider.p.ID()))
	if !errors.Is(err, ErrDenied) || !errors.Is(err, errNotMember) {
		t.Fatalf("member dialled a non-member's listener: %v", err)
	}
	_, err = member.s.Scoped("club", hooks).DialMessages(ctx, "secrets", MessageConfig{}, ToPeer(outsider.p.ID()))
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("message dial to a non-member's listener: %v", err)
	}
	// Found through discovery rather than named: refused the same way.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := member.s.Scoped("club", hooks).Dial(dctx, "secrets"); err == nil {
		t.Fatal("member dialled a non-member's binding")
	}
}
