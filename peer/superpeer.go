package peer

import (
	"fmt"
	"slices"
	"strings"
	"sync"

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
