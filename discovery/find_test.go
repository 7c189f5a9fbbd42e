package discovery

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/juxta-p2p/juxta/peer"
)

func TestFindThroughEachSource(t *testing.T) {
	ctx := testCtx(t)
	t.Run("lan", func(t *testing.T) {
		a := edge(t, Config{NoPeerAdvertisement: true})
		b := edge(t, Config{NoPeerAdvertisement: true})
		connect(t, b, a)
		if _, err := a.d.Publish(ctx, fileAd("f1", "Blue Monday.mp3")); err != nil {
			t.Fatal(err)
		}
		res := collect(t, b.d, Query{Type: "fileshare.file", Attr: "name", Value: "blue*", Sources: SourceLAN})
		if len(res) != 1 || res[0].ID != "f1" || res[0].Publisher != a.p.ID() || res[0].Source != SourceLAN {
			t.Fatalf("results %+v", res)
		}
	})
	t.Run("super-peer", func(t *testing.T) {
		s := superPeer(t)
		a := edge(t, Config{NoPeerAdvertisement: true}, s)
		b := edge(t, Config{NoPeerAdvertisement: true}, s)
		if _, err := a.d.Publish(ctx, fileAd("f2", "Blue Monday.mp3")); err != nil {
			t.Fatal(err)
		}
		res := collect(t, b.d, Query{Type: "fileshare.file", Attr: "name", Value: "*MONDAY*", Sources: SourceSuperPeers})
		if len(res) != 1 || res[0].ID != "f2" || res[0].From != s.p.ID() {
			t.Fatalf("results %+v", res)
		}
	})
}

// TestFindResultsAreTheCallersOwn: a caller may change what Find yields; the
// cache, which answered or stored it, does not change with it. Find yields
// the cache's advertisements without copying them twice, so each path that
// hands one out is checked: an answer stored fresh, an answer already cached,
// and the cache itself.
func TestFindResultsAreTheCallersOwn(t *testing.T) {
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true})
	b := edge(t, Config{NoPeerAdvertisement: true})
	connect(t, b, a)
	if _, err := a.d.Publish(ctx, fileAd("f1", "Blue Monday.mp3")); err != nil {
		t.Fatal(err)
	}
	spoil := func(how string, res []Result) {
		t.Helper()
		if len(res) != 1 {
			t.Fatalf("%s: %d results, want 1", how, len(res))
		}
		if got := res[0].Attrs["name"]; got != "Blue Monday.mp3" {
			t.Fatalf("%s: name %q: a caller's change reached the cache", how, got)
		}
		if got := string(res[0].Body); got != "body of f1" {
			t.Fatalf("%s: body %q: a caller's change reached the cache", how, got)
		}
		res[0].Attrs["name"] = "changed by the caller"
		res[0].Body[0] = 'X'
	}
	lan := Query{Type: "fileshare.file", Attr: "name", Value: "blue*", Sources: SourceLAN}
	local := Query{Type: "fileshare.file", Attr: "name", Value: "blue*", Sources: SourceLocal}
	spoil("answer stored fresh", collect(t, b.d, lan))
	spoil("answer already cached", collect(t, b.d, lan))
	spoil("from the cache", collect(t, b.d, local))
	spoil("from the cache again", collect(t, b.d, local))
	spoil("the publisher's own", collect(t, a.d, local))
	spoil("answer after all that", collect(t, b.d, lan))
}

// TestFindAnswerInManyFrames: an answer larger than one frame reaches the
// consumer whole, each advertisement once: a frame's last advertisement waits
// for the frame's end, and the answer's last one travels with the request's.
func TestFindAnswerInManyFrames(t *testing.T) {
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true})
	b := edge(t, Config{NoPeerAdvertisement: true})
	connect(t, b, a)
	const n = 40 // 40 ads of 8 KiB: about three answer frames
	var ads []Advertisement
	for i := range n {
		ad := fileAd(fmt.Sprintf("f%02d", i), fmt.Sprintf("song %02d.mp3", i))
		ad.Body = bytes.Repeat([]byte{byte(i)}, 8<<10)
		ads = append(ads, ad)
	}
	if _, err := a.d.PublishBatch(ctx, ads); err != nil {
		t.Fatal(err)
	}
	res := collect(t, b.d, Query{Type: "fileshare.file", Attr: "name", Value: "song*", Sources: SourceLAN, Limit: MaxLimit})
	if len(res) != n {
		t.Fatalf("%d results, want %d", len(res), n)
	}
	seen := map[string]bool{}
	for _, r := range res {
		if seen[r.ID] || len(r.Body) != 8<<10 || r.Source != SourceLAN || r.From != a.p.ID() {
			t.Fatalf("result %s: duplicate %v, %d body bytes, source %v, from %s", r.ID, seen[r.ID], len(r.Body), r.Source, r.From)
		}
		seen[r.ID] = true
	}
	if s := b.d.Stats(); s.Cached != n {
		t.Fatalf("%d cached, want %d", s.Cached, n)
	}
}

// TestFindWhenTheCacheCannotWrite: a cache that cannot write to disk (a full
// disk, here a closed database) loses no answer: Find still yields what the
// peer answered, and the memory cache, which holds it, keeps it apart from
// the caller's copy.
func TestFindWhenTheCacheCannotWrite(t *testing.T) {
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true})
	pcfg := peer.TestConfig()
	pcfg.Dir = t.TempDir()
	b := newNode(t, pcfg, Config{NoPeerAdvertisement: true})
	connect(t, b, a)
	if _, err := a.d.Publish(ctx, fileAd("f1", "Blue Monday.mp3")); err != nil {
		t.Fatal(err)
	}
	if err := b.d.store.db.Close(); err != nil {
		t.Fatal(err)
	}
	sub, err := b.d.Watch(ctx, Query{Type: "fileshare.file", Attr: "name", Value: "blue*"})
	if err != nil {
		t.Fatal(err)
	}
	lan := Query{Type: "fileshare.file", Attr: "name", Value: "blue*", Sources: SourceLAN}
	for _, how := range []string{"first answer", "answer again"} {
		res := collect(t, b.d, lan)
		if len(res) != 1 || res[0].ID != "f1" || res[0].Attrs["name"] != "Blue Monday.mp3" || string(res[0].Body) != "body of f1" {
			t.Fatalf("%s: results %+v, want the one advertisement", how, res)
		}
		res[0].Attrs["name"] = "changed by the caller"
		res[0].Body[0] = 'X'
	}
	select { // the watchers hear of it too: the memory cache holds it
	case ad := <-sub.C:
		if ad.ID != "f1" {
			t.Fatalf("watch delivered %s, want f1", ad.ID)
		}
	case <-ctx.Done():
		t.Fatal("the watch never heard of the answer the disk could not keep")
	}
}

// TestRelayNeverWaitsForItsReader: the DHT lookup's providers go through a
// relay, so that a slow consumer of Find never holds the lookup up: every
// send into the relay completes before anything is read out of it, and what
// is read comes in order, then the relay closes.
func TestRelayNeverWaitsForItsReader(t *testing.T) {
	in := make(chan int) // unbuffered, as kad-dht's
	out := relay(in)
	const n = 500
	for i := range n {
		in <- i // would block for good if the relay waited for its reader
	}
	close(in)
	for i := range n {
		if v, ok := <-out; !ok || v != i {
			t.Fatalf("read %d (open %v), want %d", v, ok, i)
		}
	}
	if _, ok := <-out; ok {
		t.Fatal("the relay did not close after its source")
	}
}
