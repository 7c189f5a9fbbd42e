package discovery

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/text/unicode/norm"

	"github.com/juxta-p2p/juxta/peer"
)

func TestTokenize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Blue_Monday-01.MP3", []string{"blue", "monday", "01", "mp3"}},
		{"  Heroes (live) ", []string{"heroes", "live"}},
		{"STRASSE Straße", []string{"strasse", "strasse"}},
		{norm.NFD.String("Café Noir"), []string{"café", "noir"}},
		{norm.NFD.String("소리바다 노래.mp3"), []string{"소리바다", "노래", "mp3"}},
		{"", nil},
		{"...", nil},
	} {
		if got := tokens(c.in, 0); !slices.Equal(got, c.want) {
			t.Errorf("tokens(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	long := strings.Repeat("가", 100) // 3 bytes each
	if got := tokens(long, 0); len(got) != 1 || len(got[0]) > maxTokenBytes || !strings.HasPrefix(long, got[0]) {
		t.Errorf("a long token is not truncated at a rune boundary: %d bytes", len(got[0]))
	}
}

// kwNode is an in-memory peer whose cache holds the given names as file
// advertisements of its own.
func kwNode(t *testing.T, names ...string) *node {
	t.Helper()
	n := newNode(t, peer.TestConfig(), Config{NoPeerAdvertisement: true, NoDHT: true})
	var ads []Advertisement
	for i, name := range names {
		ads = append(ads, fileAd(fmt.Sprint("f", i), name))
	}
	if _, err := n.d.PublishBatch(testCtx(t), ads); err != nil {
		t.Fatal(err)
	}
	return n
}

func names(t *testing.T, n *node, q Query) []string {
	t.Helper()
	ads, err := n.d.Local(q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	var out []string
	for _, a := range ads {
		out = append(out, a.Attrs["name"])
	}
	return out
}

func TestKeywordsHangulCaseAndPrefix(t *testing.T) {
	nfd := norm.NFD.String("소리바다 노래 모음.mp3") // as macOS stores it
	nfc := norm.NFC.String("사랑 노래.flac")     // as typed on Linux
	if nfd == norm.NFC.String(nfd) {
		t.Fatal("the NFD name is not decomposed")
	}
	n := kwNode(t, nfd, nfc, "Blue Monday.MP3", norm.NFD.String("Café del Mar.ogg"))
	for _, c := range []struct {
		kw   string
		want []string
	}{
		{norm.NFC.String("노래 소리바다"), []string{nfd}},  // NFC finds NFD
		{norm.NFD.String("사랑 노래"), []string{nfc}},    // NFD finds NFC
		{norm.NFC.String("노"), []string{nfd, nfc}},   // prefix of a Hangul word
		{"blue monday", []string{"Blue Monday.MP3"}}, // case
		{"BLUE MON", []string{"Blue Monday.MP3"}},    // prefix of the last word
		{"mon blue", nil}, // only the last word is a prefix
		{norm.NFC.String("café"), []string{norm.NFD.String("Café del Mar.ogg")}}, // accents either form
		{"mp3", []string{nfd, "Blue Monday.MP3"}},
		{"jazz", nil},
	} {
		got := names(t, n, Query{Type: "fileshare.file", Keywords: c.kw})
		slices.Sort(got)
		want := slices.Clone(c.want)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("keywords %q: got %q, want %q", c.kw, got, want)
		}
	}
	// KeywordAttrs restricts the search to the named attributes.
	if got := names(t, n, Query{Keywords: "blue", KeywordAttrs: []string{"artist"}}); len(got) != 0 {
		t.Errorf("search in another attribute found %q", got)
	}
	if got := names(t, n, Query{Keywords: "blue", KeywordAttrs: []string{"name"}}); len(got) != 1 {
		t.Errorf("search in the name attribute found %q", got)
	}
}

func TestKeywordRankingAndPaging(t *testing.T) {
	n := kwNode(t,
		"red blue green yellow purple", // all three terms, long
		"red blue green",               // all three, short: best
		"red blue",                     // two
		"red",                          // one
		"orange",                       // none
	)
	q := Query{Keywords: "red blue green", AnyKeyword: true}
	got := names(t, n, q)
	want := []string{"red blue green", "red blue green yellow purple", "red blue", "red"}
	if !slices.Equal(got, want) {
		t.Fatalf("ranked %q, want %q", got, want)
	}
	// AND (the default) keeps only those with every term.
	if got := names(t, n, Query{Keywords: "red blue green"}); !slices.Equal(got, want[:2]) {
		t.Fatalf("AND ranked %q, want %q", got, want[:2])
	}
	// Pages.
	q.Limit = 2
	q.Offset = 1
	if got := names(t, n, q); !slices.Equal(got, want[1:3]) {
		t.Fatalf("page 1..3: %q", got)
	}
	q.Offset = 4
	if got := names(t, n, q); len(got) != 0 {
		t.Fatalf("page past the end: %q", got)
	}
}

// Two advertisements with the same score: the one more publishers offer (same
// type and ID) ranks first.
func TestKeywordTiesBreakByPublishers(t *testing.T) {
	ctx := testCtx(t)
	s := superPeer(t)
	var pubs []*node
	for range 3 {
		pubs = append(pubs, edge(t, Config{NoPeerAdvertisement: true, NoDHT: true}, s))
	}
	// "rare" is offered by one publisher, "common" by three; same words.
	rare := Advertisement{Type: "fileshare.file", ID: "sha-rare", Attrs: map[string]string{"name": "night train.ogg"}}
	common := Advertisement{Type: "fileshare.file", ID: "sha-common", Attrs: map[string]string{"name": "night train.ogg"}}
	if _, err := pubs[0].d.Publish(ctx, rare); err != nil {
		t.Fatal(err)
	}
	for _, p := range pubs {
		if _, err := p.d.Publish(ctx, common); err != nil {
			t.Fatal(err)
		}
	}
	rs, err := s.d.LocalResults(Query{Keywords: "night train"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 4 {
		t.Fatalf("found %d, want 4", len(rs))
	}
	for i, r := range rs[:3] {
		if r.ID != "sha-common" || r.Publishers != 3 {
			t.Fatalf("result %d: %s offered by %d", i, r.ID, r.Publishers)
		}
	}
	if rs[3].ID != "sha-rare" || rs[3].Publishers != 1 || rs[3].Score != rs[0].Score {
		t.Fatalf("last: %s by %d score %v (first %v)", rs[3].ID, rs[3].Publishers, rs[3].Score, rs[0].Score)
	}
	// Through the network: an edge's search carries the score and count.
	res := collect(t, pubs[1].d, Query{Keywords: "night tr", Sources: SourceSuperPeers})
	if len(res) != 4 || res[0].Publishers != 3 || res[0].Score <= 0 || res[0].Source != SourceSuperPeers {
		t.Fatalf("remote: %+v", res)
	}
}

func TestKeywordQueryErrors(t *testing.T) {
	n := kwNode(t, "a b c")
	for _, q := range []Query{
		{Keywords: "..."},
		{Keywords: "a", Attr: "name", Value: "a"},
		{Keywords: strings.Repeat("w ", MaxKeywords+1)},
		{KeywordAttrs: []string{"name"}},
		{Keywords: "a", KeywordAttrs: make([]string, MaxKeywordAttrs+1)},
		{Keywords: "a", Offset: MaxOffset},
		{Keywords: "a", Offset: -1},
		{Keywords: strings.Repeat("x", MaxQueryField+1)},
	} {
		if _, err := n.d.Local(q); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: err %v, want ErrInvalid", q, err)
		}
	}
}

// PublishBatch reaches a super-peer in batches; republishing refreshes by
// digest, without sending the advertisements again.
func TestPublishBatchAndDigestRefresh(t *testing.T) {
	ctx := testCtx(t)
	s := superPeer(t)
	a := edge(t, Config{NoPeerAdvertisement: true, NoDHT: true}, s)
	const n = 3000 // three frames
	exp := 5 * time.Second
	if floodRace() { // ten times slower: copies must outlive the batch
		exp = 40 * time.Second
	}
	ads := make([]Advertisement, n)
	for i := range ads {
		ads[i] = fileAd(fmt.Sprint("f", i), fmt.Sprintf("track %04d of the batch.mp3", i))
		ads[i].Expiration = exp
	}
	out, err := a.d.PublishBatch(ctx, ads)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != n || out[0].Publisher != a.p.ID() || out[n-1].ID != "f2999" {
		t.Fatalf("returned %d, first %+v", len(out), out[0])
	}
	if st := s.d.Stats(); st.Accepted < n {
		t.Fatalf("super-peer indexed %d, want %d", st.Accepted, n)
	}
	if got := names(t, s, Query{Keywords: "track 2999"}); len(got) != 1 {
		t.Fatalf("super-peer finds %q", got)
	}
	// At the republish (at half the expiration) every advertisement is
	// refreshed by digest, not sent again, unless the machine was so slow
	// that the super-peer's copy expired first: then it is sent again in full.
	eventually(t, "a refresh by digest", func() bool {
		st := s.d.Stats()
		return st.Refreshed+(st.Accepted-n) >= n
	})
	st := s.d.Stats()
	t.Logf("refreshed %d by digest, re-sent %d", st.Refreshed, st.Accepted-n)
	if st.Refreshed == 0 {
		t.Error("nothing was refreshed by digest")
	}
	eventually(t, "every advertisement still indexed", func() bool { return s.d.Stats().Cached == n+1 }) // and its own peer advertisement
	// A batch with an invalid advertisement publishes nothing.
	bad := []Advertisement{fileAd("ok", "ok"), {Type: "fileshare.file"}}
	if _, err := a.d.PublishBatch(ctx, bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad batch: %v", err)
	}
	if _, ok := a.d.Raw(Key{Type: "fileshare.file", ID: "ok", Publisher: a.p.ID()}); ok {
		t.Fatal("a failed batch published part of itself")
	}
	// The same ID twice in one batch is refused.
	if _, err := a.d.PublishBatch(ctx, []Advertisement{fileAd("x", "x"), fileAd("x", "y")}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate in batch: %v", err)
	}
}
