package pipes

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// A Send whose ctx has ended fails with the ctx's error, queues nothing, and
// leaves a reliable pipe usable: the messages after it arrive in order, none
// lost (a message queued but never written would stall every later one).
func TestSendWithEndedCtxQueuesNothing(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, l := msgPair(t, a, b, MessageConfig{Reliable: true})
	ctx := testCtx(t)
	ended, cancel := context.WithCancel(ctx)
	cancel()
	for i := range 10 {
		if i == 5 {
			if _, err := d.Send(ended, []byte("never")); !errors.Is(err, context.Canceled) {
				t.Fatalf("Send with an ended ctx: %v, want context.Canceled", err)
			}
		}
		if _, err := d.Send(ctx, seqMsg(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		m, err := l.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m) != string(seqMsg(i)) {
			t.Fatalf("message %d: got %q", i, m)
		}
	}
}

// A ctx that ends after its Send returned (the usual defer cancel()) does
// not touch later writes: Sends under other ctxs, and the acks, go on. Many
// short ctxs in turn, each cancelled right after its Send, and one long one
// reused across Sends, so both the replacing and the keeping of the
// registration are exercised.
func TestSendCtxEndedAfterSendIsHarmless(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, l := msgPair(t, a, b, MessageConfig{Reliable: true})
	ctx := testCtx(t)
	const n = 400
	go func() {
		for i := range n {
			if i%2 == 0 {
				short, cancel := context.WithCancel(ctx)
				_, err := d.Send(short, seqMsg(i))
				cancel()
				if err != nil {
					t.Errorf("send %d: %v", i, err)
					return
				}
				continue
			}
			if _, err := d.Send(ctx, seqMsg(i)); err != nil {
				t.Errorf("send %d: %v", i, err)
				return
			}
		}
	}()
	for i := range n {
		m, err := l.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m) != string(seqMsg(i)) {
			t.Fatalf("message %d: got %q", i, m)
		}
	}
	if err := d.WaitDelivered(ctx, n); err != nil {
		t.Fatalf("acks stopped: %v", err)
	}
	if got := d.Buffered(); got != 0 {
		t.Fatalf("%d messages still unacknowledged", got)
	}
}

// The registration is kept across Sends with one ctx and dropped by Close:
// after Close, the watch holds no ctx, so a long-lived ctx does not keep a
// closed connection.
func TestSendWatchReleasedByClose(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, _ := msgPair(t, a, b, MessageConfig{Reliable: true})
	ctx := testCtx(t)
	long, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()
	for i := range 3 {
		if _, err := d.Send(long, seqMsg(i)); err != nil {
			t.Fatal(err)
		}
	}
	d.watch.mu.Lock()
	kept := d.watch.done == long.Done() && d.watch.stop != nil
	d.watch.mu.Unlock()
	if !kept {
		t.Fatal("the ctx's registration was not kept across Sends")
	}
	d.Close()
	d.watch.mu.Lock()
	defer d.watch.mu.Unlock()
	if d.watch.stop != nil || d.watch.done != nil {
		t.Fatal("Close left the ctx's registration in place")
	}
}

// A connection that ends without Close (its peer closed it, or its stream
// failed) drops the ctx's registration too, for good: a long-lived ctx does
// not keep a connection its owner dropped, and a Send after the end does
// not register again.
func TestSendWatchReleasedWhenConnectionEnds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		reliable bool
		end      func(a, b *node, l *MsgConn)
	}{
		{"reliable, peer closes", true, func(a, b *node, l *MsgConn) { l.Close() }},
		{"unreliable, stream fails", false, func(a, b *node, l *MsgConn) { dropConns(a, b) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := edge(t, nil), edge(t, nil)
			d, l := msgPair(t, a, b, MessageConfig{Reliable: tc.reliable})
			ctx := testCtx(t)
			long, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			if _, err := d.Send(long, seqMsg(0)); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Recv(ctx); err != nil {
				t.Fatal(err)
			}
			tc.end(a, b, l)
			waitFor(t, "the registration's release", func() bool {
				d.watch.mu.Lock()
				defer d.watch.mu.Unlock()
				return d.watch.closed && d.watch.stop == nil && d.watch.done == nil
			})
			if _, err := d.Send(long, seqMsg(1)); err == nil {
				t.Fatal("Send on an ended connection succeeded")
			}
			d.watch.mu.Lock()
			defer d.watch.mu.Unlock()
			if d.watch.stop != nil || d.watch.done != nil {
				t.Fatal("a Send after the end registered its ctx again")
			}
		})
	}
}

// endsAt is a ctx whose Err reports cancellation from its nth call on, while
// its Done stays open: it ends between two checks of one Send.
type endsAt struct {
	context.Context
	n     int
	calls atomic.Int32
}

func (c *endsAt) Err() error {
	if int(c.calls.Add(1)) >= c.n {
		return context.Canceled
	}
	return c.Context.Err()
}

// A ctx that ends after Send's first check and before the write fails the
// Send with the ctx's error; the message is taken back (its sequence
// number goes to the next one) and the stream is left alone: no break, no
// resume, the later messages arrive in order.
func TestSendCtxEndingBeforeWriteQueuesNothing(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, l := msgPair(t, a, b, MessageConfig{Reliable: true})
	ctx := testCtx(t)
	d.mu.Lock()
	gen := d.gen
	d.mu.Unlock()
	var want uint64 = 1
	for i := range 6 {
		if i == 3 {
			// Call 1 is Send's check, call 2 the watch's: the ctx ends
			// between them.
			ending := &endsAt{Context: ctx, n: 2}
			if _, err := d.Send(ending, []byte("never")); !errors.Is(err, context.Canceled) {
				t.Fatalf("Send under a ctx ending before the write: %v, want context.Canceled", err)
			}
			if got := ending.calls.Load(); got < 2 {
				t.Fatalf("the ctx was checked %d times, not between the check and the write", got)
			}
		}
		seq, err := d.Send(ctx, seqMsg(i))
		if err != nil {
			t.Fatal(err)
		}
		if seq != want {
			t.Fatalf("message %d got sequence number %d, want %d", i, seq, want)
		}
		want++
	}
	for i := range 6 {
		m, err := l.Recv(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(m) != string(seqMsg(i)) {
			t.Fatalf("message %d: got %q", i, m)
		}
	}
	if err := d.WaitDelivered(ctx, 6); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.gen != gen || d.broken {
		t.Fatalf("the stream was broken (generation %d, now %d)", gen, d.gen)
	}
}
