package pipes

import (
	"context"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/peer"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

type node struct {
	p *peer.Peer
	d *discovery.Service
	s *Service
}

// patience bounds every wait for an event: generous, since a loaded 2-core
// machine under -race takes minutes where an idle one takes a second, and a
// wait that succeeds returns as soon as the event happens.
const patience = 4 * time.Minute

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	t.Cleanup(cancel)
	return ctx
}

func newNode(t testing.TB, cfg peer.Config) *node {
	t.Helper()
	ctx := testCtx(t)
	p, err := peer.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true, QueryRate: 1000, PublishRate: 1000})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	s, err := New(ctx, p, d)
	if err != nil {
		d.Close()
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		d.Close()
		p.Close()
	})
	return &node{p, d, s}
}

// waitFor waits, up to patience, for cond.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func superPeer(t testing.TB) *node { return newNode(t, peer.TestSuperPeerConfig()) }

func edge(t testing.TB, sp *node) *node {
	cfg := peer.TestConfig()
	if sp != nil {
		cfg.SuperPeers = []string{sp.p.Invite()}
	}
	n := newNode(t, cfg)
	if sp != nil {
		if err := n.p.Ready(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// dropConns closes every connection between a and b.
func dropConns(a, b *node) {
	for _, c := range a.p.Libp2p().Host.Network().ConnsToPeer(lp(b.p.ID())) {
		c.Close()
	}
}

type ctxT = context.Context
type ID = peer.ID

// lp is a juxta peer ID as libp2p's, for tests that drive a raw libp2p host.
func lp(id peer.ID) lpeer.ID { return lpeer.ID(id) }

// connectInvite connects p to the peer an invite names.
func connectInvite(ctx context.Context, p *peer.Peer, invite string) error {
	a, err := peer.ParseAddr(invite)
	if err != nil {
		return err
	}
	_, err = p.Connect(ctx, a)
	return err
}
