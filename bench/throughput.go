package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/juxta-p2p/juxta/internal/stats"
	"github.com/libp2p/go-libp2p/core/network"
)

const (
	sinkProto = "/juxta-bench/sink/1"
	chunk     = 64 << 10 // bytes per write and per read
)

// sink reads a stream to its end, discarding the data, then writes the number
// of bytes it read (8 bytes, big endian) as the acknowledgement.
func sink(s network.Stream) {
	defer s.Close()
	if err := drainAck(s); err != nil {
		s.Reset()
	}
}

// drainAck reads rw to its end in chunk-sized reads, discarding the data, then
// writes the number of bytes it read (8 bytes, big endian).
func drainAck(rw io.ReadWriter) error {
	buf := make([]byte, chunk)
	var n uint64
	for {
		m, err := rw.Read(buf)
		n += uint64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	binary.BigEndian.PutUint64(buf[:8], n)
	_, err := rw.Write(buf[:8])
	return err
}

// throughput measures one-way bulk transfer over one stream between a fresh
// pair of nodes listening only on listen: -mib MiB in 64 KiB writes, timed from
// the first write until the receiver's acknowledgement that it read them all.
// Connecting and opening the stream are not timed.
func throughput(mk newNode, listen string) func(context.Context) (float64, error) {
	return transfer(mk, listen, sendBulk)
}

// cpuPerGiB is throughput's transfer measured in CPU seconds per GiB moved:
// the process's CPU time (getrusage: user + system, every thread, so both
// ends, which run in this process) across the transfer. A busy machine
// stretches wall-clock time far more than CPU time.
func cpuPerGiB(mk newNode, listen string) func(context.Context) (float64, error) {
	return transfer(mk, listen, cpuBulk)
}

// cpuBulk runs sendBulk and returns the CPU seconds per GiB it cost.
func cpuBulk(s halfCloser) (float64, error) {
	before, err := cpuTime()
	if err != nil {
		return 0, err
	}
	if _, err := sendBulk(s); err != nil {
		return 0, err
	}
	after, err := cpuTime()
	if err != nil {
		return 0, err
	}
	return (after - before).Seconds() / (float64(*flagMiB) / 1024), nil
}

// transfer sets up a fresh pair of nodes listening on listen, opens a stream
// to a sink and measures send on it.
func transfer(mk newNode, listen string, send func(halfCloser) (float64, error)) func(context.Context) (float64, error) {
	return func(ctx context.Context) (_ float64, err error) {
		ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		a, b, closeBoth, err := pair(ctx, mk, []string{listen})
		if err != nil {
			return 0, err
		}
		defer func() { err = errors.Join(err, closeBoth()) }()
		a.host.SetStreamHandler(sinkProto, sink)
		if err := b.connect(ctx, a.addrInfo()); err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		s, err := b.host.NewStream(ctx, a.host.ID(), sinkProto)
		if err != nil {
			return 0, fmt.Errorf("new stream: %w", err)
		}
		defer s.Close()
		deadlineFrom(ctx, s)
		if err := settle(ctx); err != nil {
			return 0, err
		}

		v, err := send(s)
		logf("    over %s", describe(s))
		return v, err
	}
}

// halfCloser is a byte stream with half-close: a libp2p stream or a stream
// pipe's net.Conn.
type halfCloser interface {
	io.ReadWriter
	CloseWrite() error
}

// sendBulk writes -mib MiB to s in chunk-sized writes, half-closes it and
// waits for drainAck's acknowledgement on the other side. It returns the rate
// in MB/s (10^6 B/s), timed from the first write to the acknowledgement.
func sendBulk(s halfCloser) (float64, error) {
	total := uint64(*flagMiB) << 20
	buf := make([]byte, chunk)
	for i := range buf {
		buf[i] = byte(i) // not all zero, in case anything on the path compresses
	}
	start := time.Now()
	for sent := uint64(0); sent < total; sent += chunk {
		if _, err := s.Write(buf); err != nil {
			return 0, fmt.Errorf("write after %d bytes: %w", sent, err)
		}
	}
	if err := s.CloseWrite(); err != nil {
		return 0, fmt.Errorf("close write: %w", err)
	}
	var ack [8]byte
	if _, err := io.ReadFull(s, ack[:]); err != nil {
		return 0, fmt.Errorf("read acknowledgement: %w", err)
	}
	elapsed := time.Since(start)
	if got := binary.BigEndian.Uint64(ack[:]); got != total {
		return 0, fmt.Errorf("receiver read %d bytes, want %d", got, total)
	}
	return float64(total) / elapsed.Seconds() / 1e6, nil
}

// stockOrders measures stock go-libp2p in both security orders for one row:
// each call of base runs one transfer with TLS first and one with Noise first
// (which goes first alternates), records both and returns the faster. The
// rows derived from it (fasterStock, oneStock) compare juxta's repetitions of
// the same row, interleaved in time with both, to either order.
type stockOrders struct {
	listen     string
	tls, noise []float64
	calls      int
}

func (o *stockOrders) base(ctx context.Context) (float64, error) {
	o.calls++
	runs := []struct {
		mk  newNode
		out *[]float64
	}{{newRaw, &o.tls}, {newRawNoiseFirst, &o.noise}}
	if o.calls%2 == 0 {
		runs[0], runs[1] = runs[1], runs[0]
	}
	var best float64
	for _, r := range runs {
		v, err := throughput(r.mk, o.listen)(ctx)
		if err != nil {
			return 0, err
		}
		*r.out = append(*r.out, v)
		best = max(best, v)
	}
	return best, nil
}

// last returns the last n values of xs (the measured repetitions, after the
// warm-up ones).
func last(xs []float64, n int) []float64 { return xs[max(len(xs)-n, 0):] }

// sourceRow finds the result of the row named name in done.
func sourceRow(done []result, name string) (*result, error) {
	for i := range done {
		if done[i].name == name && done[i].err == nil {
			return &done[i], nil
		}
	}
	return nil, fmt.Errorf("needs the row %q, complete, earlier in the same run", name)
}

// fasterStock derives juxta against whichever stock order has the higher
// median, from the row src measured with o.base.
func fasterStock(src string, o *stockOrders) func([]result) ([]float64, []float64, error) {
	return func(done []result) ([]float64, []float64, error) {
		r, err := sourceRow(done, src)
		if err != nil {
			return nil, nil, err
		}
		n := len(r.base)
		tls, noise := last(o.tls, n), last(o.noise, n)
		if stats.Median(noise) > stats.Median(tls) {
			return r.juxta, noise, nil
		}
		return r.juxta, tls, nil
	}
}

// oneStock derives juxta against one stock order (tls or not) from the row
// src measured with o.base.
func oneStock(src string, o *stockOrders, tls bool) func([]result) ([]float64, []float64, error) {
	return func(done []result) ([]float64, []float64, error) {
		r, err := sourceRow(done, src)
		if err != nil {
			return nil, nil, err
		}
		if tls {
			return r.juxta, last(o.tls, len(r.base)), nil
		}
		return r.juxta, last(o.noise, len(r.base)), nil
	}
}
