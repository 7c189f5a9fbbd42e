package discovery

import (
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func remoteEntry(t *testing.T, key crypto.PrivKey, id string, until time.Time) *entry {
	t.Helper()
	pub, _ := keyID(key)
	ad := Advertisement{Type: "t", ID: id, Publisher: pub, Seq: 1, Issued: time.Now(), Lifetime: time.Hour, Expiration: time.Hour}
	raw, err := seal(ad, key)
	if err != nil {
		t.Fatal(err)
	}
	return &entry{ad: ad, raw: raw, until: until}
}

func TestStoreEvictsFromTheLargestPublisher(t *testing.T) {
	s, _, err := openStore("", 10, 8, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	legit, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	if _, err := s.put(remoteEntry(t, legit, "legit", now.Add(time.Minute)), now); err != nil {
		t.Fatal(err)
	}
	sybils := make([]crypto.PrivKey, 3)
	for i := range sybils {
		sybils[i], _, _ = crypto.GenerateEd25519Key(rand.Reader)
	}
	for i := range 30 {
		_, err := s.put(remoteEntry(t, sybils[i%3], fmt.Sprint(i), now.Add(time.Hour)), now)
		if err != nil && !errors.Is(err, ErrQuota) {
			t.Fatal(err)
		}
	}
	if s.nrem != 10 {
		t.Fatalf("index holds %d, capacity 10", s.nrem)
	}
	pub, _ := keyID(legit)
	if _, ok := s.get(Key{Type: "t", ID: "legit", Publisher: pub}); !ok {
		t.Fatal("the publisher with one entry was evicted by the flood")
	}
	// The top publisher cannot push further by itself.
	var top crypto.PrivKey
	most := 0
	for _, k := range sybils {
		id, _ := keyID(k)
		if n := s.heldLocked(id); n > most {
			top, most = k, n
		}
	}
	if _, err := s.put(remoteEntry(t, top, "more", now.Add(time.Hour)), now); !errors.Is(err, ErrQuota) {
		t.Fatalf("largest publisher displaced others: %v", err)
	}
}

func TestRemoteCacheTimeIsCapped(t *testing.T) {
	now := time.Now()
	ad := Advertisement{Issued: now, Lifetime: 29 * 24 * time.Hour, Expiration: 1000 * time.Hour}
	if got := cacheUntil(&ad, now); got.Sub(now) != MaxExpiration {
		t.Fatalf("cached for %s, cap %s", got.Sub(now), MaxExpiration)
	}
	ad.Lifetime = MaxLifetime + time.Hour
	if err := ad.validateShape(); !errors.Is(err, ErrInvalid) {
		t.Fatalf("lifetime over the cap accepted: %v", err)
	}
}

// The same advertisement answered to Find after Find extends its cache time
// each time, but is written to disk only once the extension is worth it (a
// quarter of what is left), and what is on disk is then the latest.
func TestStoreRefreshWritesToDiskSparingly(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	s, _, err := openStore(dir, 100, 100, now)
	if err != nil {
		t.Fatal(err)
	}
	key, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	e := remoteEntry(t, key, "x", now.Add(time.Hour))
	if _, err := s.put(e, now); err != nil {
		t.Fatal(err)
	}
	writes := func() int { st := s.db.Stats(); return int(st.TxStats.GetWrite()) }
	before := writes()
	for i := 1; i <= 100; i++ { // an answer a second for 100 s
		at := now.Add(time.Duration(i) * time.Second)
		if _, err := s.put(remoteEntry(t, key, "x", at.Add(time.Hour)), at); err != nil {
			t.Fatal(err)
		}
	}
	if w := writes() - before; w != 0 {
		t.Fatalf("100 small refreshes wrote %d times to disk, want none", w)
	}
	at := now.Add(20 * time.Minute) // extends it by a third of an hour
	latest := at.Add(time.Hour)
	if _, err := s.put(remoteEntry(t, key, "x", latest), at); err != nil {
		t.Fatal(err)
	}
	if writes() == before {
		t.Fatal("a refresh by 20 minutes of an hour was not written to disk")
	}
	if err := s.close(); err != nil {
		t.Fatal(err)
	}
	s, _, err = openStore(dir, 100, 100, at)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	pub, _ := keyID(key)
	got, ok := s.get(Key{Type: "t", ID: "x", Publisher: pub})
	if !ok || got.until.UnixMilli() != latest.UnixMilli() {
		t.Fatalf("after reopening: %v, until %v, want %v", ok, got.until, latest)
	}
}
