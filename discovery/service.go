package discovery

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/internal/eventbus"
	"github.com/juxta-p2p/juxta/peer"
)

// Config tunes a discovery service. The zero value is right for most peers.
type Config struct {
	// Capacity bounds the cache of remote advertisements; on a super-peer this
	// is the index. Default 10,000.
	Capacity int
	// PublisherQuota bounds the cached advertisements of any one remote
	// publisher. Default 1,000.
	PublisherQuota int
	// Flood makes this peer forward flooded queries to its neighbours
	// (Gnutella). Off by default: flooding's cost grows with the network.
	Flood bool
	// QueryRate and PublishRate bound what one remote peer may ask of this peer,
	// per second (bursts of twice as many). Defaults 20 and 100.
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
		c.Capacity = 10_000
	}
	if c.PublisherQuota <= 0 {
		c.PublisherQuota = 1_000
	}
	if c.QueryRate <= 0 {
		c.QueryRate = 20
	}
	if c.PublishRate <= 0 {
		c.PublishRate = 100
	}
	if c.Tick <= 0 {
		c.Tick = 250 * time.Millisecond
	}
}

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
	watch *eventbus.Bus[Advertisement]

	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	mu        sync.Mutex
	published map[Key]*published   // guarded by mu; own live advertisements
	seen      map[string]time.Time // guarded by mu; query IDs recently handled
	limits    map[lpeer.ID]*limits // guarded by mu

	dropped   sync.Map // reason → *atomic.Uint64
	sent      atomic.Uint64
	served    atomic.Uint64
	purged    atomic.Uint64
	remoteErr atomic.Uint64
}

type published struct {
	ad        Advertisement
	raw       []byte
	next      time.Time            // next republish
	rebuild   func() Advertisement // non-nil: re-sign from this at republish
	providing bool
}

type limits struct {
	query, publish *rate.Limiter
	used           time.Time
}

// New starts discovery on p: it registers the discovery protocol, loads the
// persisted cache from the peer's directory (purging what expired), and
// publishes the peer's own advertisement.
func New(ctx context.Context, p *peer.Peer, cfg Config) (_ *Service, err error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cfg.defaults()
	h := p.Host()
	key := h.Peerstore().PrivKey(h.ID())
	if key == nil {
		return nil, errors.New("discovery: the peer's private key is not in its peerstore")
	}
	c := &core{
		p: p, host: h, key: key, cfg: cfg, log: p.Logger().With("svc", "discovery"),
		watch:     eventbus.New[Advertisement](),
		published: make(map[Key]*published),
		seen:      make(map[string]time.Time),
		limits:    make(map[lpeer.ID]*limits),
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
	if s.closed.Load() {
		return Advertisement{}, fmt.Errorf("discovery: publish: %w", net.ErrClosed)
	}
	ad = cloneAd(ad)
	ad.Scope = s.scope
	ad.Publisher = s.host.ID()
	if ad.Lifetime == 0 {
		ad.Lifetime = DefaultLifetime
	}
	if ad.Expiration == 0 {
		ad.Expiration = DefaultExpiration
	}
	now := time.Now()
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
		return Advertisement{}, err
	}
	// Round-trip through the verifier, so that what we hand out is exactly what
	// receivers will see.
	if ad, err = Verify(raw, now); err != nil {
		return Advertisement{}, fmt.Errorf("discovery: publish: %w", err)
	}
	if _, err := s.insert(&entry{ad: ad, raw: raw, until: ad.ValidUntil(), local: true}); err != nil {
		return Advertisement{}, fmt.Errorf("discovery: publish: %w", err)
	}
	pub := &published{ad: ad, raw: raw, rebuild: rebuild, next: now.Add(republishAfter(&ad))}
	s.mu.Lock()
	s.published[k] = pub
	s.mu.Unlock()
	s.push(ctx, raw)
	s.provide(&ad)
	return cloneAd(ad), nil
}

func republishAfter(ad *Advertisement) time.Duration {
	return max(ad.Expiration*3/4, 100*time.Millisecond)
}

// followSuperPeers hands every live advertisement of ours to a super-peer as
// soon as it connects: at start, and after it restarts with an empty index.
func (c *core) followSuperPeers(sub *peer.Subscription) {
	defer c.wg.Done()
	sps := map[lpeer.ID]bool{}
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
		for len(raws) > 0 {
			n := min(len(raws), MaxPublishBatch)
			err := c.call(c.ctx, pc.Peer, request{Op: opPublish, Ads: raws[:n]}, func(*response) error { return nil })
			if err != nil {
				c.remoteErr.Add(1)
				c.log.Debug("super-peer refused publish", "peer", pc.Peer, "err", err)
			}
			raws = raws[n:]
		}
	}
}

// push sends raw to every connected super-peer.
func (c *core) push(ctx context.Context, raw []byte) {
	for _, sp := range c.p.ConnectedSuperPeers() {
		if sp == c.host.ID() {
			continue
		}
		req := request{Op: opPublish, Ads: [][]byte{raw}}
		err := c.call(ctx, sp, req, func(r *response) error { return nil })
		if err != nil {
			c.remoteErr.Add(1)
			c.log.Debug("super-peer refused publish", "peer", sp, "err", err)
		}
	}
}

// Flush withdraws one of this peer's advertisements: from the cache, from the
// republish schedule, and from the connected super-peers' indexes.
func (s *Service) Flush(ctx context.Context, typ, id string) error {
	if s.closed.Load() {
		return fmt.Errorf("discovery: flush: %w", net.ErrClosed)
	}
	k := Key{Scope: s.scope, Type: typ, ID: id, Publisher: s.host.ID()}
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

// Local returns the cached advertisements matching q, own ones included,
// newest first.
func (s *Service) Local(q Query) ([]Advertisement, error) {
	q.Scope = s.scope
	if err := q.normalize(); err != nil {
		return nil, err
	}
	var out []Advertisement
	for _, e := range s.store.query(&q, time.Now(), q.Limit) {
		out = append(out, cloneAd(e.ad))
	}
	return out, nil
}

// Watch delivers every advertisement matching q that enters the cache, new or
// as a newer version, from any source: JXTA's DiscoveryListener. The delivery
// contract is juxta's one for events (see peer.Peer.Subscribe): drain C; a
// full buffer drops and counts; C closes when ctx ends or the service closes.
func (s *Service) Watch(ctx context.Context, q Query) (*Subscription, error) {
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

// Subscription delivers watched advertisements.
type Subscription = eventbus.Sub[Advertisement]

// insert puts e into the cache and tells the watchers when it is new.
func (c *core) insert(e *entry) (bool, error) {
	fresh, err := c.store.put(e, time.Now())
	if err != nil {
		if errors.Is(err, ErrQuota) {
			c.drop(DropQuota)
		}
		return false, err
	}
	if fresh {
		c.watch.Publish(cloneAd(e.ad))
	}
	return fresh, nil
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
}

// Stats returns the service's counters.
func (c *core) Stats() Stats {
	st := Stats{
		Cached: c.store.len(), Dropped: map[string]uint64{},
		MessagesSent: c.sent.Load(), QueriesServed: c.served.Load(),
		Purged: c.purged.Load(), RemoteErrors: c.remoteErr.Load(),
	}
	c.dropped.Range(func(k, v any) bool {
		st.Dropped[k.(string)] = v.(*atomic.Uint64).Load()
		return true
	})
	return st
}

// janitor purges expired entries, republishes own advertisements before others'
// copies expire, and forgets old query IDs and idle rate limiters.
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
			c.republish(now)
			c.forget(now)
		}
	}
}

func (c *core) republish(now time.Time) {
	c.mu.Lock()
	var due []*published
	for k, p := range c.published {
		if !p.ad.ValidUntil().After(now) {
			delete(c.published, k)
			continue
		}
		if !now.Before(p.next) {
			p.next = now.Add(republishAfter(&p.ad))
			due = append(due, p)
		}
	}
	c.mu.Unlock()
	for _, p := range due {
		if p.rebuild != nil {
			s := &Service{core: c, scope: p.ad.Scope}
			if _, err := s.publish(c.ctx, p.rebuild(), p.rebuild); err != nil {
				c.log.Debug("republish failed", "type", p.ad.Type, "id", p.ad.ID, "err", err)
			}
			continue
		}
		c.push(c.ctx, p.raw)
		c.provide(&p.ad)
	}
}

func (c *core) forget(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, t := range c.seen {
		if now.Sub(t) > time.Minute {
			delete(c.seen, q)
		}
	}
	for id, l := range c.limits {
		if now.Sub(l.used) > time.Minute {
			delete(c.limits, id)
		}
	}
}

// firstSeen records a query ID and reports whether it is new.
func (c *core) firstSeen(qid []byte) bool {
	if len(qid) == 0 {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.seen[string(qid)]; ok {
		return false
	}
	c.seen[string(qid)] = time.Now()
	return true
}

func (c *core) limiter(id lpeer.ID) *limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.limits[id]
	if !ok {
		l = &limits{
			query:   rate.NewLimiter(rate.Limit(c.cfg.QueryRate), int(2*c.cfg.QueryRate)),
			publish: rate.NewLimiter(rate.Limit(c.cfg.PublishRate), int(2*c.cfg.PublishRate)),
		}
		c.limits[id] = l
	}
	l.used = time.Now()
	return l
}

func newQID() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return b
}

// Result is one advertisement found by Find, with where it came from.
type Result struct {
	Advertisement
	// Source is where it was found: one of the Source… bits.
	Source Source
	// From is the peer that answered (this peer for SourceLocal).
	From lpeer.ID
}

// Find searches q's sources nearest first — the cache, LAN neighbours,
// super-peers, flooding, the DHT — and streams the results as they arrive.
// Results are verified, cached, and deduplicated: each advertisement comes once,
// unless a newer version of it turns up later, which comes too. Find stops
// after q.Limit distinct advertisements, when the sources are exhausted, or
// when the loop breaks.
//
// Errors are yielded with a zero Result: an invalid query or ctx ending stop the
// search; when nothing was found and some remote source failed, the failures
// are yielded at the end.
func (s *Service) Find(ctx context.Context, q Query) iter.Seq2[Result, error] {
	return func(yield func(Result, error) bool) {
		q.Scope = s.scope
		if err := q.normalize(); err != nil {
			yield(Result{}, err)
			return
		}
		f := &finder{s: s, q: q, seen: map[Key]uint64{}, yield: yield}
		if q.Sources&SourceLocal != 0 {
			for _, e := range s.store.query(&f.q, time.Now(), q.Limit) {
				if !f.emit(e.ad, SourceLocal, s.host.ID()) {
					return
				}
			}
		}
		steps := []struct {
			src   Source
			peers func() []lpeer.ID
			flood bool
		}{
			{SourceLAN, s.lanNeighbours, false},
			{SourceSuperPeers, s.p.ConnectedSuperPeers, false},
			{SourceFlood, s.neighbours, true},
		}
		for _, st := range steps {
			if q.Sources&st.src == 0 || f.full() {
				continue
			}
			req := f.q.request(newQID(), st.flood)
			if st.src == SourceLAN {
				req.TTL = 0 // neighbours answer from their own cache
			}
			if !f.ask(ctx, st.src, st.peers(), req) {
				return
			}
		}
		if q.Sources&SourceDHT != 0 && q.exact() && !f.full() {
			if !f.dht(ctx) {
				return
			}
		}
		if f.count == 0 && len(f.errs) > 0 {
			yield(Result{}, errors.Join(f.errs...))
		}
	}
}

type finder struct {
	s     *Service
	q     Query
	seen  map[Key]uint64
	count int
	errs  []error
	yield func(Result, error) bool
	done  bool // the consumer stopped
}

func (f *finder) full() bool { return f.count >= f.q.Limit }

// emit yields ad unless an equal or newer version was already yielded. It
// returns false when the consumer stopped.
func (f *finder) emit(ad Advertisement, src Source, from lpeer.ID) bool {
	k := ad.Key()
	seq, dup := f.seen[k]
	if dup && seq >= ad.Seq {
		return true
	}
	if !dup {
		if f.full() {
			return true
		}
		f.count++
	}
	f.seen[k] = ad.Seq
	if !f.yield(Result{Advertisement: cloneAd(ad), Source: src, From: from}, nil) {
		f.done = true
		return false
	}
	return true
}

type found struct {
	ad   Advertisement
	from lpeer.ID
}

// ask sends req to every peer at once and emits what they answer, verified,
// as it arrives. It returns false when the consumer stopped or ctx ended.
func (f *finder) ask(ctx context.Context, src Source, peers []lpeer.ID, req request) bool {
	if len(peers) == 0 {
		return true
	}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := make(chan found)
	errc := make(chan error, len(peers))
	var wg sync.WaitGroup
	for _, id := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errc <- f.s.fetch(ctx, id, req, &f.q, func(ad Advertisement) bool {
				select {
				case out <- found{ad, id}:
					return true
				case <-ctx.Done():
					return false
				}
			})
		}()
	}
	go func() { wg.Wait(); close(out) }()
	ok := true
	for r := range out {
		if ok && !f.emit(r.ad, src, r.from) {
			ok = false
			cancel()
		}
		if ok && f.full() {
			cancel()
		}
	}
	close(errc)
	for err := range errc {
		if err != nil && !errors.Is(err, context.Canceled) {
			f.errs = append(f.errs, err)
		}
	}
	if ok && parent.Err() != nil {
		f.yield(Result{}, parent.Err())
		return false
	}
	return ok
}

// answer checks one advertisement a remote peer answered to q: it must verify
// and match (a peer may not push what was not asked for). Drops are counted.
func (c *core) answer(raw []byte, q *Query, now time.Time) (Advertisement, bool) {
	ad, err := c.verify(raw, now)
	if err != nil {
		return Advertisement{}, false
	}
	if !q.matches(&ad) {
		c.drop(DropScope)
		return Advertisement{}, false
	}
	return ad, true
}

// fetch runs one query against one peer and passes each answer that verifies and
// matches to onAd (which returns false to stop).
func (c *core) fetch(ctx context.Context, id lpeer.ID, req request, q *Query, onAd func(Advertisement) bool) error {
	errStop := errors.New("stop")
	err := c.call(ctx, id, req, func(r *response) error {
		now := time.Now()
		for _, raw := range r.Ads {
			ad, ok := c.answer(raw, q, now)
			if !ok {
				continue
			}
			if _, err := c.insert(&entry{ad: ad, raw: raw, until: cacheUntil(&ad, now)}); err != nil && !errors.Is(err, ErrQuota) {
				return err
			}
			if !onAd(ad) {
				return errStop
			}
		}
		return nil
	})
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

// lanNeighbours are peers connected directly over a private or loopback
// address (those mDNS finds among them), super-peers excepted.
func (c *core) lanNeighbours() []lpeer.ID {
	sps := map[lpeer.ID]bool{}
	for _, sp := range c.p.SuperPeers() {
		sps[sp.ID] = true
	}
	set := map[lpeer.ID]bool{}
	for _, cn := range c.host.Network().Conns() {
		id := cn.RemotePeer()
		if sps[id] || set[id] {
			continue
		}
		if isLANAddr(cn.RemoteMultiaddr()) {
			set[id] = true
		}
	}
	return sortedIDs(set)
}

// neighbours are all connected peers.
func (c *core) neighbours() []lpeer.ID {
	set := map[lpeer.ID]bool{}
	for _, id := range c.host.Network().Peers() {
		set[id] = true
	}
	return sortedIDs(set)
}

func sortedIDs(set map[lpeer.ID]bool) []lpeer.ID {
	return slices.Sorted(maps.Keys(set))
}
