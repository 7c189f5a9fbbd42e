package peer

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// Redialling super-peers. When a super-peer restarts, every edge loses its
// connection in the same instant; edges that redialled on a fixed schedule
// would come back in lockstep, all in the same few milliseconds, and again
// after every failed round. Each edge instead waits a random time drawn from
// an exponentially growing window (full jitter): the first redial after a
// loss comes within redialFirst·(1±1), each failure doubles the window, up to
// redialMax·(1±1). A super-peer that comes back sees its edges spread over the
// window instead of all at once.
const (
	redialFirst = 500 * time.Millisecond
	redialMax   = 15 * time.Second
	// redialPoll is how often the keeper looks at the connections when
	// nothing else wakes it.
	redialPoll = 2 * time.Second
	// redialTimeout bounds one dial of a super-peer.
	redialTimeout = 10 * time.Second
)

// newRedialBackoff is the backoff of one super-peer: it never gives up.
func newRedialBackoff() *backoff.ExponentialBackOff {
	return backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(redialFirst),
		backoff.WithRandomizationFactor(1),
		backoff.WithMultiplier(2),
		backoff.WithMaxInterval(redialMax),
		backoff.WithMaxElapsedTime(0),
	)
}

// superPeerState is what the keeper knows about one super-peer.
type superPeerState struct {
	bo        *backoff.ExponentialBackOff
	next      time.Time // no dial before; zero: dial now
	connected bool      // at the last look
}

// keepSuperPeers holds a connection to every configured super-peer, redialling
// with jittered exponential backoff, so that relays, routing and discovery
// stay available. A lost connection is noticed at once (a network
// notification wakes the keeper) and redialled after the first jittered wait.
func (p *Peer) keepSuperPeers() {
	defer p.wg.Done()
	if len(p.superPeers) == 0 {
		return
	}
	lost := make(chan struct{}, 1)
	notify := &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if p.isSuperPeer(c.RemotePeer()) {
			select {
			case lost <- struct{}{}:
			default:
			}
		}
	}}
	p.host.Network().Notify(notify)
	defer p.host.Network().StopNotify(notify)

	state := make(map[lpeer.ID]*superPeerState, len(p.superPeers))
	for _, sp := range p.superPeers {
		state[sp.ID] = &superPeerState{bo: newRedialBackoff()}
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := redialPoll
		for _, sp := range p.superPeers {
			if d := p.keepOne(sp, state[sp.ID]); d < wait {
				wait = d
			}
		}
		timer.Reset(wait)
		select {
		case <-p.ctx.Done():
			return
		case <-timer.C:
		case <-p.kick:
		case <-lost:
		}
	}
}

// keepOne dials sp if it is due, and returns how long until it next needs a
// look.
func (p *Peer) keepOne(sp lpeer.AddrInfo, st *superPeerState) time.Duration {
	now := time.Now()
	if p.host.Network().Connectedness(sp.ID) == network.Connected {
		if !st.connected {
			st.connected = true
			st.bo.Reset()
		}
		st.next = time.Time{}
		return redialPoll
	}
	if st.connected {
		// Just lost: wait the first jittered delay before redialling.
		st.connected = false
		st.bo.Reset()
		st.next = now.Add(st.bo.NextBackOff())
	}
	if now.Before(st.next) {
		return st.next.Sub(now)
	}
	// The keeper paces the redials; the swarm's own dial backoff (5 s and
	// more after a failure, the same for every edge) would only hold them
	// back past the moment chosen here.
	if sw, ok := p.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(sp.ID)
	}
	ctx, cancel := context.WithTimeout(p.ctx, redialTimeout)
	err := p.host.Connect(ctx, sp)
	cancel()
	if err != nil {
		d := st.bo.NextBackOff()
		st.next = time.Now().Add(d)
		p.log.Debug("super-peer unreachable", "peer", sp.ID, "retry", d, "err", err)
		return d
	}
	st.connected = true
	st.bo.Reset()
	st.next = time.Time{}
	p.log.Debug("connected to super-peer", "peer", sp.ID)
	return redialPoll
}

// isSuperPeer reports whether id is a configured super-peer.
func (p *Peer) isSuperPeer(id lpeer.ID) bool {
	for _, sp := range p.superPeers {
		if sp.ID == id {
			return true
		}
	}
	return false
}
