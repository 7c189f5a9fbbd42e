package content

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// relayed builds a super-peer whose relay resets each relayed connection
// after connData bytes, a provider reachable only through it, and a
// downloader connected to the provider through the relay.
func relayed(t *testing.T, connData int64) (prov, dl *node) {
	t.Helper()
	ctx := testCtx(t)
	spc := peer.TestSuperPeerConfig()
	spc.Relay.ConnData = connData
	sp := newNodeWith(t, func(c *peer.Config) { *c = spc }, nil)
	prov = newNodeWith(t, func(c *peer.Config) {
		c.SuperPeers = []string{sp.p.Invite()}
		c.Reachability = peer.ReachabilityPrivate
	}, nil)
	dl = newNodeWith(t, func(c *peer.Config) { c.SuperPeers = []string{sp.p.Invite()} }, nil)
	for _, n := range []*node{prov, dl} {
		if err := n.p.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for len(prov.p.Status().Relays) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the provider got no relay reservation")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := dl.p.Connect(ctx, prov.p.Addr()); err != nil {
		t.Fatal(err)
	}
	if path := dl.p.PathTo(prov.p.ID()); path != peer.PathRelayed {
		t.Skipf("the provider is reachable %v on loopback; the relay cannot be tested here", path)
	}
	return prov, dl
}

// A provider reachable only through a relay that cuts each relayed
// connection after connData bytes: the download either completes, resuming
// across the cuts (or on a direct path, which the peer layer may find on
// loopback), or fails saying it was relay-only. It never hangs.
func testRelayOnly(t *testing.T, connData int64, size int) {
	ctx := testCtx(t)
	prov, dl := relayed(t, connData)
	dl.s.stallTimeout = 3 * time.Second
	src := writeRandom(t, t.TempDir(), "f", size, 61)
	info, err := prov.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	start := time.Now()
	_, err = dl.s.Fetch(ctx, info.ID, dst, WithProviders(peer.Addr{ID: prov.p.ID()}), OnlyProviders())
	switch {
	case err == nil:
		sameFile(t, src, dst)
		t.Logf("completed in %v; path now %v", time.Since(start).Round(time.Millisecond), dl.p.PathTo(prov.p.ID()))
	case errors.Is(err, ErrRelayOnly):
		t.Logf("failed clearly in %v: %v", time.Since(start).Round(time.Millisecond), err)
	default:
		t.Fatalf("error %v, want success or ErrRelayOnly", err)
	}
}

func TestRelayOnlyProviderResumesAcrossCuts(t *testing.T) { testRelayOnly(t, 1<<20, 3<<20) }

func TestRelayOnlyProviderTooSmallRelay(t *testing.T) { testRelayOnly(t, 128<<10, 2*PieceSize) }
