package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	lpevent "github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	msmux "github.com/multiformats/go-multistream"
)

// Keepalives: a path that dies silently (a router renumbered or rebooted, a
// laptop carried to another network) is noticed by QUIC only after its idle
// timeout, 30 s, and over TCP later still. The peer pings the connections
// that matter (to its super-peers, and those carrying streams in use: pipes,
// transfers) every Config.Keepalive, each ping on that very connection, and
// closes a connection whose ping goes unanswered for as long. Closing it is
// what lets the rest recover: reliable pipes resume on another path, the
// super-peers are redialled at once and the relay reservations renewed
// (recover.go). The pings also keep the NAT mappings of those paths open.

// DefaultKeepalive is the keepalive interval when Config.Keepalive is zero.
const DefaultKeepalive = 5 * time.Second

// minKeepalive bounds Config.Keepalive from below: shorter ones are raised.
const minKeepalive = 250 * time.Millisecond

// reprobeTimeout bounds the ping of an older connection when a peer
// connects again: the new connection shows the peer is up, so the old one
// should answer within a round trip or two.
const reprobeTimeout = 2 * time.Second

// maxPingsInFlight bounds the keepalive pings running at once, and so the
// goroutines they take: a round that finds more connections to check leaves
// the rest for the next one.
const maxPingsInFlight = 32

// keepaliveInterval is Config.Keepalive with its default; 0 means off.
func (c Config) keepaliveInterval() time.Duration {
	switch {
	case c.Keepalive < 0:
		return 0
	case c.Keepalive == 0:
		return DefaultKeepalive
	}
	return max(c.Keepalive, minKeepalive)
}

// backgroundProtocols are streams that do not make a connection matter:
// libp2p's own services, the DHT, GossipSub's standing streams (one per
// peer it knows: keeping each alive would ping every peer), and juxta's
// short requests to super-peers.
var backgroundProtocols = []string{"/libp2p/", "/ipfs/", "/meshsub/", "/floodsub/", "/randomsub/",
	DHTProtocolPrefix + "/kad/", ObserveProtocol, "/juxta/discovery/"}

// keeper runs the keepalives and the recovery of one peer.
type keeper struct {
	p        *Peer
	interval time.Duration // between rounds
	timeout  time.Duration // for one ping
	sem      chan struct{} // one slot per ping in flight
	now      chan struct{} // asks for a round at once; buffered 1

	mu           sync.Mutex
	inflight     map[network.Conn]bool  // guarded by mu
	wanted       map[lpeer.ID]time.Time // guarded by mu; peers whose path in use was lost, when
	inUse        map[lpeer.ID]time.Time // guarded by mu; peers last seen with connections in use, when
	recovering   bool                   // guarded by mu
	again        bool                   // guarded by mu; a trigger came during a recovery
	againRefresh bool                   // guarded by mu; and it asked for a refresh
}

// startKeepalive starts the keepalive loop, the address watcher and the
// probe of older connections when a peer connects again. No-op when
// Config.Keepalive is negative.
func (p *Peer) startKeepalive() error {
	interval := p.cfg.keepaliveInterval()
	if interval == 0 {
		return nil
	}
	k := &keeper{
		p:        p,
		interval: interval,
		timeout:  min(max(interval, time.Second), 5*time.Second),
		sem:      make(chan struct{}, maxPingsInFlight),
		now:      make(chan struct{}, 1),
		inflight: make(map[network.Conn]bool),
		wanted:   make(map[lpeer.ID]time.Time),
		inUse:    make(map[lpeer.ID]time.Time),
	}
	sub, err := p.host.EventBus().Subscribe(new(lpevent.EvtLocalAddressesUpdated))
	if err != nil {
		return err
	}
	p.host.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) { k.connected(c) }})
	p.wg.Add(2)
	go k.loop()
	go k.watchAddrs(sub)
	return nil
}

func (k *keeper) loop() {
	defer k.p.wg.Done()
	t := time.NewTicker(k.interval)
	defer t.Stop()
	ifaces := interfaceIPs()
	for {
		select {
		case <-k.p.ctx.Done():
			return
		case <-t.C:
			// go-libp2p rereads the interfaces once a minute; a laptop
			// that moved should not wait that long.
			if now := interfaceIPs(); !sameStrings(now, ifaces) {
				ifaces = now
				k.addrsChanged(now)
			}
		case <-k.now:
		}
		targets := k.targets()
		k.noteInUse(targets)
		for _, c := range targets {
			if !k.check(c, k.timeout) {
				break // every slot busy: the rest wait for the next round
			}
		}
	}
}

// noteInUse remembers the peers with connections in use: when the network
// changes, the connections may be gone (a vanished address fails QUIC's
// sends at once) before anyone looks, and these peers are the ones to
// reach and punch again.
func (k *keeper) noteInUse(conns []network.Conn) {
	now := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	for id, at := range k.inUse {
		if now.Sub(at) > wantedFor {
			delete(k.inUse, id)
		}
	}
	for _, c := range conns {
		if _, ok := k.inUse[c.RemotePeer()]; (ok || len(k.inUse) < maxWanted) && inUse(c) {
			k.inUse[c.RemotePeer()] = now
		}
	}
}

// interfaceIPs lists this host's interface addresses.
func interfaceIPs() []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// addrsChanged reacts to a change of this peer's own addresses: every path
// may have died with the old address, so each is probed at once, and a
// recovery renews the super-peer connections (and so the public address
// they observe) and punches again towards the peers in use.
func (k *keeper) addrsChanged(now []string) {
	k.p.log.Info("local addresses changed: checking every path", "addrs", now)
	k.mu.Lock()
	for _, c := range k.p.host.Network().Conns() {
		if len(k.wanted) < maxWanted && inUse(c) {
			k.wanted[c.RemotePeer()] = time.Now()
		}
	}
	for id, at := range k.inUse {
		if len(k.wanted) < maxWanted {
			k.wanted[id] = at
		}
	}
	k.mu.Unlock()
	// Every direct connection, in use or not: an idle one left from before
	// would pass for a direct path, and no hole punch starts while one
	// exists.
	for _, c := range k.p.host.Network().Conns() {
		if !isRelayed(c) && !c.IsClosed() && !k.check(c, k.timeout) {
			break
		}
	}
	k.recover("local addresses changed", true)
}

// probeNow asks for a keepalive round at once.
func (k *keeper) probeNow() {
	select {
	case k.now <- struct{}{}:
	default:
	}
}

// watchAddrs probes every path at once when this peer's own addresses
// change: the laptop moved, an interface came or went.
func (k *keeper) watchAddrs(sub lpevent.Subscription) {
	defer k.p.wg.Done()
	defer sub.Close()
	var last []string
	for {
		select {
		case <-k.p.ctx.Done():
			return
		case ev, ok := <-sub.Out():
			if !ok {
				return
			}
			e := ev.(lpevent.EvtLocalAddressesUpdated)
			var now []string
			for _, a := range e.Current {
				if !isCircuitAddr(a.Address.String()) {
					now = append(now, a.Address.String())
				}
			}
			if last != nil && !sameStrings(last, now) {
				k.addrsChanged(now)
			}
			last = now
		}
	}
}

func isCircuitAddr(a string) bool { return strings.Contains(a, "/p2p-circuit") }

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := make(map[string]int, len(a))
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		if seen[s]--; seen[s] < 0 {
			return false
		}
	}
	return true
}

// targets are the connections that matter now.
func (k *keeper) targets() []network.Conn {
	var out []network.Conn
	for _, c := range k.p.host.Network().Conns() {
		if k.matters(c) {
			out = append(out, c)
		}
	}
	return out
}

func (k *keeper) matters(c network.Conn) bool {
	if c.IsClosed() {
		return false
	}
	if k.p.cfg.Role == RoleEdge && !isRelayed(c) && k.p.isSuperPeer(c.RemotePeer()) {
		return true
	}
	return inUse(c)
}

// inUse says whether c carries a stream other than background ones.
func inUse(c network.Conn) bool {
	for _, s := range c.GetStreams() {
		proto := string(s.Protocol())
		if proto == "" {
			continue // still negotiating
		}
		background := false
		for _, b := range backgroundProtocols {
			if strings.HasPrefix(proto, b) {
				background = true
				break
			}
		}
		if !background {
			return true
		}
	}
	return false
}

// check starts a ping on c, answered within timeout, unless one is in
// flight; false when every slot is taken.
func (k *keeper) check(c network.Conn, timeout time.Duration) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.p.closed.Load() {
		return false
	}
	if k.inflight[c] {
		return true
	}
	select {
	case k.sem <- struct{}{}:
	default:
		return false
	}
	k.inflight[c] = true
	k.p.wg.Add(1)
	go k.ping(c, timeout)
	return true
}

func (k *keeper) ping(c network.Conn, timeout time.Duration) {
	defer k.p.wg.Done()
	defer func() {
		k.mu.Lock()
		delete(k.inflight, c)
		k.mu.Unlock()
		<-k.sem
	}()
	err := pingConn(k.p.ctx, c, timeout)
	if err == nil || k.p.ctx.Err() != nil || c.IsClosed() || !isTimeout(err) {
		// Answered, closing, or refused in words (no ping service, a
		// resource limit): the path is alive.
		return
	}
	k.lost(c, err)
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) ||
		(errors.As(err, &te) && te.Timeout())
}

// pingConn sends one ping on c itself (not on whichever connection libp2p
// would pick for the peer) and waits for its echo.
func pingConn(ctx context.Context, c network.Conn, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "keepalive"))
	if err != nil {
		return err
	}
	defer s.Reset()
	if err := s.SetProtocol(ping.ID); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { s.Reset() }) // a deadline the stream ignores
	defer stop()
	rw := msmux.NewMSSelect(s, ping.ID)
	out := make([]byte, ping.PingSize)
	_, _ = rand.Read(out)
	if _, err := rw.Write(out); err != nil {
		return orCtx(ctx, err)
	}
	in := make([]byte, ping.PingSize)
	if _, err := io.ReadFull(rw, in); err != nil {
		return orCtx(ctx, err)
	}
	if !bytes.Equal(in, out) {
		return errors.New("peer: keepalive: ping answered wrongly")
	}
	return nil
}

// orCtx prefers ctx's error, so that a reset made by the deadline reads as
// a timeout.
func orCtx(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// lost handles a connection whose ping went unanswered: it is closed, so
// that streams move to another path, and recovery starts.
func (k *keeper) lost(c network.Conn, err error) {
	p := k.p
	id := c.RemotePeer()
	used := inUse(c)
	direct := !isRelayed(c)
	p.log.Info("path lost: closing the connection", "peer", id, "addr", c.RemoteMultiaddr(), "in_use", used, "err", err)
	_ = c.Close()
	if used {
		k.mu.Lock()
		if len(k.wanted) < maxWanted {
			k.wanted[id] = time.Now()
		}
		k.mu.Unlock()
	}
	// One lost path often means the network changed under every path.
	k.probeNow()
	// A relayed path dies with the far side's network; a direct one may
	// have died with ours, whose new public address the super-peers must
	// observe anew.
	if sp := p.isSuperPeer(id); sp || used {
		k.recover("keepalive to "+id.ShortString()+" failed", !sp && direct)
	}
}

// connected probes the older direct connections to a peer that has just
// connected again: when a peer comes back over a new connection, its old
// one has often died unseen (its router rebooted or renumbered, it moved).
// A super-peer, which pings nobody, learns so this way.
func (k *keeper) connected(c network.Conn) {
	if isRelayed(c) {
		return
	}
	for _, old := range k.p.host.Network().ConnsToPeer(c.RemotePeer()) {
		if old != c && !isRelayed(old) && !old.IsClosed() {
			k.check(old, reprobeTimeout)
		}
	}
}
