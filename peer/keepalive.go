package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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
// carrying streams in use (pipes, transfers) every Config.Keepalive, and an
// edge's connections to its super-peers every idleRounds of them, each ping
// on that very connection, and closes a connection whose ping goes
// unanswered. Closing it is what lets
// the rest recover: reliable pipes resume on another path, the super-peers
// are redialled at once and the relay reservations renewed (recover.go).
// The pings also keep the NAT mappings of those paths open.
//
// How long a ping may go unanswered (its patience) follows the path, not
// the interval: eight round trips of that connection's last answered ping,
// at least 1 s and at most 5 s (5 s until one is answered). A dead path is so closed at most one
// interval plus the patience after it died: 3 s with the defaults on a
// path of up to 125 ms. Two guards keep a slow but live path open:
//   - a ping unanswered for half its patience is missed, and a second one
//     goes out at once on a fresh stream (a lossy link loses single
//     packets; QUIC's own retransmission backs off); the path is lost only
//     when neither is answered within the patience of the first;
//   - a timeout that fires much later than it was set for (this process
//     was starved of CPU: a loaded machine, a paused laptop) judges
//     nothing: the next round pings again.
//
// Cost: one ping (a new stream, multistream negotiation, 32 bytes each
// way) per connection in use per interval, and per connection to a
// super-peer every idleRounds intervals. A super-peer pings nobody on its
// own, but each of its edges pings it: with N edges it answers N/6 pings a
// second with the default interval (see SECURITY.md).

// DefaultKeepalive is the keepalive interval when Config.Keepalive is zero.
const DefaultKeepalive = 2 * time.Second

// idleRounds: a connection to a super-peer that carries nothing in use is
// pinged every idleRounds intervals (6 s with the default), not every one:
// it is the bulk of a super-peer's load, one ping per edge, and a dead
// path there costs reachability, not a conversation.
const idleRounds = 3

// ifacePoll is how often the keeper rereads this host's interface
// addresses: not every keepalive interval. Polled every 2 s, a laptop that
// came home in the lab (the roam scenario) was noticed within a second,
// and its recovery then found no public address to punch from ("no public
// address", said go-libp2p) until go-libp2p's own reread a minute later:
// about 50 s to direct, against about 5 s polled every 5 s. Why the
// earlier start fails is not understood yet; 5 s is the cadence measured.
const ifacePoll = 5 * time.Second

// minKeepalive bounds Config.Keepalive from below: shorter ones are raised.
const minKeepalive = 250 * time.Millisecond

// The patience of one keepalive: rttsPatience round trips of the path,
// within [minPatience, maxPatience].
const (
	minPatience  = time.Second
	maxPatience  = 5 * time.Second
	rttsPatience = 8
	// starvedAfter: a timeout that came back this much later than set
	// was this process's doing, not the path's.
	starvedAfter = 500 * time.Millisecond
)

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
	sem      chan struct{} // one slot per ping in flight
	now      chan struct{} // asks for a round at once; buffered 1

	mu           sync.Mutex
	inflight     map[network.Conn]bool          // guarded by mu
	rtt          map[network.Conn]time.Duration // guarded by mu; of the last answered ping
	wanted       map[lpeer.ID]time.Time         // guarded by mu; peers whose path in use was lost, when
	inUse        map[lpeer.ID]time.Time         // guarded by mu; peers last seen with connections in use, when
	recovering   bool                           // guarded by mu
	again        bool                           // guarded by mu; a trigger came during a recovery
	againRefresh bool                           // guarded by mu; and it asked for a refresh
	cut          chan struct{}                  // guarded by mu; closed to cut the running recovery short
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
		sem:      make(chan struct{}, maxPingsInFlight),
		now:      make(chan struct{}, 1),
		inflight: make(map[network.Conn]bool),
		rtt:      make(map[network.Conn]time.Duration),
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
	// go-libp2p rereads the interfaces once a minute; a laptop that moved
	// should not wait that long.
	poll := time.NewTicker(ifacePoll)
	defer poll.Stop()
	ifaces := interfaceIPs()
	for tick := 1; ; {
		all := true // every connection that matters, or those in use only
		select {
		case <-k.p.ctx.Done():
			return
		case <-poll.C:
			if now := interfaceIPs(); !sameStrings(now, ifaces) {
				ifaces = now
				k.addrsChanged(now)
			}
			continue
		case <-t.C:
			all = tick%idleRounds == 0
			tick++
		case <-k.now:
		}
		targets := k.targets(all)
		k.noteInUse(targets)
		k.forgetClosed()
		for _, c := range targets {
			if !k.check(c, 0) {
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
		if !isRelayed(c) && !c.IsClosed() && !k.check(c, 0) {
			break
		}
	}
	k.recover("local addresses changed", true, true)
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

// targets are the connections to ping now: those in use, and, when all,
// those to the super-peers.
func (k *keeper) targets(all bool) []network.Conn {
	var out []network.Conn
	for _, c := range k.p.host.Network().Conns() {
		if !c.IsClosed() && (inUse(c) || (all && k.toSuperPeer(c))) {
			out = append(out, c)
		}
	}
	return out
}

// toSuperPeer: c is an edge's direct connection to one of its super-peers.
func (k *keeper) toSuperPeer(c network.Conn) bool {
	return k.p.cfg.Role == RoleEdge && !isRelayed(c) && k.p.isSuperPeer(c.RemotePeer())
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

// check starts a ping on c, answered within timeout (0: the path's
// patience), unless one is in flight; false when every slot is taken.
func (k *keeper) check(c network.Conn, timeout time.Duration) bool {
	return k.start(c, timeout, true)
}

// measure pings c once to learn its round trip: a fresh connection's first
// judged ping then has a patience that fits the path (not the most, which
// would leave a path that dies early dead for longer). It judges the path
// only if the connection is in use when the ping times out (see ping). The
// ping it starts holds c's slot like any other.
func (k *keeper) measure(c network.Conn) {
	k.start(c, maxPatience, false)
}

// start starts a ping on c unless one is in flight; judge: close c when
// it goes unanswered. False when every slot is taken.
func (k *keeper) start(c network.Conn, timeout time.Duration, judge bool) bool {
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
	if timeout == 0 {
		timeout = patience(k.rtt[c])
	}
	k.inflight[c] = true
	k.p.wg.Add(1)
	go k.ping(c, timeout, judge)
	return true
}

// patience is how long a ping may go unanswered on a path whose last ping
// took rtt; the most while none has been answered, since nothing is known
// of the path yet.
func patience(rtt time.Duration) time.Duration {
	if rtt == 0 {
		return maxPatience
	}
	return min(max(rttsPatience*rtt, minPatience), maxPatience)
}

// forgetClosed drops the round trips of closed connections.
func (k *keeper) forgetClosed() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for c := range k.rtt {
		if c.IsClosed() {
			delete(k.rtt, c)
		}
	}
}

func (k *keeper) ping(c network.Conn, timeout time.Duration, judge bool) {
	defer k.p.wg.Done()
	defer func() {
		k.mu.Lock()
		delete(k.inflight, c)
		k.mu.Unlock()
		<-k.sem
	}()
	start := time.Now()
	rtt, err := probe(k.p.ctx, c, timeout)
	if err == nil {
		k.mu.Lock()
		if !c.IsClosed() {
			k.rtt[c] = rtt
		}
		k.mu.Unlock()
		return
	}
	// A measurement judges too once the connection is in use: it holds
	// the connection's slot for up to maxPatience, the patience any judged
	// ping of an unmeasured path gets, and a path in use that dies right
	// after it connected would otherwise wait for the next round's ping as
	// well. Not an idle connection to a super-peer: a super-peer that just
	// restarted is busiest as its edges come back, and judging their first
	// pings would cut them and make them come back again, for a path that
	// costs reachability, not a conversation (idleRounds).
	matters := judge || inUse(c)
	if !matters || k.p.ctx.Err() != nil || c.IsClosed() || !isTimeout(err) {
		// Closing, or refused in words (no ping service, a resource
		// limit): the path is alive.
		return
	}
	if late := time.Since(start) - timeout; late > starvedAfter {
		// The timeout itself came late: this process did not run, so the
		// answer may be waiting unread. The next round pings again.
		k.p.log.Info("keepalive: this process was starved; not judging the path", "peer", c.RemotePeer(), "late", late)
		return
	}
	k.lost(c, fmt.Errorf("no answer within %v: %w", timeout, err))
}

// probe pings c and waits up to timeout for an answer. A ping unanswered
// for half of it is missed: a second goes out at once on a fresh stream,
// and either answer will do. It returns the round trip of the answer, or
// the error of the last ping to fail (a timeout when neither was answered).
func probe(ctx context.Context, c network.Conn, timeout time.Duration) (time.Duration, error) {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends the pings still waiting
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	res := make(chan error, 2)
	send := func() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res <- pingConn(ctx, c, timeout)
		}()
	}
	send()
	missed := time.NewTimer(timeout / 2)
	defer missed.Stop()
	pending := 1
	for {
		select {
		case err := <-res:
			pending--
			if err == nil {
				return time.Since(start), nil
			}
			if !isTimeout(err) || pending == 0 {
				return 0, err
			}
		case <-missed.C:
			pending++
			send()
		}
	}
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
	// In use now, or lately: when both ends notice the dead path, the one
	// that notices second often finds its streams already moved to another
	// path. Its public address may be the one that changed (QUIC follows
	// the new one to the super-peers, who tell no one), so it too must be
	// observed anew and punch again.
	k.mu.Lock()
	_, lately := k.inUse[id]
	k.mu.Unlock()
	used := inUse(c) || lately
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
		k.recover("keepalive to "+id.ShortString()+" failed", !sp && direct, false)
	}
}

// connected probes the older direct connections to a peer that has just
// connected again: when a peer comes back over a new connection, its old
// one has often died unseen (its router rebooted or renumbered, it moved).
// A super-peer, which pings nobody, learns so this way.
//
// An edge also measures each new connection's round trip at once: the
// connection may carry a pipe before the next round, and die before it.
// (An edge's connections are few; a super-peer's are its edges', which
// ping it.)
func (k *keeper) connected(c network.Conn) {
	if k.p.cfg.Role == RoleEdge {
		k.measure(c)
	}
	if isRelayed(c) {
		return
	}
	for _, old := range k.p.host.Network().ConnsToPeer(c.RemotePeer()) {
		if old != c && !isRelayed(old) && !old.IsClosed() {
			k.check(old, reprobeTimeout)
		}
	}
}
