package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ObserveProtocol is a STUN-like service of super-peers: it answers with the
// address it sees the asking connection come from. Asking two super-peers over
// the same transport tells whether the NAT maps one local port to the same
// public port for every destination (endpoint-independent mapping: hole
// punching works) or to a new one per destination (symmetric: relay only).
const ObserveProtocol = "/juxta/observe/1.0.0"

func (p *Peer) handleObserve(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(5 * time.Second))
	b := s.Conn().RemoteMultiaddr().Bytes()
	if len(b) > 255 {
		s.Reset()
		return
	}
	if _, err := s.Write(append([]byte{byte(len(b))}, b...)); err != nil {
		s.Reset()
	}
}

// Observe asks the super-peer sp which address it sees this peer's connection
// come from. The connection must exist (Connect first).
func (p *Peer) Observe(ctx context.Context, sp ID) (string, error) {
	a, err := observeVia(ctx, p.host, toLP(sp))
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// observeVia asks sp, over h's existing connection, for h's observed address.
func observeVia(ctx context.Context, h host.Host, sp lpeer.ID) (ma.Multiaddr, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "observe"), sp, ObserveProtocol)
	if err != nil {
		return nil, fmt.Errorf("peer: observe via %s: %w", ID(sp).ShortString(), err)
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	a, err := readObserveReply(s)
	if err != nil {
		return nil, fmt.Errorf("peer: observe via %s: %w", ID(sp).ShortString(), err)
	}
	return a, nil
}

// readObserveReply reads the answer: a length byte, then a binary multiaddr.
func readObserveReply(r io.Reader) (ma.Multiaddr, error) {
	var n [1]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	b := make([]byte, n[0])
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	a, err := ma.NewMultiaddrBytes(b)
	if err != nil {
		return nil, errors.Join(ErrInviteAddr, err)
	}
	return a, nil
}
