package pipes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"testing"
	"time"
)

// warmUp publishes probes from the first topic until every other topic has
// received one: then the mesh carries messages to everyone.
func warmUp(t *testing.T, ctx context.Context, topics []*Topic) {
	t.Helper()
	var wg sync.WaitGroup
	for _, tp := range topics[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				m, err := tp.Next(ctx)
				if err != nil || isProbe(m.Data) {
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for k := 0; ; k++ {
		topics[0].Publish(ctx, fmt.Appendf(nil, "probe %d", k))
		select {
		case <-done:
			return
		case <-ctx.Done():
			t.Fatal("the mesh never carried a probe to every member")
		case <-tick.C:
		}
	}
}

func isProbe(b []byte) bool { return len(b) >= 6 && string(b[:6]) == "probe " }

func TestPropagateTwentyPeers(t *testing.T) {
	if testing.Short() {
		t.Skip("20 peers")
	}
	sp := superPeer(t)
	const n, msgs = 20, 100
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = edge(t, sp)
	}
	ctx := testCtx(t)
	id := NewID()
	topics := make([]*Topic, n)
	for i, nd := range nodes {
		tp, err := nd.s.Join(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		topics[i] = tp
	}
	// Wait for the mesh: everyone exchanges with someone, then a probe from
	// one peer reaches all (forwarding needs the mesh GossipSub grafts on a
	// heartbeat, which a loaded machine delays).
	for i := range topics {
		waitFor(t, fmt.Sprintf("peer %d to find another member", i), func() bool { return len(topics[i].Peers()) > 0 })
	}
	warmUp(t, ctx, topics)

	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, tp := range topics {
		wg.Add(1)
		go func() {
			defer wg.Done()
			seen := map[string]bool{}
			for len(seen) < msgs {
				m, err := tp.Next(ctx)
				if err != nil {
					errs <- fmt.Errorf("peer %d after %d messages: %w", i, len(seen), err)
					return
				}
				if isProbe(m.Data) {
					continue
				}
				var k int
				var sender string
				if _, err := fmt.Sscanf(string(m.Data), "%d from %s", &k, &sender); err != nil {
					errs <- fmt.Errorf("peer %d: bad payload %q", i, m.Data)
					return
				}
				if sender != m.From.String() {
					errs <- fmt.Errorf("peer %d: message %d claims %s, GossipSub says %s", i, k, sender, m.From)
					return
				}
				seen[string(m.Data)] = true
			}
		}()
	}
	for k := range msgs {
		src := nodes[k%n]
		if err := topics[k%n].Publish(ctx, fmt.Appendf(nil, "%d from %s", k, src.p.ID())); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("not every peer received every message")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPropagateHooks(t *testing.T) {
	sp := superPeer(t)
	a, b := edge(t, sp), edge(t, sp)
	ctx := testCtx(t)
	hooks := Hooks{Propagate: PropagateHooks{
		Seal:     func(p []byte) ([]byte, error) { return append([]byte("sealed:"), p...), nil },
		Open:     func(_ ID, s []byte) ([]byte, error) { return openSealed(s) },
		Validate: func(_ ID, s []byte) bool { return string(s) != "sealed:forbidden" },
	}}
	ta, err := a.s.Scoped("g", hooks).Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.s.Scoped("g", hooks).Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	// a floods its own messages to every peer it knows subscribes: no mesh
	// is needed once a knows b.
	waitFor(t, "a to know b subscribes", func() bool { return slices.Contains(ta.Peers(), b.p.ID()) })
	for _, m := range []string{"forbidden", "hello"} {
		if err := ta.Publish(ctx, []byte(m)); err != nil && m == "hello" {
			t.Fatal(err)
		}
	}
	m, err := tb.Next(ctx)
	if err != nil || string(m.Data) != "hello" || m.From != a.p.ID() {
		t.Fatalf("got %q from %s, %v", m.Data, m.From, err)
	}
}

func openSealed(s []byte) ([]byte, error) {
	const p = "sealed:"
	if len(s) < len(p) || string(s[:len(p)]) != p {
		return nil, fmt.Errorf("not sealed")
	}
	return s[len(p):], nil
}

// TestJoinAfterClose: a Join that comes after Close starts no GossipSub (no
// goroutine would outlive Close) and says the service is closed.
func TestJoinAfterClose(t *testing.T) {
	n := edge(t, nil)
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := n.s.Join(testCtx(t), NewID())
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Join after Close: %v, want net.ErrClosed", err)
	}
}

// TestDialAfterClose: a dial on a closed service says so, rather than
// searching and reporting that no binding answered (which a caller would
// retry), and a closed Conn's Read says net.ErrClosed.
func TestDialAfterClose(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	l, err := a.s.Listen(ctx, "x", Public())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := b.p.Connect(ctx, a.p.Addr()); err != nil {
		t.Fatal(err)
	}
	go func() {
		if c, err := l.Accept(); err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	c, err := b.s.Dial(ctx, "x")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
	if err := b.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.s.Dial(ctx, "x"); !errors.Is(err, net.ErrClosed) || errors.Is(err, ErrNoBinding) {
		t.Fatalf("Dial after Close: %v, want net.ErrClosed", err)
	}
	if _, err := b.s.DialMessages(ctx, "x", MessageConfig{Reliable: true}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("DialMessages after Close: %v, want net.ErrClosed", err)
	}
}
