package main

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

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

		rate, err := sendBulk(s)
		logf("    over %s", describe(s))
		return rate, err
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
