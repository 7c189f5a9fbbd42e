package peer

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
)

// Recovery after the network changed under the peer (a keepalive to a
// super-peer or on a path in use went unanswered, or the peer's own
// addresses changed): redial the super-peers at once and often, renew the
// relay reservations there, and start hole punches towards the peers whose
// paths in use were lost. Discovery re-announces by itself when a
// super-peer connects again (it follows PeerConnected), and reliable pipes
// resume on whatever path comes up first.

const (
	// recoverFor bounds one recovery: past it, keepSuperPeers' slower
	// backoff carries on.
	recoverFor = time.Minute
	// recoverDialTimeout bounds each redial: short, since a QUIC handshake
	// retransmits ever more slowly and a link that comes back should be
	// used within a second or two.
	recoverDialTimeout = 3 * time.Second
	// recoverMaxWait caps the wait between rounds of redials, drawn at
	// random up to twice the current wait. Faster than keepSuperPeers'
	// backoff, which paces edges redialling a super-peer that restarted;
	// this is for the minute after this peer's own network changed.
	recoverMaxWait = time.Second
	// maxWanted bounds the peers remembered for a new hole punch.
	maxWanted = 64
	// wantedFor is how long a lost path in use is worth a new punch.
	wantedFor = 2 * time.Minute
)

// recover starts a recovery unless one runs. refresh replaces the
// super-peer connections that survived: when a path in use died while they
// did not, this peer's public address has most likely changed under them
// (QUIC follows a NAT rebinding), but libp2p still believes the address
// they observed when they connected, and a hole punch from it fails. A new
// connection is observed anew.
//
// moved says this peer's own addresses changed: a recovery that runs
// works for a network that is gone (punching from an address no one can
// reach), so it is cut short and the next starts at once.
func (k *keeper) recover(why string, refresh, moved bool) {
	if k.p.closed.Load() {
		return
	}
	k.mu.Lock()
	if k.recovering {
		// The network changed again meanwhile (a laptop's address went,
		// then came): run once more when this one ends.
		k.again = true
		k.againRefresh = k.againRefresh || refresh
		if moved {
			select {
			case <-k.cut:
			default:
				close(k.cut)
			}
		}
		k.mu.Unlock()
		return
	}
	k.recovering = true
	k.cut = make(chan struct{})
	cut := k.cut
	k.mu.Unlock()
	k.p.wg.Add(1)
	go k.recovery(why, refresh, cut)
}

// recovery runs one recovery; closing cut ends it early.
func (k *keeper) recovery(why string, refresh bool, cut <-chan struct{}) {
	p := k.p
	defer p.wg.Done()
	defer func() {
		k.mu.Lock()
		again, refresh := k.again, k.againRefresh
		k.again, k.againRefresh = false, false
		if !again || p.ctx.Err() != nil {
			k.recovering = false
			k.mu.Unlock()
			return
		}
		k.cut = make(chan struct{})
		cut := k.cut
		k.mu.Unlock()
		p.wg.Add(1)
		go k.recovery(why+", and again", refresh, cut) // still recovering
	}()
	start := time.Now()
	p.log.Info("network changed: recovering", "why", why, "refresh", refresh)
	if refresh {
		for _, sp := range p.superPeers {
			for _, c := range p.host.Network().ConnsToPeer(sp.ID) {
				if !isRelayed(c) {
					_ = c.Close()
				}
			}
		}
	}
	if !k.redialSuperPeers(start.Add(recoverFor), cut) {
		return
	}
	k.renewReservations()
	if !k.punchWanted(cut) {
		p.log.Info("recovery cut short: the network changed again", "why", why)
		return
	}
	p.log.Info("network recovered", "why", why, "elapsed", time.Since(start))
}

// redialSuperPeers dials every super-peer not connected, again and again
// with short timeouts, until all are connected, or one is and a few rounds
// have passed (true), or the deadline or Close comes (false). A super-peer
// that stays away is left to keepSuperPeers.
func (k *keeper) redialSuperPeers(deadline time.Time, cut <-chan struct{}) bool {
	p := k.p
	wait := 100 * time.Millisecond
	for round := 0; ; round++ {
		var missing []lpeer.AddrInfo
		for _, sp := range p.superPeers {
			if p.host.Network().Connectedness(sp.ID) != network.Connected {
				missing = append(missing, sp)
			}
		}
		if len(missing) == 0 || (len(missing) < len(p.superPeers) && round >= 3) {
			return true
		}
		if time.Now().After(deadline) {
			p.log.Info("recovery: no super-peer reachable yet; keeping on with backoff")
			return false
		}
		var wg sync.WaitGroup
		for _, sp := range missing {
			if sw, ok := p.host.Network().(*swarm.Swarm); ok {
				sw.Backoff().Clear(sp.ID) // earlier failures say nothing of the new network
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(p.ctx, recoverDialTimeout)
				defer cancel()
				if err := p.host.Connect(ctx, sp); err != nil {
					p.log.Debug("recovery: super-peer not back yet", "peer", sp.ID, "err", err)
				}
			}()
		}
		wg.Wait()
		select {
		case <-p.ctx.Done():
			return false
		case <-cut:
			return false
		case <-time.After(rand.N(2 * wait)): // jittered: edges that lost one super-peer together do not come back in lockstep
		}
		wait = min(wait*2, recoverMaxWait)
	}
}

// renewReservations asks each connected super-peer for a relay reservation
// at once, rather than when AutoRelay next looks: a private edge is
// reachable only through one. AutoRelay keeps refreshing them afterwards.
func (k *keeper) renewReservations() {
	p := k.p
	p.mu.Lock()
	public := p.reach == ReachabilityPublic
	p.mu.Unlock()
	if p.cfg.Role != RoleEdge || public {
		return
	}
	var wg sync.WaitGroup
	for _, sp := range p.superPeers {
		if p.host.Network().Connectedness(sp.ID) != network.Connected {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
			defer cancel()
			if _, err := circuit.Reserve(ctx, p.host, sp); err != nil {
				p.log.Debug("recovery: relay reservation", "peer", sp.ID, "err", err)
			}
		}()
	}
	wg.Wait()
}

// punchWanted reconnects to the peers whose paths in use were lost, and
// punches holes to those reached only through a relay, again every
// punchWantedEvery for punchWantedFor, until the path is direct: right
// after a change, the other side may still be recovering itself.
// Closing cut stops it (false): the peers it was punching towards are
// wanted again, for the next recovery.
func (k *keeper) punchWanted(cut <-chan struct{}) bool {
	p := k.p
	k.mu.Lock()
	var ids []lpeer.ID
	for id, at := range k.wanted {
		if time.Since(at) < wantedFor {
			ids = append(ids, id)
		}
		delete(k.wanted, id)
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k.dropDeadDirect(id)
			deadline := time.Now().Add(punchWantedFor)
			for p.PathTo(ID(id)) != PathDirect && time.Now().Before(deadline) {
				k.punchOnce(id)
				select {
				case <-p.ctx.Done():
					return
				case <-cut:
					k.mu.Lock()
					if len(k.wanted) < maxWanted {
						k.wanted[id] = time.Now()
					}
					k.mu.Unlock()
					return
				case <-time.After(punchWantedEvery):
				}
			}
		}()
	}
	wg.Wait()
	select {
	case <-cut:
		return false
	default:
		return true
	}
}

// dropDeadDirect pings the direct connections to id and closes those that
// do not answer: one left from before the change would pass for a direct
// path, and go-libp2p starts no hole punch while one exists.
func (k *keeper) dropDeadDirect(id lpeer.ID) {
	for _, c := range k.p.host.Network().ConnsToPeer(id) {
		if isRelayed(c) || c.IsClosed() {
			continue
		}
		k.mu.Lock()
		timeout := patience(k.rtt[c])
		k.mu.Unlock()
		_, err := probe(k.p.ctx, c, timeout)
		k.p.log.Info("recovery: direct connection checked", "peer", id, "addr", c.RemoteMultiaddr(), "err", err)
		if err != nil && isTimeout(err) {
			_ = c.Close()
		}
	}
}

const (
	punchWantedFor   = 30 * time.Second
	punchWantedEvery = 2 * time.Second
)

func (k *keeper) punchOnce(id lpeer.ID) {
	p := k.p
	if sw, ok := p.host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(id) // dials that failed while the network changed
	}
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(p.ctx, "juxta recovery"), 5*time.Second)
	defer cancel()
	if err := p.host.Connect(ctx, lpeer.AddrInfo{ID: id}); err != nil {
		p.log.Debug("recovery: peer not reachable yet", "peer", id, "err", err)
		return
	}
	// Only the side that accepted the relayed connection initiates DCUtR:
	// both at once spoil it (go-libp2p issue 3024); the other side's
	// service starts on its own when it accepts one of ours.
	if p.PathTo(ID(id)) == PathRelayed && p.hasInboundRelayed(ID(id)) && p.hp != nil && p.punchable() {
		if err := p.hp.DirectConnect(id); err != nil {
			p.log.Debug("recovery: hole punch", "peer", id, "err", err)
		}
	}
}
