package peer

import (
	"context"
	"fmt"
	"slices"
	"time"

	lpevent "github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

type mdnsNotifee struct{ p *Peer }

// HandlePeerFound connects to a peer found on the LAN.
func (n mdnsNotifee) HandlePeerFound(ai lpeer.AddrInfo) {
	p := n.p
	if ai.ID == p.host.ID() || p.closed.Load() {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
		defer cancel()
		if err := p.host.Connect(ctx, ai); err != nil {
			p.log.Debug("LAN peer unreachable", "peer", ai.ID, "err", err)
		}
	}()
}

// watch wires libp2p's notifications into juxta's events and state.
func (p *Peer) watch() error {
	p.host.Network().Notify(&network.NotifyBundle{
		ConnectedF:    func(_ network.Network, c network.Conn) { p.updatePath(ID(c.RemotePeer())) },
		DisconnectedF: func(_ network.Network, c network.Conn) { p.updatePath(ID(c.RemotePeer())) },
	})
	sub, err := p.host.EventBus().Subscribe([]any{
		new(lpevent.EvtLocalReachabilityChanged),
		new(lpevent.EvtLocalAddressesUpdated),
	})
	if err != nil {
		return fmt.Errorf("peer: subscribe to host events: %w", err)
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-p.ctx.Done():
				return
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				switch e := ev.(type) {
				case lpevent.EvtLocalReachabilityChanged:
					p.setReachability(fromNetworkReachability(e.Reachability))
				case lpevent.EvtLocalAddressesUpdated:
					p.updateRelays()
				}
			}
		}
	}()
	switch p.cfg.Reachability {
	case ReachabilityPublic, ReachabilityPrivate:
		p.setReachability(p.cfg.Reachability)
	}
	return nil
}

func fromNetworkReachability(r network.Reachability) Reachability {
	switch r {
	case network.ReachabilityPublic:
		return ReachabilityPublic
	case network.ReachabilityPrivate:
		return ReachabilityPrivate
	}
	return ReachabilityUnknown
}

func (p *Peer) setReachability(r Reachability) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reach == r {
		return
	}
	p.reach = r
	p.events.Publish(ReachabilityChanged{Reachability: r})
}

func (p *Peer) updatePath(id ID) {
	if p.closed.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.PathTo(id) // under mu, so that racing notifications apply in order
	before := p.paths[id]
	if before == now {
		return
	}
	if now == PathNone {
		delete(p.paths, id)
	} else {
		p.paths[id] = now
	}
	switch {
	case before == PathNone:
		p.events.Publish(PeerConnected{Peer: id, Path: now})
		if now == PathRelayed {
			p.wg.Add(1)
			go p.tryLANDirect(id)
			if p.hp != nil {
				p.wg.Add(1)
				go p.superviseRelayed(id)
			}
		}
	case now == PathNone:
		delete(p.punches, id)
		p.events.Publish(PeerDisconnected{Peer: id})
	default:
		p.events.Publish(PathChanged{Peer: id, From: before, To: now})
	}
}

// relaysIn lists the relays named in /p2p-circuit addresses.
func relaysIn(addrs []ma.Multiaddr) []ID {
	var out []ID
	for _, a := range addrs {
		relayPart, _ := ma.SplitFunc(a, func(c ma.Component) bool { return c.Protocol().Code == ma.P_CIRCUIT })
		if len(relayPart) == len(a) {
			continue // no circuit component
		}
		if ai, err := lpeer.AddrInfoFromP2pAddr(relayPart); err == nil && !slices.Contains(out, ID(ai.ID)) {
			out = append(out, ID(ai.ID))
		}
	}
	slices.Sort(out)
	return out
}

func (p *Peer) updateRelays() {
	now := relaysIn(p.host.Addrs())
	p.mu.Lock()
	defer p.mu.Unlock()
	if slices.Equal(now, p.relays) {
		return
	}
	p.relays = now
	p.events.Publish(RelaysChanged{Relays: slices.Clone(now)})
}

// punchTracer turns go-libp2p's hole-punch trace into HolePunch events and
// retries failed punches.
type punchTracer struct{ p *Peer }

func (t punchTracer) Trace(ev *holepunch.Event) {
	end, ok := ev.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	p := t.p
	p.mu.Lock()
	p.punches[ID(ev.Remote)]++
	attempt := p.punches[ID(ev.Remote)]
	p.mu.Unlock()
	p.events.Publish(HolePunch{Peer: ID(ev.Remote), Success: end.Success, Elapsed: end.EllapsedTime, Attempt: attempt, Err: end.Error})
	p.log.Info("hole punch", "peer", ev.Remote, "success", end.Success, "elapsed", end.EllapsedTime, "attempt", attempt, "err", end.Error)
}
