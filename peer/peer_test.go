package peer

import (
	"context"
	"errors"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

func TestMain(m *testing.M) {
	if os.Getenv(superPeerHelperEnv) != "" {
		os.Exit(superPeerHelper())
	}
	leaktest.VerifyTestMain(m)
}

const echoProto = "/juxta-test/echo/1"

func newTestPeer(t *testing.T, cfg Config) *Peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Libp2p().Host.SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	return p
}

func echo(t *testing.T, ctx context.Context, from *Peer, to ID, msg string) {
	t.Helper()
	s, err := from.Libp2p().Host.NewStream(network.WithAllowLimitedConn(ctx, "test"), toLP(to), echoProto)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	defer s.Close()
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != msg {
		t.Fatalf("echo: got %q want %q", got, msg)
	}
}

func connectInvite(ctx context.Context, p *Peer, invite string) (ID, Path, error) {
	a, err := ParseAddr(invite)
	if err != nil {
		return "", PathNone, err
	}
	path, err := p.Connect(ctx, a)
	return a.ID, path, err
}

func TestConnectByInvite(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a := newTestPeer(t, TestConfig())
	b := newTestPeer(t, TestConfig())
	id, path, err := connectInvite(ctx, b, a.Invite())
	if err != nil {
		t.Fatal(err)
	}
	if id != a.ID() || path != PathDirect {
		t.Fatalf("connected to %s over %v", id, path)
	}
	echo(t, ctx, b, a.ID(), "hello over an invite")
}

func TestCloseTwice(t *testing.T) {
	p, err := New(context.Background(), TestConfig())
	if err != nil {
		t.Fatal(err)
	}
	sub := p.Subscribe(context.Background(), 0)
	if err := p.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := p.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	if _, ok := <-sub.C; ok {
		for range sub.C {
		}
	}
	if _, err := p.Connect(context.Background(), Addr{ID: testID(t)}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Connect after Close: %v", err)
	}
}

func TestConnectByIDThroughDHT(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := newTestPeer(t, TestSuperPeerConfig())
	edge := TestConfig()
	edge.SuperPeers = []string{s.Invite()}
	a := newTestPeer(t, edge)
	b := newTestPeer(t, edge)
	if err := a.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	if len(b.Libp2p().Host.Peerstore().Addrs(toLP(a.ID()))) != 0 {
		t.Fatal("b already knows a's addresses; the test would prove nothing")
	}
	path, err := b.Connect(ctx, Addr{ID: a.ID()})
	if err != nil {
		t.Fatalf("connect by ID: %v", err)
	}
	if path != PathDirect {
		t.Fatalf("path %v", path)
	}
	echo(t, ctx, b, a.ID(), "found through the DHT")
}

func TestConnectUnknownIDFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := newTestPeer(t, TestSuperPeerConfig())
	edge := TestConfig()
	edge.SuperPeers = []string{s.Invite()}
	b := newTestPeer(t, edge)
	_, err := b.Connect(ctx, Addr{ID: testID(t)})
	if err == nil {
		t.Fatal("connected to a peer that does not exist")
	}
}

func TestRelayedConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := newTestPeer(t, TestSuperPeerConfig())
	acfg := TestConfig()
	acfg.SuperPeers = []string{s.Invite()}
	acfg.Reachability = ReachabilityPrivate
	a := newTestPeer(t, acfg)
	sub := a.Subscribe(ctx, 0)

	// Wait for the reservation: a's addresses become relay addresses on s.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		st := a.Status()
		if len(st.Relays) == 1 && st.Relays[0] == s.ID() {
			for _, addr := range st.Addrs {
				if !strings.Contains(addr, "/p2p-circuit") { // every address is a circuit
					t.Fatalf("private peer advertises a direct address %s", addr)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reservation on the super-peer; status %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := newTestPeer(t, TestConfig())
	id, path, err := connectInvite(ctx, b, a.Invite())
	if err != nil {
		t.Fatal(err)
	}
	if id != a.ID() || path != PathRelayed {
		t.Fatalf("path to private peer: %v", path)
	}
	echo(t, ctx, b, a.ID(), "through the relay")
	var relayedConn bool
	for _, c := range b.Status().Conns {
		if c.Peer == a.ID() && c.Path == PathRelayed {
			relayedConn = true
		}
	}
	if !relayedConn {
		t.Fatalf("status does not show the relayed connection: %+v", b.Status().Conns)
	}
	// a sees the inbound relayed connection as an event.
	for {
		select {
		case ev := <-sub.C:
			if pc, ok := ev.(PeerConnected); ok && pc.Peer == b.ID() {
				if pc.Path != PathRelayed {
					t.Fatalf("event path %v", pc.Path)
				}
				return
			}
		case <-ctx.Done():
			t.Fatal("no PeerConnected event for the relayed peer")
		}
	}
}

func TestEventsConnectDisconnect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	a := newTestPeer(t, TestConfig())
	b, err := New(ctx, TestConfig())
	if err != nil {
		t.Fatal(err)
	}
	sub := a.Subscribe(ctx, 0)
	if _, err := b.Connect(ctx, a.Addr()); err != nil {
		t.Fatal(err)
	}
	want := []Event{PeerConnected{Peer: b.ID(), Path: PathDirect}, PeerDisconnected{Peer: b.ID()}}
	for i, w := range want {
		if i == 1 {
			b.Close()
		}
		select {
		case ev := <-sub.C:
			if ev != w {
				t.Fatalf("event %d: got %#v want %#v", i, ev, w)
			}
		case <-ctx.Done():
			t.Fatalf("event %d (%#v) never came", i, w)
		}
	}
}

func TestObserve(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := newTestPeer(t, TestSuperPeerConfig())
	cfg := TestConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	a := newTestPeer(t, cfg)
	if _, err := a.Connect(ctx, s.Addr()); err != nil {
		t.Fatal(err)
	}
	got, err := a.Observe(ctx, s.ID())
	if err != nil {
		t.Fatal(err)
	}
	// On loopback nothing translates: the super-peer sees a's own socket.
	if !slices.Contains(addrStrings(a.Libp2p().Host.Network().ListenAddresses()), got) {
		t.Fatalf("observed %s, a listens on %v", got, a.Libp2p().Host.Network().ListenAddresses())
	}
	// An edge does not serve observations.
	if _, err := s.Connect(ctx, a.Addr()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Observe(ctx, a.ID()); err == nil {
		t.Fatal("an edge answered an observation")
	}
}

func TestEmptySuperPeersSkipped(t *testing.T) {
	cfg := TestConfig()
	cfg.SuperPeers = []string{"", "  ", "\n"}
	p := newTestPeer(t, cfg)
	if n := len(p.SuperPeers()); n != 0 {
		t.Fatalf("%d super-peers from empty strings", n)
	}
	if err := p.Ready(context.Background()); err != nil {
		t.Fatalf("Ready with no super-peers: %v", err)
	}
	cfg.SuperPeers = []string{"", "juxta1garbage"}
	if _, err := New(context.Background(), cfg); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("a bad entry next to an empty one: %v", err)
	}
}
