package discovery

import (
	"crypto/sha256"
	"fmt"
	"iter"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/peer"
)

// entry is one cached advertisement.
type entry struct {
	ad     Advertisement
	raw    []byte    // the signed envelope, served as is
	until  time.Time // cached until; for own advertisements, the lifetime's end
	local  bool      // published by this peer
	doc    uint32    // document number in the index; guarded by the store's mu
	dl     uint16    // tokens indexed
	offers *offers   // publishers of the same type and ID; guarded by the store's mu
	// attrs are the advertisement's attributes, key and value in turn, sorted
	// by key: once stored, ad.Attrs is nil (a small map costs ~300 bytes,
	// this ~60). Immutable once stored.
	attrs []string
}

// compact moves ad.Attrs into attrs.
func (e *entry) compact() {
	if e.ad.Attrs == nil {
		return
	}
	e.attrs = make([]string, 0, 2*len(e.ad.Attrs))
	for _, k := range slices.Sorted(maps.Keys(e.ad.Attrs)) {
		e.attrs = append(e.attrs, k, e.ad.Attrs[k])
	}
	e.ad.Attrs = nil
}

// attrSeq yields the attributes, stored or not.
func (e *entry) attrSeq() iter.Seq2[string, string] {
	if e.ad.Attrs != nil {
		return maps.All(e.ad.Attrs)
	}
	return func(yield func(string, string) bool) {
		for i := 0; i+1 < len(e.attrs); i += 2 {
			if !yield(e.attrs[i], e.attrs[i+1]) {
				return
			}
		}
	}
}

// advert returns the advertisement, a copy the caller owns.
func (e *entry) advert() Advertisement {
	a := e.ad
	if a.Attrs != nil {
		return cloneAd(a)
	}
	if len(e.attrs) > 0 {
		a.Attrs = make(map[string]string, len(e.attrs)/2)
		for k, v := range e.attrSeq() {
			a.Attrs[k] = v
		}
	}
	a.Body = slices.Clone(a.Body)
	return a
}

// store is the cache of advertisements: in memory, written through to bbolt
// when the peer has a directory. It is bounded: a capacity, a quota per
// publisher, and, when full, eviction of expired entries first, then of an
// entry of the publisher holding the most — so that many identities flooding
// the index evict each other, not the publishers who hold a few entries. Own
// advertisements count against neither bound.
type store struct {
	capacity, quota int

	mu      sync.RWMutex
	ix      *index              // guarded by mu
	byKey   map[Key]*entry      // guarded by mu
	byHash  map[[32]byte]*entry // guarded by mu; by sha256 of the envelope
	byPub   map[peer.ID]*pubSet // guarded by mu; remote entries per publisher
	nrem    int                 // guarded by mu; remote entries in all
	soonest time.Time           // guarded by mu; no entry expires before it
	db      *bolt.DB            // nil for in-memory peers; closed by close
}

var bucketAds = []byte("ads")

// dbFile is the cache's file inside the peer directory.
const dbFile = "discovery.db"

func openStore(dir string, capacity, quota int, now time.Time) (*store, int, error) {
	s := &store{capacity: capacity, quota: quota, ix: newIndex(), byKey: make(map[Key]*entry), byHash: make(map[[32]byte]*entry), byPub: make(map[peer.ID]*pubSet)}
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
			s.addLocked(&entry{ad: ad, raw: slices.Clone(de.Raw), until: until, local: de.Local})
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
	fresh, errs := s.putMany([]*entry{e}, now)
	return fresh[0], errs[0]
}

// putMany puts each entry as put does, and writes them to disk in one
// transaction.
func (s *store) putMany(es []*entry, now time.Time) (fresh []bool, errs []error) {
	fresh, errs = make([]bool, len(es)), make([]error, len(es))
	s.mu.Lock()
	defer s.mu.Unlock()
	var dirty []*entry
	for i, e := range es {
		var w *entry
		fresh[i], w, errs[i] = s.putLocked(e, now)
		if w != nil {
			dirty = append(dirty, w)
		}
	}
	if err := s.persist(dirty); err != nil {
		for i := range errs {
			errs[i] = cmpErr(errs[i], err)
		}
	}
	return fresh, errs
}

// putLocked inserts or refreshes e in memory, and returns the entry to write
// to disk, if any.
func (s *store) putLocked(e *entry, now time.Time) (bool, *entry, error) {
	k := e.ad.Key()
	if old, ok := s.byKey[k]; ok {
		if old.ad.Seq > e.ad.Seq {
			return false, nil, nil
		}
		if old.ad.Seq == e.ad.Seq {
			if worthExtending(old.until, e.until, now) { // a republish, or an answer, refreshes the cache
				old.until = e.until
				return false, old, nil
			}
			return false, nil, nil
		}
		s.unlinkLocked(k, old)
	} else if !e.local {
		if s.heldLocked(k.Publisher) >= s.quota {
			s.purgeDueLocked(now)
			if s.heldLocked(k.Publisher) >= s.quota {
				return false, nil, fmt.Errorf("%w: publisher %s holds %d entries", ErrQuota, k.Publisher, s.quota)
			}
		}
		if s.nrem >= s.capacity {
			s.purgeDueLocked(now)
			if s.nrem >= s.capacity && !s.evictFairLocked(k.Publisher) {
				return false, nil, fmt.Errorf("%w: index full (%d entries)", ErrQuota, s.capacity)
			}
		}
	}
	s.addLocked(e)
	return true, e, nil
}

// overQuota reports whether an advertisement k, not yet held, would be
// refused under its publisher's quota.
func (s *store) overQuota(k Key) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.byKey[k]; ok {
		return false
	}
	return s.heldLocked(k.Publisher) >= s.quota
}

// refresh extends the cache time of the entries whose envelopes hash to
// digests, to until of each; it returns the indexes of the digests it lacks
// (or that belong to another publisher).
func (s *store) refresh(pub peer.ID, digests [][]byte, until func(*Advertisement) time.Time) (missing []int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	var dirty []*entry
	for i, d := range digests {
		if len(d) != sha256.Size {
			missing = append(missing, i)
			continue
		}
		e, ok := s.byHash[[32]byte(d)]
		if !ok || e.ad.Publisher != pub {
			missing = append(missing, i)
			continue
		}
		if u := until(&e.ad); worthExtending(e.until, u, now) {
			e.until = u
			dirty = append(dirty, e)
		}
	}
	return missing, s.persist(dirty)
}

// pubSet is one remote publisher's entries.
type pubSet struct {
	id peer.ID // shared by its entries' advertisements
	es map[*entry]struct{}
}

func (s *store) heldLocked(pub peer.ID) int {
	if ps := s.byPub[pub]; ps != nil {
		return len(ps.es)
	}
	return 0
}

// held returns how many entries pub holds.
func (s *store) held(pub peer.ID) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.heldLocked(pub)
}

func (s *store) addLocked(e *entry) {
	var ps *pubSet
	if !e.local {
		if ps = s.byPub[e.ad.Publisher]; ps == nil {
			ps = &pubSet{id: e.ad.Publisher, es: map[*entry]struct{}{}}
			s.byPub[ps.id] = ps
		}
		e.ad.Publisher = ps.id // one copy of the ID per publisher
	}
	e.compact()
	k := e.ad.Key()
	s.byKey[k] = e
	s.byHash[sha256.Sum256(e.raw)] = e
	s.ix.add(e)
	if s.soonest.IsZero() || e.until.Before(s.soonest) {
		s.soonest = e.until
	}
	if e.local {
		return
	}
	ps.es[e] = struct{}{}
	s.nrem++
}

func (s *store) unlinkLocked(k Key, e *entry) {
	delete(s.byKey, k)
	delete(s.byHash, sha256.Sum256(e.raw))
	s.ix.remove(e)
	if e.local {
		return
	}
	s.nrem--
	if ps := s.byPub[k.Publisher]; ps != nil {
		delete(ps.es, e)
		if len(ps.es) == 0 {
			delete(s.byPub, k.Publisher)
		}
	}
}

// evictFairLocked makes room for an entry of newcomer by evicting the
// soonest-expiring entry of the publisher that holds the most entries. If that
// is the newcomer itself, it refuses: a publisher cannot displace others by
// filling the index. It reports whether room was made.
func (s *store) evictFairLocked(newcomer peer.ID) bool {
	var top peer.ID
	most := 0
	for pub, ps := range s.byPub {
		if len(ps.es) > most || (len(ps.es) == most && pub < top) {
			top, most = pub, len(ps.es)
		}
	}
	if most == 0 || top == newcomer || most <= s.heldLocked(newcomer)+1 {
		return false
	}
	var victim *entry
	for e := range s.byPub[top].es {
		if victim == nil || e.until.Before(victim.until) {
			victim = e
		}
	}
	s.deleteLocked(victim.ad.Key())
	return true
}

func (s *store) persist(es []*entry) error {
	if s.db == nil || len(es) == 0 {
		return nil
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAds)
		for _, e := range es {
			v, err := encMode.Marshal(diskEntry{Raw: e.raw, Until: e.until.UnixMilli(), Local: e.local})
			if err != nil {
				return err
			}
			if err := b.Put(diskKey(e.ad.Key()), v); err != nil {
				return err
			}
		}
		return nil
	})
}

// worthExtending reports whether a refresh to next extends a cache time of
// cur by enough to be kept and written to disk: by a quarter of what is left
// of next. The same advertisement answered to Find after Find would
// otherwise cost a disk transaction (an fsync) per answer. The time in memory
// stays the time on disk, so an entry needs no second one; a cached copy
// refreshed often lives at most a quarter less than it could.
func worthExtending(cur, next, now time.Time) bool {
	return next.After(cur) && next.Sub(cur) >= next.Sub(now)/4
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
	s.unlinkLocked(k, e)
	if s.db != nil {
		_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketAds).Delete(diskKey(k)) })
	}
	return true
}

func (s *store) purge(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purgeDueLocked(now)
}

// purgeDueLocked purges only if some entry may have expired: it keeps inserts
// under a flood from scanning the whole index each time.
func (s *store) purgeDueLocked(now time.Time) int {
	if s.soonest.IsZero() || now.Before(s.soonest) {
		return 0
	}
	return s.purgeLocked(now)
}

func (s *store) purgeLocked(now time.Time) int {
	var dead []Key
	var soonest time.Time
	for k, e := range s.byKey {
		if !e.until.After(now) {
			dead = append(dead, k)
		} else if soonest.IsZero() || e.until.Before(soonest) {
			soonest = e.until
		}
	}
	for _, k := range dead {
		s.deleteLocked(k)
	}
	s.soonest = soonest
	return len(dead)
}

// globBudget bounds the time one attribute (glob) query spends matching,
// outside the lock: a pattern over every attribute of every advertisement
// must not stall the index (issue 12, item 4).
const globBudget = 100 * time.Millisecond

// query returns the live entries matching q, best first: ranked for a keyword
// query, newest first otherwise; at most want. Keyword queries read the index
// under a read lock, with a bounded number of postings; attribute queries
// match outside the lock, within globBudget.
func (s *store) query(q *Query, now time.Time, want int) []hit {
	if q.kw != nil {
		s.mu.RLock()
		defer s.mu.RUnlock()
		return s.ix.search(q.kw, q.Scope, q.Type, now, want)
	}
	s.mu.RLock()
	snap := make([]hit, 0, s.ix.live)
	for _, e := range s.ix.docs {
		if e != nil && e.ad.Scope == q.Scope && (q.Type == "" || e.ad.Type == q.Type) && e.until.After(now) {
			snap = append(snap, hit{e: e, until: e.until})
		}
	}
	s.mu.RUnlock()
	top := &topK{k: want}
	deadline := time.Now().Add(globBudget)
	for i := range snap {
		if i%256 == 255 && time.Now().After(deadline) {
			break
		}
		if q.matchesEntry(snap[i].e) {
			top.offer(snap[i])
		}
	}
	return top.sorted()
}

// page returns hits[offset:offset+limit], within bounds.
func page(hits []hit, offset, limit int) []hit {
	if offset >= len(hits) {
		return nil
	}
	hits = hits[offset:]
	return hits[:min(len(hits), limit)]
}

// verified returns the advertisement of an envelope identical to raw that is
// already cached and still valid at now: it was verified when it came in, and
// byte-equal input needs no second signature check.
func (s *store) verified(raw []byte, now time.Time) (Advertisement, bool) {
	h := sha256.Sum256(raw)
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byHash[h]
	if !ok || !e.ad.ValidUntil().After(now) {
		return Advertisement{}, false
	}
	return e.advert(), true
}

func (s *store) get(k Key) (*entry, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	e, ok := s.byKey[k]
	return e, ok
}

func (s *store) len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.byKey)
}
