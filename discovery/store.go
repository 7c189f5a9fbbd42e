package discovery

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
	bolt "go.etcd.io/bbolt"
)

// entry is one cached advertisement.
type entry struct {
	ad    Advertisement
	raw   []byte    // the signed envelope, served as is
	until time.Time // cached until; for own advertisements, the lifetime's end
	local bool      // published by this peer
}

// store is the cache of advertisements: in memory, written through to bbolt
// when the peer has a directory. It is bounded: a capacity, a quota per
// publisher, and eviction of expired entries first, then of those expiring
// soonest. Own advertisements count against neither bound.
type store struct {
	capacity, quota int

	mu    sync.Mutex
	byKey map[Key]*entry   // guarded by mu
	byPub map[lpeer.ID]int // guarded by mu; remote entries per publisher
	nrem  int              // guarded by mu; remote entries in all
	db    *bolt.DB         // nil for in-memory peers; closed by close
}

var bucketAds = []byte("ads")

// dbFile is the cache's file inside the peer directory.
const dbFile = "discovery.db"

func openStore(dir string, capacity, quota int, now time.Time) (*store, int, error) {
	s := &store{capacity: capacity, quota: quota, byKey: make(map[Key]*entry), byPub: make(map[lpeer.ID]int)}
	if dir == "" {
		return s, 0, nil
	}
	path := filepath.Join(dir, dbFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, 0, fmt.Errorf("discovery: open cache %s: %w", path, err)
	}
	s.db = db
	purged, err := s.load(now)
	if err != nil {
		db.Close()
		return nil, 0, fmt.Errorf("discovery: load cache %s: %w", path, err)
	}
	return s, purged, nil
}

type diskEntry struct {
	Raw   []byte `cbor:"1,keyasint"`
	Until int64  `cbor:"2,keyasint"` // unix milliseconds
	Local bool   `cbor:"3,keyasint,omitempty"`
}

func diskKey(k Key) []byte {
	b, _ := encMode.Marshal([]string{k.Scope, k.Type, k.ID, string(k.Publisher)})
	return b
}

// load reads the cache back, re-verifying every advertisement, and deletes the
// expired and the unreadable.
func (s *store) load(now time.Time) (purged int, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketAds)
		if err != nil {
			return err
		}
		var dead [][]byte
		err = b.ForEach(func(k, v []byte) error {
			var de diskEntry
			if err := decMode.Unmarshal(v, &de); err != nil {
				dead = append(dead, slices.Clone(k))
				return nil
			}
			until := time.UnixMilli(de.Until)
			ad, err := Verify(de.Raw, now)
			if err != nil || !until.After(now) {
				dead = append(dead, slices.Clone(k))
				return nil
			}
			e := &entry{ad: ad, raw: slices.Clone(de.Raw), until: until, local: de.Local}
			s.byKey[ad.Key()] = e
			if !e.local {
				s.byPub[ad.Publisher]++
				s.nrem++
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range dead {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		purged = len(dead)
		return nil
	})
	return purged, err
}

func (s *store) close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// put inserts or refreshes e. It reports whether the advertisement is new or a
// newer version (false for a refresh of the same version or an older one).
func (s *store) put(e *entry, now time.Time) (bool, error) {
	k := e.ad.Key()
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.byKey[k]; ok {
		if old.ad.Seq > e.ad.Seq {
			return false, nil
		}
		if old.ad.Seq == e.ad.Seq {
			if e.until.After(old.until) { // a republish refreshes the cache
				old.until = e.until
				return false, s.persist(k, old)
			}
			return false, nil
		}
		if !old.local {
			s.byPub[k.Publisher]--
			s.nrem--
		}
		delete(s.byKey, k)
	} else if !e.local {
		if s.byPub[k.Publisher] >= s.quota {
			s.purgeLocked(now)
			if s.byPub[k.Publisher] >= s.quota {
				return false, fmt.Errorf("%w: publisher %s holds %d entries", ErrQuota, k.Publisher, s.quota)
			}
		}
		if s.remoteLen() >= s.capacity {
			s.purgeLocked(now)
			if s.remoteLen() >= s.capacity && !s.evictSoonestLocked(e.until) {
				return false, fmt.Errorf("%w: index full (%d entries)", ErrQuota, s.capacity)
			}
		}
	}
	s.byKey[k] = e
	if !e.local {
		s.byPub[k.Publisher]++
		s.nrem++
	}
	return true, s.persist(k, e)
}

func (s *store) remoteLen() int { return s.nrem }

// evictSoonestLocked evicts the remote entry that expires first, if it expires
// before until. It reports whether room was made.
func (s *store) evictSoonestLocked(until time.Time) bool {
	var victim *entry
	for _, e := range s.byKey {
		if !e.local && (victim == nil || e.until.Before(victim.until)) {
			victim = e
		}
	}
	if victim == nil || !victim.until.Before(until) {
		return false
	}
	s.deleteLocked(victim.ad.Key())
	return true
}

func (s *store) persist(k Key, e *entry) error {
	if s.db == nil {
		return nil
	}
	v, err := encMode.Marshal(diskEntry{Raw: e.raw, Until: e.until.UnixMilli(), Local: e.local})
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAds).Put(diskKey(k), v) })
}

func (s *store) remove(k Key) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.deleteLocked(k)
}

func (s *store) deleteLocked(k Key) bool {
	e, ok := s.byKey[k]
	if !ok {
		return false
	}
	delete(s.byKey, k)
	if !e.local {
		s.nrem--
		if s.byPub[k.Publisher]--; s.byPub[k.Publisher] <= 0 {
			delete(s.byPub, k.Publisher)
		}
	}
	if s.db != nil {
		_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAds).Delete(diskKey(k)) })
	}
	return true
}

func (s *store) purge(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purgeLocked(now)
}

func (s *store) purgeLocked(now time.Time) int {
	var dead []Key
	for k, e := range s.byKey {
		if !e.until.After(now) {
			dead = append(dead, k)
		}
	}
	for _, k := range dead {
		s.deleteLocked(k)
	}
	return len(dead)
}

// query returns live entries matching q, newest issued first, at most limit.
func (s *store) query(q *Query, now time.Time, limit int) []*entry {
	s.mu.Lock()
	var out []*entry
	for _, e := range s.byKey {
		if e.until.After(now) && q.matches(&e.ad) {
			out = append(out, e)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *entry) int { return cmp.Compare(b.ad.Issued.UnixNano(), a.ad.Issued.UnixNano()) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (s *store) get(k Key) (*entry, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.byKey[k]
	return e, ok
}

func (s *store) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byKey)
}
