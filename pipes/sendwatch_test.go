package pipes

import (
	"context"
	"errors"
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
