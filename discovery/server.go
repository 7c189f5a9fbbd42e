package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/peer"
)

// forwardTimeout bounds one forwarded hop, so that an answer with forwarded
// results still reaches the asker within its StreamTimeout.
const forwardTimeout = 2 * time.Second

// publishWait bounds how long a publish batch waits for its rate tokens.
const publishWait = 5 * time.Second

// answerBatch bounds the bytes of advertisements in one answer frame.
const answerBatch = 128 << 10

func (c *core) handle(str network.Stream) {
	growStack(0)
	defer str.Close()
	_ = str.SetDeadline(time.Now().Add(StreamTimeout))
	from := peer.ID(str.Conn().RemotePeer())
	cn := newConn(str, c.countSent)
	defer cn.release()
	idle := false // this stream holds one of the maxServedIdle places
	for n := 0; ; n++ {
		var req request
		if err := cn.recv(&req); err != nil {
			switch {
			case n == 0 || errors.Is(err, ErrRemote) || errors.Is(err, msgio.ErrMsgTooLarge):
				c.drop(DropMalformed)
				str.Reset()
			case errors.Is(err, io.EOF) || isTimeout(err):
				// After a query, the asker closing the stream, or leaving it
				// idle past serveIdle, is no fault; and a reset could lose
				// the last answer on its way.
			default:
				str.Reset() // the asker reset it
			}
			return
		}
		if n > 0 {
			_ = str.SetWriteDeadline(time.Now().Add(StreamTimeout))
		}
		var err error
		switch req.Op {
		case opQuery:
			err = c.serveQuery(cn, from, &req)
		case opPublish:
			err = c.servePublish(cn, from, &req)
		case opFlush:
			err = c.serveFlush(cn, from, &req)
		case opRefresh:
			err = c.serveRefresh(cn, from, &req)
		default:
			c.drop(DropMalformed)
			err = cn.send(response{Done: true, Code: codeInvalid, Err: "unknown operation"})
		}
		if err != nil {
			str.Reset()
			return
		}
		// After a query the stream may carry the asker's next query (keep.go),
		// while this service runs and places are left.
		if req.Op != opQuery || c.closed.Load() {
			return
		}
		if !idle {
			if !c.holdIdle(from) {
				return
			}
			idle = true
			// Close wakes this goroutine, and waits for it.
			defer c.dropIdle(from)
			defer context.AfterFunc(c.ctx, func() { str.Reset() })()
		}
		_ = str.SetReadDeadline(time.Now().Add(serveIdle))
	}
}

// isTimeout tells a deadline that passed: quic-go's error is
// os.ErrDeadlineExceeded, yamux's is not.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// holdIdle takes one of the places of a stream waiting for another query
// (maxServedIdle in all, maxServedIdlePeer for one peer, so that no peer
// takes them all), and counts the waiting goroutine in wg; false when none
// is left or the service is closed. dropIdle gives it back.
func (c *core) holdIdle(from peer.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() || c.idling >= maxServedIdle || c.idleBy[from] >= maxServedIdlePeer {
		return false
	}
	if c.idleBy == nil {
		c.idleBy = map[peer.ID]int{}
	}
	c.idleBy[from]++
	c.idling++
	c.wg.Add(1)
	return true
}

// idleCount is how many served streams wait for another query.
func (c *core) idleCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.idling
}

func (c *core) dropIdle(from peer.ID) {
	c.mu.Lock()
	if c.idleBy[from]--; c.idleBy[from] <= 0 {
		delete(c.idleBy, from)
	}
	c.idling--
	c.mu.Unlock()
	c.wg.Done()
}

func refuse(cn *conn, err error) error {
	return cn.send(response{Done: true, Code: codeOf(err), Err: err.Error()})
}

func (c *core) serveQuery(cn *conn, from peer.ID, req *request) error {
	// A trusted super-peer forwards the queries of all its edges: it is not
	// held to one peer's rate.
	if !c.trusted(from) && !c.limiter(from).query.Allow() {
		c.drop(DropRateLimited)
		return refuse(cn, ErrRateLimited)
	}
	q, err := req.query()
	if err != nil {
		c.drop(DropMalformed)
		return refuse(cn, err)
	}
	c.served.Add(1)
	if !c.firstSeen(req.QID) {
		return cn.send(response{Done: true}) // a duplicate: answered already
	}
	if q.kw == nil {
		// Attribute (glob) queries scan: at most scanSlots run at once, so
		// that remote scans cannot take every core.
		if err := c.scanSlot(); err != nil {
			return refuse(cn, err)
		}
		defer func() { <-c.scans }()
	}
	want := q.Offset + q.Limit
	var hits []rawAd
	for _, h := range c.store.query(&q, time.Now(), want) {
		hits = append(hits, rawAd{ad: h.e.ad, raw: h.e.raw, score: h.score, pubs: h.pubs})
	}
	if len(hits) < want && q.TTL > 0 {
		if targets, visited := c.forwardTargets(from, req); len(targets) > 0 {
			fwd := *req
			fwd.TTL = q.TTL - 1
			fwd.Offset = 0
			fwd.Limit = want - len(hits)
			fwd.Visited = visited
			ctx, cancel := context.WithTimeout(c.ctx, forwardTimeout)
			hits = append(hits, c.forward(ctx, targets, fwd, &q)...)
			cancel()
		}
	}
	return sendAnswer(cn, &q, hits)
}

// scanSlot takes one of the scan slots, waiting at most forwardTimeout.
func (c *core) scanSlot() error {
	select {
	case c.scans <- struct{}{}: // free: no timer needed
		return nil
	default:
	}
	t := time.NewTimer(forwardTimeout)
	defer t.Stop()
	select {
	case c.scans <- struct{}{}:
		return nil
	case <-t.C:
		c.drop(DropRateLimited)
		return fmt.Errorf("%w: busy scanning", ErrRateLimited)
	case <-c.ctx.Done():
		return net.ErrClosed
	}
}

// sendAnswer sends the page of hits q asks for, deduplicated, ranked when q
// has keywords, in frames of at most answerBatch bytes.
func sendAnswer(cn *conn, q *Query, hits []rawAd) error {
	if q.kw != nil {
		slices.SortStableFunc(hits, func(a, b rawAd) int {
			return cmp.Or(cmp.Compare(b.score, a.score), cmp.Compare(b.pubs, a.pubs))
		})
	}
	sent := map[Key]bool{}
	var resp response
	size, skipped := 0, 0
	for _, h := range hits {
		k := h.ad.Key()
		if sent[k] || len(sent) >= q.Limit {
			continue
		}
		if skipped < q.Offset {
			skipped++
			sent[k] = true
			continue
		}
		sent[k] = true
		if size+len(h.raw) > answerBatch {
			if err := cn.send(resp); err != nil {
				return err
			}
			resp, size = response{}, 0
		}
		resp.Ads = append(resp.Ads, h.raw)
		if q.kw != nil {
			resp.Scores = append(resp.Scores, h.score)
			resp.Pubs = append(resp.Pubs, h.pubs)
		}
		size += len(h.raw)
	}
	resp.Done = true
	return cn.send(resp)
}

type rawAd struct {
	ad    Advertisement
	raw   []byte
	score float64
	pubs  int
}

// forwardTargets: a super-peer forwards to the super-peers it trusts (its
// configured ones and Config.TrustedSuperPeers) that the query has not
// visited; a peer that floods forwards a flooded query to all its neighbours.
// It returns the visited list to forward: the old one, this peer and the
// targets, so that no super-peer is asked twice.
func (c *core) forwardTargets(from peer.ID, req *request) ([]peer.ID, [][]byte) {
	var cand []peer.ID
	switch {
	case req.Flood && c.cfg.Flood:
		cand = c.neighbours()
	case !req.Flood && c.p.Role() == peer.RoleSuperPeer:
		cand = c.superPeerNeighbours()
	}
	visited := map[peer.ID]bool{from: true, c.p.ID(): true}
	for _, b := range req.Visited {
		if id, err := peer.IDFromBytes(b); err == nil {
			visited[id] = true
		}
	}
	var out []peer.ID
	for _, id := range cand {
		if !visited[id] {
			out = append(out, id)
		}
	}
	if req.Flood {
		return out, nil // flooding relies on query IDs, as Gnutella does
	}
	next := slices.Clone(req.Visited)
	for _, id := range append([]peer.ID{c.p.ID()}, out...) {
		if len(next) >= MaxVisited {
			break
		}
		next = append(next, []byte(id))
	}
	return out, next
}

// superPeerNeighbours are the connected super-peers this one trusts: those in
// the peer's configuration and Config.TrustedSuperPeers (or TrustSuperPeers).
// A peer that merely serves a relay and speaks discovery is not one: it could
// be anybody (issue 12, item 10).
func (c *core) superPeerNeighbours() []peer.ID {
	set := map[peer.ID]bool{}
	for _, id := range c.p.ConnectedSuperPeers() {
		set[id] = true
	}
	for _, lid := range c.host.Network().Peers() {
		id := peer.ID(lid)
		if _, ok := c.trust.Load(id); ok {
			set[id] = true
		}
	}
	return sortedIDs(set)
}

// trusted reports whether id is a super-peer this peer trusts: configured, or
// in Config.TrustedSuperPeers.
func (c *core) trusted(id peer.ID) bool {
	if _, ok := c.trust.Load(id); ok {
		return true
	}
	for _, sp := range c.p.SuperPeers() {
		if sp.ID == id {
			return true
		}
	}
	return false
}

// TrustSuperPeers adds peers to Config.TrustedSuperPeers: a super-peer
// forwards queries to them when they are connected.
func (c *core) TrustSuperPeers(ids ...peer.ID) {
	for _, id := range ids {
		c.trust.Store(id, true)
	}
}

// forward asks targets concurrently and collects their verified answers.
func (c *core) forward(ctx context.Context, targets []peer.ID, req request, q *Query) []rawAd {
	type res struct{ ads []rawAd }
	ch := make(chan res, len(targets))
	for _, id := range targets {
		go func() {
			var got []rawAd
			errEnough := errors.New("enough")
			_ = c.call(ctx, id, req, func(r *response) error {
				now := time.Now()
				for i, raw := range r.Ads {
					if ad, ok := c.answer(raw, q, now); ok {
						score, pubs := r.rank(i)
						got = append(got, rawAd{ad, raw, score, pubs})
					}
					if len(got) >= req.Limit { // a neighbour may not flood us
						return errEnough
					}
				}
				return nil
			})
			ch <- res{got}
		}()
	}
	var out []rawAd
	for range targets {
		out = append(out, (<-ch).ads...)
	}
	return out
}

// servePublish verifies each advertisement of a batch on its own, then
// indexes those that pass in one step (and one disk transaction).
func (c *core) servePublish(cn *conn, from peer.ID, req *request) error {
	if c.p.Role() != peer.RoleSuperPeer {
		return refuse(cn, ErrNotSuperPeer)
	}
	if len(req.Ads) > MaxPublishBatch {
		c.drop(DropMalformed)
		return refuse(cn, fmt.Errorf("%w: %d advertisements in one publish, limit %d", ErrInvalid, len(req.Ads), MaxPublishBatch))
	}
	// A batch waits for its publish tokens (up to publishWait): a sharer
	// sending 10,000 advertisements is paced at PublishRate rather than
	// refused. A batch larger than the burst takes tokens one by one.
	lim := c.limiter(from).publish
	if n := len(req.Ads); n > 0 && n <= lim.Burst() {
		ctx, cancel := context.WithTimeout(c.ctx, publishWait)
		err := lim.WaitN(ctx, n)
		cancel()
		if err != nil {
			for range n {
				c.drop(DropRateLimited)
			}
			return refuse(cn, fmt.Errorf("%w: %d advertisements", ErrRateLimited, n))
		}
		lim = rate.NewLimiter(rate.Inf, 0)
	}
	accepted, indexed, firstErr := c.acceptBatch(from, req.Ads, lim, time.Now())
	c.accepted.Add(uint64(indexed))
	resp := response{Done: true, Accepted: accepted}
	if firstErr != nil {
		resp.Code, resp.Err = codeOf(firstErr), firstErr.Error()
	}
	return cn.send(resp)
}

// acceptBatch verifies each advertisement of a publish batch from peer from
// on its own, then indexes those that pass in one step (and one disk
// transaction). It returns how many were accepted, how many of those were new
// or newer, and the first refusal.
func (c *core) acceptBatch(from peer.ID, ads [][]byte, lim *rate.Limiter, now time.Time) (accepted, indexed int, firstErr error) {
	var todo [][]byte
	for _, raw := range ads {
		if !lim.Allow() {
			c.drop(DropRateLimited)
			firstErr = cmpErr(firstErr, ErrRateLimited)
			continue
		}
		// A publisher over its quota is refused before its signature is
		// checked: a flood beyond the quota costs a decode, not a verify.
		if ad, err := peek(raw); err == nil && ad.Publisher == from && c.store.overQuota(ad.Key()) {
			c.drop(DropQuota)
			firstErr = cmpErr(firstErr, fmt.Errorf("%w: publisher %s is at its quota", ErrQuota, from))
			continue
		}
		todo = append(todo, raw)
	}
	// Signatures are checked one by one, on every core.
	verified := make([]Advertisement, len(todo))
	errs := make([]error, len(todo))
	parallel(len(todo), func(i int) { verified[i], errs[i] = c.verify(todo[i], now) })
	var entries []*entry
	for i, ad := range verified {
		if errs[i] != nil {
			firstErr = cmpErr(firstErr, errs[i])
			continue
		}
		if ad.Publisher != from {
			c.drop(DropWrongPublisher)
			firstErr = cmpErr(firstErr, reject(DropWrongPublisher, ErrRejected, "%s may publish only its own advertisements", from))
			continue
		}
		entries = append(entries, &entry{ad: ad, raw: todo[i], until: cacheUntil(&ad, now)})
	}
	fresh, perrs := c.store.putMany(entries, now)
	for i, err := range perrs {
		if err != nil {
			if errors.Is(err, ErrQuota) {
				c.drop(DropQuota)
			}
			firstErr = cmpErr(firstErr, err)
			continue
		}
		accepted++
		if fresh[i] {
			indexed++
			c.watch.Publish(entries[i].advert())
		}
	}
	return accepted, indexed, firstErr
}

// serveRefresh extends the super-peer's copies of a publisher's
// advertisements by digest, and answers the indexes of those it lacks.
func (c *core) serveRefresh(cn *conn, from peer.ID, req *request) error {
	if c.p.Role() != peer.RoleSuperPeer {
		return refuse(cn, ErrNotSuperPeer)
	}
	if len(req.Digests) > MaxRefreshBatch {
		c.drop(DropMalformed)
		return refuse(cn, fmt.Errorf("%w: %d digests in one refresh, limit %d", ErrInvalid, len(req.Digests), MaxRefreshBatch))
	}
	// A refresh costs a lookup, not a signature check: one token per 16.
	if !c.limiter(from).publish.AllowN(time.Now(), len(req.Digests)/16+1) {
		c.drop(DropRateLimited)
		return refuse(cn, ErrRateLimited)
	}
	now := time.Now()
	missing, err := c.store.refresh(from, req.Digests, func(ad *Advertisement) time.Time { return cacheUntil(ad, now) })
	if err != nil {
		return refuse(cn, err)
	}
	c.refreshed.Add(uint64(len(req.Digests) - len(missing)))
	return cn.send(response{Done: true, Missing: missing})
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (c *core) serveFlush(cn *conn, from peer.ID, req *request) error {
	if c.p.Role() != peer.RoleSuperPeer {
		return refuse(cn, ErrNotSuperPeer)
	}
	if !c.limiter(from).publish.Allow() {
		c.drop(DropRateLimited)
		return refuse(cn, ErrRateLimited)
	}
	// Only the publisher can withdraw: the key carries the stream's peer.
	c.store.remove(Key{Scope: req.Scope, Type: req.Type, ID: req.ID, Publisher: from})
	return cn.send(response{Done: true})
}

func isLANAddr(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return false
	}
	return manet.IsPrivateAddr(a) || manet.IsIPLoopback(a)
}
