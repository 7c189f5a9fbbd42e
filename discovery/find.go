package discovery

import (
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// Result is one advertisement found by Find, with where it came from.
type Result struct {
	Advertisement
	// Source is where it was found: one of the Source… bits.
	Source Source
	// From is the peer that answered (this peer for SourceLocal).
	From peer.ID
	// Score is the keyword query's relevance (BM25) at the answering peer;
	// 0 for attribute queries.
	Score float64
	// Publishers is how many publishers the answering peer knows to offer an
	// advertisement of this type and ID (keyword queries; 0 otherwise).
	Publishers int
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
			for _, h := range page(s.store.query(&f.q, time.Now(), q.Offset+q.Limit), q.Offset, q.Limit) {
				if !f.emit(Result{Advertisement: h.e.advert(), Source: SourceLocal, From: s.p.ID(), Score: h.score, Publishers: h.pubs}) {
					return
				}
			}
		}
		steps := []struct {
			src   Source
			peers func() []peer.ID
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
// returns false when the consumer stopped. r's advertisement must be the
// consumer's own: no copy is made.
func (f *finder) emit(r Result) bool {
	ad := r.Advertisement
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
	if !f.yield(r, nil) {
		f.done = true
		return false
	}
	return true
}

// ask sends req to every peer at once and emits what they answer, verified,
// as it arrives. It returns false when the consumer stopped or ctx ended.
func (f *finder) ask(ctx context.Context, src Source, peers []peer.ID, req request) bool {
	if len(peers) == 0 {
		return true
	}
	return askEach(f, ctx, src, req, func(context.Context) (<-chan peer.ID, func()) {
		ch := make(chan peer.ID, len(peers))
		for _, id := range peers {
			ch <- id
		}
		close(ch)
		return ch, func() {}
	}, func(id peer.ID) (peer.ID, bool) { return id, true })
}

// askEach sends req to each peer that arrives on the channel that open
// returns, as soon as it arrives (a lookup may still be looking for more),
// and emits what they answer, verified, as it arrives. to turns an item into
// the peer to ask, or false to skip it. The channel must close once its ctx
// ends, which happens when the consumer stops or the limit is reached; it is
// drained to its close, then open's stop func is called. askEach returns once
// the channel closed and every request it started returned: false when the
// consumer stopped or ctx ended.
//
// The consumer's goroutine reads both the peers and the answers, and starts
// the requests: no goroutine of askEach's own stands between a peer found
// and its request, or between an answer and the consumer. Every request runs
// on a goroutine of its own, so that a slow peer delays nobody else's
// answers. A source that must never wait for the consumer (the DHT lookup)
// queues through relay.
func askEach[T any](f *finder, ctx context.Context, src Source, req request, open func(context.Context) (<-chan T, func()), to func(T) (peer.ID, bool)) bool {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in, stop := open(ctx)
	defer stop()
	out := make(chan *asked, askQueue) // pointers: a queue of Results would be kilobytes per query
	ok := true
	started, ended := 0, 0
	for in != nil || ended < started {
		select {
		case it, more := <-in:
			if !more {
				in = nil
				continue
			}
			if ctx.Err() != nil {
				continue // drained: the source's goroutines are done once it closes
			}
			id, use := to(it)
			if !use {
				continue
			}
			started++
			go func() {
				growStack(0)
				end := &asked{end: true}
				end.err = f.s.fetch(ctx, id, req, &f.q, func(r Result, final bool) bool {
					r.Source, r.From = src, id
					if final { // it goes with the end: one hand-off, not two
						end.r, end.has = r, true
						return true
					}
					select {
					case out <- &asked{r: r, has: true}:
						return true
					case <-ctx.Done():
						return false
					}
				})
				out <- end
			}()
		case a := <-out:
			switch {
			case !a.has || !ok:
			case !f.emit(a.r):
				ok = false
				cancel()
			case f.full():
				cancel()
			}
			if a.end {
				ended++
				if a.err != nil && !errors.Is(a.err, context.Canceled) {
					f.errs = append(f.errs, a.err)
				}
			}
		}
	}
	if ok && parent.Err() != nil {
		f.yield(Result{}, parent.Err())
		return false
	}
	return ok
}

// asked is what askEach's requests hand back: an answer (has), the end of
// one request (end, with its error), or both: a request's last answer comes
// with its end.
type asked struct {
	r   Result
	has bool
	err error
	end bool
}

// askQueue is how many answers may wait for the consumer: requests do not
// wait on each other's hand-offs. It does not bound memory by itself: each
// request blocks once the queue is full.
const askQueue = 16

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
// matches to onAd (which returns false to stop), with final set on the last
// answer of the last frame. Each answer's advertisement is onAd's own.
func (c *core) fetch(ctx context.Context, id peer.ID, req request, q *Query, onAd func(r Result, final bool) bool) error {
	errStop := errors.New("stop")
	err := c.call(ctx, id, req, func(r *response) error {
		now := time.Now()
		var held Result // the frame's latest answer: onAd learns whether it was the last
		has := false
		for i, raw := range r.Ads {
			ad, ok := c.answer(raw, q, now)
			if !ok {
				continue
			}
			fresh, err := c.insert(&entry{ad: ad, raw: raw, until: cacheUntil(&ad, now)})
			if err != nil && !errors.Is(err, ErrQuota) {
				// The cache could not write it to disk (a full disk): the
				// answer still counts.
				c.log.Debug("caching an answer failed", "from", id, "err", err)
			}
			if fresh {
				ad = cloneAd(ad) // the cache keeps the one it was given
			}
			if has && !onAd(held, false) {
				return errStop
			}
			score, pubs := r.rank(i)
			held, has = Result{Advertisement: ad, Score: score, Publishers: pubs}, true
		}
		if has && !onAd(held, r.Done) {
			return errStop
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
func (c *core) lanNeighbours() []peer.ID {
	sps := map[peer.ID]bool{}
	for _, sp := range c.p.SuperPeers() {
		sps[sp.ID] = true
	}
	set := map[peer.ID]bool{}
	for _, cn := range c.host.Network().Conns() {
		id := peer.ID(cn.RemotePeer())
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
func (c *core) neighbours() []peer.ID {
	set := map[peer.ID]bool{}
	for _, id := range c.host.Network().Peers() {
		set[peer.ID(id)] = true
	}
	return sortedIDs(set)
}

func sortedIDs(set map[peer.ID]bool) []peer.ID {
	return slices.Sorted(maps.Keys(set))
}
