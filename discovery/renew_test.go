package discovery

import (
	"bytes"
	"testing"
	"time"
)

// A renewed advertisement outlives its lifetime while its publisher runs:
// past half of it, a new version (fresh Issued, higher Seq, same content)
// reaches the super-peer; Flush ends the renewals.
func TestPublishRenewed(t *testing.T) {
	ctx := testCtx(t)
	s := superPeer(t)
	a := edge(t, Config{NoPeerAdvertisement: true, NoDHT: true}, s)
	ad := fileAd("renewed", "renewed.txt")
	ad.Lifetime, ad.Expiration = 2*time.Second, 400*time.Millisecond
	first, err := a.d.PublishRenewed(ctx, ad)
	if err != nil {
		t.Fatal(err)
	}
	var renewed Advertisement
	eventually(t, "a renewed version at the super-peer", func() bool {
		e, ok := s.d.store.get(first.Key())
		if ok && e.ad.Seq > first.Seq {
			renewed = e.advert()
			return true
		}
		return false
	})
	if !renewed.Issued.After(first.Issued) || !renewed.ValidUntil().After(first.ValidUntil()) ||
		!bytes.Equal(renewed.Body, first.Body) || renewed.Attrs["name"] != "renewed.txt" || renewed.Lifetime != first.Lifetime {
		t.Fatalf("renewed %+v from %+v", renewed, first)
	}
	// A plain Publish is not renewed.
	plain := fileAd("plain", "plain.txt")
	plain.Lifetime = 2 * time.Second
	if _, err := a.d.Publish(ctx, plain); err != nil {
		t.Fatal(err)
	}
	a.d.mu.Lock()
	renewing, plainRenewing := a.d.published[first.Key()].renew, a.d.published[Key{Type: plain.Type, ID: plain.ID, Publisher: a.p.ID()}].renew
	a.d.mu.Unlock()
	if !renewing || plainRenewing {
		t.Fatalf("renewing: PublishRenewed %v, Publish %v", renewing, plainRenewing)
	}
	if err := a.d.Flush(ctx, ad.Type, ad.ID); err != nil {
		t.Fatal(err)
	}
	a.d.mu.Lock()
	_, still := a.d.published[first.Key()]
	a.d.mu.Unlock()
	if still {
		t.Fatal("a flushed advertisement is still scheduled")
	}
	if _, ok := s.d.store.get(first.Key()); ok {
		t.Fatal("the super-peer kept a flushed advertisement")
	}
}

// A renewal that finds a newer version published meanwhile changes nothing:
// it never brings an older content back.
func TestRenewYieldsToNewerVersion(t *testing.T) {
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true, NoDHT: true})
	ad := fileAd("doc", "v1.txt")
	first, err := a.d.PublishRenewed(ctx, ad)
	if err != nil {
		t.Fatal(err)
	}
	a.d.mu.Lock()
	old := a.d.published[first.Key()]
	a.d.mu.Unlock()

	ad.Attrs = map[string]string{"name": "v2.txt"}
	second, err := a.d.PublishRenewed(ctx, ad)
	if err != nil {
		t.Fatal(err)
	}
	a.d.renew(ctx, old, time.Now()) // the janitor took old before the second publish
	a.d.mu.Lock()
	cur := a.d.published[first.Key()]
	a.d.mu.Unlock()
	if cur.ad.Seq != second.Seq || cur.ad.Attrs["name"] != "v2.txt" {
		t.Fatalf("scheduled after a stale renewal: %+v", cur.ad)
	}
	if e, _ := a.d.store.get(first.Key()); e.ad.Seq != second.Seq {
		t.Fatalf("cached after a stale renewal: seq %d name %q", e.ad.Seq, e.advert().Attrs["name"])
	}
	// The current version renews: a higher Seq, the same content.
	a.d.renew(ctx, cur, time.Now())
	e, _ := a.d.store.get(first.Key())
	if got := e.advert(); got.Seq <= second.Seq || got.Attrs["name"] != "v2.txt" {
		t.Fatalf("after renewal: seq %d name %q", got.Seq, got.Attrs["name"])
	}
}
