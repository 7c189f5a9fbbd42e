package event

import (
	"context"
	"sync"
	"sync/atomic"
)

// DefaultBuffer is the channel capacity of a subscription when none is given.
const DefaultBuffer = 256

// Bus fans typed events out to subscribers without ever blocking the publisher.
type Bus[T any] struct {
	mu     sync.Mutex
	subs   map[*Subscription[T]]struct{} // guarded by mu
	closed bool                          // guarded by mu
	wg     sync.WaitGroup                // one per live subscription watcher goroutine
}

// Subscription is one subscription. C is closed when the subscription ends.
type Subscription[T any] struct {
	C <-chan T

	c       chan T // guarded by bus.mu for send and close
	filter  func(T) bool
	bus     *Bus[T]
	dropped atomic.Uint64
	done    chan struct{} // closed by Cancel
	once    sync.Once
}

// New returns an empty bus.
func New[T any]() *Bus[T] {
	return &Bus[T]{subs: make(map[*Subscription[T]]struct{})}
}

// Subscribe registers a subscriber with the given buffer (DefaultBuffer if <= 0).
// The subscription ends when ctx is done, when Cancel is called, or when the bus
// closes. Subscribing to a closed bus returns a subscription whose channel is
// already closed.
func (b *Bus[T]) Subscribe(ctx context.Context, buffer int) *Subscription[T] {
	return b.SubscribeFunc(ctx, buffer, nil)
}

// SubscribeFunc is Subscribe for the events that filter accepts; a nil filter
// accepts all. The filter runs on the publisher's goroutine and must be quick.
func (b *Bus[T]) SubscribeFunc(ctx context.Context, buffer int, filter func(T) bool) *Subscription[T] {
	return b.subscribe(ctx, buffer, filter, nil)
}

// SubscribeReplay is Subscribe with first delivered ahead of every event
// published after it: a publisher that kept what happened before anyone
// listened hands it over without a gap or a reordering. The buffer holds
// first on top of buffer.
func (b *Bus[T]) SubscribeReplay(ctx context.Context, buffer int, first []T) *Subscription[T] {
	return b.subscribe(ctx, buffer, nil, first)
}

func (b *Bus[T]) subscribe(ctx context.Context, buffer int, filter func(T) bool, first []T) *Subscription[T] {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	c := make(chan T, buffer+len(first))
	s := &Subscription[T]{C: c, c: c, bus: b, done: make(chan struct{}), filter: filter}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(c)
		return s
	}
	for _, ev := range first {
		c <- ev
	}
	b.subs[s] = struct{}{}
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		select {
		case <-ctx.Done():
		case <-s.done:
		}
		b.remove(s)
	}()
	return s
}

func (b *Bus[T]) remove(s *Subscription[T]) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.subs[s]; ok {
		delete(b.subs, s)
		close(s.c)
	}
}

// Publish delivers ev to every subscriber that has room, and counts a drop for
// every subscriber that has none. It never blocks.
func (b *Bus[T]) Publish(ev T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.filter != nil && !s.filter(ev) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}

// Close ends every subscription and waits for the watcher goroutines to exit.
// It is safe to call more than once.
func (b *Bus[T]) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		for s := range b.subs {
			delete(b.subs, s)
			close(s.c)
			s.cancel()
		}
	}
	b.mu.Unlock()
	b.wg.Wait()
}

// Cancel ends the subscription; its channel is closed. Safe to call more than once.
func (s *Subscription[T]) Cancel() {
	s.cancel()
	s.bus.remove(s)
}

func (s *Subscription[T]) cancel() { s.once.Do(func() { close(s.done) }) }

// Dropped reports how many events were dropped because the buffer was full.
func (s *Subscription[T]) Dropped() uint64 { return s.dropped.Load() }
