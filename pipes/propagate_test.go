package pipes

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

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
	// Wait for the mesh: everyone exchanges with someone.
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; i < n; {
		if len(topics[i].Peers()) > 0 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("peer %d found no other member", i)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // one GossipSub heartbeat to graft the mesh

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
	case <-time.After(30 * time.Second):
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
	deadline := time.Now().Add(20 * time.Second)
	for len(ta.Peers()) == 0 || len(tb.Peers()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no mesh")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1200 * time.Millisecond)
	for _, m := range []string{"forbidden", "hello"} {
		if err := ta.Publish(ctx, []byte(m)); err != nil && m == "hello" {
			t.Fatal(err)
		}
	}
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := tb.Next(short)
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
