package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"
)

// Connect connects to the peer a names. Its ID is required; its addresses and
// relays are hints, tried together with addresses already known (from the LAN
// or earlier contact). With no address at all, the DHT is asked through the
// super-peers. libp2p picks the path: direct, hole-punched or relayed. Connect
// returns the path it ended on. Use ParseAddr to read an invite, a /p2p
// multiaddr or an ID string.
func (p *Peer) Connect(ctx context.Context, a Addr) (Path, error) {
	if p.closed.Load() {
		return PathNone, fmt.Errorf("peer: connect: %w", net.ErrClosed)
	}
	if err := a.check(); err != nil {
		return PathNone, fmt.Errorf("peer: connect: %w", err)
	}
	if a.ID == p.ID() {
		return PathNone, fmt.Errorf("%w: cannot connect to self", ErrBadConfig)
	}
	ai := a.addrInfo()
	// The relay addresses through the given relays are hints as good as any
	// other: a private peer is reachable only there.
	for _, r := range a.Relays {
		rai := r.addrInfo()
		if rai.ID == p.host.ID() {
			continue
		}
		p.host.Peerstore().AddAddrs(rai.ID, rai.Addrs, time.Hour)
		c, err := ma.NewMultiaddr("/p2p/" + rai.ID.String() + "/p2p-circuit")
		if err != nil {
			continue
		}
		for _, ra := range rai.Addrs {
			ai.Addrs = append(ai.Addrs, ra.Encapsulate(c))
		}
	}
	if len(ai.Addrs) == 0 && len(p.host.Peerstore().Addrs(ai.ID)) == 0 {
		// Peer routing needs the super-peers; make sure we hold one.
		if err := p.Ready(ctx); err != nil && len(p.superPeers) > 0 {
			return PathNone, fmt.Errorf("peer: connect %s: %w", a.ID.ShortString(), err)
		}
	}
	p.awaitPunchable(ctx)
	ctx = network.WithAllowLimitedConn(ctx, "juxta connect")
	if err := p.host.Connect(ctx, ai); err != nil {
		if errors.Is(err, routing.ErrNotFound) {
			return PathNone, fmt.Errorf("%w %s: %w", ErrNoAddrs, a.ID.ShortString(), err)
		}
		return PathNone, fmt.Errorf("peer: connect %s: %w", a.ID.ShortString(), err)
	}
	return p.PathTo(a.ID), nil
}

// PathTo reports the best current path to id.
func (p *Peer) PathTo(id ID) Path {
	best := PathNone
	for _, c := range p.host.Network().ConnsToPeer(toLP(id)) {
		if !isRelayed(c) {
			return PathDirect
		}
		best = PathRelayed
	}
	return best
}

// isRelayed tells a circuit-relay connection from a direct one. Stat().Limited
// is not enough: a relay without limits hands out unlimited relayed connections.
func isRelayed(c network.Conn) bool {
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil || c.Stat().Limited
}
