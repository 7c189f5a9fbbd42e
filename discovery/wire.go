package discovery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/peer"
)

// ProtocolID is the discovery protocol: a request, then response frames until
// one has Done set. A stream carries one publish, flush or refresh, or one
// query after another (keep.go): an asker done with it closes it, or never
// sends more. Frames are varint-length-prefixed (go-msgio) deterministic CBOR.
const ProtocolID = "/juxta/discovery/1.0.0"

// Protocol limits.
const (
	// MaxFrame bounds one frame in either direction: a publish batch of
	// file advertisements (about 500 bytes each) fits.
	MaxFrame = 1 << 20
	// MaxPublishBatch bounds the advertisements in one publish request. Each
	// is verified on its own.
	MaxPublishBatch = 1024
	// MaxRefreshBatch bounds the digests in one refresh request.
	MaxRefreshBatch = 8192
	// StreamTimeout bounds one request, end to end, on both sides.
	StreamTimeout = 10 * time.Second
)

const (
	opQuery uint8 = iota + 1
	opPublish
	opFlush
	opRefresh
)

// Response codes.
const (
	codeOK uint8 = iota
	codeRateLimited
	codeNotSuperPeer
	codeInvalid
	codeQuota
)

type request struct {
	Op    uint8    `cbor:"1,keyasint"`
	QID   []byte   `cbor:"2,keyasint,omitempty"`
	Scope string   `cbor:"3,keyasint,omitempty"`
	Type  string   `cbor:"4,keyasint,omitempty"`
	Attr  string   `cbor:"5,keyasint,omitempty"`
	Value string   `cbor:"6,keyasint,omitempty"`
	Limit int      `cbor:"7,keyasint,omitempty"`
	TTL   int      `cbor:"8,keyasint,omitempty"`
	Flood bool     `cbor:"9,keyasint,omitempty"`
	Ads   [][]byte `cbor:"10,keyasint,omitempty"`
	ID    string   `cbor:"11,keyasint,omitempty"`
	// Keyword queries.
	Keywords string   `cbor:"12,keyasint,omitempty"`
	KAttrs   []string `cbor:"13,keyasint,omitempty"`
	AnyKW    bool     `cbor:"14,keyasint,omitempty"`
	Offset   int      `cbor:"15,keyasint,omitempty"`
	// Visited are the super-peers that have the query already: none of them
	// is asked again (at most MaxVisited).
	Visited [][]byte `cbor:"16,keyasint,omitempty"`
	// Digests refresh advertisements the super-peer holds (opRefresh).
	Digests [][]byte `cbor:"17,keyasint,omitempty"`
}

type response struct {
	Ads      [][]byte `cbor:"1,keyasint,omitempty"`
	Done     bool     `cbor:"2,keyasint,omitempty"`
	Code     uint8    `cbor:"3,keyasint,omitempty"`
	Err      string   `cbor:"4,keyasint,omitempty"`
	Accepted int      `cbor:"5,keyasint,omitempty"`
	// Scores and Pubs go with Ads, one each, in keyword answers.
	Scores []float64 `cbor:"6,keyasint,omitempty"`
	Pubs   []int     `cbor:"7,keyasint,omitempty"`
	// Missing are the indexes of refreshed digests the super-peer lacks.
	Missing []int `cbor:"8,keyasint,omitempty"`
}

// rank returns the score and publisher count of the i-th advertisement.
func (r *response) rank(i int) (float64, int) {
	var score float64
	var pubs int
	if i < len(r.Scores) && r.Scores[i] > 0 && r.Scores[i] < math.MaxFloat32 { // NaN fails both
		score = r.Scores[i]
	}
	if i < len(r.Pubs) && r.Pubs[i] > 0 {
		pubs = min(r.Pubs[i], math.MaxInt32)
	}
	return score, pubs
}

func (r *response) err() error {
	var sentinel error
	switch r.Code {
	case codeOK:
		return nil
	case codeRateLimited:
		sentinel = ErrRateLimited
	case codeNotSuperPeer:
		sentinel = ErrNotSuperPeer
	case codeInvalid:
		sentinel = ErrInvalid
	case codeQuota:
		sentinel = ErrQuota
	default:
		sentinel = ErrRemote
	}
	return fmt.Errorf("%w: %s", sentinel, r.Err)
}

func codeOf(err error) uint8 {
	switch {
	case errors.Is(err, ErrRateLimited):
		return codeRateLimited
	case errors.Is(err, ErrNotSuperPeer):
		return codeNotSuperPeer
	case errors.Is(err, ErrQuota):
		return codeQuota
	}
	return codeInvalid
}

func (q *Query) request(qid []byte, flood bool) request {
	return request{
		Op: opQuery, QID: qid, Scope: q.Scope, Type: q.Type, Attr: q.Attr, Value: q.Value, Limit: q.Limit, TTL: q.TTL, Flood: flood,
		Keywords: q.Keywords, KAttrs: q.KeywordAttrs, AnyKW: q.AnyKeyword, Offset: q.Offset,
	}
}

// MaxQID bounds a query ID: peers remember recent IDs for a minute, so an
// ID of any size would let a peer pin memory (issue 12, item 3).
const MaxQID = 32

// MaxVisited bounds the visited list a forwarded query carries.
const MaxVisited = 32

func (r *request) query() (Query, error) {
	q := Query{
		Scope: r.Scope, Type: r.Type, Attr: r.Attr, Value: r.Value, Limit: r.Limit, TTL: r.TTL,
		Keywords: r.Keywords, KeywordAttrs: r.KAttrs, AnyKeyword: r.AnyKW, Offset: r.Offset,
	}
	if r.TTL == 0 {
		q.TTL = NoForward
	}
	switch {
	case r.Limit <= 0:
		return q, fmt.Errorf("%w: limit %d", ErrInvalid, r.Limit)
	case len(r.QID) > MaxQID:
		return q, fmt.Errorf("%w: query ID of %d bytes, limit %d", ErrInvalid, len(r.QID), MaxQID)
	case len(r.Visited) > MaxVisited:
		return q, fmt.Errorf("%w: %d visited, limit %d", ErrInvalid, len(r.Visited), MaxVisited)
	}
	return q, q.normalize()
}

// conn is one request's stream, framed.
type conn struct {
	s     network.Stream
	br    *bufio.Reader
	r     msgio.ReadCloser
	w     msgio.WriteCloser
	count func() // counts a frame written
}

// readBufs are the conns' read buffers: through one, a frame's varint length
// costs no stream read per byte.
var readBufs = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 512) }}

// newConn frames s. The caller must call release once done with the conn.
func newConn(s network.Stream, count func()) *conn {
	br := readBufs.Get().(*bufio.Reader)
	br.Reset(s)
	return &conn{s: s, br: br, r: msgio.NewVarintReaderSize(br, MaxFrame), w: msgio.NewVarintWriter(s), count: count}
}

// release gives the read buffer back; the conn must not be read again.
func (c *conn) release() {
	c.br.Reset(nil)
	readBufs.Put(c.br)
	c.br, c.r = nil, nil // a read after release panics, not reads another stream
}

func (c *conn) send(v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	if len(b) > MaxFrame {
		return fmt.Errorf("%w: frame of %d bytes, limit %d", ErrInvalid, len(b), MaxFrame)
	}
	c.count()
	return c.w.WriteMsg(b)
}

func (c *conn) recv(v any) error {
	b, err := c.r.ReadMsg()
	if err != nil {
		return err
	}
	defer c.r.ReleaseMsg(b)
	if err := decMode.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: malformed frame: %v", ErrRemote, err)
	}
	return nil
}

// close closes the stream and gives the read buffer back.
func (c *conn) close() {
	_ = c.s.Close()
	c.release()
}

// call sends req to peer to and hands every response frame to onFrame until
// the last. It verifies nothing: callers verify advertisements. A query goes
// on the stream kept from the last query to the same peer, if there is one,
// and its stream is kept afterwards (keep.go); any other operation has a
// stream of its own.
func (s *core) call(ctx context.Context, to peer.ID, req request, onFrame func(*response) error) error {
	ctx, cancel := context.WithTimeout(ctx, StreamTimeout)
	defer cancel()
	keep := req.Op == opQuery
	if keep {
		if c := s.keep.take(to, time.Now()); c != nil {
			err, stale := s.exchange(ctx, c, to, req, onFrame, true)
			if !stale {
				return err
			}
			// The kept stream was closed before it answered anything: the
			// other side let it go idle, restarted, or keeps no more
			// streams (an older version, or past its bounds). Once more,
			// on a new stream, which is not kept for a while.
			s.keep.cool(to, time.Now())
		}
	}
	ctx = network.WithAllowLimitedConn(ctx, "juxta discovery")
	str, err := s.host.NewStream(ctx, lpeer.ID(to), ProtocolID)
	if err != nil {
		return fmt.Errorf("discovery: open stream to %s: %w", to.ShortString(), err)
	}
	s.opened.Add(1)
	err, _ = s.exchange(ctx, newConn(str, s.countSent), to, req, onFrame, false)
	return err
}

// exchange runs one request on c, which it then closes or, after a query
// whose last frame came, keeps. stale reports that c was a kept stream that
// failed before any answer came, and ctx has not ended: the request may be
// sent again on a new stream.
func (s *core) exchange(ctx context.Context, c *conn, to peer.ID, req request, onFrame func(*response) error, reused bool) (err error, stale bool) {
	str := c.s
	// The deadline as well as the reset: a reset does not wake a yamux write
	// waiting for room in its session's send queue.
	if d, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { str.Reset() })
	keep := req.Op == opQuery
	done := false // the last frame came: nothing of this request is left on the stream
	defer func() {
		switch {
		case !stop(): // reset by ctx
			c.release()
		case done && keep:
			s.keep.put(to, c, time.Now())
		case done:
			c.close()
		default:
			str.Reset()
			c.release()
		}
	}()
	if err := c.send(req); err != nil {
		if reused && ctx.Err() == nil && !isTimeout(err) {
			return err, true
		}
		return fmt.Errorf("discovery: send to %s: %w", to.ShortString(), err), false
	}
	if !keep {
		_ = str.CloseWrite()
	}
	for frames := 0; ; frames++ {
		var resp response
		if err := c.recv(&resp); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("discovery: %s: %w", to.ShortString(), ctx.Err()), false
			}
			if reused && frames == 0 && !isTimeout(err) {
				return err, true
			}
			return fmt.Errorf("discovery: read from %s: %w", to.ShortString(), err), false
		}
		done = resp.Done
		if err := resp.err(); err != nil {
			return err, false
		}
		if err := onFrame(&resp); err != nil {
			return err, false
		}
		if done {
			return nil, false
		}
	}
}
