package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/internal/stats"
	jpeer "github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// The pipes rows: stream pipes, message pipes, each against a raw libp2p
// stream between the same two juxta peers, on the same connection, so that a
// ratio shows the pipe layer's cost alone.
const (
	sinkPipe     = "bench-sink"
	echoPipe     = "bench-echo"
	inboxPipe    = "bench-inbox"
	msgEchoProto = "/juxta-bench/msg-echo/1"
	msgSinkProto = "/juxta-bench/msg-sink/1"

	pingSize     = 64    // bytes of a ping
	pingsPerRep  = 2000  // round trips per repetition and side
	bulkMsgSize  = 1024  // bytes of a message in the message-throughput row
	bulkMsgCount = 50000 // messages per repetition and side
	maxMsg       = 1 << 20
)

// pipeStreamFixture is two juxta peers (discovery and pipes running) that
// listen on one transport only, connected; the first binds a stream pipe
// and a raw stream handler, both draining what they get (drainAck).
type pipeStreamFixture struct {
	listen string
	send   func(halfCloser) (float64, error) // sendBulk if nil

	a, b  *pnode
	close func() error
	l     *pipes.Listener
	wg    sync.WaitGroup
}

func (f *pipeStreamFixture) setup(ctx context.Context) (_ func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := jpeer.TestConfig()
	cfg.ListenAddrs = []string{f.listen}
	if f.a, f.b, f.close, err = pnodePair(ctx, cfg); err != nil {
		return nil, err
	}
	if f.l, err = f.a.s.Listen(ctx, sinkPipe, pipes.Public()); err != nil {
		return nil, errors.Join(err, f.close())
	}
	f.wg.Go(func() {
		for {
			c, err := f.l.Accept()
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				drainAck(c)
			})
		}
	})
	f.a.p.Libp2p().Host.SetStreamHandler(sinkProto, sink)
	return func() error {
		err := f.l.Close()
		f.wg.Wait()
		return errors.Join(err, f.close())
	}, nil
}

// juxta dials the pipe (resolving it through discovery; not timed) and
// sends -mib MiB through the net.Conn.
func (f *pipeStreamFixture) juxta(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := f.b.s.Dial(ctx, sinkPipe)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if d, ok := ctx.Deadline(); ok {
		c.SetDeadline(d)
	}
	if err := settle(ctx); err != nil {
		return 0, err
	}
	if f.send != nil {
		return f.send(c)
	}
	return sendBulk(c)
}

// base opens a raw stream on the same connection and sends as much.
func (f *pipeStreamFixture) base(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := f.b.p.Libp2p().Host.NewStream(ctx, lp(f.a.p.ID()), sinkProto)
	if err != nil {
		return 0, fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	deadlineFrom(ctx, s)
	if err := settle(ctx); err != nil {
		return 0, err
	}
	rate, err := sendBulk(s)
	logf("    over %s", describe(s))
	return rate, err
}

// msgRTTFixture is two connected juxta peers (TCP and QUIC) with a message
// pipe open between them, reliable or not, whose listener echoes every
// message, and a raw stream on the same connection to a handler that echoes
// varint-framed messages (go-msgio), as message pipes frame them.
type msgRTTFixture struct {
	reliable bool

	a, b  *pnode
	close func() error
	l     *pipes.MsgListener
	c     *pipes.MsgConn
	s     network.Stream
	r     msgio.ReadCloser
	w     msgio.WriteCloser
	wg    sync.WaitGroup
	stop  context.CancelFunc
}

func (f *msgRTTFixture) setup(ctx context.Context) (_ func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if f.a, f.b, f.close, err = pnodePair(ctx, jpeer.TestConfig()); err != nil {
		return nil, err
	}
	ectx, stop := context.WithCancel(context.Background())
	f.stop = stop
	teardown := func() error {
		var errs []error
		if f.s != nil {
			errs = append(errs, f.s.Close())
		}
		if f.c != nil {
			errs = append(errs, f.c.Close())
		}
		if f.l != nil {
			errs = append(errs, f.l.Close())
		}
		stop()
		f.wg.Wait()
		return errors.Join(append(errs, f.close())...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()
	if f.l, err = f.a.s.ListenMessages(ctx, echoPipe, pipes.MessageConfig{MaxMessage: maxMsg}, pipes.Public()); err != nil {
		return nil, err
	}
	f.wg.Go(func() {
		for {
			c, err := f.l.Accept(ectx)
			if err != nil {
				return
			}
			f.wg.Go(func() {
				defer c.Close()
				for {
					m, err := c.Recv(ectx)
					if err != nil {
						return
					}
					_, err = c.Send(ectx, m)
					c.Release(m) // as msgEcho releases its go-msgio buffer
					if err != nil {
						return
					}
				}
			})
		}
	})
	f.a.p.Libp2p().Host.SetStreamHandler(msgEchoProto, msgEcho)
	cfg := pipes.MessageConfig{MaxMessage: maxMsg, Reliable: f.reliable}
	if f.c, err = f.b.s.DialMessages(ctx, echoPipe, cfg); err != nil {
		return nil, err
	}
	if f.s, err = f.b.p.Libp2p().Host.NewStream(ctx, lp(f.a.p.ID()), msgEchoProto); err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	f.r, f.w = msgio.NewVarintReaderSize(f.s, maxMsg), msgio.NewVarintWriter(f.s)
	logf("    over %s", describe(f.s))
	return teardown, nil
}

// msgEcho writes back every varint-framed message it reads.
func msgEcho(s network.Stream) {
	defer s.Close()
	r, w := msgio.NewVarintReaderSize(s, maxMsg), msgio.NewVarintWriter(s)
	for {
		m, err := r.ReadMsg()
		if err != nil {
			return
		}
		err = w.WriteMsg(m)
		r.ReleaseMsg(m)
		if err != nil {
			s.Reset()
			return
		}
	}
}

// pingPong times pingsPerRep round trips of a pingSize message and returns
// their median in µs.
func pingPong(ctx context.Context, rt func(ctx context.Context, m []byte) ([]byte, error)) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := settle(ctx); err != nil {
		return 0, err
	}
	m := make([]byte, pingSize)
	lat := make([]float64, 0, pingsPerRep)
	for i := range pingsPerRep {
		binary.BigEndian.PutUint64(m, uint64(i))
		start := time.Now()
		got, err := rt(ctx, m)
		elapsed := time.Since(start)
		if err != nil {
			return 0, fmt.Errorf("round trip %d: %w", i, err)
		}
		if len(got) != pingSize || binary.BigEndian.Uint64(got) != uint64(i) {
			return 0, fmt.Errorf("round trip %d: wrong echo (%d bytes)", i, len(got))
		}
		lat = append(lat, float64(elapsed)/float64(time.Microsecond))
	}
	return stats.Median(lat), nil
}

func (f *msgRTTFixture) juxta(ctx context.Context) (float64, error) {
	return pingPong(ctx, func(ctx context.Context, m []byte) ([]byte, error) {
		if _, err := f.c.Send(ctx, m); err != nil {
			return nil, err
		}
		return f.c.Recv(ctx)
	})
}

func (f *msgRTTFixture) base(ctx context.Context) (float64, error) {
	deadlineFrom(ctx, f.s)
	defer f.s.SetDeadline(time.Time{})
	return pingPong(ctx, func(ctx context.Context, m []byte) ([]byte, error) {
		if err := f.w.WriteMsg(m); err != nil {
			return nil, err
		}
		got, err := f.r.ReadMsg()
		if err != nil {
			return nil, err
		}
		out := append([]byte(nil), got...)
		f.r.ReleaseMsg(got)
		return out, nil
	})
}

// msgBulkFixture is two connected juxta peers (TCP and QUIC); the first binds
// a message pipe and a raw handler that reads varint-framed messages to the
// end of the stream. Each repetition opens a new reliable pipe (or raw
// stream), sends bulkMsgCount messages of bulkMsgSize bytes, and times the
// first Send to the receipt of the last.
type msgBulkFixture struct {
	a, b  *pnode
	close func() error
	l     *pipes.MsgListener
	raw   chan bulkDone // what the raw handler saw, per stream
}

// bulkDone is what a receiver saw: when it received the last message, and
// whether all arrived in order.
type bulkDone struct {
	last time.Time
	err  error
}

func (f *msgBulkFixture) setup(ctx context.Context) (_ func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if f.a, f.b, f.close, err = pnodePair(ctx, jpeer.TestConfig()); err != nil {
		return nil, err
	}
	if f.l, err = f.a.s.ListenMessages(ctx, inboxPipe, pipes.MessageConfig{MaxMessage: maxMsg}, pipes.Public()); err != nil {
		return nil, errors.Join(err, f.close())
	}
	f.raw = make(chan bulkDone, 1)
	f.a.p.Libp2p().Host.SetStreamHandler(msgSinkProto, func(s network.Stream) {
		defer s.Close()
		r := msgio.NewVarintReaderSize(s, maxMsg)
		var d bulkDone
		d.err = receiveBulk(r.ReadMsg, r.ReleaseMsg, &d.last)
		f.raw <- d
	})
	return func() error { return errors.Join(f.l.Close(), f.close()) }, nil
}

// receiveBulk reads bulkMsgCount messages with next, checks that each carries
// its index, hands it to release (if set), and sets *last when the last one
// has arrived.
func receiveBulk(next func() ([]byte, error), release func([]byte), last *time.Time) error {
	for i := range bulkMsgCount {
		m, err := next()
		if err != nil {
			return fmt.Errorf("message %d: %w", i, err)
		}
		if len(m) != bulkMsgSize || binary.BigEndian.Uint64(m) != uint64(i) {
			return fmt.Errorf("message %d: out of order or wrong size (%d bytes)", i, len(m))
		}
		if release != nil {
			release(m)
		}
	}
	*last = time.Now()
	return nil
}

// bulkMessage is message i: its index, then padding.
func bulkMessage(buf []byte, i int) []byte {
	binary.BigEndian.PutUint64(buf, uint64(i))
	return buf
}

func (f *msgBulkFixture) juxta(ctx context.Context) (_ float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	c, err := f.b.s.DialMessages(ctx, inboxPipe, pipes.MessageConfig{MaxMessage: maxMsg, Reliable: true})
	if err != nil {
		return 0, err
	}
	defer func() {
		if cerr := c.Close(); cerr != nil && !errors.Is(cerr, net.ErrClosed) {
			err = errors.Join(err, cerr)
		}
	}()
	in, err := f.l.Accept(ctx)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if err := settle(ctx); err != nil {
		return 0, err
	}
	done := make(chan bulkDone, 1)
	go func() {
		var d bulkDone
		d.err = receiveBulk(func() ([]byte, error) { return in.Recv(ctx) }, in.Release, &d.last)
		done <- d
	}()
	buf := make([]byte, bulkMsgSize)
	start := time.Now()
	for i := range bulkMsgCount {
		if _, err := c.Send(ctx, bulkMessage(buf, i)); err != nil {
			return 0, fmt.Errorf("send %d: %w", i, err)
		}
	}
	d := <-done
	if d.err != nil {
		return 0, d.err
	}
	return bulkMsgCount / d.last.Sub(start).Seconds(), nil
}

func (f *msgBulkFixture) base(ctx context.Context) (float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	s, err := f.b.p.Libp2p().Host.NewStream(ctx, lp(f.a.p.ID()), msgSinkProto)
	if err != nil {
		return 0, fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	deadlineFrom(ctx, s)
	if err := settle(ctx); err != nil {
		return 0, err
	}
	w := msgio.NewVarintWriter(s)
	buf := make([]byte, bulkMsgSize)
	start := time.Now()
	for i := range bulkMsgCount {
		if err := w.WriteMsg(bulkMessage(buf, i)); err != nil {
			return 0, fmt.Errorf("write %d: %w", i, err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		return 0, fmt.Errorf("close write: %w", err)
	}
	var d bulkDone
	select {
	case d = <-f.raw:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if d.err != nil {
		return 0, d.err
	}
	logf("    over %s", describe(s))
	return bulkMsgCount / d.last.Sub(start).Seconds(), nil
}
