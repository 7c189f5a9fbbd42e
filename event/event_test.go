package event

import (
	"context"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOrderAndDrop(t *testing.T) {
	b := New[int]()
	defer b.Close()
	s := b.Subscribe(context.Background(), 3)
	for i := range 5 {
		b.Publish(i)
	}
	for want := range 3 {
		if got := <-s.C; got != want {
			t.Fatalf("event %d: got %d", want, got)
		}
	}
	if d := s.Dropped(); d != 2 {
		t.Fatalf("dropped = %d, want 2", d)
	}
	s.Cancel()
	s.Cancel()
	if _, ok := <-s.C; ok {
		t.Fatal("channel open after Cancel")
	}
}

func TestCtxEndsSubscription(t *testing.T) {
	b := New[string]()
	ctx, cancel := context.WithCancel(context.Background())
	s := b.Subscribe(ctx, 0)
	cancel()
	for range s.C {
	}
	b.Publish("after") // must not panic on a closed channel
	b.Close()
	b.Close()
	late := b.Subscribe(context.Background(), 1)
	if _, ok := <-late.C; ok {
		t.Fatal("subscription on a closed bus is open")
	}
}

func TestCloseEndsSubscriptions(t *testing.T) {
	b := New[int]()
	s1 := b.Subscribe(context.Background(), 1)
	s2 := b.Subscribe(context.Background(), 1)
	b.Publish(7)
	b.Close()
	if v := <-s1.C; v != 7 {
		t.Fatalf("got %d", v)
	}
	if _, ok := <-s1.C; ok {
		t.Fatal("s1 open after Close")
	}
	<-s2.C
	if _, ok := <-s2.C; ok {
		t.Fatal("s2 open after Close")
	}
}

func TestFilter(t *testing.T) {
	b := New[int]()
	defer b.Close()
	even := b.SubscribeFunc(context.Background(), 4, func(v int) bool { return v%2 == 0 })
	for i := range 6 {
		b.Publish(i)
	}
	for _, want := range []int{0, 2, 4} {
		if got := <-even.C; got != want {
			t.Fatalf("got %d want %d", got, want)
		}
	}
	if even.Dropped() != 0 {
		t.Fatal("filtered events counted as dropped")
	}
}

func TestSubscribeReplayComesFirst(t *testing.T) {
	b := New[int]()
	defer b.Close()
	s := b.SubscribeReplay(context.Background(), 2, []int{1, 2, 3})
	b.Publish(4)
	b.Publish(5)
	b.Publish(6) // the buffer (2 on top of the replay) is full: dropped
	for want := 1; want <= 5; want++ {
		if got := <-s.C; got != want {
			t.Fatalf("event %d: got %d", want, got)
		}
	}
	if d := s.Dropped(); d != 1 {
		t.Fatalf("dropped = %d, want 1", d)
	}
}
