package peer

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
)

// linkedSuperPeers starts sp1 and sp2, sp2 configured with sp1 as one of its
// super-peers (so it trusts sp1's forwarded probes), and waits until they are
// connected.
func linkedSuperPeers(t *testing.T, ctx context.Context) (sp1, sp2 *Peer) {
	t.Helper()
	sp1 = newTestPeer(t, TestSuperPeerConfig())
	cfg := TestSuperPeerConfig()
	cfg.SuperPeers = []string{sp1.Invite()}
	sp2 = newTestPeer(t, cfg)
	for len(sp2.ConnectedSuperPeers()) == 0 {
		if ctx.Err() != nil {
			t.Fatal("sp2 did not connect to sp1")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return sp1, sp2
}

// On loopback there is no NAT and no firewall: CheckNetwork reads no mapping
// and endpoint-independent filtering over UDP and TCP, both probes having got
// in, the second one sent by the other super-peer.
func TestCheckNetworkLoopback(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sp1, sp2 := linkedSuperPeers(t, ctx)
	nc, err := CheckNetwork(ctx, NetCheckConfig{SuperPeers: []Addr{sp1.Addr(), sp2.Addr()}, ListenIP4: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, network := range []string{"udp4", "tcp4"} {
		c, ok := nc.Check(network)
		if !ok {
			t.Fatalf("no %s check: %+v", network, nc)
		}
		t.Logf("%s: %+v", network, c)
		if len(c.Observed) != 2 || c.Mapping != MappingNone {
			t.Errorf("%s: observed %v, mapping %q; want two observations and no mapping", network, c.Observed, c.Mapping)
		}
		if c.OtherPort == nil || !*c.OtherPort || c.OtherAddr == nil || !*c.OtherAddr || c.Filtering != FilteringEndpointIndependent {
			t.Errorf("%s: filtering %q (other port %v, other address %v), want both probes in", network, c.Filtering, c.OtherPort, c.OtherAddr)
		}
	}
}

// A super-peer that does not count the asking one among its super-peers
// refuses a forwarded probe; the check says what it could not tell.
func TestCheckNetworkUntrustedSecond(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sp1 := newTestPeer(t, TestSuperPeerConfig())
	sp3 := newTestPeer(t, TestSuperPeerConfig())
	if _, err := sp1.Connect(ctx, sp3.Addr()); err != nil {
		t.Fatal(err)
	}
	nc, err := CheckNetwork(ctx, NetCheckConfig{SuperPeers: []Addr{sp1.Addr(), sp3.Addr()}, ListenIP4: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := nc.Check("udp4")
	if c.OtherAddr != nil || c.Filtering != FilteringNotPortDependent || !strings.Contains(strings.Join(c.Problems, "; "), "does not trust") {
		t.Fatalf("udp4 with an untrusting second super-peer: %+v", c)
	}
}

func TestCheckNetworkNeedsSuperPeer(t *testing.T) {
	if _, err := CheckNetwork(context.Background(), NetCheckConfig{}); err == nil {
		t.Fatal("no super-peers: no error")
	}
}

// probeHost is a raw libp2p host on 127.0.0.1 over TCP, connected to sp.
func probeHost(t *testing.T, ctx context.Context, sp *Peer) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Connect(ctx, lpeer.AddrInfo{ID: toLP(sp.ID()), Addrs: sp.host.Addrs()}); err != nil {
		t.Fatal(err)
	}
	return h
}

// Hostile requests: a short or unknown frame gets the stream reset; a
// forward request from a peer that is not a configured super-peer is
// refused and sends nothing; a flood is rate-limited.
func TestProbeHostile(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sp := newTestPeer(t, TestSuperPeerConfig())
	h := probeHost(t, ctx, sp)
	spID := toLP(sp.ID())

	for _, frame := range [][]byte{{byte(probeUDPOtherPort)}, append([]byte{99}, make([]byte, probeFrameSize-1)...),
		append(append([]byte{byte(probeForwardUDP)}, make([]byte, probeNonceSize)...), append([]byte{probeArgMax + 1}, make([]byte, probeArgMax)...)...)} {
		s, err := h.NewStream(ctx, spID, ProbeProtocol)
		if err != nil {
			t.Fatal(err)
		}
		s.SetDeadline(time.Now().Add(time.Minute))
		s.Write(frame)
		s.CloseWrite()
		var b [1]byte
		if n, err := s.Read(b[:]); n != 0 || err == nil {
			t.Errorf("frame %x: answered %x, want the stream reset", frame, b[:n])
		}
		s.Close()
	}

	// A forward request naming a UDP socket of ours: refused, and nothing
	// arrives.
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	target := ma.StringCast("/ip4/127.0.0.1/udp/" + strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port) + "/quic-v1")
	st, err := askProbe(ctx, h, spID, probeRequest{kind: probeForwardUDP, arg: target.Bytes()})
	if err != nil || st != probeUnsupported {
		t.Fatalf("forward from a stranger: %v, %v; want refused", st, err)
	}
	pc.SetReadDeadline(time.Now().Add(time.Second))
	if n, _, err := pc.ReadFrom(make([]byte, 64)); err == nil {
		t.Fatalf("a refused forward still sent %d bytes", n)
	}

	// A flood over TCP: past the per-IP burst, probes are refused.
	sent, limited := 0, 0
	start := time.Now()
	for range 3 * probePerIPBurst {
		st, err := askProbe(ctx, h, spID, probeRequest{kind: probeTCPOtherPort})
		if err != nil {
			t.Fatal(err)
		}
		switch st {
		case probeSent:
			sent++
		case probeLimited:
			limited++
		default:
			t.Fatalf("probe answered %d", st)
		}
	}
	t.Logf("%d probes sent, %d refused", sent, limited)
	// The bucket refills at probePerIPRate while the flood runs.
	allowed := probePerIPBurst + int(time.Since(start).Seconds()*probePerIPRate) + 1
	if sent > allowed || limited == 0 {
		t.Fatalf("%d sent, %d refused: at most %d allowed", sent, limited, allowed)
	}
}

// A probe is never larger than the request that asked for it.
func TestProbeNoAmplification(t *testing.T) {
	if probeCopies*probeDatagramSize > probeFrameSize {
		t.Fatalf("%d datagrams of %d bytes answer a request of %d", probeCopies, probeDatagramSize, probeFrameSize)
	}
	var nonce [probeNonceSize]byte
	d := probeDatagram(nonce)
	if len(d) != probeDatagramSize || d[0]&0xc0 != 0 {
		t.Fatalf("datagram %x: %d bytes, first byte must not look like QUIC", d, len(d))
	}
}

func FuzzProbeRequest(f *testing.F) {
	f.Add(probeRequest{kind: probeUDPOtherPeer, arg: []byte("12D3KooW")}.frame())
	f.Add(probeRequest{kind: probeForwardTCP, arg: ma.StringCast("/ip4/203.0.113.7/tcp/4001").Bytes()}.frame())
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseProbeRequest(b)
		if err != nil {
			return
		}
		if !bytes.Equal(r.frame()[:2+probeNonceSize+len(r.arg)], b[:2+probeNonceSize+len(r.arg)]) {
			t.Fatalf("frame %x read as %+v", b, r)
		}
	})
}
