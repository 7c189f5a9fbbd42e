package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

const echoProto = "/juxta-bench/echo/1"

// echo writes back what it reads until the stream ends.
func echo(s network.Stream) {
	defer s.Close()
	io.Copy(s, s)
}

// setupRTT measures, on a fresh pair of nodes, the time from nothing connected
// to a completed 1-byte echo on a new stream: connect, open the stream
// (protocol negotiation and the identify exchange it waits for included), send
// one byte and read it back. Starting the nodes is not timed.
func setupRTT(mk newNode) func(context.Context) (float64, error) {
	return func(ctx context.Context) (_ float64, err error) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		a, b, closeBoth, err := pair(ctx, mk, loopbackBoth)
		if err != nil {
			return 0, err
		}
		defer func() { err = errors.Join(err, closeBoth()) }()
		a.host.SetStreamHandler(echoProto, echo)
		ai := a.addrInfo()
		if err := settle(ctx); err != nil {
			return 0, err
		}

		start := time.Now()
		if err := b.connect(ctx, ai); err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		s, err := b.host.NewStream(ctx, ai.ID, echoProto)
		if err != nil {
			return 0, fmt.Errorf("new stream: %w", err)
		}
		defer s.Close()
		deadlineFrom(ctx, s)
		if _, err := s.Write([]byte{0x2a}); err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
		var got [1]byte
		if _, err := io.ReadFull(s, got[:]); err != nil {
			return 0, fmt.Errorf("read echo: %w", err)
		}
		elapsed := time.Since(start)

		logf("    over %s", describe(s))
		if got[0] != 0x2a {
			return 0, fmt.Errorf("echo returned %#x, want 0x2a", got[0])
		}
		return float64(elapsed) / float64(time.Millisecond), nil
	}
}
