package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"
)

// ProbeProtocol is the super-peers' filtering probe, RFC 5780's CHANGE-REQUEST
// done over libp2p. An edge asks a super-peer to send a packet to the address
// the super-peer sees the asking connection come from, either from another
// port of the super-peer, or from another super-peer (another address). Which
// of the probes get through the home router tells its filtering:
// endpoint-independent (both), address-dependent (only from the other port),
// or address- and port-dependent (neither).
//
// A probe goes only to the requester's own observed address, or, forwarded
// by a super-peer this one trusts (one of its configured super-peers), to
// the address that super-peer observed. It is never larger than the request
// (probeFrameSize bytes): UDP probes are two datagrams of probeDatagramSize
// bytes, TCP probes a bare handshake. Requests are rate-limited per IP and
// in all, and at most probeInFlight run at once: a super-peer is no
// reflector or amplifier.
const ProbeProtocol = "/juxta/probe/1.0.0"

const (
	probeFrameSize    = 64 // every request, padded
	probeNonceSize    = 16
	probeArgMax       = probeFrameSize - 2 - probeNonceSize
	probeDatagramSize = 1 + len(probeMagic) + probeNonceSize
	probeCopies       = 2 // UDP datagrams per probe, against loss
	probeInFlight     = 16
	probeTCPTimeout   = 3 * time.Second
	probeStreamLimit  = 10 * time.Second
	probePerIPRate    = 1 // probes per second from one IP, after the burst
	probePerIPBurst   = 16
	probeGlobalRate   = 50
	probeGlobalBurst  = 100
	probeIPsTracked   = 4096
)

// probeMagic follows a zero byte in a UDP probe. A first byte with neither of
// the two high bits set is not QUIC, so quic-go hands the datagram to
// whoever reads the socket's non-QUIC packets.
const probeMagic = "jxprobe"

type probeKind byte

const (
	probeUDPOtherPort probeKind = 1 + iota // from another port of this super-peer
	probeTCPOtherPort
	probeUDPOtherPeer // from the super-peer named in the request
	probeTCPOtherPeer
	probeForwardUDP // from a trusted super-peer: probe the address named
	probeForwardTCP
)

func (k probeKind) udp() bool {
	return k == probeUDPOtherPort || k == probeUDPOtherPeer || k == probeForwardUDP
}

// ProbeStatus is a super-peer's answer to a probe request.
type probeStatus byte

const (
	probeSent        probeStatus = iota // UDP: sent; TCP: the handshake completed
	probeNoAnswer                       // TCP: no handshake within probeTCPTimeout
	probeLimited                        // rate limit or too many in flight: try later
	probeUnsupported                    // wrong transport, no such super-peer, or not trusted
	probeFailed                         // could not send
)

var errProbeFrame = errors.New("peer: malformed probe request")

type probeRequest struct {
	kind  probeKind
	nonce [probeNonceSize]byte
	arg   []byte // peer ID (other-peer kinds) or multiaddr (forward kinds)
}

func (r probeRequest) frame() []byte {
	b := make([]byte, probeFrameSize)
	b[0] = byte(r.kind)
	copy(b[1:], r.nonce[:])
	b[1+probeNonceSize] = byte(len(r.arg))
	copy(b[2+probeNonceSize:], r.arg)
	return b
}

func parseProbeRequest(b []byte) (probeRequest, error) {
	var r probeRequest
	if len(b) != probeFrameSize || b[0] < byte(probeUDPOtherPort) || b[0] > byte(probeForwardTCP) {
		return r, errProbeFrame
	}
	r.kind = probeKind(b[0])
	copy(r.nonce[:], b[1:])
	n := int(b[1+probeNonceSize])
	if n > probeArgMax {
		return r, errProbeFrame
	}
	r.arg = slices.Clone(b[2+probeNonceSize : 2+probeNonceSize+n])
	return r, nil
}

func probeDatagram(nonce [probeNonceSize]byte) []byte {
	return append(append([]byte{0}, probeMagic...), nonce[:]...)
}

// probeServer is a super-peer's side of ProbeProtocol.
type probeServer struct {
	p      *Peer
	global *rate.Limiter
	perIP  *lru.Cache[string, *rate.Limiter]
	slots  chan struct{} // probes in flight
}

func newProbeServer(p *Peer) *probeServer {
	perIP, _ := lru.New[string, *rate.Limiter](probeIPsTracked) // size > 0: no error
	return &probeServer{
		p:      p,
		global: rate.NewLimiter(probeGlobalRate, probeGlobalBurst),
		perIP:  perIP,
		slots:  make(chan struct{}, probeInFlight),
	}
}

// serveSuperPeer registers the services a super-peer gives edges about their
// own network: observe and probe.
func (p *Peer) serveSuperPeer() {
	p.host.SetStreamHandler(ObserveProtocol, p.handleObserve)
	ps := newProbeServer(p)
	p.host.SetStreamHandler(ProbeProtocol, ps.handle)
}

func (ps *probeServer) handle(s network.Stream) {
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(probeStreamLimit))
	b := make([]byte, probeFrameSize)
	if _, err := io.ReadFull(s, b); err != nil {
		s.Reset()
		return
	}
	req, err := parseProbeRequest(b)
	if err != nil {
		s.Reset()
		return
	}
	st := ps.serve(s.Conn(), req)
	if _, err := s.Write([]byte{byte(st)}); err != nil {
		s.Reset()
	}
}

// allow applies the limits: per IP of the asking connection and in all.
func (ps *probeServer) allow(c network.Conn) bool {
	ip, err := manet.ToIP(c.RemoteMultiaddr())
	if err != nil {
		return false
	}
	key := ip.String()
	if ip.To4() == nil {
		key = ip.Mask(net.CIDRMask(56, 128)).String() // one home's IPv6 prefix
	}
	l, ok := ps.perIP.Get(key)
	if !ok {
		l = rate.NewLimiter(probePerIPRate, probePerIPBurst)
		ps.perIP.Add(key, l)
	}
	return l.Allow() && ps.global.Allow()
}

func (ps *probeServer) serve(c network.Conn, req probeRequest) probeStatus {
	if isRelayed(c) {
		return probeUnsupported
	}
	forward := req.kind == probeForwardUDP || req.kind == probeForwardTCP
	if forward && !ps.p.isSuperPeer(c.RemotePeer()) {
		return probeUnsupported // only a configured super-peer may name a target
	}
	if !forward && !ps.allow(c) || forward && !ps.global.Allow() {
		return probeLimited
	}
	select {
	case ps.slots <- struct{}{}:
		defer func() { <-ps.slots }()
	default:
		return probeLimited
	}
	target := c.RemoteMultiaddr()
	local := c.LocalMultiaddr()
	switch req.kind {
	case probeUDPOtherPeer, probeTCPOtherPeer:
		return ps.forward(c, req)
	case probeForwardUDP, probeForwardTCP:
		t, err := ma.NewMultiaddrBytes(req.arg)
		if err != nil {
			return probeUnsupported
		}
		target, local = t, nil
	}
	return sendProbe(ps.p.ctx, req.kind.udp(), local, target, req.nonce)
}

// forward asks the super-peer named in req, over a direct connection this
// super-peer already has, to probe the address c comes from.
func (ps *probeServer) forward(c network.Conn, req probeRequest) probeStatus {
	id, err := lpeer.IDFromBytes(req.arg)
	h := ps.p.host
	if err != nil || id == c.RemotePeer() || id == h.ID() || !hasDirectConn(h.Network(), id) {
		return probeUnsupported
	}
	if req.kind.udp() != isUDP(c.RemoteMultiaddr()) {
		return probeUnsupported
	}
	fwd := probeRequest{kind: probeForwardTCP, nonce: req.nonce, arg: c.RemoteMultiaddr().Bytes()}
	if req.kind.udp() {
		fwd.kind = probeForwardUDP
	}
	if len(fwd.arg) > probeArgMax {
		return probeUnsupported
	}
	ctx, cancel := context.WithTimeout(ps.p.ctx, probeStreamLimit-time.Second)
	defer cancel()
	st, err := askProbe(ctx, h, id, fwd)
	if err != nil {
		return probeFailed
	}
	return st
}

func hasDirectConn(n network.Network, id lpeer.ID) bool {
	return slices.ContainsFunc(n.ConnsToPeer(id), func(c network.Conn) bool { return !isRelayed(c) })
}

func isUDP(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_UDP)
	return err == nil
}

// sendProbe sends the probe to target from a fresh socket on local's IP (any
// IP when local is nil or unspecified).
func sendProbe(ctx context.Context, udp bool, local, target ma.Multiaddr, nonce [probeNonceSize]byte) probeStatus {
	if udp != isUDP(target) {
		return probeUnsupported
	}
	raddr, err := probeNetAddr(target)
	if err != nil {
		return probeUnsupported
	}
	var lip net.IP
	if local != nil {
		if ip, err := manet.ToIP(local); err == nil && !ip.IsUnspecified() {
			lip = ip
		}
	}
	if udp {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: lip})
		if err != nil {
			return probeFailed
		}
		defer c.Close()
		d := probeDatagram(nonce)
		for i := range probeCopies {
			if i > 0 {
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := c.WriteTo(d, raddr); err != nil {
				return probeFailed
			}
		}
		return probeSent
	}
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: lip}, Timeout: probeTCPTimeout}
	conn, err := dl.DialContext(ctx, "tcp", raddr.String())
	if err != nil {
		return probeNoAnswer
	}
	conn.Close()
	return probeSent
}

// probeNetAddr turns /ip4|ip6/.../udp|tcp/PORT[/...] into a net.Addr.
func probeNetAddr(a ma.Multiaddr) (net.Addr, error) {
	ip, err := manet.ToIP(a)
	if err != nil {
		return nil, err
	}
	for _, c := range a {
		switch c.Protocol().Code {
		case ma.P_UDP, ma.P_TCP:
			port, err := c.ValueForProtocol(c.Protocol().Code)
			if err != nil {
				return nil, err
			}
			var n int
			if _, err := fmt.Sscanf(port, "%d", &n); err != nil || n <= 0 || n > 65535 {
				return nil, fmt.Errorf("bad port %q", port)
			}
			if c.Protocol().Code == ma.P_UDP {
				return &net.UDPAddr{IP: ip, Port: n}, nil
			}
			return &net.TCPAddr{IP: ip, Port: n}, nil
		}
	}
	return nil, fmt.Errorf("no port in %s", a)
}

// askProbe sends req to the super-peer id over an existing connection and
// reads its one-byte answer.
func askProbe(ctx context.Context, h host.Host, id lpeer.ID, req probeRequest) (probeStatus, error) {
	s, err := h.NewStream(network.WithNoDial(ctx, "probe"), id, ProbeProtocol)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if d, ok := ctx.Deadline(); ok {
		_ = s.SetDeadline(d)
	}
	if _, err := s.Write(req.frame()); err != nil {
		s.Reset()
		return 0, err
	}
	var b [1]byte
	if _, err := io.ReadFull(s, b[:]); err != nil {
		s.Reset()
		return 0, err
	}
	if b[0] > byte(probeFailed) {
		return 0, fmt.Errorf("peer: unknown probe answer %d", b[0])
	}
	return probeStatus(b[0]), nil
}

// isProbeDatagram reports whether b is the UDP probe with nonce.
func isProbeDatagram(b []byte, nonce [probeNonceSize]byte) bool {
	return bytes.Equal(b, probeDatagram(nonce))
}
