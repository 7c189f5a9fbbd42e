package pipes

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

func TestStreamPipeErrorsAndHalfClose(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	l, err := a.s.Listen(ctx, "echo", Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.s.Listen(ctx, "echo"); !errors.Is(err, ErrAlreadyBound) {
		t.Fatalf("second bind: %v", err)
	}
	if _, err := a.s.Listen(ctx, "bad id!"); !errors.Is(err, ErrBadID) {
		t.Fatalf("bad id: %v", err)
	}
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(c, c) // echo until the other side half-closes
		c.Close()
	}()
	if _, err := b.p.Connect(ctx, a.p.Addr()); err != nil {
		t.Fatal(err)
	}
	c, err := b.s.Dial(ctx, "echo")
	if err != nil {
		t.Fatal(err)
	}
	if c.RemotePeer() != a.p.ID() || c.RemoteAddr().String() != a.p.ID().String()+"/echo" {
		t.Fatalf("remote %v", c.RemoteAddr())
	}
	c.Write([]byte("half"))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || !bytes.Equal(got, []byte("half")) {
		t.Fatalf("after half-close read %q, %v", got, err)
	}
	c.SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("past deadline: %v", err)
	}
	c.Close()
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
	l.Close()
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after close: %v", err)
	}
	if _, err := b.s.Dial(ctx, "echo"); !errors.Is(err, ErrNoBinding) {
		t.Fatalf("dial after unbind: %v", err)
	}
}

func TestDeadlineErrorWraps(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	l, _ := a.s.Listen(ctx, "quiet", Public())
	defer l.Close()
	b.p.Connect(ctx, a.p.Addr())
	c, err := b.s.Dial(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past deadline: %v", err)
	}
}
