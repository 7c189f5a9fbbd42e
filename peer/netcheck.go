package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"go.uber.org/fx"
)

// What CheckNetwork reads, named after RFC 4787.
const (
	MappingNone                = "none" // the super-peers see this host's own address
	MappingEndpointIndependent = "endpoint-independent"
	MappingEndpointDependent   = "endpoint-dependent" // symmetric NAT
	MappingUnknown             = "unknown"

	FilteringEndpointIndependent  = "endpoint-independent"       // full cone, or no firewall
	FilteringAddressDependent     = "address-dependent"          // restricted cone
	FilteringAddressPortDependent = "address-and-port-dependent" // port-restricted, symmetric, stateful firewall
	// FilteringNotEndpointDependent: a probe from another port got in, and no
	// second super-peer could probe from another address.
	FilteringNotPortDependent = "address-dependent or endpoint-independent"
	FilteringUnknown          = "unknown"
)

// NetCheck is what CheckNetwork found: one TransportCheck per transport
// (QUIC over UDP, TCP) and IP family tried, and whether this host has IPv6.
type NetCheck struct {
	Checks []TransportCheck
	// IPv6 is true when this host has a public IPv6 address.
	IPv6 bool
}

// Check returns the check of network ("udp4", "tcp4", "udp6", "tcp6"), and
// false when it did not run.
func (n NetCheck) Check(network string) (TransportCheck, bool) {
	for _, c := range n.Checks {
		if c.Network == network {
			return c, true
		}
	}
	return TransportCheck{}, false
}

// TransportCheck is how the home router (or firewall) treats one transport.
type TransportCheck struct {
	Network   string        // "udp4", "tcp4", "udp6" or "tcp6"
	Local     string        // the local address the check ran from
	Observed  []Observation // what each super-peer saw
	Mapping   string        // one of the Mapping constants, maybe with a reason
	Filtering string        // one of the Filtering constants, maybe with a reason
	// OtherPort and OtherAddr: did a probe from another port of the first
	// super-peer, and from another super-peer, get in? Nil: not tried.
	OtherPort, OtherAddr *bool
	Problems             []string
}

// Observation is one super-peer's view of this host's address.
type Observation struct {
	SuperPeer ID
	Addr      string
}

// NetCheckConfig says what CheckNetwork uses.
type NetCheckConfig struct {
	// SuperPeers to ask, in order; two or more tell mapping and filtering.
	SuperPeers []Addr
	// ListenIP4 and ListenIP6 bind the checks to one address; empty: any.
	ListenIP4, ListenIP6 string
}

// netcheckConnect bounds one connection to a super-peer; probeWait how long a
// UDP probe is awaited after the super-peer said it sent it.
const (
	netcheckConnect = 10 * time.Second
	probeWait       = 1500 * time.Millisecond
)

// CheckNetwork reads this host's NAT mapping and filtering over UDP and TCP,
// for IPv4 and, when this host has a public IPv6 address, for IPv6, with the
// help of super-peers (ObserveProtocol and ProbeProtocol). Each check runs
// from a fresh, minimal libp2p host that talks to nothing but the
// super-peers, in an order that keeps the result honest: it asks the first
// super-peer to probe from another port and to have the second probe from
// another address before it ever sends to the second, whose address the
// router would otherwise let in. The second super-peer must count the first
// among its configured super-peers, or the address-dependence stays unknown.
func CheckNetwork(ctx context.Context, cfg NetCheckConfig) (NetCheck, error) {
	var sps []lpeer.AddrInfo
	for _, a := range cfg.SuperPeers {
		if err := a.check(); err != nil {
			return NetCheck{}, fmt.Errorf("peer: check network: %w", err)
		}
		sps = append(sps, a.addrInfo())
	}
	if len(sps) == 0 {
		return NetCheck{}, fmt.Errorf("%w: check network: no super-peer", ErrBadConfig)
	}
	var out NetCheck
	out.IPv6 = hasPublicIPv6()
	networks := []string{"udp4", "tcp4"}
	if out.IPv6 {
		networks = append(networks, "udp6", "tcp6")
	}
	// The checks use separate sockets and hosts: run them at once.
	out.Checks = make([]TransportCheck, len(networks))
	var wg sync.WaitGroup
	for i, network := range networks {
		listen := cfg.ListenIP4
		if strings.HasSuffix(network, "6") {
			listen = cfg.ListenIP6
		}
		wg.Go(func() { out.Checks[i] = checkTransport(ctx, network, listen, sps) })
	}
	wg.Wait()
	return out, ctx.Err()
}

// hasPublicIPv6 reports whether an interface has a public IPv6 address.
func hasPublicIPv6() bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() == nil {
			if m, err := manet.FromIP(n.IP); err == nil && manet.IsPublicAddr(m) {
				return true
			}
		}
	}
	return false
}

// addrsFor keeps the addresses of a super-peer that network can dial.
func addrsFor(network string, addrs []ma.Multiaddr) []ma.Multiaddr {
	ipProto := ma.P_IP4
	if strings.HasSuffix(network, "6") {
		ipProto = ma.P_IP6
	}
	return slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool {
		if len(a) == 0 || a[0].Protocol().Code != ipProto {
			return true
		}
		if strings.HasPrefix(network, "udp") {
			_, err := a.ValueForProtocol(ma.P_QUIC_V1)
			return err != nil || len(a) != 3
		}
		return len(a) != 2 || a[1].Protocol().Code != ma.P_TCP
	})
}

// checkTransport runs one check; its problems go into the result.
func checkTransport(ctx context.Context, network, listenIP string, all []lpeer.AddrInfo) TransportCheck {
	tc := TransportCheck{Network: network, Mapping: MappingUnknown, Filtering: FilteringUnknown}
	var sps []lpeer.AddrInfo
	for _, sp := range all {
		if a := addrsFor(network, sp.Addrs); len(a) > 0 {
			sps = append(sps, lpeer.AddrInfo{ID: sp.ID, Addrs: a})
		}
	}
	if len(sps) == 0 {
		tc.Problems = append(tc.Problems, "no super-peer has a "+network+" address")
		return tc
	}
	h, cm, err := netcheckHost(network, listenIP)
	if err != nil {
		tc.Problems = append(tc.Problems, err.Error())
		return tc
	}
	defer h.Close()
	for _, a := range h.Network().ListenAddresses() {
		tc.Local = a.String()
	}
	// The first super-peer that answers probes; the others only observe.
	first := -1
	for i, sp := range sps {
		if err := netcheckDial(ctx, h, sp); err != nil {
			tc.Problems = append(tc.Problems, fmt.Sprintf("super-peer %s: %v", ID(sp.ID).ShortString(), err))
			continue
		}
		first = i
		break
	}
	if first < 0 {
		return tc
	}
	a := sps[first]
	if o, err := observeVia(ctx, h, a.ID); err == nil {
		tc.Observed = append(tc.Observed, Observation{SuperPeer: ID(a.ID), Addr: o.String()})
	} else {
		tc.Problems = append(tc.Problems, err.Error())
	}
	others := sps[first+1:]
	runProbes(ctx, &tc, h, cm, a.ID, others)
	for _, sp := range others {
		if err := netcheckDial(ctx, h, sp); err != nil {
			tc.Problems = append(tc.Problems, fmt.Sprintf("super-peer %s: %v", ID(sp.ID).ShortString(), err))
			continue
		}
		if o, err := observeVia(ctx, h, sp.ID); err == nil {
			tc.Observed = append(tc.Observed, Observation{SuperPeer: ID(sp.ID), Addr: o.String()})
		} else {
			tc.Problems = append(tc.Problems, err.Error())
		}
	}
	tc.Mapping = readMapping(tc.Observed, tc.Local)
	tc.Filtering = readFiltering(tc.OtherPort, tc.OtherAddr)
	return tc
}

func netcheckDial(ctx context.Context, h host.Host, sp lpeer.AddrInfo) error {
	ctx, cancel := context.WithTimeout(ctx, netcheckConnect)
	defer cancel()
	return h.Connect(ctx, sp)
}

// netcheckHost is a minimal host: one transport on one listen address, no
// relay, no routing, nothing that would dial anyone unasked.
func netcheckHost(network, ip string) (host.Host, *quicreuse.ConnManager, error) {
	if ip == "" {
		ip = "0.0.0.0"
		if strings.HasSuffix(network, "6") {
			ip = "::"
		}
	}
	ipProto := "ip4"
	if strings.HasSuffix(network, "6") {
		ipProto = "ip6"
	}
	var cm *quicreuse.ConnManager
	opts := []libp2p.Option{libp2p.DisableRelay(), libp2p.DisableMetrics(), libp2p.UserAgent("juxta-netcheck/0")}
	if strings.HasPrefix(network, "udp") {
		opts = append(opts, libp2p.Transport(quic.NewTransport), libp2p.WithFxOption(fx.Populate(&cm)),
			libp2p.ListenAddrStrings(fmt.Sprintf("/%s/%s/udp/0/quic-v1", ipProto, ip)))
	} else {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport),
			libp2p.ListenAddrStrings(fmt.Sprintf("/%s/%s/tcp/0", ipProto, ip)))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("peer: check network: %w", err)
	}
	return h, cm, nil
}

// runProbes asks super-peer a to probe from another port and, through the
// first of others, from another address.
func runProbes(ctx context.Context, tc *TransportCheck, h host.Host, cm *quicreuse.ConnManager, a lpeer.ID, others []lpeer.AddrInfo) {
	udp := strings.HasPrefix(tc.Network, "udp")
	var rd *probeReader
	if udp {
		var err error
		if rd, err = newProbeReader(h, cm); err != nil {
			tc.Problems = append(tc.Problems, err.Error())
			return
		}
		defer rd.close()
	}
	kind, otherKind := probeTCPOtherPort, probeTCPOtherPeer
	if udp {
		kind, otherKind = probeUDPOtherPort, probeUDPOtherPeer
	}
	got, err := probeOnce(ctx, h, a, probeRequest{kind: kind}, rd)
	if err != nil {
		tc.Problems = append(tc.Problems, fmt.Sprintf("probe from another port: %v", err))
		return
	}
	tc.OtherPort = got
	if len(others) == 0 {
		return
	}
	got, err = probeOnce(ctx, h, a, probeRequest{kind: otherKind, arg: []byte(others[0].ID)}, rd)
	if err != nil {
		tc.Problems = append(tc.Problems, fmt.Sprintf("probe from another super-peer: %v", err))
		return
	}
	tc.OtherAddr = got
}

var (
	errProbeLimited     = errors.New("the super-peer is busy or rate-limits probes; try again later")
	errProbeUnsupported = errors.New("the super-peer cannot probe this (the other super-peer is not linked to it, or does not trust it)")
	errProbeFailed      = errors.New("the super-peer could not send the probe")
)

// probeOnce asks for one probe and reports whether it got in.
func probeOnce(ctx context.Context, h host.Host, sp lpeer.ID, req probeRequest, rd *probeReader) (*bool, error) {
	if _, err := rand.Read(req.nonce[:]); err != nil {
		return nil, err
	}
	if rd != nil {
		rd.expect(req.nonce)
	}
	ctx, cancel := context.WithTimeout(ctx, probeStreamLimit)
	defer cancel()
	st, err := askProbe(ctx, h, sp, req)
	if err != nil {
		return nil, err
	}
	var got bool
	switch st {
	case probeSent:
		got = rd == nil || rd.wait(ctx, probeWait)
	case probeNoAnswer:
	case probeLimited:
		return nil, errProbeLimited
	case probeUnsupported:
		return nil, errProbeUnsupported
	default:
		return nil, errProbeFailed
	}
	return &got, nil
}

// probeReader reads the non-QUIC datagrams that reach the QUIC socket.
type probeReader struct {
	pc   net.PacketConn
	wg   sync.WaitGroup
	mu   sync.Mutex
	want [probeNonceSize]byte // guarded by mu
	got  chan struct{}        // signalled when want arrives
}

func newProbeReader(h host.Host, cm *quicreuse.ConnManager) (*probeReader, error) {
	if cm == nil {
		return nil, errors.New("peer: check network: no QUIC transport")
	}
	var laddr *net.UDPAddr
	for _, a := range h.Network().ListenAddresses() {
		if na, err := manet.ToNetAddr(a.Decapsulate(ma.StringCast("/quic-v1"))); err == nil {
			laddr, _ = na.(*net.UDPAddr)
		}
	}
	if laddr == nil {
		return nil, errors.New("peer: check network: no QUIC listen address")
	}
	network := "udp4"
	if laddr.IP.To4() == nil {
		network = "udp6"
	}
	pc, err := cm.SharedNonQUICPacketConn(network, laddr)
	if err != nil {
		return nil, fmt.Errorf("peer: check network: %w", err)
	}
	r := &probeReader{pc: pc, got: make(chan struct{}, 1)}
	r.wg.Add(1)
	go r.loop()
	return r, nil
}

func (r *probeReader) loop() {
	defer r.wg.Done()
	b := make([]byte, 2048)
	for {
		n, _, err := r.pc.ReadFrom(b)
		if err != nil {
			return
		}
		r.mu.Lock()
		ok := isProbeDatagram(b[:n], r.want)
		r.mu.Unlock()
		if ok {
			select {
			case r.got <- struct{}{}:
			default:
			}
		}
	}
}

func (r *probeReader) expect(nonce [probeNonceSize]byte) {
	r.mu.Lock()
	r.want = nonce
	r.mu.Unlock()
	select {
	case <-r.got: // a late copy of the previous probe
	default:
	}
}

func (r *probeReader) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.got:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}

func (r *probeReader) close() {
	r.pc.Close()
	r.wg.Wait()
}

// readMapping compares what the super-peers saw.
func readMapping(obs []Observation, local string) string {
	if len(obs) == 0 {
		return MappingUnknown
	}
	first, err := ma.NewMultiaddr(obs[0].Addr)
	if err != nil {
		return MappingUnknown
	}
	if ip, err := manet.ToIP(first); err == nil && isLocalIP(ip) {
		return MappingNone
	}
	if len(obs) < 2 {
		return MappingUnknown + " (two super-peers are needed to tell)"
	}
	for _, o := range obs[1:] {
		if o.Addr != obs[0].Addr {
			return MappingEndpointDependent
		}
	}
	return MappingEndpointIndependent
}

func isLocalIP(ip net.IP) bool {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// readFiltering reads the filtering from the two probes.
func readFiltering(otherPort, otherAddr *bool) string {
	switch {
	case otherAddr != nil && *otherAddr:
		return FilteringEndpointIndependent
	case otherPort == nil:
		return FilteringUnknown
	case !*otherPort:
		return FilteringAddressPortDependent
	case otherAddr != nil:
		return FilteringAddressDependent
	}
	return FilteringNotPortDependent
}
