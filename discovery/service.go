package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
)

// Config tunes a discovery service. The zero value is right for most peers.
type Config struct {
	// Capacity bounds the cache of remote advertisements; on a super-peer this
	// is the index. Default 100,000: a household of ten sharers with 10,000
	// files each, and room to spare (about 1.5 KiB of memory each).
	Capacity int
	// PublisherQuota bounds the cached advertisements of any one remote
	// publisher. Default 20,000.
	PublisherQuota int
	// TrustedSuperPeers are peers that a super-peer forwards queries to, besides
	// the super-peers in the peer's own configuration. No other peer is
	// forwarded to, whatever protocols it advertises.
	TrustedSuperPeers []peer.ID
	// Flood makes this peer forward flooded queries to its neighbours
	// (Gnutella). Off by default: flooding's cost grows with the network.
	Flood bool
	// QueryRate and PublishRate bound what one remote peer may ask of this peer,
	// per second (bursts of twice as many): queries, and advertisements
	// published or refreshed. Defaults 20 and 5,000: the burst of 10,000 is
	// a sharer's 10,000 files at once; a publish batch waits for its tokens.
	QueryRate, PublishRate float64
	// NoPeerAdvertisement stops the peer's own advertisement (TypePeer, with its
	// name and invite) from being published at start.
	NoPeerAdvertisement bool
	// NoDHT stops publishing provider records in the DHT.
	NoDHT bool
	// Tick is how often the janitor purges, republishes and forgets. Default
	// 250 ms.
	Tick time.Duration
}

func (c *Config) defaults() {
	if c.Capacity <= 0 {
		c.Capacity = DefaultCapacity
	}
	if c.PublisherQuota <= 0 {
		c.PublisherQuota = DefaultPublisherQuota
	}
	if c.QueryRate <= 0 {
		c.QueryRate = 20
	}
	if c.PublishRate <= 0 {
		c.PublishRate = 5_000
	}
	if c.Tick <= 0 {
		c.Tick = 250 * time.Millisecond
	}
}

// Index defaults.
const (
	DefaultCapacity       = 100_000
	DefaultPublisherQuota = 20_000
)

// Bounds of the per-peer maps.
const (
	// maxSeen bounds the remembered query IDs (each at most MaxQID bytes).
	maxSeen = 1 << 16
	// seenFor is how long a query ID is remembered.
	seenFor = time.Minute
	// maxLimiters bounds the per-peer rate limiters.
	maxLimiters = 4096
)

// Service is discovery in one scope. New returns the net group's; Scoped gives
// the same service in another scope (a group). All scopes share one cache, one
// protocol handler and one Close.
type Service struct {
	*core
	scope string
}

// core is what all scopes share.
type core struct {
	p     *peer.Peer
	host  host.Host
	key   crypto.PrivKey
	cfg   Config
	log   *slog.Logger
	store *store
	watch *event.Bus[Advertisement]

	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	seenMu sync.Mutex
	seen   *lru.Cache[string, time.Time] // query IDs recently handled; size-bounded; checked and added under seenMu
	limits *lru.Cache[peer.ID, *limits]  // per remote peer; size-bounded
	trust  sync.Map                      // peer.ID → bool: trusted super-peers
	scans  chan struct{}                 // slots for remote attribute (glob) scans
	keep   keeper                        // idle query streams, for the next query to the same peer

	mu        sync.Mutex
	published map[Key]*published // guarded by mu; own live advertisements
	idleBy    map[peer.ID]int    // guarded by mu; served streams waiting for another query, by asker
	idling    int                // guarded by mu; their sum

	dropped   sync.Map // reason → *atomic.Uint64
	sent      atomic.Uint64
	served    atomic.Uint64
	purged    atomic.Uint64
	remoteErr atomic.Uint64
	accepted  atomic.Uint64
	refreshed atomic.Uint64
	opened    atomic.Uint64 // streams this peer opened
}

type published struct {
	ad        Advertisement
	raw       []byte
	next      time.Time            // next republish
	rebuild   func() Advertisement // non-nil: re-sign from this at republish
	renew     bool                 // re-sign once half the lifetime has passed (PublishRenewed)
	providing bool
}

type limits struct {
	query, publish *rate.Limiter
}

// New starts discovery on p: it registers the discovery protocol, loads the
// persisted cache from the peer's directory (purging what expired), and
// publishes the peer's own advertisement.
func New(ctx context.Context, p *peer.Peer, cfg Config) (_ *Service, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg.defaults()
	lp := p.Libp2p()
	h, key := lp.Host, lp.Key
	c := &core{
		p: p, host: h, key: key, cfg: cfg, log: p.Logger().With("svc", "discovery"),
		watch:     event.New[Advertisement](),
		published: make(map[Key]*published),
	}
	c.scans = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))
	c.seen, _ = lru.New[string, time.Time](maxSeen)
	c.limits, _ = lru.New[peer.ID, *limits](maxLimiters)
	for _, id := range cfg.TrustedSuperPeers {
		c.trust.Store(id, true)
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var purged int
	if c.store, purged, err = openStore(p.Dir(), cfg.Capacity, cfg.PublisherQuota, time.Now()); err != nil {
		c.cancel()
		return nil, err
	}
	c.purged.Add(uint64(purged))
	h.SetStreamHandler(ProtocolID, c.handle)
	c.wg.Add(2)
	go c.janitor()
	go c.followSuperPeers(p.Subscribe(c.ctx, 0))
	s := &Service{core: c}
	if !cfg.NoPeerAdvertisement {
		if _, err := s.publish(ctx, s.peerAd(), s.peerAd); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

func (s *Service) peerAd() Advertisement {
	return Advertisement{
		Type:  TypePeer,
		ID:    s.p.ID().String(),
		Attrs: map[string]string{"name": s.p.Name(), "id": s.p.ID().String()},
		Body:  []byte(s.p.Invite()),
	}
}

// Scoped returns this discovery service acting in scope: what it publishes
// belongs to scope, and its queries see only scope. Groups use it.
func (s *Service) Scoped(scope string) *Service { return &Service{core: s.core, scope: scope} }

// Scope is the scope this service acts in; "" is the net group.
func (s *Service) Scope() string { return s.scope }

// Close stops the service: it withdraws nothing remotely (advertisements expire
// on their own), closes the cache, and waits for its goroutines. A second call
// returns an error wrapping net.ErrClosed.
func (c *core) Close() error {
	c.mu.Lock()
	first := c.closed.CompareAndSwap(false, true)
	c.mu.Unlock()
	if !first {
		return fmt.Errorf("discovery: close: %w", net.ErrClosed)
	}
	c.host.RemoveStreamHandler(ProtocolID)
	c.cancel()
	c.keep.close()
	c.wg.Wait()
	c.watch.Close()
	return c.store.close()
}

// Publish signs ad as this peer, stores it, pushes it to the connected
// super-peers and, unless NoDHT, announces its attributes in the DHT. It
// republishes before others' copies expire, for as long as the advertisement's
// lifetime lasts or until Flush. Publisher, Seq and Issued are set here, and
// Scope is the service's; the published advertisement is returned.
//
// Publish fails only when the advertisement cannot be signed or stored; a
// super-peer that refuses it is logged, counted in Stats.RemoteErrors, and
// tried again at the next republish.
func (s *Service) Publish(ctx context.Context, ad Advertisement) (Advertisement, error) {
	return s.publish(ctx, ad, nil)
}

func (s *Service) publish(ctx context.Context, ad Advertisement, rebuild func() Advertisement) (Advertisement, error) {
	out, err := s.publishMany(ctx, []Advertisement{ad}, rebuild, false)
	if err != nil {
		return Advertisement{}, err
	}
	return out[0], nil
}

// sign prepares ad for publishing: scope, publisher, defaults, a Seq above
// any earlier version's; then it signs it and decodes it back, so that what is
// handed out is exactly what receivers will see.
func (s *Service) sign(ad Advertisement, now time.Time) (Advertisement, []byte, error) {
	ad = cloneAd(ad)
	ad.Scope = s.scope
	ad.Publisher = s.p.ID()
	if ad.Lifetime == 0 {
		ad.Lifetime = DefaultLifetime
	}
	if ad.Expiration == 0 {
		ad.Expiration = DefaultExpiration
	}
	ad.Issued = now
	k := ad.Key()
	s.mu.Lock()
	ad.Seq = uint64(now.UnixNano())
	if old, ok := s.published[k]; ok && old.ad.Seq >= ad.Seq {
		ad.Seq = old.ad.Seq + 1
	}
	if old, ok := s.store.get(k); ok && old.ad.Seq >= ad.Seq {
		ad.Seq = old.ad.Seq + 1
	}
	s.mu.Unlock()
	raw, err := seal(ad, s.key)
	if err != nil {
		return Advertisement{}, nil, err
	}
	// Decoded back (not re-verified: we just signed it), so that what is
	// handed out is exactly what receivers will decode.
	if ad, err = peek(raw); err != nil {
		return Advertisement{}, nil, fmt.Errorf("discovery: publish: %w", err)
	}
	return ad, raw, nil
}

func republishAfter(ad *Advertisement) time.Duration {
	// At half: a republish delayed by a busy machine or a slow link still
	// lands before the copies expire.
	return max(ad.Expiration/2, 100*time.Millisecond)
}

// followSuperPeers hands every live advertisement of ours to a super-peer as
// soon as it connects: at start, and after it restarts with an empty index.
func (c *core) followSuperPeers(sub *event.Subscription[peer.Event]) {
	defer c.wg.Done()
	sps := map[peer.ID]bool{}
	for _, sp := range c.p.SuperPeers() {
		sps[sp.ID] = true
	}
	for ev := range sub.C {
		pc, ok := ev.(peer.PeerConnected)
		if !ok || !sps[pc.Peer] {
			continue
		}
		c.mu.Lock()
		var raws [][]byte
		for _, p := range c.published {
			raws = append(raws, p.raw)
		}
		c.mu.Unlock()
		c.refreshTo(c.ctx, pc.Peer, raws) // a super-peer that kept them gets digests only
	}
}

// Flush withdraws one of this peer's advertisements: from the cache, from the
// republish schedule, and from the connected super-peers' indexes.
func (s *Service) Flush(ctx context.Context, typ, id string) error {
	if s.closed.Load() {
		return fmt.Errorf("discovery: flush: %w", net.ErrClosed)
	}
	k := Key{Scope: s.scope, Type: typ, ID: id, Publisher: s.p.ID()}
	s.mu.Lock()
	delete(s.published, k)
	s.mu.Unlock()
	s.store.remove(k)
	var errs []error
	for _, sp := range s.p.ConnectedSuperPeers() {
		req := request{Op: opFlush, Scope: k.Scope, Type: typ, ID: id}
		if err := s.call(ctx, sp, req, func(*response) error { return nil }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Local returns the cached advertisements matching q, own ones included:
// ranked for a keyword query, newest first otherwise; the page at q.Offset.
func (s *Service) Local(q Query) ([]Advertisement, error) {
	rs, err := s.LocalResults(q)
	if err != nil {
		return nil, err
	}
	out := make([]Advertisement, len(rs))
	for i, r := range rs {
		out[i] = r.Advertisement
	}
	return out, nil
}

// LocalResults is Local with each result's score and publisher count.
func (s *Service) LocalResults(q Query) ([]Result, error) {
	q.Scope = s.scope
	if err := q.normalize(); err != nil {
		return nil, err
	}
	var out []Result
	for _, h := range page(s.store.query(&q, time.Now(), q.Offset+q.Limit), q.Offset, q.Limit) {
		out = append(out, Result{Advertisement: h.e.advert(), Source: SourceLocal, From: s.p.ID(), Score: h.score, Publishers: h.pubs})
	}
	return out, nil
}

// Watch delivers every advertisement matching q that enters the cache, new or
// as a newer version, from any source: JXTA's DiscoveryListener. The delivery
// contract is juxta's one for events (package event): drain C; a
// full buffer drops and counts; C closes when ctx ends or the service closes.
func (s *Service) Watch(ctx context.Context, q Query) (*event.Subscription[Advertisement], error) {
	q.Scope = s.scope
	if err := q.normalize(); err != nil {
		return nil, err
	}
	return s.watch.SubscribeFunc(ctx, 0, func(a Advertisement) bool { return q.matches(&a) }), nil
}

// Raw returns the signed envelope of a cached advertisement, as received or
// published, for handing on (for example inside a group credential).
func (c *core) Raw(k Key) ([]byte, bool) {
	e, ok := c.store.get(k)
	if !ok {
		return nil, false
	}
	return slices.Clone(e.raw), true
}

// insert puts e into the cache and tells the watchers when it is new. fresh
// reports that the cache kept e: also with an error from the disk (a full
// disk), since the memory cache holds it all the same.
func (c *core) insert(e *entry) (fresh bool, err error) {
	fresh, err = c.store.put(e, time.Now())
	if errors.Is(err, ErrQuota) {
		c.drop(DropQuota)
	}
	if fresh {
		c.watch.Publish(e.advert())
	}
	return fresh, err
}

// verify is Verify with a shortcut: an envelope byte-identical to a cached,
// still valid one was verified when it came in. Every drop is counted.
func (c *core) verify(raw []byte, now time.Time) (Advertisement, error) {
	if ad, ok := c.store.verified(raw, now); ok {
		return ad, nil
	}
	ad, err := Verify(raw, now)
	if err != nil {
		c.drop(dropReason(err))
	}
	return ad, err
}

func (c *core) drop(reason string) {
	v, _ := c.dropped.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

func (c *core) countSent() { c.sent.Add(1) }

// Stats are counters since the service started.
type Stats struct {
	// Cached is the number of advertisements in the cache (or index).
	Cached int
	// Dropped counts rejected input by reason (the Drop… constants).
	Dropped map[string]uint64
	// MessagesSent counts protocol frames this peer wrote: requests, answers
	// and forwarded queries.
	MessagesSent uint64
	// QueriesServed counts queries this peer answered.
	QueriesServed uint64
	// Purged counts expired advertisements removed from the cache.
	Purged uint64
	// RemoteErrors counts publishes and flushes a super-peer refused or missed.
	RemoteErrors uint64
	// Accepted counts advertisements (new, or new versions) this super-peer
	// indexed from publish frames; Refreshed, those it kept alive by digest
	// (not sent again).
	Accepted, Refreshed uint64
}

// Stats returns the service's counters.
func (c *core) Stats() Stats {
	st := Stats{
		Cached: c.store.len(), Dropped: map[string]uint64{},
		MessagesSent: c.sent.Load(), QueriesServed: c.served.Load(),
		Purged: c.purged.Load(), RemoteErrors: c.remoteErr.Load(),
		Accepted: c.accepted.Load(), Refreshed: c.refreshed.Load(),
	}
	c.dropped.Range(func(k, v any) bool {
		st.Dropped[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return st
}

// janitor purges expired entries and republishes own advertisements before
// others' copies expire.
func (c *core) janitor() {
	defer c.wg.Done()
	t := time.NewTicker(c.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case now := <-t.C:
			c.purged.Add(uint64(c.store.purge(now)))
			c.keep.sweep(now)
			c.republish(now)
		}
	}
}

// republish re-signs what must be rebuilt or renewed (PublishRenewed), and
// refreshes the rest at every connected super-peer by digest: unchanged
// advertisements are not sent again.
func (c *core) republish(now time.Time) {
	c.mu.Lock()
	var due, renewals []*published
	for k, p := range c.published {
		switch {
		case p.renew && renewDue(&p.ad, now):
			// Even past its lifetime, should the janitor have stalled.
			renewals = append(renewals, p)
		case !p.ad.ValidUntil().After(now):
			delete(c.published, k)
		case !now.Before(p.next):
			p.next = now.Add(republishAfter(&p.ad))
			due = append(due, p)
		}
	}
	c.mu.Unlock()
	for _, p := range renewals {
		c.renew(c.ctx, p, now)
	}
	var raws [][]byte
	var ads []Advertisement
	for _, p := range due {
		if p.rebuild != nil {
			s := &Service{core: c, scope: p.ad.Scope}
			if _, err := s.publish(c.ctx, p.rebuild(), p.rebuild); err != nil {
				c.log.Debug("republish failed", "type", p.ad.Type, "id", p.ad.ID, "err", err)
			}
			continue
		}
		raws = append(raws, p.raw)
		ads = append(ads, p.ad)
	}
	if len(raws) == 0 {
		return
	}
	for _, sp := range c.p.ConnectedSuperPeers() {
		if sp != c.p.ID() {
			c.refreshTo(c.ctx, sp, raws)
		}
	}
	c.provideMany(ads)
}

// firstSeen records a query ID and reports whether it is new.
// IDs are at most MaxQID bytes and the set is a size-bounded LRU, so no peer
// can pin memory with them.
//
// A repeat is refused even from the peer that sent it first: a flood would
// otherwise go round again behind any repeat. So a query that call sends
// again, after the stream it went on died, is answered empty by a peer that
// had read it already; that peer's answer is lost, which is rare, and no
// worse than the error call would return without the retry.
func (c *core) firstSeen(qid []byte) bool {
	if len(qid) == 0 {
		return true
	}
	now := time.Now()
	c.seenMu.Lock() // the check and the record in one step: two copies arriving at once are not both new
	defer c.seenMu.Unlock()
	if t, ok := c.seen.Get(string(qid)); ok && now.Sub(t) < seenFor {
		return false
	}
	c.seen.Add(string(qid), now)
	return true
}

// limiter returns id's rate limiters. They live in a size-bounded LRU: a
// peer evicted by many others starts afresh, which costs it nothing it could
// not get with a new identity anyway.
func (c *core) limiter(id peer.ID) *limits {
	if l, ok := c.limits.Get(id); ok {
		return l
	}
	l := &limits{
		query:   rate.NewLimiter(rate.Limit(c.cfg.QueryRate), int(2*c.cfg.QueryRate)),
		publish: rate.NewLimiter(rate.Limit(c.cfg.PublishRate), int(2*c.cfg.PublishRate)),
	}
	if prev, ok, _ := c.limits.PeekOrAdd(id, l); ok {
		return prev
	}
	return l
}

func newQID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}
