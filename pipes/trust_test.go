package pipes

import (
	"errors"
	"testing"
	"time"
)

// TestDialByNameSkipsUntrusted: a stranger who binds a pipe name through the
// same super-peer does not capture a dial by that name; a public binding is
// followed; an unpublished listener is reached only by naming its peer.
func TestDialByNameSkipsUntrusted(t *testing.T) {
	sp := superPeer(t)
	mallory, alice, bob := edge(t, sp), edge(t, sp), edge(t, sp)
	ctx := testCtx(t)

	trap, err := mallory.s.Listen(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	captured := make(chan struct{}, 1)
	go func() {
		if c, err := trap.Accept(); err == nil {
			c.Close()
			captured <- struct{}{}
		}
	}()
	defer trap.Close()

	// Bob dials by name alone: he finds mallory's binding (retrying until
	// it has reached the super-peer) and leaves it.
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		_, err = bob.s.Dial(ctx, "chat")
		if err == nil || errors.Is(err, ErrUntrusted) || time.Now().After(deadline) {
			break
		}
	}
	if !errors.Is(err, ErrNoBinding) || !errors.Is(err, ErrUntrusted) {
		t.Fatalf("dial by name with only an untrusted binding: %v", err)
	}

	// Alice's public binding is followed; mallory's still is not.
	pub, err := alice.s.Listen(ctx, "chat", Public())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	go func() {
		for {
			c, err := pub.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var c *Conn
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if c, err = bob.s.Dial(ctx, "chat"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("dial by name with a public binding: %v", err)
	}
	c.Close()
	if c.RemotePeer() != alice.p.ID() {
		t.Fatalf("dial by name reached %s, want alice", c.RemotePeer())
	}
	select {
	case <-captured:
		t.Fatal("mallory's listener received a dial by name")
	default:
	}

	// Naming the peer is trust enough.
	c, err = bob.s.Dial(ctx, "chat", ToPeer(mallory.p.ID()))
	if err != nil {
		t.Fatalf("dial naming mallory: %v", err)
	}
	c.Close()

	// An unpublished listener leaves nothing to find.
	hidden, err := alice.s.Listen(ctx, "hidden", Unpublished())
	if err != nil {
		t.Fatal(err)
	}
	defer hidden.Close()
	go func() {
		if c, err := hidden.Accept(); err == nil {
			c.Close()
		}
	}()
	if _, err := bob.s.Dial(ctx, "hidden"); !errors.Is(err, ErrNoBinding) || errors.Is(err, ErrUntrusted) {
		t.Fatalf("dial by name of an unpublished pipe: %v", err)
	}
	c, err = bob.s.Dial(ctx, "hidden", ToPeer(alice.p.ID()))
	if err != nil {
		t.Fatalf("dial naming the unpublished listener's peer: %v", err)
	}
	c.Close()
}
