package peer

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/internal/attack"
)

// rawHostOn is a raw go-libp2p host listening (and, through port reuse,
// dialling) from ip.
func rawHostOn(t *testing.T, ip string, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.ListenAddrStrings("/ip4/" + ip + "/tcp/0"), libp2p.ResourceManager(&network.NullResourceManager{})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestHostileIdleConnections: many identities open idle connections to a
// super-peer from one address, and from many (issue 12 item 16). The
// per-IP limit holds (applied to loopback here, which go-libp2p exempts by
// default), trimming brings the count back under HighWater, and honest peers
// from other addresses still connect.
func TestHostileIdleConnections(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := TestSuperPeerConfig()
	cfg.Conns = ConnLimits{LimitLoopback: true, PerIP: 8, Inbound: 128, LowWater: 16, HighWater: 32, GracePeriod: time.Second}
	sp := newTestPeer(t, cfg)
	target := lpeer.AddrInfo{ID: toLP(sp.ID()), Addrs: sp.host.Addrs()}

	mem := attack.WatchMemory()
	// One address, forty identities.
	accepted := 0
	for range 40 {
		h := rawHostOn(t, "127.0.0.2")
		if h.Connect(ctx, target) == nil {
			accepted++
		}
	}
	fromOne := 0
	for _, c := range sp.Libp2p().Host.Network().Conns() {
		if ip, _ := c.RemoteMultiaddr().ValueForProtocol(ma.P_IP4); ip == "127.0.0.2" {
			fromOne++
		}
	}
	if fromOne > cfg.Conns.PerIP {
		t.Fatalf("%d connections from one address, bound %d", fromOne, cfg.Conns.PerIP)
	}
	if fromOne == 0 {
		t.Fatal("no connection from 127.0.0.2: the dial did not use its address")
	}

	// Forty-eight more addresses, idle connections from each.
	for i := range 48 {
		h := rawHostOn(t, fmt.Sprintf("127.0.3.%d", i+1))
		_ = h.Connect(ctx, target)
	}
	// Honest peers from their own addresses connect and talk meanwhile.
	var lat attack.Latencies
	var wg sync.WaitGroup
	for i := range 10 {
		h := rawHostOn(t, fmt.Sprintf("127.0.1.%d", i+1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = lat.Time(func() error {
				if err := h.Connect(ctx, target); err != nil {
					return err
				}
				s, err := h.NewStream(ctx, toLP(sp.ID()), echoProto)
				if err != nil {
					return err
				}
				defer s.Close()
				if _, err := s.Write([]byte("hi")); err != nil {
					return err
				}
				b := make([]byte, 2)
				_, err = s.Read(b)
				return err
			})
		}()
	}
	wg.Wait()
	if lat.Failures() > 0 {
		t.Fatalf("honest peers refused: %s", lat.String())
	}
	deadline := time.Now().Add(2 * time.Minute)
	for len(sp.Libp2p().Host.Network().Conns()) > cfg.Conns.HighWater {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections, high water %d: no trimming", len(sp.Libp2p().Host.Network().Conns()), cfg.Conns.HighWater)
		}
		time.Sleep(100 * time.Millisecond)
	}
	mem.SuperPeer(t, "issue 12 #16, idle connections from 88 identities on 49 addresses", lat.P99())
	t.Logf("40 identities from one address: %d connected (%d dial successes); trimmed to %d; %s",
		fromOne, accepted, len(sp.Libp2p().Host.Network().Conns()), lat.String())
}

// TestHostileRelayedAddrs: a peer reached through a relay advertises bait
// addresses (issue 12 item 17). The edge dials only addresses on its own
// subnets, at most maxLANAddrs per attempt.
func TestHostileRelayedAddrs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := newTestPeer(t, TestSuperPeerConfig())
	vcfg := TestConfig()
	vcfg.SuperPeers = []string{s.Invite()}
	vcfg.Reachability = ReachabilityPrivate
	v := newTestPeer(t, vcfg)
	for deadline := time.Now().Add(4 * time.Minute); len(v.Status().Relays) == 0; {
		if time.Now().After(deadline) {
			t.Fatal("no reservation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Bait: listeners on loopback counting the victim's dials, and
	// addresses on no subnet of this host.
	var dials atomic.Int32
	var bait []ma.Multiaddr
	for range 40 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				dials.Add(1)
				c.Close()
			}
		}()
		a, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.Addr().(*net.TCPAddr).Port))
		bait = append(bait, a)
	}
	for i := range 20 {
		a, _ := ma.NewMultiaddr(fmt.Sprintf("/ip4/10.254.%d.1/tcp/4001", i))
		bait = append(bait, a)
	}
	h := rawHostOn(t, "127.0.0.1", libp2p.AddrsFactory(func([]ma.Multiaddr) []ma.Multiaddr { return bait }))
	circuit, _ := ma.NewMultiaddr(fmt.Sprintf("/p2p/%s/p2p-circuit", s.ID()))
	var relayAddrs []ma.Multiaddr
	for _, a := range s.host.Addrs() {
		relayAddrs = append(relayAddrs, a.Encapsulate(circuit))
	}
	if err := h.Connect(ctx, lpeer.AddrInfo{ID: toLP(s.ID()), Addrs: s.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	if err := h.Connect(network.WithAllowLimitedConn(ctx, "test"), lpeer.AddrInfo{ID: toLP(v.ID()), Addrs: relayAddrs}); err != nil {
		t.Fatal(err)
	}
	// tryLANDirect makes its attempts over 3 + 5 + 15 s; watch them all.
	time.Sleep(25 * time.Second)
	if n := dials.Load(); n > int32(maxLANAddrs*len(lanDirectTimeouts)) {
		t.Fatalf("the edge dialled bait addresses %d times, bound %d", n, maxLANAddrs*len(lanDirectTimeouts))
	}
	t.Logf("bait dials: %d (of 40 loopback and 20 off-subnet addresses advertised); path %v; victim knows %d addresses", dials.Load(), v.PathTo(ID(h.ID())), len(v.Libp2p().Host.Peerstore().Addrs(h.ID())))
}

func TestOnLinkAddrs(t *testing.T) {
	_, lan, _ := net.ParseCIDR("192.168.1.0/24")
	_, lo, _ := net.ParseCIDR("127.0.0.0/8")
	var in []ma.Multiaddr
	for _, s := range []string{"/ip4/10.0.0.5/tcp/1", "/ip4/8.8.8.8/tcp/1", "/ip4/192.168.2.7/tcp/1", "/ip4/192.168.1.7/tcp/1",
		"/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2", "/ip4/127.0.0.1/tcp/3", "/ip4/127.0.0.1/tcp/4", "/ip4/127.0.0.1/tcp/5"} {
		in = append(in, ma.StringCast(s))
	}
	got := onLinkAddrs(in, []*net.IPNet{lan, lo})
	if len(got) != 6 || got[0].String() != "/ip4/192.168.1.7/tcp/1" {
		t.Fatalf("kept %v", got)
	}
	if got := onLinkAddrs(in, []*net.IPNet{lan}); len(got) != 1 {
		t.Fatalf("kept %v off the subnets", got)
	}
}
