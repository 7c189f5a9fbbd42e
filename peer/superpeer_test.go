package peer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
)

// TestStockRelayAsSuperPeer: a plain go-libp2p host with the relay service is
// the only super-peer. A private edge still gets a reservation and is reached
// through it; Ready names the juxta protocols the relay lacks.
func TestStockRelayAsSuperPeer(t *testing.T) {
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.EnableRelayService(relay.WithInfiniteLimits()), libp2p.ForceReachabilityPublic())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	stock := h.Addrs()[0].String() + "/p2p/" + h.ID().String()

	cfg := TestConfig()
	cfg.SuperPeers = []string{stock}
	cfg.Reachability = ReachabilityPrivate
	a := newTestPeer(t, cfg)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = a.Ready(ctx)
	if !errors.Is(err, ErrNotJuxtaSuperPeer) || !strings.Contains(err.Error(), "/juxta/kad/1.0.0") || !strings.Contains(err.Error(), "/juxta/discovery/1.0.0") {
		t.Fatalf("Ready with a stock relay: %v", err)
	}

	// The relay still relays.
	ctx, cancel = context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for len(a.Status().Relays) == 0 {
		if ctx.Err() != nil {
			t.Fatal("no reservation on the stock relay")
		}
		time.Sleep(50 * time.Millisecond)
	}
	b := newTestPeer(t, TestConfig())
	path, err := b.Connect(ctx, a.Addr())
	if err != nil || path != PathRelayed {
		t.Fatalf("connect through the stock relay: %v, %v", path, err)
	}
	echo(t, ctx, b, a.ID(), "through a stock relay")
}
