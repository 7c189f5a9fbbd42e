package discovery

import (
	"fmt"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

func TestHierarchyForwardsWithTTL(t *testing.T) {
	ctx := testCtx(t)
	s1 := superPeer(t)
	s2 := superPeer(t, s1)          // s2 knows s1 from its configuration
	s1.d.TrustSuperPeers(s2.p.ID()) // and s1's operator trusts s2
	a := edge(t, Config{NoPeerAdvertisement: true}, s1)
	b := edge(t, Config{NoPeerAdvertisement: true}, s2)
	if _, err := a.d.Publish(ctx, fileAd("song", "Heroes.flac")); err != nil {
		t.Fatal(err)
	}
	q := Query{Type: "fileshare.file", Attr: "name", Value: "hero*", Sources: SourceSuperPeers}

	q.TTL = NoForward
	if res := collect(t, b.d, q); len(res) != 0 {
		t.Fatalf("TTL 0 found %d results through a forward", len(res))
	}
	q.TTL = 0 // default
	res := collect(t, b.d, q)
	if len(res) != 1 || res[0].ID != "song" || res[0].Publisher != a.p.ID() || res[0].From != s2.p.ID() {
		t.Fatalf("through the hierarchy: %+v", res)
	}
	// And the other way round: s1 forwards to s2, which it trusts but was never configured with.
	if _, err := b.d.Publish(ctx, fileAd("other", "Heroes (live).flac")); err != nil {
		t.Fatal(err)
	}
	res = collect(t, a.d, Query{Type: "fileshare.file", Attr: "name", Value: "*live*", Sources: SourceSuperPeers})
	if len(res) != 1 || res[0].ID != "other" {
		t.Fatalf("s1 to s2: %+v", res)
	}
}

func TestFloodingWithTTLAndDuplicates(t *testing.T) {
	ctx := testCtx(t)
	flood := Config{NoPeerAdvertisement: true, Flood: true}
	// a - b - c - d in a line, and a - e - c closing a loop.
	a, b, c, d, e := edge(t, flood), edge(t, flood), edge(t, flood), edge(t, flood), edge(t, flood)
	connect(t, a, b)
	connect(t, b, c)
	connect(t, c, d)
	connect(t, a, e)
	connect(t, e, c)
	if _, err := d.d.Publish(ctx, fileAd("far", "far away.txt")); err != nil {
		t.Fatal(err)
	}
	q := Query{Type: "fileshare.file", Attr: "name", Value: "far*", Sources: SourceFlood}
	q.TTL = 1 // a's neighbours forward once: reaches c, not d
	if res := collect(t, a.d, q); len(res) != 0 {
		t.Fatalf("TTL 1 reached three hops: %+v", res)
	}
	q.TTL = 2
	res := collect(t, a.d, q)
	if len(res) != 1 || res[0].Publisher != d.p.ID() {
		t.Fatalf("TTL 2: %+v", res)
	}
	// c got the query from both b and e: it answered one, suppressed the other.
	if got := c.d.Stats().QueriesServed; got < 2 {
		t.Fatalf("c served %d queries, want the duplicate too", got)
	}
	// A peer that does not flood does not forward.
	g := edge(t, Config{NoPeerAdvertisement: true})
	connect(t, g, d)
	h := edge(t, flood)
	connect(t, h, g)
	if res := collect(t, h.d, Query{Type: "fileshare.file", Value: "far*", Sources: SourceFlood}); len(res) != 0 {
		t.Fatalf("non-flooding peer forwarded: %+v", res)
	}
}

func TestDHTExactQueryAmongTwenty(t *testing.T) {
	if testing.Short() {
		t.Skip("20 peers")
	}
	ctx := testCtx(t)
	s1 := superPeer(t)
	s2 := superPeer(t, s1)
	s3 := superPeer(t, s1, s2)
	sps := []*node{s1, s2, s3}
	var edges []*node
	for i := range 17 {
		edges = append(edges, edge(t, Config{NoPeerAdvertisement: true}, sps[i%3]))
	}
	pub, seeker := edges[0], edges[16] // on s1 and s2
	ad := fileAd("iso", "debian-13.iso")
	ad.Attrs["sha256"] = "9f86d081884c7d659a2feaa0c55ad015"
	if _, err := pub.d.Publish(ctx, ad); err != nil {
		t.Fatal(err)
	}
	q := Query{Type: "fileshare.file", Attr: "sha256", Value: "9F86D081884C7D659A2FEAA0C55AD015", Sources: SourceDHT}
	var res []Result
	eventually(t, "the provider record", func() bool {
		res = collect(t, seeker.d, q)
		return len(res) > 0
	})
	if len(res) != 1 || res[0].Publisher != pub.p.ID() || res[0].From != pub.p.ID() || res[0].Source != SourceDHT {
		t.Fatalf("DHT result %+v", res)
	}
	if string(res[0].Body) != "body of iso" {
		t.Fatalf("body %q", res[0].Body)
	}
	// A wildcard is not an exact key: the DHT is not asked.
	if res := collect(t, edges[8].d, Query{Type: "fileshare.file", Attr: "sha256", Value: "9f86*", Sources: SourceDHT}); len(res) != 0 {
		t.Fatalf("wildcard through the DHT: %+v", res)
	}
}

func TestNewestVersionWins(t *testing.T) {
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true})
	b := edge(t, Config{NoPeerAdvertisement: true})
	connect(t, b, a)
	q := Query{Type: "fileshare.file", Value: "*", Sources: SourceLocal | SourceLAN}
	if _, err := a.d.Publish(ctx, fileAd("doc", "draft.txt")); err != nil {
		t.Fatal(err)
	}
	if res := collect(t, b.d, q); len(res) != 1 || res[0].Attrs["name"] != "draft.txt" {
		t.Fatalf("first version: %+v", res)
	}
	if _, err := a.d.Publish(ctx, fileAd("doc", "final.txt")); err != nil {
		t.Fatal(err)
	}
	res := collect(t, b.d, q)
	// The cached old version comes first, then the newer one replaces it.
	last := res[len(res)-1]
	if last.Attrs["name"] != "final.txt" {
		t.Fatalf("newest version not delivered: %+v", res)
	}
	local, err := b.d.Local(Query{Type: "fileshare.file"})
	if err != nil {
		t.Fatal(err)
	}
	if len(local) != 1 || local[0].Attrs["name"] != "final.txt" {
		t.Fatalf("cache holds %+v", local)
	}
}

func TestFindPeerByName(t *testing.T) {
	s := superPeer(t)
	cfg := peer.TestConfig()
	cfg.Name = "Ada Lovelace"
	cfg.SuperPeers = []string{s.p.Invite()}
	ada := newNode(t, cfg, Config{})
	if err := ada.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	// The peer advertisement is made at start, before the super-peer is
	// connected; it is handed over when the connection comes up.
	b := edge(t, Config{NoPeerAdvertisement: true}, s)
	var res []Result
	eventually(t, "ada's peer advertisement", func() bool {
		time.Sleep(100 * time.Millisecond) // stay inside the query rate limit
		res = collect(t, b.d, Query{Type: TypePeer, Attr: "name", Value: "ada*", Sources: SourceSuperPeers})
		return len(res) > 0
	})
	if res[0].ID != ada.p.ID().String() {
		t.Fatalf("found %+v", res[0])
	}
	inv, err := peer.ParseInvite(string(res[0].Body))
	if err != nil || inv.Peer.ID != ada.p.ID() {
		t.Fatalf("body is not ada's invite: %v", err)
	}
	if err := connectInvite(testCtx(t), b.p, string(res[0].Body)); err != nil {
		t.Fatal(err)
	}
}

func TestWatch(t *testing.T) {
	ctx := testCtx(t)
	a := edge(t, Config{NoPeerAdvertisement: true})
	b := edge(t, Config{NoPeerAdvertisement: true})
	connect(t, b, a)
	sub, err := b.d.Watch(ctx, Query{Type: "fileshare.file", Attr: "name", Value: "*.mp3"})
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"a.mp3", "b.txt", "c.mp3"} {
		if _, err := a.d.Publish(ctx, fileAd(fmt.Sprint(i), name)); err != nil {
			t.Fatal(err)
		}
	}
	collect(t, b.d, Query{Type: "fileshare.file", Sources: SourceLAN})
	var got []string
	for len(got) < 2 {
		select {
		case ad := <-sub.C:
			got = append(got, ad.Attrs["name"])
		case <-ctx.Done():
			t.Fatalf("watch delivered %v", got)
		}
	}
	select {
	case ad := <-sub.C:
		t.Fatalf("watch delivered a non-matching %v", ad.Attrs)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestInvalidQueries(t *testing.T) {
	a := edge(t, Config{NoPeerAdvertisement: true})
	for _, q := range []Query{{Limit: -1}, {TTL: -5}, {Value: string(make([]byte, MaxQueryField+1))}} {
		for _, err := range a.d.Find(testCtx(t), q) {
			if err == nil {
				t.Fatalf("query %+v accepted", q)
			}
		}
		if _, err := a.d.Local(q); err == nil {
			t.Fatalf("local query %+v accepted", q)
		}
	}
	if _, err := a.d.Publish(testCtx(t), Advertisement{Type: "x"}); err == nil {
		t.Fatal("advertisement without ID published")
	}
	big := fileAd("big", "big")
	big.Body = make([]byte, MaxAdSize)
	if _, err := a.d.Publish(testCtx(t), big); err == nil {
		t.Fatal("oversized advertisement published")
	}
}
