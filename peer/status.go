package peer

import (
	"slices"

	"github.com/libp2p/go-libp2p/core/network"
)

// Status is a snapshot of a peer's state.
type Status struct {
	ID           ID
	Name         string
	Role         Role
	Addrs        []string // what others can dial, relay addresses included
	Reachability Reachability
	Relays       []ID         // relays holding a reservation for this peer
	Conns        []ConnStatus // one per open connection
}

// ConnStatus describes one open connection.
type ConnStatus struct {
	Peer    ID
	Path    Path   // PathDirect or PathRelayed
	Addr    string // the remote multiaddr
	Inbound bool
}

// Status reports the peer's current state. Event consumers that dropped events
// resynchronise from here.
func (p *Peer) Status() Status {
	st := Status{ID: p.ID(), Name: p.Name(), Role: p.cfg.Role, Addrs: p.Addrs()}
	p.mu.Lock()
	st.Reachability = p.reach
	p.mu.Unlock()
	st.Relays = relaysIn(p.host.Addrs())
	for _, c := range p.host.Network().Conns() {
		path := PathDirect
		if isRelayed(c) {
			path = PathRelayed
		}
		st.Conns = append(st.Conns, ConnStatus{
			Peer:    ID(c.RemotePeer()),
			Path:    path,
			Addr:    c.RemoteMultiaddr().String(),
			Inbound: c.Stat().Direction == network.DirInbound,
		})
	}
	slices.SortFunc(st.Conns, func(a, b ConnStatus) int {
		if a.Peer < b.Peer {
			return -1
		}
		if a.Peer > b.Peer {
			return 1
		}
		return 0
	})
	return st
}
