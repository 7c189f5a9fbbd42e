package peer

import (
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
)

// ConnLimits bound the connections others may open to a peer, through
// go-libp2p's resource manager (hard limits: past them a connection or stream
// is refused) and its connection manager (soft: idle connections are closed
// once there are too many). SECURITY.md lists the defaults.
type ConnLimits struct {
	// PerIP bounds connections from one IPv4 address, or one IPv6 /56 (and
	// 8 × PerIP from one /48). Default 8, go-libp2p's own.
	PerIP int
	// Inbound bounds inbound connections in all. Default 256 on an edge,
	// 2048 on a super-peer.
	Inbound int
	// PerPeer bounds the inbound streams one peer may hold open. Default 512.
	PerPeer int
	// LowWater and HighWater drive trimming: once more than HighWater
	// connections are open, the idle ones that are neither protected nor
	// younger than GracePeriod are closed until LowWater remain. Defaults:
	// Inbound/2 and 3/4 of Inbound.
	LowWater, HighWater int
	// GracePeriod keeps a new connection from being trimmed. Default 20 s.
	GracePeriod time.Duration
	// LimitLoopback applies PerIP to loopback too. go-libp2p exempts
	// 127.0.0.0/8 and ::1 by default, which suits tests and local tools but
	// lets anything on the same machine open connections without bound.
	LimitLoopback bool
}

// DefaultConnLimits returns the limits of a peer in role when
// Config.Conns is left zero.
func DefaultConnLimits(role Role) ConnLimits {
	l := ConnLimits{PerIP: 8, Inbound: 256, PerPeer: 512, GracePeriod: 20 * time.Second}
	if role == RoleSuperPeer {
		l.Inbound = 2048
	}
	l.LowWater, l.HighWater = l.Inbound/2, l.Inbound*3/4
	return l
}

func (l ConnLimits) withDefaults(role Role) ConnLimits {
	d := DefaultConnLimits(role)
	if l.PerIP > 0 {
		d.PerIP = l.PerIP
	}
	if l.Inbound > 0 {
		d.Inbound = l.Inbound
		d.LowWater, d.HighWater = d.Inbound/2, d.Inbound*3/4
	}
	if l.PerPeer > 0 {
		d.PerPeer = l.PerPeer
	}
	if l.HighWater > 0 {
		d.HighWater = l.HighWater
	}
	if l.LowWater > 0 {
		d.LowWater = l.LowWater
	}
	if d.LowWater > d.HighWater {
		d.LowWater = d.HighWater
	}
	if l.GracePeriod > 0 {
		d.GracePeriod = l.GracePeriod
	}
	d.LimitLoopback = l.LimitLoopback
	return d
}

// trimSilence is how often the connection manager may trim.
const trimSilence = 5 * time.Second

// limitOptions builds the resource and connection managers of the peer.
func (p *Peer) limitOptions() ([]libp2p.Option, error) {
	l := p.cfg.Conns.withDefaults(p.cfg.Role)
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			ConnsInbound: rcmgr.LimitVal(l.Inbound),
			Conns:        rcmgr.LimitVal(2 * l.Inbound),
		},
		Transient: rcmgr.ResourceLimits{
			ConnsInbound: rcmgr.LimitVal(max(l.Inbound/4, 16)),
		},
		PeerDefault: rcmgr.ResourceLimits{
			StreamsInbound: rcmgr.LimitVal(l.PerPeer),
		},
	}
	opts := []rcmgr.Option{
		// libp2p.DisableMetrics reaches only a resource manager libp2p
		// builds itself: this one would otherwise feed Prometheus on every
		// stream and connection (about 7% of the CPU of a discovery request).
		rcmgr.WithMetricsDisabled(),
		rcmgr.WithLimitPerSubnet(
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 32, ConnCount: l.PerIP}},
			[]rcmgr.ConnLimitPerSubnet{{PrefixLength: 56, ConnCount: l.PerIP}, {PrefixLength: 48, ConnCount: 8 * l.PerIP}},
		)}
	if l.LimitLoopback {
		// No exempt prefixes: loopback is one IP like any other.
		opts = append(opts, rcmgr.WithNetworkPrefixLimit([]rcmgr.NetworkPrefixLimit{}, []rcmgr.NetworkPrefixLimit{}))
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(partial.Build(scaling.AutoScale())), opts...)
	if err != nil {
		return nil, fmt.Errorf("peer: resource manager: %w", err)
	}
	cm, err := connmgr.NewConnManager(l.LowWater, l.HighWater, connmgr.WithGracePeriod(l.GracePeriod), connmgr.WithSilencePeriod(trimSilence))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("peer: connection manager: %w", err)
	}
	p.rm = rm
	gater := newDialGater(func(id lpeer.ID) bool {
		return slices.ContainsFunc(p.superPeers, func(ai lpeer.AddrInfo) bool { return ai.ID == id })
	})
	return []libp2p.Option{libp2p.ResourceManager(rm), libp2p.ConnectionManager(cm), libp2p.ConnectionGater(gater)}, nil
}

// protectSuperPeers keeps connections to the configured super-peers out of
// trimming.
func (p *Peer) protectSuperPeers() {
	for _, sp := range p.superPeers {
		p.host.ConnManager().Protect(sp.ID, "juxta-super-peer")
	}
}
