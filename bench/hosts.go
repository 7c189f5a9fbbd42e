package main

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	jpeer "github.com/juxta-p2p/juxta/peer"
)

// Loopback listen addresses. Every host in the benchmark listens only on these.
const (
	loopbackTCP  = "/ip4/127.0.0.1/tcp/0"
	loopbackQUIC = "/ip4/127.0.0.1/udp/0/quic-v1"
)

var loopbackBoth = []string{loopbackTCP, loopbackQUIC}

// node is one side of a measurement: a juxta peer or a bare libp2p host, with
// the operations the rows need.
type node struct {
	host     host.Host
	addrInfo func() lpeer.AddrInfo
	connect  func(context.Context, lpeer.AddrInfo) error
	close    func() error
}

// newNode starts a node listening on listen.
type newNode func(ctx context.Context, listen []string) (*node, error)

// newJuxta starts a juxta edge peer: peer.TestConfig with its listen addresses
// replaced by listen.
func newJuxta(ctx context.Context, listen []string) (*node, error) {
	cfg := jpeer.TestConfig()
	cfg.ListenAddrs = listen
	p, err := jpeer.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &node{
		host:     p.Libp2p().Host,
		addrInfo: func() lpeer.AddrInfo { return lpeer.AddrInfo{ID: p.Libp2p().Host.ID(), Addrs: p.Libp2p().Host.Addrs()} },
		connect: func(ctx context.Context, ai lpeer.AddrInfo) error {
			_, err := p.Connect(ctx, jpeer.Addr{ID: jpeer.ID(ai.ID), Addrs: addrStrings(ai.Addrs)})
			return err
		},
		close: p.Close,
	}, nil
}

// newRaw starts go-libp2p's default host, with only its listen addresses set.
func newRaw(_ context.Context, listen []string) (*node, error) {
	h, err := libp2p.New(libp2p.ListenAddrStrings(listen...))
	if err != nil {
		return nil, err
	}
	return hostNode(h, h.Close), nil
}

// newRawNoiseFirst is newRaw with the security order reversed: Noise first,
// TLS second; the rest stock.
func newRawNoiseFirst(_ context.Context, listen []string) (*node, error) {
	h, err := libp2p.New(
		libp2p.ListenAddrStrings(listen...),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
	)
	if err != nil {
		return nil, err
	}
	return hostNode(h, h.Close), nil
}

// newSameServices starts a libp2p host with the services a juxta edge turns on
// (see peer.(*Peer).options), without juxta's own layer: TCP and QUIC, Noise
// then TLS, relay client, hole punching, AutoNAT v2, a kad-dht client under
// the /juxta prefix with no bootstrap peers, metrics off.
func newSameServices(_ context.Context, listen []string) (*node, error) {
	var d *dht.IpfsDHT
	h, err := libp2p.New(
		libp2p.ListenAddrStrings(listen...),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(quic.NewTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Security(libp2ptls.ID, libp2ptls.New),
		libp2p.DisableMetrics(),
		libp2p.EnableRelay(),
		libp2p.EnableHolePunching(),
		libp2p.EnableAutoNATv2(),
		libp2p.Routing(func(h host.Host) (routing.PeerRouting, error) {
			var err error
			d, err = dht.New(h,
				dht.Mode(dht.ModeClient),
				dht.ProtocolPrefix(jpeer.DHTProtocolPrefix),
				dht.BootstrapPeers(),
			)
			return d, err
		}),
	)
	if err != nil {
		if d != nil {
			d.Close()
		}
		return nil, err
	}
	// juxta bootstraps its DHT at start; so does the baseline.
	if err := d.Bootstrap(context.Background()); err != nil {
		d.Close()
		h.Close()
		return nil, err
	}
	return hostNode(h, func() error { return errors.Join(d.Close(), h.Close()) }), nil
}

func hostNode(h host.Host, closeFn func() error) *node {
	return &node{
		host:     h,
		addrInfo: func() lpeer.AddrInfo { return lpeer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()} },
		connect:  h.Connect,
		close:    closeFn,
	}
}

// pair starts two nodes listening on listen, and closes both on error.
func pair(ctx context.Context, mk newNode, listen []string) (a, b *node, closeBoth func() error, err error) {
	if a, err = mk(ctx, listen); err != nil {
		return nil, nil, nil, err
	}
	if b, err = mk(ctx, listen); err != nil {
		a.close()
		return nil, nil, nil, err
	}
	return a, b, func() error { return errors.Join(b.close(), a.close()) }, nil
}

// settle lets start-up work of new hosts finish before a timed region, then
// collects garbage so that neither side pays for the other's.
func settle(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(*flagSettle):
	}
	runtime.GC()
	return nil
}

// deadlineFrom applies ctx's deadline, if any, to a stream, so that a stuck
// peer fails the repetition instead of hanging it.
func deadlineFrom(ctx context.Context, s network.Stream) {
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
}

// describe names the connection a stream runs on, for -v: transport,
// security and stream multiplexer.
func describe(s network.Stream) string {
	c := s.Conn()
	st := c.ConnState()
	if st.Security == "" {
		return fmt.Sprintf("%s (security and streams native to the transport)", c.RemoteMultiaddr())
	}
	return fmt.Sprintf("%s, security %s, muxer %s", c.RemoteMultiaddr(), st.Security, st.StreamMultiplexer)
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// lp is a juxta peer ID as libp2p's, for the raw-host baselines.
func lp(id jpeer.ID) lpeer.ID { return lpeer.ID(id) }
