package farm

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/pipes"
)

// A member that misbehaves on the farm pipe: garbage frames, a provider
// asking for far more than its slots, reports for instances it does not
// hold, oversized outputs, and too many connections. Each is bounded and
// the farm keeps working.
func TestHostileMember(t *testing.T) {
	f := startNetFarm(t, 1, map[string]NativeFunc{"square": square})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bad := f.client // a member, so the group's pipes admit it
	sched := bad.sched

	// Garbage: a clear error, then the connection ends. The error frame is
	// queued just before the server ends the connection, so it must not
	// lose the race with that end; twenty tries make a loss show.
	for i := range 20 {
		c, err := bad.dial(ctx, sched, &frame{T: tHello, Role: roleClient})
		if err != nil {
			t.Fatal(err)
		}
		c.Send(ctx, []byte{0xff, 0x00, 0x13})
		r, err := recvFrame(ctx, c)
		if err != nil || r.T != tError || !strings.Contains(r.Err, "malformed") {
			t.Fatalf("garbage, try %d: %+v %v", i, r, err)
		}
		if _, err := c.Recv(ctx); err == nil {
			t.Fatal("the connection survived a malformed frame")
		}
		c.Close()
	}

	// A frame over MaxFrame is refused by the pipe itself.
	c, _ := bad.dial(ctx, sched, &frame{T: tHello, Role: roleClient})
	if _, err := c.Send(ctx, make([]byte, MaxFrame+1)); err == nil {
		if _, err := c.Recv(ctx); err == nil {
			t.Fatal("an oversized frame was accepted")
		}
	}
	c.Close()

	// Too many connections from one peer. The server never holds more than
	// maxConnsPerPeer from one peer, so of maxConnsPerPeer+1 opened together
	// at least one is closed by the server at once, whatever else of this
	// peer's it is still counting (the client's own session, or the two
	// connections above if their ends are not handled yet).
	var conns []*pipes.MsgConn
	refused := 0
	for range maxConnsPerPeer + 1 {
		c, err := bad.dial(ctx, sched, &frame{T: tHello, Role: roleClient})
		if err != nil {
			refused++ // closed before the hello went out
			continue
		}
		conns = append(conns, c)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
			defer rcancel()
			if _, err := c.Recv(rctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
				mu.Lock()
				refused++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.srv.mu.Lock()
	held := f.srv.conns[bad.p.ID()]
	f.srv.mu.Unlock()
	if refused == 0 || held > maxConnsPerPeer {
		t.Fatalf("%d connections from one peer: %d closed by the server, %d held (bound %d)", maxConnsPerPeer+1, refused, held, maxConnsPerPeer)
	}
	for _, c := range conns {
		c.Close()
	}

	// A job for the honest provider, and a fake provider that claims one slot,
	// asks for 1000 units and reports for units it does not hold.
	job, err := f.client.Submit(ctx, JobSpec{Task: Task{Kind: KindNative, Name: "square"}}, squareUnits(50, 1))
	if err != nil {
		t.Fatal(err)
	}
	prof := testProfile("liar")
	prof.Slots = 1
	pc, err := f.provs[0].dial(ctx, sched, &frame{T: tHello, Role: roleProvider, Profile: &prof})
	if err == nil { // the honest provider's peer: a second session replaces the first
		pc.Close()
	}
	lc, err := bad.dial(ctx, sched, &frame{T: tHello, Role: roleProvider, Profile: &prof})
	if err != nil {
		t.Fatal(err)
	}
	defer lc.Close()
	sendFrame(ctx, lc, &frame{T: tWant, N: 1000})
	granted := 0
	deadline := time.After(20 * time.Second)
wait:
	for {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := recvFrame(gctx, lc)
		gcancel()
		switch {
		case err != nil:
			break wait
		case r.T == tGrant:
			granted += len(r.Grant)
		}
		select {
		case <-deadline:
			break wait
		default:
		}
	}
	if granted > 2*prof.Slots {
		t.Fatalf("a provider with %d slot got %d units", prof.Slots, granted)
	}
	jk, _ := parseJobKey(job)
	forged := []Report{{Inst: InstanceID{Job: jk, Unit: 49, Attempt: 9}, Output: []byte("forged")},
		{Inst: InstanceID{Job: jk, Unit: 48, Attempt: 1}, Output: make([]byte, MaxOutput+1)}}
	sendFrame(ctx, lc, &frame{T: tReports, Seq: 7, Reports: forged})
	lc.Close()
	res := map[uint32][]byte{}
	for r, err := range f.client.Results(ctx, job, 0) {
		if err != nil {
			t.Fatal(err)
		}
		res[r.Unit] = r.Output
	}
	for u := uint32(0); u < 50; u++ {
		want, _ := square(ctx, squareInput(int(u)))
		if string(res[u]) != string(want) {
			t.Fatalf("unit %d: %q", u, res[u])
		}
	}
	t.Logf("a 1-slot provider asking for 1000 got %d; forged reports ignored; 50 units correct", granted)
}
