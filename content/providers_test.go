package content

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

type discNode struct {
	p *peer.Peer
	d *discovery.Service
	s *Service
}

func newDiscNode(t *testing.T, pc peer.Config) *discNode {
	t.Helper()
	ctx := testCtx(t)
	p, err := peer.New(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true, QueryRate: 1000, PublishRate: 1000})
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	s, err := New(ctx, Config{Peer: p, Discovery: d, Dir: t.TempDir()})
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
	if len(pc.SuperPeers) > 0 {
		if err := p.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return &discNode{p, d, s}
}

// edgeOf starts a peer with discovery and content, an edge of sp.
func edgeOf(t *testing.T, sp *discNode) *discNode {
	c := peer.TestConfig()
	c.SuperPeers = []string{sp.p.Invite()}
	return newDiscNode(t, c)
}

// TestFetchFindsProvidersThroughSuperPeer: the provider's TypeContent
// advertisement reaches the super-peer's index; a downloader given no hints
// finds the provider there (or in the DHT) and fetches.
func TestFetchFindsProvidersThroughSuperPeer(t *testing.T) {
	ctx := testCtx(t)
	sp := newDiscNode(t, peer.TestSuperPeerConfig())
	edge := func() *discNode { return edgeOf(t, sp) }
	prov, dl := edge(), edge()
	src := writeRandom(t, t.TempDir(), "report.pdf", 3*PieceSize+9, 71)
	info, err := prov.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the super-peer indexes the advertisement.
	q := discovery.Query{Type: TypeContent, Attr: "cid", Value: info.ID.String(), Sources: discovery.SourceLocal}
	for {
		if ads, _ := sp.d.Local(q); len(ads) > 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the super-peer never indexed the content advertisement")
		}
		waitALittle(ctx)
	}
	dst := filepath.Join(t.TempDir(), "out")
	if _, err := dl.s.Fetch(ctx, info.ID, dst); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	// Remove withdraws the advertisement.
	if err := prov.s.Remove(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if ads, _ := prov.d.Local(q); len(ads) != 0 {
		t.Fatalf("advertisement still published after Remove: %v", ads)
	}
}

func waitALittle(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-afterMs(50):
	}
}

// TestProvidersSpreadOverDownloads: a super-peer's index answers newest
// first, yet downloads must not all open their sessions with the same
// providers. With 8 providers indexed, the provider a download tries first
// must differ between downloads (all 20 alike would happen with probability
// 8^-19 if the order were random).
func TestProvidersSpreadOverDownloads(t *testing.T) {
	ctx := testCtx(t)
	sp := newDiscNode(t, peer.TestSuperPeerConfig())
	edge := func() *discNode { return edgeOf(t, sp) }
	id := ID{1, 2, 3}
	const providers = 8
	for range providers {
		prov := edge()
		ad := discovery.Advertisement{Type: TypeContent, ID: id.String(), Attrs: map[string]string{"cid": id.String(), "name": "x"}}
		if _, err := prov.d.Publish(ctx, ad); err != nil {
			t.Fatal(err)
		}
	}
	q := discovery.Query{Type: TypeContent, Attr: "cid", Value: id.String(), Sources: discovery.SourceLocal}
	for {
		if ads, _ := sp.d.Local(q); len(ads) == providers {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the super-peer never indexed every provider")
		}
		waitALittle(ctx)
	}
	dl := edge()
	firsts := map[peer.ID]int{}
	for range 20 {
		var got []peer.ID
		dl.s.findProviders(ctx, id, func(a peer.Addr) bool {
			got = append(got, a.ID)
			return true
		})
		if len(got) != providers {
			t.Fatalf("%d providers found, want %d", len(got), providers)
		}
		firsts[got[0]]++
	}
	if len(firsts) < 2 {
		t.Fatalf("every download tried the same provider first: %v", firsts)
	}
}

// TestProvideRetriedOnceTheDHTIsUp: content added while no DHT server is
// known (a laptop that shares before it is online) is provided soon after one
// turns up, not at the next reprovide hours later.
func TestProvideRetriedOnceTheDHTIsUp(t *testing.T) {
	ctx := testCtx(t)
	sharer := newDiscNode(t, peer.TestConfig())
	if n := sharer.p.Libp2p().Routing.RoutingTable().Size(); n != 0 {
		t.Fatalf("the sharer knows %d DHT servers before it connects", n)
	}
	info, err := sharer.s.AddBytes(ctx, "notes.txt", []byte("shared before going online"))
	if err != nil {
		t.Fatal(err)
	}
	sp := newDiscNode(t, peer.TestSuperPeerConfig())
	seeker := edgeOf(t, sp)
	if _, err := sharer.p.Connect(ctx, sp.p.Addr()); err != nil {
		t.Fatal(err)
	}
	// The retries back off (1 s, 2 s, 4 s, ...) while no server is known:
	// the wait is bounded by ctx alone, so that a slow connect on a loaded
	// machine cannot fail the test.
	for {
		found := false
		for ai := range seeker.p.Libp2p().Routing.FindProvidersAsync(ctx, info.ID.CID(), 1) {
			found = found || peer.ID(ai.ID) == sharer.p.ID()
		}
		if found {
			return
		}
		if ctx.Err() != nil {
			t.Fatal("the content was never provided in the DHT once a server was known")
		}
		waitALittle(ctx)
	}
}
