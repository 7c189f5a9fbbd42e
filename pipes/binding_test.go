package pipes

import (
	"errors"
	"io"
	"testing"
)

func serveOnce(t *testing.T, n *node, id, reply string) *Listener {
	t.Helper()
	l, err := n.s.Listen(testCtx(t), id, Public())
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte(reply))
			c.Close()
		}
	}()
	return l
}

func dialRead(t *testing.T, n *node, id string, opts ...DialOption) (string, error) {
	t.Helper()
	c, err := n.s.Dial(testCtx(t), id, opts...)
	if err != nil {
		return "", err
	}
	defer c.Close()
	b, err := io.ReadAll(c)
	return string(b), err
}

func TestRebindingMovesTheListener(t *testing.T) {
	sp := superPeer(t)
	x, y, client := edge(t, sp), edge(t, sp), edge(t, sp)
	id := NewID()
	lx := serveOnce(t, x, id, "x")
	if got, err := dialRead(t, client, id); err != nil || got != "x" {
		t.Fatalf("first dial: %q %v", got, err)
	}
	lx.Close() // unbinds on x: handler removed, binding withdrawn
	ly := serveOnce(t, y, id, "y")
	defer ly.Close()
	// client still caches x's binding; Dial fails over from it and finds y.
	if got, err := dialRead(t, client, id); err != nil || got != "y" {
		t.Fatalf("after the move: %q %v", got, err)
	}
}

func TestDialPicksAndFailsOver(t *testing.T) {
	sp := superPeer(t)
	x, y, client := edge(t, sp), edge(t, sp), edge(t, sp)
	id := NewID()
	lx := serveOnce(t, x, id, "x")
	defer lx.Close()
	ly := serveOnce(t, y, id, "y")
	defer ly.Close()
	// Told which binding to use, Dial uses it.
	for _, want := range []*node{x, y} {
		got, err := dialRead(t, client, id, ToPeer(want.p.ID()))
		if err != nil || got != map[*node]string{x: "x", y: "y"}[want] {
			t.Fatalf("ToPeer: %q %v", got, err)
		}
	}
	// x vanishes without withdrawing its binding: Dial fails over to y.
	x.s.Close()
	x.d.Close()
	x.p.Close()
	for range 3 {
		if got, err := dialRead(t, client, id); err != nil || got != "y" {
			t.Fatalf("failover: %q %v", got, err)
		}
	}
	// Nobody bound: a clear error.
	if _, err := dialRead(t, client, NewID()); !errors.Is(err, ErrNoBinding) {
		t.Fatalf("unbound pipe: %v", err)
	}
}

func TestAuthorizeRefusesStreams(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	denied := errors.New("not a member")
	scoped := a.s.Scoped("club", Hooks{Authorize: func(_ ctxT, remote ID) error {
		if remote == b.p.ID() {
			return denied
		}
		return nil
	}})
	l, err := scoped.Listen(ctx, "door")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	b.p.Connect(ctx, a.p.Addr())
	_, err = b.s.Scoped("club", Hooks{}).Dial(ctx, "door", ToPeer(a.p.ID()))
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("dial by a non-member: %v", err)
	}
	// Another scope's pipe of the same name is a different pipe.
	if _, err := b.s.Dial(ctx, "door", ToPeer(a.p.ID())); err == nil {
		t.Fatal("net-group dial reached the club's pipe")
	}
}
