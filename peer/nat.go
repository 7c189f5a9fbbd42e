package peer

import (
	"context"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	basichost "github.com/libp2p/go-libp2p/p2p/host/basic"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Hole punching, owned by the peer rather than by go-libp2p's host, so that a
// failed punch can be retried (the stock service tries one DCUtR exchange of at
// most three rounds per relayed connection and gives up).

// tryLANDirect is started when a peer is first reached through a relay: if
// the peer has private or loopback addresses (the same LAN, or this machine),
// it dials them directly. go-libp2p races relay addresses against private ones
// and may settle on the relay; no hole punch starts without public addresses,
// and GossipSub does not use relayed connections, so two peers on one LAN
// could otherwise stay relayed. Public addresses are the hole punch's job.
//
// A loaded machine can take longer than one attempt's timeout for a
// handshake (two peers that never met in a group's mesh for minutes under
// -race were relayed after a single 3 s try had failed), so it retries with
// longer timeouts while the peer is connected only through a relay.
func (p *Peer) tryLANDirect(id ID) {
	defer p.wg.Done()
	for i, timeout := range lanDirectTimeouts {
		if i > 0 {
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(timeout / 2):
			}
		}
		if p.PathTo(id) != PathRelayed {
			return // direct already, or gone
		}
		addrs := onLinkAddrs(p.host.Peerstore().Addrs(toLP(id)), localNets())
		if len(addrs) == 0 {
			continue // identify may not have told us its addresses yet
		}
		if !p.lanDials.AllowN(time.Now(), len(addrs)) {
			p.log.Debug("direct LAN dials rate limited", "peer", id)
			continue
		}
		ctx, cancel := context.WithTimeout(p.ctx, timeout)
		err := p.host.Connect(network.WithForceDirectDial(ctx, "juxta LAN"), lpeer.AddrInfo{ID: toLP(id), Addrs: addrs})
		cancel()
		if err == nil {
			return
		}
		p.log.Debug("no direct LAN path", "peer", id, "attempt", i+1, "err", err)
	}
}

// A relayed peer chooses the addresses it advertises: the direct LAN dial
// takes only those on a subnet of this host's own interfaces, at most
// maxLANAddrs of them, and all such dials share a rate limit, so that no
// peer can make this one dial addresses elsewhere, or many.
const (
	maxLANAddrs  = 8
	lanDialRate  = 2 // addresses per second
	lanDialBurst = 16
)

// localNets are the subnets of this host's interfaces.
func localNets() []*net.IPNet {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []*net.IPNet
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			out = append(out, n)
		}
	}
	return out
}

// onLinkAddrs keeps the private or loopback addresses in addrs that lie on
// one of nets, at most maxLANAddrs, relay addresses excluded.
func onLinkAddrs(addrs []ma.Multiaddr, nets []*net.IPNet) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
			continue
		}
		if !manet.IsPrivateAddr(a) && !manet.IsIPLoopback(a) {
			continue
		}
		ip, err := manet.ToIP(a)
		if err != nil || !slices.ContainsFunc(nets, func(n *net.IPNet) bool { return n.Contains(ip) }) {
			continue
		}
		if out = append(out, a); len(out) == maxLANAddrs {
			break
		}
	}
	return out
}

// lanDirectTimeouts bound each direct dial of tryLANDirect; each retry waits
// half its timeout first.
var lanDirectTimeouts = []time.Duration{3 * time.Second, 10 * time.Second, 30 * time.Second}

// directDialTimeout bounds DCUtR's first, plain direct dial.
const directDialTimeout = time.Second

// punchRetries are the waits before each retry of a failed hole punch.
var punchRetries = []time.Duration{2 * time.Second, 8 * time.Second, 30 * time.Second}

// startHolePunching creates the DCUtR service. It registers /libp2p/dcutr once
// the host knows a public address of its own: a listen address, or an address
// observed by a single peer (typically a super-peer).
func (p *Peer) startHolePunching(oam basichost.ObservedAddrsManager) error {
	idh, ok := p.host.(interface{ IDService() identify.IDService })
	if !ok {
		return fmt.Errorf("peer: host %T has no identify service", p.host)
	}
	addrs := func() []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, a := range p.host.Addrs() {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
				out = append(out, a)
			}
		}
		if oam != nil {
			out = append(out, oam.Addrs(1)...)
		}
		out = ma.Unique(out)
		return slices.DeleteFunc(out, func(a ma.Multiaddr) bool { return !manet.IsPublicAddr(a) })
	}
	hp, err := holepunch.NewService(p.host, idh.IDService(), addrs, holepunch.WithTracer(punchTracer{p}),
		// Before punching, DCUtR tries a plain dial to the other side's
		// public address, which behind a NAT can only time out; go-libp2p
		// waits 10 s for it. One second still covers a QUIC handshake
		// over a slow, far link.
		holepunch.DirectDialTimeout(directDialTimeout))
	if err != nil {
		return fmt.Errorf("peer: start hole punching: %w", err)
	}
	p.hp = hp
	return nil
}

// punchable reports whether this peer's DCUtR handler is registered, which
// happens once it knows a public address of its own.
func (p *Peer) punchable() bool {
	return slices.Contains(p.host.Mux().Protocols(), holepunch.Protocol)
}

// awaitPunchable waits, for at most 3 s, until the DCUtR handler is registered,
// when there is a chance it will be: a super-peer with a public address is
// connected and has observed us. Dialling through a relay before that loses the
// hole punch, because the other side opens /libp2p/dcutr before this side
// handles it (go-libp2p issue 3024).
func (p *Peer) awaitPunchable(ctx context.Context) {
	if p.punchable() || !p.publicSuperPeer() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.punchable() {
		select {
		case <-ctx.Done():
			p.log.Debug("dialling through a relay before a public address is known")
			return
		case <-t.C:
		}
	}
}

// AwaitHolePunching waits until this peer can take part in hole punching: it
// has learnt a public address of its own from a super-peer. Connect waits a
// little for this by itself; call it to time a connection apart from the
// peer's own start-up. It returns ErrNoPublicSuperPeer at once when no
// connected super-peer has a public address (nothing will ever be learnt),
// and ctx's error, wrapped, when ctx ends first.
func (p *Peer) AwaitHolePunching(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.punchable() {
		if !p.publicSuperPeer() {
			return ErrNoPublicSuperPeer
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("peer: await hole punching: %w", ctx.Err())
		case <-p.ctx.Done():
			return fmt.Errorf("peer: await hole punching: %w", net.ErrClosed)
		case <-t.C:
		}
	}
	return nil
}

func (p *Peer) publicSuperPeer() bool {
	for _, sp := range p.superPeers {
		if p.host.Network().Connectedness(sp.ID) != network.Connected {
			continue
		}
		if slices.ContainsFunc(sp.Addrs, manet.IsPublicAddr) {
			return true
		}
	}
	return false
}

// superviseRelayed retries hole punching with id while the only connection is
// an inbound relayed one: the side that accepted the relayed connection is the
// one DCUtR lets initiate. It stops when a direct connection appears, the peer
// disconnects, or the retries run out.
func (p *Peer) superviseRelayed(id ID) {
	defer p.wg.Done()
	for i, wait := range punchRetries {
		select {
		case <-p.ctx.Done():
			return
		case <-time.After(wait):
		}
		if p.PathTo(id) != PathRelayed || !p.hasInboundRelayed(id) || !p.punchable() {
			return
		}
		p.log.Debug("retrying hole punch", "peer", id, "retry", i+1)
		if err := p.hp.DirectConnect(toLP(id)); err == nil {
			return
		}
	}
}

func (p *Peer) hasInboundRelayed(id ID) bool {
	for _, c := range p.host.Network().ConnsToPeer(toLP(id)) {
		if isRelayed(c) && c.Stat().Direction == network.DirInbound {
			return true
		}
	}
	return false
}
