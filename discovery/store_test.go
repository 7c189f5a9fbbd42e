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
