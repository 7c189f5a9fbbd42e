package discovery

import (
	"crypto/sha256"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	bolt "go.etcd.io/bbolt"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/event"

	"github.com/juxta-p2p/juxta/peer"
)

// Fuzz targets for every decoder of discovery (issue 12; issue 14, test 8).
// Each is seeded with valid frames. Run one for ten minutes with, e.g.:
//
//	go test ./discovery -run '^$' -fuzz '^FuzzBatchFrame$' -fuzztime 10m
//
// Plain `go test` runs the seeds.

// fuzzKey is one fixed identity, so that seeds are reproducible.
func fuzzKey(f *testing.F) (crypto.PrivKey, peer.ID) {
	f.Helper()
	seed := sha256.Sum256([]byte("juxta discovery fuzz"))
	k, _, err := crypto.GenerateEd25519Key(&fixedReader{b: seed[:]})
	if err != nil {
		f.Fatal(err)
	}
	id, _ := keyID(k)
	return k, id
}

type fixedReader struct{ b []byte }

func (r *fixedReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.b[i%len(r.b)]
	}
	return len(p), nil
}

func fuzzAd(f *testing.F, key crypto.PrivKey, id peer.ID, name string) []byte {
	f.Helper()
	raw, err := seal(Advertisement{
		Type: "fileshare.file", ID: name, Attrs: map[string]string{"name": name, "size": "123"},
		Lifetime: 24 * time.Hour, Expiration: time.Hour, Publisher: id, Seq: 1, Issued: time.Now(),
	}, key)
	if err != nil {
		f.Fatal(err)
	}
	return raw
}

func mustEncode(f *testing.F, v any) []byte {
	f.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// The advertisement decoder: Verify, VerifyKept (which takes all Verify
// takes, and what it takes is sound but for the lifetime), and the
// unverified peek used to refuse floods over quota.
func FuzzAdvertisementDecode(f *testing.F) {
	key, id := fuzzKey(f)
	f.Add(fuzzAd(f, key, id, "Blue Monday.mp3"))
	f.Add(fuzzAd(f, key, id, "소리바다"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		now := time.Now()
		ad, err := Verify(b, now)
		kept, kerr := VerifyKept(b, now)
		if kerr == nil && (kept.validateShape() != nil || kept.Issued.After(now.Add(MaxClockSkew)) || len(b) > MaxAdSize) {
			t.Fatalf("kept an invalid advertisement: %+v", kept)
		}
		p, perr := peek(b)
		if err != nil {
			return
		}
		if kerr != nil || kept.Key() != ad.Key() || kept.Seq != ad.Seq {
			t.Fatalf("verified, but VerifyKept gives %+v, %v", kept, kerr)
		}
		if perr != nil || p.Key() != ad.Key() || p.Seq != ad.Seq {
			t.Fatalf("verified, but peek gives %+v, %v", p, perr)
		}
		if ad.validateShape() != nil || !ad.ValidUntil().After(now) || len(b) > MaxAdSize {
			t.Fatalf("verified an invalid advertisement: %+v", ad)
		}
	})
}

// Request frames, as a peer's handler decodes them, and the query built
// from them.
func FuzzRequestFrame(f *testing.F) {
	key, id := fuzzKey(f)
	f.Add(mustEncode(f, request{Op: opQuery, QID: make([]byte, 16), Type: "fileshare.file", Attr: "name", Value: "blue*", Limit: 100, TTL: 3}))
	f.Add(mustEncode(f, request{Op: opQuery, QID: make([]byte, 16), Keywords: "blue mon", KAttrs: []string{"name"}, Offset: 10, Limit: 10, TTL: 2, Visited: [][]byte{[]byte(id)}}))
	f.Add(mustEncode(f, request{Op: opPublish, Ads: [][]byte{fuzzAd(f, key, id, "a")}}))
	f.Add(mustEncode(f, request{Op: opRefresh, Digests: [][]byte{make([]byte, 32)}}))
	f.Add(mustEncode(f, request{Op: opFlush, Type: "t", ID: "x"}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var req request
		if decMode.Unmarshal(b, &req) != nil {
			return
		}
		q, err := req.query()
		if err != nil {
			return
		}
		if q.Limit < 1 || q.Limit > MaxLimit || q.Offset < 0 || q.Offset+q.Limit > MaxOffset || q.TTL < 0 || q.TTL > MaxTTL ||
			len(req.QID) > MaxQID || len(req.Visited) > MaxVisited {
			t.Fatalf("a query out of bounds passed: %+v", q)
		}
		if q.kw != nil && (len(q.kw.terms) == 0 || len(q.kw.terms) > MaxKeywords) {
			t.Fatalf("keyword terms out of bounds: %q", q.kw.terms)
		}
	})
}

// Response frames, as an asker decodes them.
func FuzzResponseFrame(f *testing.F) {
	key, id := fuzzKey(f)
	f.Add(mustEncode(f, response{Ads: [][]byte{fuzzAd(f, key, id, "a")}, Scores: []float64{1.5}, Pubs: []int{2}, Done: true}))
	f.Add(mustEncode(f, response{Done: true, Code: codeQuota, Err: "full"}))
	f.Add(mustEncode(f, response{Done: true, Missing: []int{0, 3}}))
	f.Add(mustEncode(f, response{Scores: []float64{math.NaN(), math.Inf(1), -1}, Pubs: []int{-5}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r response
		if decMode.Unmarshal(b, &r) != nil {
			return
		}
		_ = r.err()
		for i := range len(r.Ads) + 2 {
			s, p := r.rank(i)
			if math.IsNaN(s) || s < 0 || s >= math.MaxFloat32 || p < 0 || p > math.MaxInt32 {
				t.Fatalf("rank %d: %v %d", i, s, p)
			}
		}
	})
}

// Publish batch frames, through the super-peer's acceptance: each
// advertisement checked on its own, quota and capacity held.
func FuzzBatchFrame(f *testing.F) {
	key, id := fuzzKey(f)
	good := [][]byte{fuzzAd(f, key, id, "a"), fuzzAd(f, key, id, "b")}
	f.Add(mustEncode(f, request{Op: opPublish, Ads: good}), []byte(id))
	f.Add(mustEncode(f, request{Op: opPublish, Ads: [][]byte{good[0], good[0], {1, 2, 3}}}), []byte(id))
	f.Add(mustEncode(f, request{Op: opPublish}), []byte("x"))
	f.Fuzz(func(t *testing.T, b, from []byte) {
		var req request
		if decMode.Unmarshal(b, &req) != nil || len(req.Ads) > MaxPublishBatch {
			return
		}
		s, _, _ := openStore("", 4, 2, time.Now())
		c := &core{store: s, watch: event.New[Advertisement]()}
		defer c.watch.Close()
		accepted, indexed, err := c.acceptBatch(peer.ID(from), req.Ads, rate.NewLimiter(rate.Inf, 0), time.Now())
		if indexed > accepted || accepted > len(req.Ads) || (err == nil && accepted != len(req.Ads)) {
			t.Fatalf("accepted %d, indexed %d of %d, err %v", accepted, indexed, len(req.Ads), err)
		}
		if s.len() > 4 || s.held(peer.ID(from)) > 2 {
			t.Fatalf("bounds broken: %d cached, %d by one publisher", s.len(), s.held(peer.ID(from)))
		}
		for k, e := range s.byKey {
			if k.Publisher != peer.ID(from) || e.ad.Key() != k {
				t.Fatalf("stored %v from %q", k, from)
			}
		}
	})
}

// The cache file as it is loaded at start: whatever a key and value hold,
// loading fails clearly or keeps only what verifies.
func FuzzCacheLoad(f *testing.F) {
	key, id := fuzzKey(f)
	raw := fuzzAd(f, key, id, "a")
	f.Add([]byte("k"), mustEncode(f, diskEntry{Raw: raw, Until: time.Now().Add(time.Hour).UnixMilli()}))
	f.Add([]byte("k"), mustEncode(f, diskEntry{Raw: raw, Until: 1, Local: true}))
	f.Add([]byte("k"), []byte{0xa1, 0x01, 0x40})
	dir := fuzzTempDir(f)
	f.Fuzz(func(t *testing.T, k, v []byte) {
		if len(k) == 0 || len(k) > bolt.MaxKeySize {
			return
		}
		path := filepath.Join(dir, dbFile)
		os.Remove(path)
		db, err := bolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		err = db.Update(func(tx *bolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists(bucketAds)
			if err != nil {
				return err
			}
			return b.Put(k, v)
		})
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		s, purged, err := openStore(dir, 10, 10, now)
		if err != nil {
			return
		}
		defer s.close()
		if s.len()+purged != 1 {
			t.Fatalf("loaded %d, purged %d of 1", s.len(), purged)
		}
		for _, e := range s.byKey {
			if _, err := Verify(e.raw, now); err != nil || !e.until.After(now) {
				t.Fatalf("loaded an invalid entry: %v", err)
			}
		}
	})
}

// fuzzTempDir is a temporary directory in memory where Linux offers one
// (/dev/shm): each exec of FuzzCacheLoad writes and opens a bbolt file, and
// bbolt's fsyncs on a disk cost more than the rest of the exec together.
// The same code runs; only the syncs are free.
func fuzzTempDir(f *testing.F) string {
	dir, err := os.MkdirTemp("/dev/shm", "juxta-fuzz-")
	if err != nil {
		return f.TempDir()
	}
	f.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Keyword queries against a small index: whatever the words, the index finds
// exactly the advertisements the matcher accepts (the two never disagree),
// and every result is ranked in order.
func FuzzKeywordQuery(f *testing.F) {
	key, _ := fuzzKey(f)
	f.Add("blue mon", "name", false, "Blue Monday.mp3", "moon blue")
	f.Add("노래", "", true, "소리바다 노래", "노래방")
	f.Add("café", "", false, "CAFÉ", "cafe\u0301 noir")
	f.Add("ß", "name", true, "STRASSE", "straße")
	f.Fuzz(func(t *testing.T, kw, attr string, anyKW bool, n1, n2 string) {
		q := Query{Keywords: kw, AnyKeyword: anyKW}
		if attr != "" {
			q.KeywordAttrs = []string{attr}
		}
		if q.normalize() != nil {
			return
		}
		now := time.Now()
		s, _, _ := openStore("", 10, 10, now)
		var es []*entry
		for i, name := range []string{n1, n2, n1 + " " + n2} {
			pub, _ := keyID(key)
			ad := Advertisement{Type: "f", ID: string(rune('a' + i)), Attrs: map[string]string{"name": name, "other": n2},
				Publisher: pub, Seq: 1, Issued: now, Lifetime: time.Hour, Expiration: time.Hour}
			if ad.validateShape() != nil {
				return
			}
			es = append(es, &entry{ad: ad, until: now.Add(time.Hour), local: true})
		}
		s.putMany(es, now)
		hits := s.query(&q, now, MaxLimit)
		found := map[string]bool{}
		for i, h := range hits {
			found[h.e.ad.ID] = true
			if !q.matchesEntry(h.e) {
				t.Fatalf("index found %q for %q, the matcher refuses it", h.e.attrs, kw)
			}
			if i > 0 && rankCmp(hits[i-1], h) > 0 {
				t.Fatalf("results out of order at %d", i)
			}
			// Only a keyword query scores; without one, results are
			// newest first with score 0.
			if q.kw != nil && (math.IsNaN(h.score) || h.score <= 0) {
				t.Fatalf("score %v", h.score)
			} else if q.kw == nil && h.score != 0 {
				t.Fatalf("score %v without keywords", h.score)
			}
		}
		for _, e := range es {
			if q.matchesEntry(e) && !found[e.ad.ID] {
				t.Fatalf("matcher accepts %q for %q (terms %q), the index did not find it", e.attrs, kw, q.kw.terms)
			}
		}
	})
}
