package pipes

import (
	"context"
	"encoding/binary"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"
)

// Message-pipe benchmarks, each beside the same work on a raw libp2p stream
// on the same connection with the same framing (go-msgio), as the bench
// rows measure it: compare a Pipe line with its Raw line from one run.

const benchRawProto = "/juxta-test/msg-bench/1"

// benchPair is a message pipe and a raw stream between two edges; the
// listener side runs serve on every message the pipe and the stream bring.
func benchPair(b *testing.B, cfg MessageConfig, echo bool) (d, l *MsgConn, raw func() network.Stream) {
	b.Helper()
	x, y := edge(b, nil), edge(b, nil)
	ctx := testCtx(b)
	id := NewID()
	ln, err := x.s.ListenMessages(ctx, id, cfg, Public())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	if _, err := y.p.Connect(ctx, x.p.Addr()); err != nil {
		b.Fatal(err)
	}
	x.p.Libp2p().Host.SetStreamHandler(benchRawProto, func(s network.Stream) {
		defer s.Close()
		r, w := msgio.NewVarintReaderSize(s, 1<<20), msgio.NewVarintWriter(s)
		for {
			m, err := r.ReadMsg()
			if err != nil {
				return
			}
			if echo {
				err = w.WriteMsg(m)
			}
			r.ReleaseMsg(m)
			if err != nil {
				s.Reset()
				return
			}
		}
	})
	if d, err = y.s.DialMessages(ctx, id, cfg); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { d.Close() })
	if l, err = ln.Accept(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	raw = func() network.Stream {
		s, err := y.p.Libp2p().Host.NewStream(ctx, lp(x.p.ID()), benchRawProto)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Reset() })
		return s
	}
	return d, l, raw
}

// BenchmarkMessageThroughput sends b.N 1 KiB messages back to back, Pipe
// through a reliable message pipe (timed to the receiver's Recv of the
// last), Raw as go-msgio frames on a raw stream (timed to the echo of a
// last, empty message).
func BenchmarkMessageThroughput(b *testing.B) {
	d, l, raw := benchPair(b, MessageConfig{Reliable: true}, false)
	ctx := testCtx(b)
	msg := make([]byte, 1024)
	b.Run("Pipe", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		done := make(chan error, 1)
		go func() {
			for i := range b.N {
				m, err := l.Recv(ctx)
				if err == nil && binary.BigEndian.Uint64(m) != uint64(i) {
					err = context.Canceled
				}
				if err != nil {
					done <- err
					return
				}
				l.Release(m)
			}
			done <- nil
		}()
		b.ResetTimer()
		for i := range b.N {
			binary.BigEndian.PutUint64(msg, uint64(i))
			if _, err := d.Send(ctx, msg); err != nil {
				b.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	})
	b.Run("Raw", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		raw := raw()
		w := msgio.NewVarintWriter(raw)
		b.ResetTimer()
		for range b.N {
			if err := w.WriteMsg(msg); err != nil {
				b.Fatal(err)
			}
		}
		// The sink does not echo: a round trip on a second stream would
		// not wait for this one, so wait for the stream's close instead.
		if err := raw.CloseWrite(); err != nil {
			b.Fatal(err)
		}
		if _, err := raw.Read(make([]byte, 1)); err == nil {
			b.Fatal("the sink wrote")
		}
	})
}

// BenchmarkMessageRTT times ping-pongs of a 64 B message through an echo,
// Pipe over a message pipe (reliable or not), Raw over a raw stream.
func BenchmarkMessageRTT(b *testing.B) {
	for _, reliable := range []bool{true, false} {
		name := "Unreliable"
		if reliable {
			name = "Reliable"
		}
		b.Run(name, func(b *testing.B) {
			d, l, raw := benchPair(b, MessageConfig{Reliable: reliable}, true)
			ctx, cancel := context.WithCancel(testCtx(b))
			defer cancel()
			go func() {
				for {
					m, err := l.Recv(ctx)
					if err != nil {
						return
					}
					_, err = l.Send(ctx, m)
					l.Release(m)
					if err != nil {
						return
					}
				}
			}()
			msg := make([]byte, 64)
			b.Run("Pipe", func(b *testing.B) {
				for range b.N {
					if _, err := d.Send(ctx, msg); err != nil {
						b.Fatal(err)
					}
					if _, err := d.Recv(ctx); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("Raw", func(b *testing.B) {
				raw := raw()
				r, w := msgio.NewVarintReaderSize(raw, 1<<20), msgio.NewVarintWriter(raw)
				for range b.N {
					if err := w.WriteMsg(msg); err != nil {
						b.Fatal(err)
					}
					m, err := r.ReadMsg()
					if err != nil {
						b.Fatal(err)
					}
					r.ReleaseMsg(m)
				}
			})
		})
	}
}
