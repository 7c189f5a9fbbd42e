package discovery

import (
	"context"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

func shortAd(id string) Advertisement {
	ad := fileAd(id, id+".txt")
	ad.Expiration = 2 * time.Second
	ad.Lifetime = time.Hour
	return ad
}

func indexed(n *node, id string) bool {
	res, _ := n.d.Local(Query{Type: "fileshare.file", Attr: "name", Value: id + ".txt"})
	return len(res) == 1
}

func TestExpirationRepublishAndFlush(t *testing.T) {
	ctx := testCtx(t)
	s := superPeer(t)
	a := edge(t, Config{NoPeerAdvertisement: true, NoDHT: true}, s)
	b := edge(t, Config{NoPeerAdvertisement: true, NoDHT: true}, s)
	for _, id := range []string{"kept", "flushed"} {
		// Republished every 3 s: a republish may come up to 3 s late (a
		// loaded machine) before the super-peer's copy would expire.
		ad := shortAd(id)
		ad.Expiration = 6 * time.Second
		if _, err := a.d.Publish(ctx, ad); err != nil {
			t.Fatal(err)
		}
	}
	if !indexed(s, "kept") || !indexed(s, "flushed") {
		t.Fatal("super-peer did not index the advertisements")
	}
	if res := collect(t, b.d, Query{Type: "fileshare.file", Sources: SourceSuperPeers}); len(res) != 2 {
		t.Fatalf("b found %d", len(res))
	}

	// Republishing keeps the super-peer's copy alive past its expiration:
	// b's cached copy, which nobody refreshes, expires first.
	eventually(t, "b's cached copy to expire", func() bool { return !indexed(b, "kept") })
	if !indexed(s, "kept") {
		t.Fatal("republish did not refresh the super-peer's copy")
	}

	// Flush removes it from the super-peer at once.
	if err := a.d.Flush(ctx, "fileshare.file", "flushed"); err != nil {
		t.Fatal(err)
	}
	if indexed(s, "flushed") || indexed(a, "flushed") {
		t.Fatal("flushed advertisement still indexed")
	}
	// Only the publisher can flush: b flushing a's ID changes nothing.
	if err := b.d.Flush(ctx, "fileshare.file", "kept"); err != nil {
		t.Fatal(err)
	}
	if !indexed(s, "kept") {
		t.Fatal("another peer's flush removed a's advertisement")
	}

	// When the publisher stops, the super-peer's copy expires.
	a.d.Close()
	eventually(t, "the super-peer's copy to expire", func() bool { return !indexed(s, "kept") })
	eventually(t, "the janitor to purge it", func() bool { return s.d.Stats().Purged > 0 })
}

func TestCacheTakesSmallerOfLifetimeAndExpiration(t *testing.T) {
	now := time.Now()
	ad := Advertisement{Issued: now.Add(-time.Hour), Lifetime: 61 * time.Minute, Expiration: 15 * time.Minute}
	if got := cacheUntil(&ad, now); !got.Equal(now.Add(time.Minute)) {
		t.Fatalf("remaining lifetime not respected: %v", got.Sub(now))
	}
	ad.Lifetime = 48 * time.Hour
	if got := cacheUntil(&ad, now); !got.Equal(now.Add(15 * time.Minute)) {
		t.Fatalf("expiration not respected: %v", got.Sub(now))
	}
}

func TestCachePersistsAndPurgesAtStart(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true})
	long := fileAd("long", "long.txt")
	if _, err := a.d.Publish(ctx, long); err != nil {
		t.Fatal(err)
	}
	if _, err := a.d.Publish(ctx, shortAd("short")); err != nil {
		t.Fatal(err)
	}

	start := func() (*peer.Peer, *Service) {
		cfg := peer.TestConfig()
		cfg.Dir = dir
		p, err := peer.New(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		d, err := New(ctx, p, Config{NoPeerAdvertisement: true})
		if err != nil {
			p.Close()
			t.Fatal(err)
		}
		return p, d
	}
	p, d := start()
	if _, err := d.Publish(ctx, fileAd("mine", "mine.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Connect(ctx, a.p.Addr()); err != nil {
		t.Fatal(err)
	}
	for _, err := range d.Find(ctx, Query{Type: "fileshare.file", Sources: SourceLAN}) {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := d.Stats().Cached; n != 3 {
		t.Fatalf("cached %d before restart, want 3", n)
	}
	d.Close()
	p.Close()

	time.Sleep(shortAd("").Expiration + 200*time.Millisecond) // "short" expires on disk
	p, d = start()
	defer p.Close()
	defer d.Close()
	got := map[string]bool{}
	res, err := d.Local(Query{Type: "fileshare.file"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ad := range res {
		got[ad.ID] = true
	}
	if !got["long"] || !got["mine"] || got["short"] || len(got) != 2 {
		t.Fatalf("after restart the cache holds %v", got)
	}
	if d.Stats().Purged != 1 {
		t.Fatalf("purged %d at start, want 1", d.Stats().Purged)
	}
}

func TestCorruptCacheFileFailsClearly(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := peer.TestConfig()
	cfg.Dir = dir
	p, err := peer.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := writeGarbage(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, p, Config{}); err == nil {
		t.Fatal("a corrupt cache file was opened")
	}
}
