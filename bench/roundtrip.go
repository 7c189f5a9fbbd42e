package main

import (
	"context"
	"fmt"
	"io"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

// The request/response baseline: the floor any query protocol over libp2p
// streams pays, one stream per request.
const (
	rrProto   = "/juxta-bench/rr/1"
	rrRequest = 100  // bytes a request carries
	rrReply   = 1024 // bytes an answer carries
)

var rrRequestBuf, rrReplyBuf = make([]byte, rrRequest), make([]byte, rrReply)

// rrServe answers one request: it reads the request to its end, then writes
// rrReply bytes and closes.
func rrServe(s network.Stream) {
	defer s.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(s, 64<<10)); err != nil {
		s.Reset()
		return
	}
	s.Write(rrReplyBuf)
}

// roundTrip opens a stream from h to id, sends rrRequest bytes, closes its
// write side, reads the rrReply-byte answer and closes the stream: what one
// discovery request does, minus discovery.
func roundTrip(ctx context.Context, h host.Host, id lpeer.ID) error {
	s, err := h.NewStream(ctx, id, rrProto)
	if err != nil {
		return fmt.Errorf("new stream: %w", err)
	}
	defer s.Close()
	deadlineFrom(ctx, s)
	if _, err := s.Write(rrRequestBuf); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := s.CloseWrite(); err != nil {
		return fmt.Errorf("close write: %w", err)
	}
	var buf [rrReply]byte
	if _, err := io.ReadFull(s, buf[:]); err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	return nil
}
