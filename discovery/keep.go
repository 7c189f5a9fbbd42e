package discovery

import (
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// Query streams are kept open between queries: a peer that asks another
// again soon (an edge and its super-peer, a super-peer forwarding to its
// peers, the provider of an exact query) sends the next query on the stream
// the last one used, and neither side pays for opening a stream: a stream,
// its protocol negotiation and its handler goroutine cost about as much CPU
// as the query itself.
//
// The asking side keeps at most one idle stream per peer, and maxKeptIdle in
// all, each for keepIdle; the answering side waits serveIdle for the next
// query on a stream, on at most maxServedIdle streams at once and
// maxServedIdlePeer of one peer (beyond that it closes a stream after its
// answer, as it does after any other operation).
// serveIdle is longer than keepIdle, so that a kept stream is rarely found
// closed; when it is, the query is sent again once on a new stream, and no
// stream to that peer is kept for keepCool: one that closes its streams after
// each answer would otherwise cost a wasted attempt per query.
const (
	keepIdle          = 5 * time.Second
	keepCool          = time.Minute
	maxCool           = 1024
	serveIdle         = 15 * time.Second
	maxKeptIdle       = 128
	maxServedIdle     = 256
	maxServedIdlePeer = 4
)

// keeper holds the idle query streams of the asking side.
type keeper struct {
	ttl time.Duration // how long a stream is kept idle: keepIdle unless a test says

	mu     sync.Mutex
	idle   map[peer.ID]*kept     // guarded by mu
	cooled map[peer.ID]time.Time // guarded by mu; peers not kept for until then
	closed bool                  // guarded by mu
}

func (k *keeper) idleFor() time.Duration {
	if k.ttl > 0 {
		return k.ttl
	}
	return keepIdle
}

// cool stops keeping streams to id for keepCool, unless maxCool peers are
// cooling already.
func (k *keeper) cool(id peer.ID, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.cooled) >= maxCool {
		return
	}
	if k.cooled == nil {
		k.cooled = map[peer.ID]time.Time{}
	}
	k.cooled[id] = now.Add(keepCool)
}

type kept struct {
	c     *conn
	since time.Time
}

// take returns the idle stream kept for id, or nil. A stream idle for
// keepIdle or on a closed connection is closed, not returned.
func (k *keeper) take(id peer.ID, now time.Time) *conn {
	k.mu.Lock()
	e := k.idle[id]
	delete(k.idle, id)
	k.mu.Unlock()
	if e == nil {
		return nil
	}
	if now.Sub(e.since) >= k.idleFor() || e.c.s.Conn().IsClosed() {
		e.c.close()
		return nil
	}
	return e.c
}

// put keeps c, whose query ended cleanly, for id's next query, or closes it
// when one is kept already, the keeper is full, or it is closed.
func (k *keeper) put(id peer.ID, c *conn, now time.Time) {
	k.mu.Lock()
	until, cooling := k.cooled[id]
	if cooling && now.After(until) {
		delete(k.cooled, id)
		cooling = false
	}
	if k.closed || cooling || k.idle[id] != nil || len(k.idle) >= maxKeptIdle {
		k.mu.Unlock()
		c.close()
		return
	}
	if k.idle == nil {
		k.idle = map[peer.ID]*kept{}
	}
	k.idle[id] = &kept{c: c, since: now}
	k.mu.Unlock()
}

// sweep closes the streams idle for keepIdle, and forgets the peers cooled
// down; close closes all of them, and every stream put afterwards.
func (k *keeper) sweep(now time.Time) {
	k.mu.Lock()
	for id, until := range k.cooled {
		if now.After(until) {
			delete(k.cooled, id)
		}
	}
	k.mu.Unlock()
	k.drain(func(e *kept) bool { return now.Sub(e.since) >= k.idleFor() })
}

func (k *keeper) close() {
	k.mu.Lock()
	k.closed = true
	k.mu.Unlock()
	k.drain(func(*kept) bool { return true })
}

func (k *keeper) drain(old func(*kept) bool) {
	var out []*conn
	k.mu.Lock()
	for id, e := range k.idle {
		if old(e) {
			out = append(out, e.c)
			delete(k.idle, id)
		}
	}
	k.mu.Unlock()
	for _, c := range out {
		c.close()
	}
}

// len is how many idle streams are kept.
func (k *keeper) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.idle)
}
