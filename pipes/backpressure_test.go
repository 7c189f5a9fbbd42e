package pipes

import (
	"context"
	"encoding/binary"
	"runtime"
	"testing"
	"time"

	"github.com/libp2p/go-msgio"
)

// A hostile peer floods a reliable pipe with duplicate frames and never reads
// the acks: the listener keeps at most one ack in flight, not a goroutine per
// frame.
func TestDuplicateFramesDoNotPileUpGoroutines(t *testing.T) {
	a, evil := edge(t, nil), edge(t, nil)
	ctx := testCtx(t)
	id := NewID()
	ln, err := a.s.ListenMessages(ctx, id, MessageConfig{Reliable: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := evil.p.Connect(ctx, a.p.Addr()); err != nil {
		t.Fatal(err)
	}
	str, err := evil.p.Libp2p().Host.NewStream(ctx, lp(a.p.ID()), a.s.protocolFor(KindMessage, id))
	if err != nil {
		t.Fatal(err)
	}
	defer str.Reset()
	w := msgio.NewVarintWriter(str)
	hello := append([]byte{fHello, helloReliable}, make([]byte, sidLen)...)
	w.WriteMsg(binary.AppendUvarint(hello, 0))
	before := runtime.NumGoroutine()
	for range 20_000 {
		if err := w.WriteMsg([]byte{fData, 0}); err != nil {
			break // the listener may reset us: also fine
		}
	}
	time.Sleep(500 * time.Millisecond)
	if grew := runtime.NumGoroutine() - before; grew > 200 {
		t.Fatalf("%d goroutines after 20,000 duplicate frames", grew)
	}
}

// Close returns even when the other side stopped reading and a Send is stuck
// writing; a Send's ctx bounds its write.
func TestCloseWhenPeerStopsReading(t *testing.T) {
	a, b := edge(t, nil), edge(t, nil)
	d, _ := msgPair(t, a, b, MessageConfig{Reliable: true, Window: 64, WindowBytes: 1 << 30, MaxMessage: 64 << 10})
	ctx := testCtx(t)
	big := make([]byte, 64<<10)
	blocked := false
	for range 2000 {
		short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		_, err := d.Send(short, big)
		cancel()
		if err != nil {
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatal("Send never blocked on a peer that stopped reading")
	}
	done := make(chan struct{})
	go func() { d.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(patience):
		t.Fatal("Close blocked on a peer that stopped reading")
	}
}
