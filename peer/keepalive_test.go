package peer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// udpProxy forwards UDP between clients and one server, and can cut the
// path silently, as a renumbered or rebooted router does: packets vanish,
// nobody is told.
type udpProxy struct {
	ln     *net.UDPConn
	server netip.AddrPort
	cut    atomic.Bool
	mu     sync.Mutex
	up     map[netip.AddrPort]*net.UDPConn // client → its socket towards the server
	wg     sync.WaitGroup
	delay  time.Duration // each packet's, each way; set before run starts
	later  chan delayed  // packets waiting for their delay, in order
	sent   sync.WaitGroup
}

// delayed is a packet held back by the proxy's delay.
type delayed struct {
	due  time.Time
	send func()
}

func newUDPProxy(t *testing.T, server netip.AddrPort) *udpProxy {
	return newDelayProxy(t, server, 0)
}

// newDelayProxy is a proxy that holds every packet back for delay, each
// way: a slow path.
func newDelayProxy(t *testing.T, server netip.AddrPort, delay time.Duration) *udpProxy {
	t.Helper()
	ln, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	x := &udpProxy{ln: ln, server: server, up: map[netip.AddrPort]*net.UDPConn{}, delay: delay, later: make(chan delayed, 4096)}
	x.wg.Add(1)
	go x.run()
	x.sent.Add(1)
	go func() {
		defer x.sent.Done()
		for d := range x.later {
			time.Sleep(time.Until(d.due))
			d.send()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		x.mu.Lock()
		for _, c := range x.up {
			c.Close()
		}
		x.mu.Unlock()
		x.wg.Wait()
		close(x.later)
		x.sent.Wait()
	})
	return x
}

// forward sends a packet after the proxy's delay; packets beyond the
// queue are lost, as on a congested link.
func (x *udpProxy) forward(b []byte, send func([]byte)) {
	if x.delay == 0 {
		send(b)
		return
	}
	b = append([]byte(nil), b...)
	select {
	case x.later <- delayed{time.Now().Add(x.delay), func() { send(b) }}:
	default:
	}
}

func (x *udpProxy) addr(id ID) Addr {
	port := x.ln.LocalAddr().(*net.UDPAddr).Port
	return Addr{ID: id, Addrs: []string{fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)}}
}

func (x *udpProxy) run() {
	defer x.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := x.ln.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		if x.cut.Load() {
			continue
		}
		x.mu.Lock()
		up, ok := x.up[from]
		if !ok {
			up, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(x.server))
			if err != nil {
				x.mu.Unlock()
				continue
			}
			x.up[from] = up
			x.wg.Add(1)
			go x.back(up, from)
		}
		x.mu.Unlock()
		x.forward(buf[:n], func(b []byte) { up.Write(b) })
	}
}

func (x *udpProxy) back(up *net.UDPConn, client netip.AddrPort) {
	defer x.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, err := up.Read(buf)
		if err != nil {
			return
		}
		if !x.cut.Load() {
			x.forward(buf[:n], func(b []byte) { x.ln.WriteToUDPAddrPort(b, client) })
		}
	}
}

func quicAddr(t *testing.T, p *Peer) netip.AddrPort {
	t.Helper()
	for _, a := range p.Libp2p().Host.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err != nil {
			continue
		}
		ip, _ := a.ValueForProtocol(ma.P_IP4)
		port, _ := a.ValueForProtocol(ma.P_UDP)
		if ap, err := netip.ParseAddrPort(ip + ":" + port); err == nil {
			return ap
		}
	}
	t.Fatal("no QUIC address")
	return netip.AddrPort{}
}

const holdProto = "/juxta-test/hold/1"

// hold opens a stream that stays open, as a pipe in use does.
func hold(t *testing.T, ctx context.Context, from, to *Peer) network.Stream {
	t.Helper()
	to.Libp2p().Host.SetStreamHandler(holdProto, func(s network.Stream) { io.Copy(io.Discard, s); s.Close() })
	s, err := from.Libp2p().Host.NewStream(ctx, toLP(to.ID()), holdProto)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("x")); err != nil { // negotiates the protocol
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	return s
}

// waitEvent waits for the first event that match accepts.
func waitEvent(t *testing.T, ctx context.Context, sub <-chan Event, match func(Event) bool) {
	t.Helper()
	for {
		select {
		case ev, ok := <-sub:
			if !ok {
				t.Fatal("events closed")
			}
			if match(ev) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("no such event: %v", ctx.Err())
		}
	}
}

// A path in use that dies silently is closed by the keepalive within a few
// intervals; with keepalives off it lingers (QUIC's idle timeout is 30 s).
func TestKeepaliveClosesDeadPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, ka := range []time.Duration{300 * time.Millisecond, -1} {
		b := newTestPeer(t, TestConfig())
		cfg := TestConfig()
		cfg.Keepalive = ka
		a := newTestPeer(t, cfg)
		x := newUDPProxy(t, quicAddr(t, b))
		if _, err := a.Connect(ctx, x.addr(b.ID())); err != nil {
			t.Fatal(err)
		}
		hold(t, ctx, a, b)
		sub := a.Subscribe(ctx, 0)
		x.cut.Store(true)
		cut := time.Now()
		if ka < 0 {
			time.Sleep(4 * time.Second) // well past what the keepalive needs
			if a.PathTo(b.ID()) == PathNone {
				t.Fatal("with keepalives off, the dead path closed early: something else closes it")
			}
			continue
		}
		waitEvent(t, ctx, sub.C, func(ev Event) bool {
			d, ok := ev.(PeerDisconnected)
			return ok && d.Peer == b.ID()
		})
		t.Logf("dead path closed %v after the cut", time.Since(cut).Round(time.Millisecond))
	}
}

// An idle connection that carries nothing in use is left alone: no pings
// on it, so it is not closed when its path dies.
func TestKeepaliveLeavesIdleConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := newTestPeer(t, TestConfig())
	cfg := TestConfig()
	cfg.Keepalive = 300 * time.Millisecond
	a := newTestPeer(t, cfg)
	x := newUDPProxy(t, quicAddr(t, b))
	if _, err := a.Connect(ctx, x.addr(b.ID())); err != nil {
		t.Fatal(err)
	}
	x.cut.Store(true)
	time.Sleep(3 * time.Second) // ten intervals: no keepalive looks at it
	if a.PathTo(b.ID()) == PathNone {
		t.Error("an idle connection was closed by the keepalive")
	}
}

// A slow path in use stays open: its pings take 800 ms, and the patience
// follows the path's round trip (a fixed 1 s would be a coin toss on a
// loaded machine). Cut, it is still closed.
func TestKeepaliveSlowPathStaysOpen(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newTestPeer(t, TestConfig())
	cfg := TestConfig()
	cfg.Keepalive = 300 * time.Millisecond
	a := newTestPeer(t, cfg)
	x := newDelayProxy(t, quicAddr(t, b), 400*time.Millisecond)
	if _, err := a.Connect(ctx, x.addr(b.ID())); err != nil {
		t.Fatal(err)
	}
	hold(t, ctx, a, b)
	sub := a.Subscribe(ctx, 0)
	// Ten rounds or more: some pings each, every one answered late.
	time.Sleep(5 * time.Second)
	select {
	case ev := <-sub.C:
		if d, ok := ev.(PeerDisconnected); ok && d.Peer == b.ID() {
			t.Fatal("a slow path in use was closed")
		}
	default:
	}
	if a.PathTo(b.ID()) == PathNone {
		t.Fatal("a slow path in use was closed")
	}
	x.cut.Store(true)
	waitEvent(t, ctx, sub.C, func(ev Event) bool {
		d, ok := ev.(PeerDisconnected)
		return ok && d.Peer == b.ID()
	})
}

// An edge's dead path to its super-peer is closed too, though pinged only
// every idleRounds intervals, and the edge comes back to the super-peer.
//
// The test watches the connection through the proxy, not the peer: a
// second connection (the super-peer can dial the edge's own addresses at
// any time) keeps the peer connected, so a PeerDisconnected may never
// come. That made this test fail in CI twice.
func TestKeepaliveSuperPeerPath(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sp := newTestPeer(t, TestSuperPeerConfig())
	x := newUDPProxy(t, quicAddr(t, sp))
	via := x.addr(sp.ID()).Addrs[0]
	cfg := TestConfig()
	cfg.Keepalive = 300 * time.Millisecond
	cfg.SuperPeers = []string{via + "/p2p/" + sp.ID().String()}
	e := newTestPeer(t, cfg)
	nw := e.Libp2p().Host.Network()
	closed := make(chan network.Conn, 16)
	nb := &network.NotifyBundle{DisconnectedF: func(_ network.Network, c network.Conn) {
		if c.RemoteMultiaddr().String() == via {
			select {
			case closed <- c:
			default:
			}
		}
	}}
	nw.Notify(nb)
	defer nw.StopNotify(nb)
	sub := e.Subscribe(ctx, 0)
	proxied := func() network.Conn {
		for _, c := range nw.ConnsToPeer(lpeer.ID(sp.ID())) {
			if !c.IsClosed() && c.RemoteMultiaddr().String() == via {
				return c
			}
		}
		return nil
	}
	var c network.Conn
	for c = proxied(); c == nil; c = proxied() {
		select {
		case <-ctx.Done():
			t.Fatal("the edge never reached its super-peer through the proxy")
		case <-sub.C:
		}
	}
	x.cut.Store(true)
	cut := time.Now()
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("the dead path was never closed: %v", ctx.Err())
		case d := <-closed:
			if d != c {
				continue
			}
		}
		break
	}
	// Well within QUIC's idle timeout (30 s), which would close it too.
	closedAfter := time.Since(cut)
	if closedAfter > 20*time.Second {
		t.Errorf("closed %v after the cut: the transport did it, not the keepalive", closedAfter)
	}
	// The path comes back, and so does the edge: it redials its super-peer
	// by itself (recover.go, keeper.go).
	x.cut.Store(false)
	restored := time.Now()
	defer func() {
		t.Logf("dead path closed %v after the cut; the edge back %v after the path",
			closedAfter.Round(time.Millisecond), time.Since(restored).Round(time.Millisecond))
	}()
	for e.PathTo(sp.ID()) != PathDirect {
		select {
		case <-ctx.Done():
			t.Fatal("the edge did not come back to its super-peer")
		case <-sub.C:
		}
	}
}

// The patience of a ping follows the path.
func TestKeepalivePatience(t *testing.T) {
	for _, c := range []struct{ rtt, want time.Duration }{
		{0, maxPatience},
		{time.Millisecond, minPatience},
		{200 * time.Millisecond, 1600 * time.Millisecond},
		{time.Second, maxPatience},
	} {
		if got := patience(c.rtt); got != c.want {
			t.Errorf("patience(%v) = %v, want %v", c.rtt, got, c.want)
		}
	}
}

// When a peer connects again, its older connections are probed and the
// dead one closed, by a peer that pings nobody on its own (a super-peer
// learns this way that an edge's old path died).
func TestReconnectProbesOldConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := newTestPeer(t, TestConfig())
	a := newTestPeer(t, TestConfig())
	x := newUDPProxy(t, quicAddr(t, b))
	if _, err := a.Connect(ctx, x.addr(b.ID())); err != nil {
		t.Fatal(err)
	}
	old := b.Libp2p().Host.Network().ConnsToPeer(toLP(a.ID()))
	if len(old) != 1 {
		t.Fatalf("%d connections from a at b", len(old))
	}
	x.cut.Store(true)
	// a comes back another way: its old connection is closed on a's side
	// (as a's own keepalive would) and a dials b directly.
	for _, c := range a.Libp2p().Host.Network().ConnsToPeer(toLP(b.ID())) {
		c.Close()
	}
	if _, err := a.Connect(ctx, Addr{ID: b.ID(), Addrs: addrStrings(b.Libp2p().Host.Addrs())}); err != nil {
		t.Fatal(err)
	}
	for !old[0].IsClosed() {
		select {
		case <-ctx.Done():
			t.Fatal("b kept the dead connection")
		case <-time.After(50 * time.Millisecond):
		}
	}
	if b.PathTo(a.ID()) != PathDirect {
		t.Error("b lost the new connection too")
	}
}

// A peer without the ping service (a stock host that turned it off) is not
// cut off for it: a refused ping is an answer.
func TestKeepaliveNoPingService(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg := TestConfig()
	cfg.Keepalive = 300 * time.Millisecond
	a := newTestPeer(t, cfg)
	raw := rawHostOn(t, "127.0.0.1", libp2p.Ping(false))
	raw.SetStreamHandler(holdProto, func(s network.Stream) { io.Copy(io.Discard, s); s.Close() })
	if err := a.Libp2p().Host.Connect(ctx, lpeer.AddrInfo{ID: raw.ID(), Addrs: raw.Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := a.Libp2p().Host.NewStream(ctx, raw.ID(), holdProto)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.Write([]byte("x"))
	time.Sleep(2 * time.Second)
	if a.PathTo(ID(raw.ID())) == PathNone {
		t.Error("a peer without ping was disconnected")
	}
}

// The pings in flight are bounded: once every slot is taken, a round
// starts no more goroutines.
func TestKeepaliveBounded(t *testing.T) {
	p := newTestPeer(t, TestConfig())
	k := &keeper{p: p, sem: make(chan struct{}, 2), now: make(chan struct{}, 1), inflight: map[network.Conn]bool{}, rtt: map[network.Conn]time.Duration{}, wanted: map[lpeer.ID]time.Time{}, inUse: map[lpeer.ID]time.Time{}}
	k.sem <- struct{}{}
	k.sem <- struct{}{}
	if k.check(nil, time.Second) {
		t.Error("check started a ping with every slot taken")
	}
	if got := (Config{}).keepaliveInterval(); got != DefaultKeepalive {
		t.Errorf("default interval %v", got)
	}
	if got := (Config{Keepalive: -1}).keepaliveInterval(); got != 0 {
		t.Errorf("negative interval gives %v, want off", got)
	}
	if got := (Config{Keepalive: time.Millisecond}).keepaliveInterval(); got != minKeepalive {
		t.Errorf("1ms interval gives %v, want %v", got, minKeepalive)
	}
	if !isTimeout(context.DeadlineExceeded) || isTimeout(errors.New("protocols not supported")) {
		t.Error("isTimeout")
	}
}
