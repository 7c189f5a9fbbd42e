package discovery

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/juxta-p2p/juxta/peer"
)

// forwardTimeout bounds one forwarded hop, so that an answer with forwarded
// results still reaches the asker within its StreamTimeout.
const forwardTimeout = 2 * time.Second

// answerBatch bounds the bytes of advertisements in one answer frame.
const answerBatch = MaxFrame / 2

func (c *core) handle(str network.Stream) {
	defer str.Close()
	_ = str.SetDeadline(time.Now().Add(StreamTimeout))
	from := str.Conn().RemotePeer()
	cn := newConn(str, c.countSent)
	var req request
	if err := cn.recv(&req); err != nil {
		c.drop(DropMalformed)
		str.Reset()
		return
	}
	var err error
	switch req.Op {
	case opQuery:
		err = c.serveQuery(cn, from, &req)
	case opPublish:
		err = c.servePublish(cn, from, &req)
	case opFlush:
		err = c.serveFlush(cn, from, &req)
	default:
		c.drop(DropMalformed)
		err = cn.send(response{Done: true, Code: codeInvalid, Err: "unknown operation"})
	}
	if err != nil {
		str.Reset()
	}
}

func refuse(cn *conn, err error) error {
	return cn.send(response{Done: true, Code: codeOf(err), Err: err.Error()})
}

func (c *core) serveQuery(cn *conn, from lpeer.ID, req *request) error {
	if !c.limiter(from).query.Allow() {
		c.drop(DropRateLimited)
		return refuse(cn, ErrRateLimited)
	}
	q, err := req.query()
	if err != nil {
		return refuse(cn, err)
	}
	c.served.Add(1)
	if !c.firstSeen(req.QID) {
		return cn.send(response{Done: true}) // a duplicate: answered already
	}
	sent := map[Key]bool{}
	var batch [][]byte
	size := 0
	flush := func(done bool) error {
		err := cn.send(response{Ads: batch, Done: done})
		batch, size = nil, 0
		return err
	}
	add := func(k Key, raw []byte) error {
		if sent[k] || len(sent) >= q.Limit {
			return nil
		}
		sent[k] = true
		if size+len(raw) > answerBatch {
			if err := flush(false); err != nil {
				return err
			}
		}
		batch = append(batch, raw)
		size += len(raw)
		return nil
	}
	for _, e := range c.store.query(&q, time.Now(), q.Limit) {
		if err := add(e.ad.Key(), e.raw); err != nil {
			return err
		}
	}
	if len(sent) < q.Limit && q.TTL > 0 {
		if targets := c.forwardTargets(from, req.Flood); len(targets) > 0 {
			fwd := *req
			fwd.TTL = q.TTL - 1
			fwd.Limit = q.Limit - len(sent)
			ctx, cancel := context.WithTimeout(c.ctx, forwardTimeout)
			res := c.forward(ctx, targets, fwd, &q)
			cancel()
			for _, r := range res {
				if err := add(r.ad.Key(), r.raw); err != nil {
					return err
				}
			}
		}
	}
	return flush(true)
}

type rawAd struct {
	ad  Advertisement
	raw []byte
}

// forwardTargets: a super-peer forwards to the super-peers it knows; a peer
// that floods forwards a flooded query to all its neighbours.
func (c *core) forwardTargets(from lpeer.ID, flood bool) []lpeer.ID {
	var cand []lpeer.ID
	switch {
	case flood && c.cfg.Flood:
		cand = c.neighbours()
	case !flood && c.p.Role() == peer.RoleSuperPeer:
		cand = c.superPeerNeighbours()
	}
	out := cand[:0:0]
	for _, id := range cand {
		if id != from && id != c.host.ID() {
			out = append(out, id)
		}
	}
	return out
}

// relayHop is the protocol every super-peer serves and edges do not.
const relayHop = "/libp2p/circuit/relay/0.2.0/hop"

// superPeerNeighbours are the connected super-peers: the configured ones, and
// any connected peer that serves as a relay and speaks discovery, such as a
// super-peer that was configured with this one.
func (c *core) superPeerNeighbours() []lpeer.ID {
	set := map[lpeer.ID]bool{}
	for _, id := range c.p.ConnectedSuperPeers() {
		set[id] = true
	}
	for _, id := range c.host.Network().Peers() {
		if set[id] {
			continue
		}
		if ok, _ := c.host.Peerstore().SupportsProtocols(id, relayHop, ProtocolID); len(ok) == 2 {
			set[id] = true
		}
	}
	return sortedIDs(set)
}

// forward asks targets concurrently and collects their verified answers.
func (c *core) forward(ctx context.Context, targets []lpeer.ID, req request, q *Query) []rawAd {
	type res struct{ ads []rawAd }
	ch := make(chan res, len(targets))
	for _, id := range targets {
		go func() {
			var got []rawAd
			errEnough := errors.New("enough")
			_ = c.call(ctx, id, req, func(r *response) error {
				now := time.Now()
				for _, raw := range r.Ads {
					if ad, ok := c.answer(raw, q, now); ok {
						got = append(got, rawAd{ad, raw})
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

func (c *core) servePublish(cn *conn, from lpeer.ID, req *request) error {
	if c.p.Role() != peer.RoleSuperPeer {
		return refuse(cn, ErrNotSuperPeer)
	}
	if len(req.Ads) > MaxPublishBatch {
		c.drop(DropMalformed)
		return refuse(cn, errors.New("too many advertisements in one publish"))
	}
	lim := c.limiter(from)
	now := time.Now()
	accepted := 0
	var firstErr error
	for _, raw := range req.Ads {
		if !lim.publish.Allow() {
			c.drop(DropRateLimited)
			firstErr = cmpErr(firstErr, ErrRateLimited)
			continue
		}
		ad, err := c.verify(raw, now)
		if err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		if ad.Publisher != from {
			c.drop(DropWrongPublisher)
			firstErr = cmpErr(firstErr, reject(DropWrongPublisher, ErrRejected, "%s may publish only its own advertisements", from))
			continue
		}
		if _, err := c.insert(&entry{ad: ad, raw: raw, until: cacheUntil(&ad, now)}); err != nil {
			firstErr = cmpErr(firstErr, err)
			continue
		}
		accepted++
	}
	resp := response{Done: true, Accepted: accepted}
	if firstErr != nil {
		resp.Code, resp.Err = codeOf(firstErr), firstErr.Error()
	}
	return cn.send(resp)
}

func cmpErr(first, err error) error {
	if first != nil {
		return first
	}
	return err
}

func (c *core) serveFlush(cn *conn, from lpeer.ID, req *request) error {
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
