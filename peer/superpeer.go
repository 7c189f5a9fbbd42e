package peer

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// SuperPeerProtocols are what a juxta super-peer serves besides a relay: the
// discovery index, the observe service and the DHT under DHTProtocolPrefix.
// A stock go-libp2p relay serves none of them; it still relays.
var SuperPeerProtocols = []string{"/juxta/discovery/1.0.0", ObserveProtocol, DHTProtocolPrefix + "/kad/1.0.0"}

// superPeerCheck remembers which super-peers were found to lack juxta's
// protocols, so that the warning is logged once per super-peer.
type superPeerCheck struct {
	mu      sync.Mutex
	missing map[lpeer.ID][]string // guarded by mu; checked super-peers
}

// checkSuperPeer reports the juxta protocols a connected super-peer lacks,
// once identify has told its protocols (known is false before), and logs
// them once at WARN.
func (p *Peer) checkSuperPeer(id lpeer.ID) (missing []string, known bool) {
	p.spCheck.mu.Lock()
	defer p.spCheck.mu.Unlock()
	if m, ok := p.spCheck.missing[id]; ok {
		return m, true
	}
	protos, err := p.host.Peerstore().GetProtocols(id)
	if err != nil || len(protos) == 0 {
		return nil, false
	}
	for _, want := range SuperPeerProtocols {
		if !slices.Contains(protos, protocol.ID(want)) {
			missing = append(missing, want)
		}
	}
	if p.spCheck.missing == nil {
		p.spCheck.missing = map[lpeer.ID][]string{}
	}
	p.spCheck.missing[id] = missing
	if len(missing) > 0 {
		p.log.Warn("super-peer is not a juxta super-peer: relaying may work, discovery and routing through it will not",
			"peer", id, "missing", strings.Join(missing, ", "))
	}
	return missing, true
}

// notJuxtaError explains why Ready cannot succeed when every connected
// super-peer lacks the DHT; nil when one has it or nothing is known yet.
func (p *Peer) notJuxtaError() error {
	var parts []string
	for _, sp := range p.superPeers {
		if p.host.Network().Connectedness(sp.ID) != network.Connected {
			continue
		}
		missing, known := p.checkSuperPeer(sp.ID)
		if !known {
			return nil
		}
		if !slices.Contains(missing, DHTProtocolPrefix+"/kad/1.0.0") {
			return nil
		}
		parts = append(parts, fmt.Sprintf("%s lacks %s", ID(sp.ID).ShortString(), strings.Join(missing, ", ")))
	}
	if len(parts) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrNotJuxtaSuperPeer, strings.Join(parts, "; "))
}

// SuperPeers returns the configured super-peers.
func (p *Peer) SuperPeers() []Addr {
	out := make([]Addr, len(p.superPeers))
	for i, sp := range p.superPeers {
		out[i] = fromAddrInfo(sp)
	}
	return out
}

// ConnectedSuperPeers returns the configured super-peers this peer is connected
// to now. Discovery publishes to these.
func (p *Peer) ConnectedSuperPeers() []ID {
	var out []ID
	for _, sp := range p.superPeers {
		if p.host.Network().Connectedness(sp.ID) == network.Connected {
			out = append(out, ID(sp.ID))
		}
	}
	return out
}

// Ready waits until this peer holds a connection to at least one configured
// super-peer and that super-peer has entered its DHT routing table (which
// happens after identify), or until ctx ends. With no super-peers configured it
// returns at once.
func (p *Peer) Ready(ctx context.Context) error {
	if len(p.superPeers) == 0 {
		return nil
	}
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		if len(p.ConnectedSuperPeers()) > 0 && p.dht.RoutingTable().Size() > 0 {
			return nil
		}
		p.wake()
		select {
		case <-ctx.Done():
			if err := p.notJuxtaError(); err != nil {
				return fmt.Errorf("peer: ready: %w (%w)", err, ctx.Err())
			}
			return fmt.Errorf("peer: no super-peer reachable: %w", ctx.Err())
		case <-p.ctx.Done():
			return fmt.Errorf("peer: ready: %w", net.ErrClosed)
		case <-t.C:
		}
	}
}

func (p *Peer) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}
