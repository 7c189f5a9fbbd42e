package peer

import (
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// dialGater guards the private and loopback addresses this peer dials. A
// remote peer chooses the addresses it advertises (identify, invites,
// discovery), and go-libp2p dials every address it knows of a peer; without a
// check, a peer reached through a relay could make this one dial anything on
// its networks. The gater admits a private or loopback address only when it
// lies on a subnet of this host's own interfaces, and at most maxLANAddrs
// distinct such addresses per peer per lanAddrWindow. Configured super-peers
// are exempt: the user chose their addresses.
type dialGater struct {
	trusted func(lpeer.ID) bool

	mu      sync.Mutex
	nets    []*net.IPNet // this host's subnets; guarded by mu
	netsAt  time.Time
	dialled map[lpeer.ID]*lanDials // guarded by mu
}

type lanDials struct {
	since time.Time
	addrs []string
}

// lanAddrWindow is the window of the per-peer bound on private addresses.
const lanAddrWindow = 10 * time.Minute

func newDialGater(trusted func(lpeer.ID) bool) *dialGater {
	return &dialGater{trusted: trusted, dialled: map[lpeer.ID]*lanDials{}}
}

func (g *dialGater) InterceptPeerDial(lpeer.ID) bool { return true }

func (g *dialGater) InterceptAddrDial(id lpeer.ID, a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return true
	}
	if !manet.IsPrivateAddr(a) && !manet.IsIPLoopback(a) {
		return true // public addresses are the hole punch's and the user's business
	}
	if g.trusted(id) {
		return true
	}
	ip, err := manet.ToIP(a)
	if err != nil {
		return true // no IP (DNS and the like): not ours to judge
	}
	now := time.Now()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.nets == nil || now.Sub(g.netsAt) > time.Minute {
		g.nets, g.netsAt = localNets(), now
	}
	if !slices.ContainsFunc(g.nets, func(n *net.IPNet) bool { return n.Contains(ip) }) {
		return false
	}
	d := g.dialled[id]
	if d == nil || now.Sub(d.since) > lanAddrWindow {
		if len(g.dialled) >= 4096 {
			g.pruneLocked(now)
		}
		d = &lanDials{since: now}
		g.dialled[id] = d
	}
	key := a.String()
	if slices.Contains(d.addrs, key) {
		return true
	}
	if len(d.addrs) >= maxLANAddrs {
		return false
	}
	d.addrs = append(d.addrs, key)
	return true
}

func (g *dialGater) pruneLocked(now time.Time) {
	for id, d := range g.dialled {
		if now.Sub(d.since) > lanAddrWindow {
			delete(g.dialled, id)
		}
	}
	if len(g.dialled) >= 4096 {
		clear(g.dialled) // a flood of identities: start over
	}
}

func (g *dialGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

func (g *dialGater) InterceptSecured(network.Direction, lpeer.ID, network.ConnMultiaddrs) bool {
	return true
}

func (g *dialGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}
