package netlab

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// TestAddressesLookPublic: go-libp2p takes the lab's internet for public and
// the LANs and the carrier network for private, as hole punching needs.
func TestAddressesLookPublic(t *testing.T) {
	check := func(a netip.Addr, public bool) {
		m := ma.StringCast("/ip4/" + a.String() + "/udp/4001/quic-v1")
		if manet.IsPublicAddr(m) != public {
			t.Errorf("manet.IsPublicAddr(%v) = %v, want %v", m, !public, public)
		}
	}
	check(internetGateway, true)
	check(internetFirst, true)
	check(netip.MustParseAddr("11.0.200.250"), true)
	check(netip.MustParseAddr("192.168.1.10"), false)
	check(netip.MustParseAddr("100.64.3.10"), false)
}

// newLibp2pHost makes a plain go-libp2p host with TCP and QUIC only.
func newLibp2pHost(listen ...string) (host.Host, error) {
	return libp2p.New(
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.ListenAddrStrings(listen...),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
}

// libp2pServer is a helper: a go-libp2p host on port 4001 that prints its
// addresses and every connection's remote address, until killed.
func libp2pServer([]string) int {
	h, err := newLibp2pHost("/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer h.Close()
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		fmt.Println("conn", c.RemoteMultiaddr())
	}})
	for _, a := range h.Addrs() {
		fmt.Printf("addr %s/p2p/%s\n", a, h.ID())
	}
	fmt.Println("ready")
	time.Sleep(time.Minute)
	return 0
}

// libp2pClient is a helper: a go-libp2p host that dials args[0], a
// multiaddr with /p2p/, and pings it.
func libp2pClient(args []string) int {
	err := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ai, err := peer.AddrInfoFromString(args[0])
		if err != nil {
			return err
		}
		h, err := newLibp2pHost("/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1")
		if err != nil {
			return err
		}
		defer h.Close()
		if err := h.Connect(ctx, *ai); err != nil {
			return err
		}
		res := <-ping.Ping(ctx, h, ai.ID)
		if res.Error != nil {
			return res.Error
		}
		fmt.Println("rtt", res.RTT)
		return nil
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// TestLibp2pProcesses runs go-libp2p peers the way tests of juxta will: one
// process per peer inside the lab, started with Command. A laptop behind a
// NAT router reaches a public peer over TCP and QUIC, and arrives from the
// router's public address.
func TestLibp2pProcesses(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home", WAN: Link{Delay: 10 * time.Millisecond}}},
		Hosts:   []HostSpec{{Name: "laptop", Router: "home"}, {Name: "super"}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	srv := helper(ctx, t, l.Host("super").Namespace, "libp2p-server")
	out, err := srv.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Host("super").Start(ctx, srv); err != nil {
		t.Fatal(err)
	}
	defer srv.Wait()
	defer srv.Process.Kill()
	lines := bufio.NewScanner(out)
	var addrs []string
	for lines.Scan() && lines.Text() != "ready" {
		if a, ok := strings.CutPrefix(lines.Text(), "addr "); ok && !strings.Contains(a, "/127.0.0.1/") {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) != 2 {
		t.Fatalf("server addresses %v, want one TCP and one QUIC on %v", addrs, l.Host("super").Addr())
	}
	for _, a := range addrs {
		out, err := helper(ctx, t, l.Host("laptop").Namespace, "libp2p-client", a).CombinedOutput()
		if err != nil {
			t.Fatalf("client to %s: %v\n%s", a, err, out)
		}
		if !lines.Scan() {
			t.Fatalf("server said nothing of the connection over %s", a)
		}
		t.Logf("%s: client %s; server: %s", a, strings.TrimSpace(string(out)), lines.Text())
		if want := "conn /ip4/" + l.Router("home").PublicAddr().String() + "/"; !strings.HasPrefix(lines.Text(), want) {
			t.Errorf("server saw %q, want a connection from %s...", lines.Text(), want)
		}
	}
}
