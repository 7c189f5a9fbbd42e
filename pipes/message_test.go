package pipes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/peer"
)

// pair returns a connected message pipe: d dialled on b, l accepted on a.
func msgPair(t *testing.T, a, b *node, cfg MessageConfig) (d, l *MsgConn) {
	t.Helper()
	ctx := testCtx(t)
	id := NewID()
	ln, err := a.s.ListenMessages(ctx, id, cfg, Public())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if _, err := b.p.Connect(ctx, a.p.Addr()); err != nil {
		t.Fatal(err)
	}
	d, err = b.s.DialMessages(ctx, id, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	l, err = ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return d, l
}

func seqMsg(i int) []byte {
	b := make([]byte, 8, 64)
	binary.BigEndian.PutUint64(b, uint64(i))
	return append(b, fmt.Sprintf(" message %d", i)...)
}

func TestReliableSurvivesTwentyDrops(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, l := msgPair(t, a, b, MessageConfig{Reliable: true})
	ctx := testCtx(t)
	const total, drops = 10_000, 20
	rng := rand.New(rand.NewPCG(1, 2))
	dropAt := map[int]bool{}
	for len(dropAt) < drops {
		dropAt[1+rng.IntN(total-1)] = true
	}

	errc := make(chan error, 2)
	go func() { // receiver: every message exactly once, in order
		for want := range total {
			m, err := l.Recv(ctx)
			if err != nil {
				errc <- fmt.Errorf("recv %d: %w", want, err)
				return
			}
			if got := int(binary.BigEndian.Uint64(m)); got != want {
				errc <- fmt.Errorf("message %d arrived as number %d", want, got)
				return
			}
		}
		errc <- nil
	}()
	var last uint64
	dropped := 0
	for i := range total {
		if dropAt[i] {
			dropConns(b, a) // close the underlying libp2p connection
			dropped++
		}
		seq, err := d.Send(ctx, seqMsg(i))
		if err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		last = seq
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := d.WaitDelivered(ctx, last); err != nil {
		t.Fatalf("delivery of the last message not confirmed: %v", err)
	}
	if dropped != drops || last != total {
		t.Fatalf("dropped %d connections, last seq %d", dropped, last)
	}
	// Nothing more arrives: no duplicates were queued behind the last one.
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if m, err := l.Recv(short); err == nil {
		t.Fatalf("extra message after the run: %q", m)
	}
}

func TestReliableResendBufferBound(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	const window = 16
	d, _ := msgPair(t, a, b, MessageConfig{Reliable: true, Window: window}) // nobody reads at the far end
	ctx := testCtx(t)
	sent := 0
	for {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := d.Send(short, make([]byte, 1024))
		cancel()
		if n := d.Buffered(); n > window {
			t.Fatalf("resend buffer holds %d, bound %d", n, window)
		}
		if err != nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("send blocked with %v, want the ctx error", err)
			}
			break
		}
		sent++
		if sent > 10_000 {
			t.Fatal("Send never blocked")
		}
	}
	if d.Buffered() != window {
		t.Fatalf("blocked with %d buffered, want %d", d.Buffered(), window)
	}
	t.Logf("Send blocked after %d messages, %d unacknowledged", sent, d.Buffered())
}

func TestMessageSizeLimit(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	cfg := MessageConfig{MaxMessage: 4096}
	d, l := msgPair(t, a, b, cfg)
	ctx := testCtx(t)
	if _, err := d.Send(ctx, make([]byte, 4097)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized send: %v", err)
	}
	if _, err := d.Send(ctx, []byte("still fine")); err != nil {
		t.Fatal(err)
	}
	if m, err := l.Recv(ctx); err != nil || string(m) != "still fine" {
		t.Fatalf("after the refused send: %q %v", m, err)
	}
}

func TestHostileOversizedFrame(t *testing.T) {
	a, b, evil := edge(t, nil), edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	id := NewID()
	ln, err := a.s.ListenMessages(ctx, id, MessageConfig{MaxMessage: 4096, Reliable: true}, Public())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, n := range []*node{b, evil} {
		if _, err := n.p.Connect(ctx, a.p.Addr()); err != nil {
			t.Fatal(err)
		}
	}
	good, err := b.s.DialMessages(ctx, id, MessageConfig{Reliable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	gl, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The hostile peer speaks the protocol by hand: a valid hello, then a frame
	// far over the limit.
	str, err := evil.p.Libp2p().Host.NewStream(ctx, lp(a.p.ID()), a.s.protocolFor(KindMessage, id))
	if err != nil {
		t.Fatal(err)
	}
	w := msgio.NewVarintWriter(str)
	hello := append([]byte{fHello, helloReliable}, make([]byte, sidLen)...)
	hello = binary.AppendUvarint(hello, 0)
	if err := w.WriteMsg(hello); err != nil {
		t.Fatal(err)
	}
	r := msgio.NewVarintReaderSize(str, 1<<20)
	if _, err := r.ReadMsg(); err != nil { // hello ack
		t.Fatal(err)
	}
	if _, err := ln.Accept(ctx); err != nil {
		t.Fatal(err)
	}
	w.WriteMsg(append([]byte{fData, 1}, make([]byte, 64<<10)...))
	str.SetReadDeadline(time.Now().Add(patience)) // the reset ends it long before
	if _, err := io.ReadAll(str); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hostile stream was not reset: %v", err)
	} else if !errors.Is(err, network.ErrReset) {
		t.Logf("hostile stream ended with %v", err)
	}
	// Everyone else is unaffected.
	for i := range 10 {
		if _, err := good.Send(ctx, seqMsg(i)); err != nil {
			t.Fatal(err)
		}
		m, err := gl.Recv(ctx)
		if err != nil || int(binary.BigEndian.Uint64(m)) != i {
			t.Fatalf("good peer after the attack: %v", err)
		}
	}
}

func TestCloseDeliversEOF(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, l := msgPair(t, a, b, MessageConfig{Reliable: true})
	ctx := testCtx(t)
	for i := range 3 {
		d.Send(ctx, seqMsg(i))
	}
	seq, _ := d.Send(ctx, seqMsg(3))
	if err := d.WaitDelivered(ctx, seq); err != nil {
		t.Fatal(err)
	}
	d.Close()
	for i := range 4 {
		if _, err := l.Recv(ctx); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if _, err := l.Recv(ctx); err != io.EOF {
		t.Fatalf("after close: %v, want EOF", err)
	}
	if _, err := d.Send(ctx, []byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
	if err := d.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second close: %v", err)
	}
}

func TestUnreliableEndsWithItsStream(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, l := msgPair(t, a, b, MessageConfig{})
	ctx := testCtx(t)
	if _, err := d.Send(ctx, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if m, err := l.Recv(ctx); err != nil || string(m) != "one" {
		t.Fatal(err)
	}
	dropConns(b, a)
	if _, err := l.Recv(ctx); err == nil {
		t.Fatal("unreliable pipe survived its stream")
	}
}

// Relay to direct: a is private and reachable only through the super-peer's
// relay; messages flow over the relayed connection, and keep flowing without
// loss when a direct connection appears and the pipe moves to it.
func TestReliableMovesFromRelayToDirect(t *testing.T) {
	sp := superPeer(t)
	acfg := peer.TestConfig()
	acfg.SuperPeers = []string{sp.p.Invite()}
	acfg.Reachability = peer.ReachabilityPrivate
	a := newNode(t, acfg)
	b := edge(t, sp)
	ctx := testCtx(t)
	id := NewID()
	ln, err := a.s.ListenMessages(ctx, id, MessageConfig{Reliable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// Wait until a's only advertised addresses are relay addresses.
	waitFor(t, "a relay reservation", func() bool { return len(a.p.Status().Relays) > 0 })
	if err := connectInvite(ctx, b.p, a.p.Invite()); err != nil {
		t.Fatal(err)
	}
	if b.p.PathTo(a.p.ID()) != peer.PathRelayed {
		t.Fatalf("path %v, want relayed", b.p.PathTo(a.p.ID()))
	}
	d, err := b.s.DialMessages(ctx, id, MessageConfig{Reliable: true}, ToPeer(a.p.ID()))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	l, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if d.Path() != peer.PathRelayed {
		t.Fatalf("pipe path %v", d.Path())
	}

	const total = 2000
	var wg sync.WaitGroup
	wg.Add(1)
	var recvErr error
	go func() {
		defer wg.Done()
		for want := range total {
			m, err := l.Recv(ctx)
			if err != nil {
				recvErr = err
				return
			}
			if got := int(binary.BigEndian.Uint64(m)); got != want {
				recvErr = fmt.Errorf("message %d arrived as %d", want, got)
				return
			}
		}
	}()
	for i := range total {
		if i == total/2 {
			// A direct connection appears (on a home network: a hole punch).
			direct := lpeer.AddrInfo{ID: lp(a.p.ID()), Addrs: a.p.Libp2p().Host.Network().ListenAddresses()}
			if err := b.p.Libp2p().Host.Connect(network.WithForceDirectDial(ctx, "test"), direct); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := d.Send(ctx, seqMsg(i)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if recvErr != nil {
		t.Fatal(recvErr)
	}
	waitFor(t, "the pipe to move to the direct connection", func() bool { return d.Path() == peer.PathDirect })
}

// Messages given back with Release are reused by later ones, on both ends
// (the sender's frames go back to the pool as they are acknowledged): every
// message still arrives whole and in order, in sizes that share and do not
// share the pool's size classes, while the receiver releases each.
func TestReleasedMessagesArriveWhole(t *testing.T) {
	for _, reliable := range []bool{true, false} {
		t.Run(fmt.Sprintf("reliable=%v", reliable), func(t *testing.T) {
			a, b := edge(t, nil), edge(t, nil)
			d, l := msgPair(t, a, b, MessageConfig{Reliable: reliable})
			ctx := testCtx(t)
			const n = 3000
			msg := func(i int) []byte {
				m := make([]byte, 8+(i*37)%3000)
				binary.BigEndian.PutUint64(m, uint64(i))
				for k := 8; k < len(m); k++ {
					m[k] = byte(i + k)
				}
				return m
			}
			errc := make(chan error, 1)
			go func() {
				for i := range n {
					if _, err := d.Send(ctx, msg(i)); err != nil {
						errc <- fmt.Errorf("send %d: %w", i, err)
						return
					}
				}
				errc <- nil
			}()
			for i := range n {
				m, err := l.Recv(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := msg(i); string(m) != string(want) {
					t.Fatalf("message %d: %d bytes, want %d, or different content", i, len(m), len(want))
				}
				l.Release(m)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if reliable {
				if err := d.WaitDelivered(ctx, n); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// A reliable pipe whose sender has a small window, in messages or in
// bytes, does not wait for the receiver's ack timer: the sender tells its
// window in the hello, and the receiver acks at half of it. With the timer
// made an hour long, a sender left to it would never finish.
func TestReliableSmallWindowNeedsNoAckTimer(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  MessageConfig
		size int
	}{
		{"2 messages", MessageConfig{Reliable: true, Window: 2}, 100},
		{"3 KiB", MessageConfig{Reliable: true, WindowBytes: 3 << 10}, 1 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := edge(t, nil), edge(t, nil)
			a.s.ackDelay, b.s.ackDelay = time.Hour, time.Hour
			d, l := msgPair(t, a, b, c.cfg)
			ctx, cancel := context.WithTimeout(testCtx(t), time.Minute)
			defer cancel()
			const n = 200
			errc := make(chan error, 1)
			go func() {
				for i := range n {
					m, err := l.Recv(ctx)
					if err != nil {
						errc <- err
						return
					}
					if len(m) != c.size || m[0] != byte(i) {
						errc <- fmt.Errorf("message %d: %d bytes starting %d", i, len(m), m[0])
						return
					}
				}
				errc <- nil
			}()
			for i := range n {
				msg := make([]byte, c.size)
				msg[0] = byte(i)
				if _, err := d.Send(ctx, msg); err != nil {
					t.Fatalf("send %d of %d: %v (waiting for an ack that only the timer would send)", i, n, err)
				}
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The window in a hello is optional: an older peer sends none, and a
// malformed or huge one is read as not told, or bounded.
func TestHelloWindow(t *testing.T) {
	base := append([]byte{fHello, helloReliable}, make([]byte, sidLen)...)
	base = binary.AppendUvarint(base, 7)
	for _, c := range []struct {
		name string
		tail []byte
		want window
	}{
		{"older peer", nil, window{}},
		{"told", appendWindow(nil, window{4, 4096}), window{4, 4096}},
		{"half told", binary.AppendUvarint(nil, 4), window{}},
		{"huge", appendWindow(nil, window{1 << 40, 1 << 50}), window{maxToldWindow, maxToldWindow}},
	} {
		h, err := parseHello(append(append([]byte(nil), base...), c.tail...))
		if err != nil || h.recv != 7 || h.win != c.want {
			t.Errorf("%s: %+v %v, want recv 7 and window %+v", c.name, h, err, c.want)
		}
	}
}
