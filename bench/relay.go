package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	circuit "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"

	jpeer "github.com/juxta-p2p/juxta/peer"
)

// relayMiB is what one relay repetition moves: a relay hop costs about three
// times a direct stream (both legs encrypted and decrypted at the relay).
const relayMiB = 128

// relayCPU measures the CPU seconds per GiB of one stream through a relay on
// loopback TCP: a relay and two peers, all in this process, so that
// getrusage counts the sender, the relay (its two legs) and the receiver.
// The receiver reserves a slot on the relay (circuit v2) and the sender
// dials it only through its /p2p-circuit address, so the stream runs on a
// relayed (/p2p-circuit) connection; the repetition fails otherwise.
func relayCPU(juxta bool) func(context.Context) (float64, error) {
	return func(ctx context.Context) (_ float64, err error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		var r, a, b host.Host
		var closers []func() error
		defer func() {
			for i := len(closers) - 1; i >= 0; i-- {
				err = errors.Join(err, closers[i]())
			}
		}()
		if juxta {
			sp := jpeer.TestSuperPeerConfig()
			sp.ListenAddrs = []string{loopbackTCP}
			// The default limit (4 MiB a relayed connection) suits chat and
			// signalling, not this transfer.
			sp.Relay.ConnData = 1 << 40
			sp.Relay.ConnDuration = time.Hour
			hs := make([]host.Host, 3)
			for i := range hs {
				cfg := jpeer.TestConfig()
				cfg.ListenAddrs = []string{loopbackTCP}
				if i == 0 {
					cfg = sp
				}
				p, err := jpeer.New(ctx, cfg)
				if err != nil {
					return 0, err
				}
				closers = append(closers, p.Close)
				hs[i] = p.Libp2p().Host
			}
			r, a, b = hs[0], hs[1], hs[2]
		} else {
			hs := make([]host.Host, 3)
			for i := range hs {
				opts := []libp2p.Option{libp2p.ListenAddrStrings(loopbackTCP)}
				if i == 1 {
					// The receiver has no address of its own, so that the
					// sender cannot reach it but through the relay.
					opts = []libp2p.Option{libp2p.ListenAddrStrings("/p2p-circuit")}
				}
				if i == 0 {
					opts = append(opts, libp2p.EnableRelayService(relay.WithInfiniteLimits()), libp2p.ForceReachabilityPublic())
				}
				h, err := libp2p.New(opts...)
				if err != nil {
					return 0, err
				}
				closers = append(closers, h.Close)
				hs[i] = h
			}
			r, a, b = hs[0], hs[1], hs[2]
		}
		s, err := relayedStream(ctx, r, a, b)
		if err != nil {
			return 0, err
		}
		defer s.Close()
		deadlineFrom(ctx, s)
		// Three fresh hosts: let their start-up work (identify, the DHT,
		// AutoNAT) finish, so that the CPU count is the transfer's.
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(time.Second):
		}
		if err := settle(ctx); err != nil {
			return 0, err
		}
		logf("    over %s", describe(s))
		mib := *flagMiB
		*flagMiB = relayMiB
		defer func() { *flagMiB = mib }()
		return cpuBulk(s)
	}
}

// relayedStream has a reserve a slot on r and b open a sink stream to a
// through r only.
func relayedStream(ctx context.Context, r, a, b host.Host) (network.Stream, error) {
	ri := lpeer.AddrInfo{ID: r.ID(), Addrs: r.Addrs()}
	if err := a.Connect(ctx, ri); err != nil {
		return nil, fmt.Errorf("connect to relay: %w", err)
	}
	if _, err := circuit.Reserve(ctx, a, ri); err != nil {
		return nil, fmt.Errorf("reserve: %w", err)
	}
	a.SetStreamHandler(sinkProto, sink)
	circ, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", r.Addrs()[0], r.ID()))
	if err != nil {
		return nil, err
	}
	if err := b.Connect(ctx, lpeer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{circ}}); err != nil {
		return nil, fmt.Errorf("connect through relay: %w", err)
	}
	s, err := b.NewStream(network.WithAllowLimitedConn(ctx, "bench"), a.ID(), sinkProto)
	if err != nil {
		return nil, fmt.Errorf("new stream: %w", err)
	}
	if _, err := s.Conn().RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err != nil {
		s.Reset()
		return nil, errors.New("the stream runs on a direct connection, not through the relay")
	}
	return s, nil
}
