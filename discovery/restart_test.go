package discovery

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func namedEntry(t *testing.T, key crypto.PrivKey, id, name string, until time.Time) *entry {
	t.Helper()
	pub, _ := keyID(key)
	ad := Advertisement{Type: "fileshare.file", ID: id, Attrs: map[string]string{"name": name}, Publisher: pub, Seq: 1, Issued: time.Now(), Lifetime: time.Hour, Expiration: time.Hour}
	raw, err := seal(ad, key)
	if err != nil {
		t.Fatal(err)
	}
	return &entry{ad: ad, raw: raw, until: until}
}

func kwCount(t *testing.T, s *store, kw string, now time.Time) int {
	t.Helper()
	q := Query{Keywords: kw}
	if err := q.normalize(); err != nil {
		t.Fatal(err)
	}
	return len(s.query(&q, now, MaxLimit))
}

// Issue 14, test 7: the index is rebuilt from the cache at start, so it comes
// back with what was cached, without what expired meanwhile, and the expired
// are gone from disk.
func TestIndexRestartConsistent(t *testing.T) {
	dir := t.TempDir()
	key, _ := secNewKey(t)
	now := time.Now()
	s, _, err := openStore(dir, 1000, 1000, now)
	if err != nil {
		t.Fatal(err)
	}
	var es []*entry
	for i := range 50 {
		until := now.Add(time.Hour)
		name := fmt.Sprintf("kept song %d.mp3", i)
		if i%2 == 1 {
			until = now.Add(500 * time.Millisecond)
			name = fmt.Sprintf("fleeting song %d.mp3", i)
		}
		es = append(es, namedEntry(t, key, fmt.Sprint(i), name, until))
	}
	_, errs := s.putMany(es, now)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := kwCount(t, s, "song", now); n != 50 {
		t.Fatalf("before restart: %d", n)
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}

	later := now.Add(time.Second) // the fleeting ones expired while it was down
	s, purged, err := openStore(dir, 1000, 1000, later)
	if err != nil {
		t.Fatal(err)
	}
	if purged != 25 {
		t.Errorf("purged %d at start, want 25", purged)
	}
	if n := kwCount(t, s, "kept song", later); n != 25 {
		t.Errorf("after restart, kept: %d", n)
	}
	if n := kwCount(t, s, "fleeting", later); n != 0 {
		t.Errorf("after restart, expired still found: %d", n)
	}
	if n := kwCount(t, s, "so", later); n != 25 { // by prefix too
		t.Errorf("after restart, prefix: %d", n)
	}
	if s.ix.live != 25 || s.len() != 25 {
		t.Errorf("index holds %d, cache %d", s.ix.live, s.len())
	}
	s.close()
	s, purged, err = openStore(dir, 1000, 1000, later)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if purged != 0 || s.len() != 25 {
		t.Errorf("third start: purged %d, cached %d", purged, s.len())
	}
}

// Expiry while running: the janitor's purge removes expired entries from the
// index with the cache, and the index compacts under churn.
func TestIndexPurgeAndCompaction(t *testing.T) {
	key, _ := secNewKey(t)
	now := time.Now()
	s, _, _ := openStore("", 100_000, 100_000, now)
	for round := range 3 {
		var es []*entry
		for i := range 3000 {
			es = append(es, namedEntry(t, key, fmt.Sprint(round, "-", i), fmt.Sprintf("round%d item %d", round, i), now.Add(time.Duration(round+1)*time.Minute)))
		}
		s.putMany(es, now)
	}
	if n := kwCount(t, s, "item", now); n != MaxLimit {
		t.Fatalf("found %d", n)
	}
	at := now.Add(150 * time.Second) // rounds 0 and 1 expired
	if n := s.purge(at); n != 6000 {
		t.Fatalf("purged %d", n)
	}
	// Removal is lazy, and the dead never outnumber max(live, 4096).
	if s.ix.live != 3000 || s.ix.dead > max(s.ix.live, 4096) || len(s.ix.docs) != s.ix.live+s.ix.dead {
		t.Errorf("index: %d live, %d dead, %d slots", s.ix.live, s.ix.dead, len(s.ix.docs))
	}
	if n := kwCount(t, s, "round0", at); n != 0 {
		t.Errorf("purged still found: %d", n)
	}
	if n := kwCount(t, s, "round1 item", at); n != 0 {
		t.Errorf("purged still found: %d", n)
	}
	if n := kwCount(t, s, "round2 item 2999", at); n != 1 {
		t.Errorf("live after compaction: %d", n)
	}
	// A compaction drops the terms of the removed.
	s.mu.Lock()
	s.ix.compact()
	s.mu.Unlock()
	for k := range s.ix.terms {
		if strings.HasSuffix(k, "round0") || strings.HasSuffix(k, "round1") {
			t.Fatalf("term %q of purged entries left in the index", k)
		}
	}
	if len(s.ix.docs) != 3000 || kwCount(t, s, "round2 item 2999", at) != 1 {
		t.Errorf("after compaction: %d slots", len(s.ix.docs))
	}
}
