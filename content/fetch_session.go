package content

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/peer"
)

// downSession fetches from one provider over one stream.
type downSession struct {
	d         *download
	peer      peer.ID
	wake      chan struct{}
	recv      atomic.Int64 // piece bytes received
	lastRecv  atomic.Int64 // UnixNano of the last frame received
	delivered atomic.Int64 // good pieces
	relayed   bool

	// guarded by d.mu
	have       bitfield
	requested  map[int]struct{}
	cancels    []int
	choked     bool
	strikes    int
	cursor     int
	chokeMeter meter
	chokeRate  float64   // smoothed rate for the choker
	interested bool      // told the provider we want its pieces
	rate       float64   // EWMA of the provider's delivery rate, bytes/s
	lastPiece  time.Time // arrival of the previous piece
}

// wants reports whether ss's provider has a piece the download lacks.
// Called with d.mu held.
func (d *download) wants(ss *downSession) bool {
	for i := range d.t.pieces() {
		if !d.have.has(i) && ss.have.has(i) {
			return true
		}
	}
	return false
}

// relayStallTimeout is StallTimeout on a relayed connection: a circuit relay
// that reaches its data limit (peer.RelayLimits.ConnData) stops forwarding,
// and the download should reconnect soon to resume.
const relayStallTimeout = 10 * time.Second

// queueTime is how much data a download keeps requested from a provider,
// in time at the provider's rate: enough to cover a round trip, not so much
// that a slow provider sits on pieces others could send (Pipeline caps it).
const queueTime = time.Second

// measure updates the delivery rate with a piece of n bytes just received.
func (ss *downSession) measure(n int) {
	now := time.Now()
	ss.d.mu.Lock()
	defer ss.d.mu.Unlock()
	if !ss.lastPiece.IsZero() {
		if dt := now.Sub(ss.lastPiece).Seconds(); dt > 0 {
			inst := float64(n) / dt
			if ss.rate == 0 {
				ss.rate = inst
			} else {
				ss.rate = 0.8*ss.rate + 0.2*inst
			}
		}
	}
	ss.lastPiece = now
}

// depth is how many requests to keep outstanding. Called with d.mu held.
func (ss *downSession) depth() int {
	max := ss.d.s.cfg.Pipeline
	if ss.rate == 0 {
		return min(4, max)
	}
	n := int(ss.rate*queueTime.Seconds()/PieceSize) + 2
	return min(n, max)
}

func (ss *downSession) poke() {
	select {
	case ss.wake <- struct{}{}:
	default:
	}
}

// avail counts the session's pieces as available. Called with d.mu held.
func (ss *downSession) avail(d *download) {
	if d.t == nil || ss.have == nil {
		return
	}
	for i := range d.t.pieces() {
		if ss.have.has(i) {
			d.avail[i]++
		}
	}
}

type pieceMsg struct {
	i    int
	data []byte
	buf  *[]byte
}

// run opens a stream to the provider and fetches until the download is done
// or the stream fails.
func (ss *downSession) run(ctx context.Context, ai peer.Addr) error {
	d, s := ss.d, ss.d.s
	if !s.allowed(ai.ID) {
		return ErrDenied
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if len(s.h.Network().ConnsToPeer(lpeer.ID(ai.ID))) == 0 {
		cctx, ccancel := context.WithTimeout(ctx, time.Minute)
		_, err := s.p.Connect(cctx, ai)
		ccancel()
		if err != nil {
			return err
		}
	}
	ss.relayed = s.p.PathTo(ai.ID) == peer.PathRelayed
	str, err := s.h.NewStream(network.WithAllowLimitedConn(ctx, "content"), lpeer.ID(ai.ID), ProtocolID)
	if err != nil {
		return err
	}
	defer str.Reset()
	stopReset := context.AfterFunc(ctx, func() { str.Reset() })
	defer stopReset()
	br := bufio.NewReaderSize(str, 4<<10) // pieces are read past it, not copied through
	w := bufio.NewWriterSize(str, 4<<10)
	str.SetReadDeadline(time.Now().Add(helloTimeout))
	if err := ss.handshake(ctx, br, w); err != nil {
		return err
	}
	str.SetReadDeadline(time.Time{})
	ss.lastRecv.Store(time.Now().UnixNano())
	d.mu.Lock()
	if old := d.sessions[ss.peer]; old != nil {
		d.mu.Unlock()
		return fmt.Errorf("%w: a second session to the same peer", ErrBusy)
	}
	d.sessions[ss.peer] = ss
	ss.cursor = rand.IntN(d.t.pieces())
	ss.avail(d)
	d.mu.Unlock()
	defer ss.leave()

	pieces := make(chan pieceMsg, 2)
	rerr := make(chan error, 1)
	verr := make(chan error, 1)
	go func() {
		defer close(pieces)
		rerr <- ss.readLoop(ctx, br, pieces)
	}()
	go func() {
		var err error
		for m := range pieces {
			if err == nil {
				if err = d.deliver(ss, m.i, m.data); err == nil {
					ss.delivered.Add(1)
				} else {
					cancel()
				}
			}
			putBuf(m.buf)
		}
		verr <- err
	}()
	werr := ss.writeLoop(ctx, w)
	cancel()
	str.Reset()
	re, ve := <-rerr, <-verr
	for _, e := range []error{ve, re, werr} {
		if e != nil && !errors.Is(e, context.Canceled) && !errors.Is(e, network.ErrReset) {
			return e
		}
	}
	select {
	case <-d.doneCh:
		return nil
	default:
	}
	if ctx.Err() != nil && werr == nil {
		return nil
	}
	return errors.Join(werr, re, ve)
}

// handshake sends hello and reads the provider's info and tree.
func (ss *downSession) handshake(ctx context.Context, br *bufio.Reader, w *bufio.Writer) error {
	d := ss.d
	t := d.tree()
	var flags byte
	if t == nil {
		flags = helloWantTree
	}
	if err := writeFrame(w, fHello, d.id[:], []byte{flags}); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return err
	}
	buf := getBuf()
	defer putBuf(buf)
	typ, p, err := readFrame(br, *buf, maxFrame)
	if err != nil {
		return err
	}
	if typ == fError {
		return &remoteError{code: p[0], msg: string(p[1:])}
	}
	if typ != fInfo {
		return fmt.Errorf("%w: frame %d instead of info", ErrProtocol, typ)
	}
	size := int64(binary64(p[:8]))
	if size > MaxSize {
		return fmt.Errorf("%w: size %d", ErrTooLarge, size)
	}
	have := bitfield(append([]byte(nil), p[8:]...))
	if t == nil {
		if t, err = ss.readTree(br, size, *buf); err != nil {
			return err
		}
		if err := d.setTree(ctx, t); err != nil {
			d.fail(err) // local (disk), not the provider's fault
			return err
		}
		t = d.tree()
	}
	if size != t.size || !have.valid(t.pieces()) {
		d.s.ban(ss.peer)
		return fmt.Errorf("%w: provider claims %d bytes (%d-byte bitfield), the tree says %d", ErrBadData, size, len(have), t.size)
	}
	ss.have = have
	return nil
}

func (ss *downSession) readTree(br *bufio.Reader, size int64, buf []byte) (*tree, error) {
	ob := make([]byte, 0, outboardSize(size))
	for len(ob) < cap(ob) {
		typ, p, err := readFrame(br, buf, maxFrame)
		if err != nil {
			return nil, err
		}
		if typ != fTree || int(getU32(p)) != len(ob) || len(p)-4 > cap(ob)-len(ob) {
			return nil, fmt.Errorf("%w: bad tree frame", ErrProtocol)
		}
		ob = append(ob, p[4:]...)
	}
	t, err := parseTree(ss.d.id, ob)
	if err != nil {
		ss.d.s.ban(ss.peer)
		return nil, err
	}
	return t, nil
}

func binary64(p []byte) uint64 {
	var v uint64
	for _, b := range p[:8] {
		v = v<<8 | uint64(b)
	}
	return v
}

// leave unregisters the session and returns its pieces to the pool.
func (ss *downSession) leave() {
	d := ss.d
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := range ss.requested {
		d.dec(i)
	}
	clear(ss.requested)
	for i := range d.t.pieces() {
		if ss.have.has(i) {
			d.avail[i]--
		}
	}
	delete(d.sessions, ss.peer)
	if n := ss.recv.Load(); n > 0 {
		if d.ended == nil {
			d.ended = map[peer.ID]int64{}
		}
		d.ended[ss.peer] += n
	}
	for _, o := range d.sessions {
		o.poke()
	}
}

func (ss *downSession) readLoop(ctx context.Context, br *bufio.Reader, out chan<- pieceMsg) error {
	d := ss.d
	n := d.t.pieces()
	for {
		buf := getBuf()
		typ, p, err := readFrame(br, *buf, maxFrame)
		if err != nil {
			putBuf(buf)
			return err
		}
		ss.lastRecv.Store(time.Now().UnixNano())
		switch typ {
		case fPiece:
			i := int(getU32(p))
			d.mu.Lock()
			_, asked := ss.requested[i]
			had := i < n && d.have.has(i)
			d.mu.Unlock()
			if !asked && !had {
				putBuf(buf)
				return fmt.Errorf("%w: piece %d was not requested", ErrProtocol, i)
			}
			ss.recv.Add(int64(len(p) - 4))
			ss.measure(len(p) - 4)
			select {
			case out <- pieceMsg{i: i, data: p[4:], buf: buf}:
			case <-ctx.Done():
				putBuf(buf)
				return ctx.Err()
			}
			continue
		case fHave:
			i := int(getU32(p))
			if i >= n {
				putBuf(buf)
				return fmt.Errorf("%w: have %d of %d pieces", ErrProtocol, i, n)
			}
			d.mu.Lock()
			if !ss.have.has(i) {
				ss.have.set(i)
				d.avail[i]++
			}
			d.mu.Unlock()
			ss.poke()
		case fChoke:
			d.mu.Lock()
			ss.choked = true
			for i := range ss.requested {
				d.dec(i)
			}
			clear(ss.requested)
			for _, o := range d.sessions {
				o.poke()
			}
			d.mu.Unlock()
		case fUnchoke:
			d.mu.Lock()
			ss.choked = false
			d.mu.Unlock()
			ss.poke()
		case fError:
			putBuf(buf)
			return &remoteError{code: p[0], msg: string(p[1:])}
		default:
			putBuf(buf)
			return fmt.Errorf("%w: frame %d from a provider", ErrProtocol, typ)
		}
		putBuf(buf)
	}
}

// writeLoop keeps Pipeline requests outstanding and sends cancels.
func (ss *downSession) writeLoop(ctx context.Context, w *bufio.Writer) error {
	d, s := ss.d, ss.d.s
	_, down := s.peerLimiters(ss.peer)
	var reqs []int
	check := time.NewTicker(max(s.stallTimeout/4, 10*time.Millisecond))
	defer check.Stop()
	for {
		d.mu.Lock()
		cancels := ss.cancels
		ss.cancels = nil
		reqs = reqs[:0]
		for !ss.choked && len(ss.requested) < ss.depth() {
			i := d.pick(ss)
			if i < 0 {
				break
			}
			ss.requested[i] = struct{}{}
			d.inc(i)
			reqs = append(reqs, i)
		}
		want := len(ss.requested) > 0 || (ss.choked && d.wants(ss))
		flip := want != ss.interested
		ss.interested = want
		d.mu.Unlock()
		if flip {
			typ := fNotInterested
			if want {
				typ = fInterested
			}
			if err := writeFrame(w, typ); err != nil {
				return err
			}
		}
		for _, i := range cancels {
			if err := writeFrame(w, fCancel, u32(uint32(i))); err != nil {
				return err
			}
		}
		for _, i := range reqs {
			if s.downAll != nil || down != nil {
				if err := w.Flush(); err != nil {
					return err
				}
				if err := wait(ctx, pieceLen(d.t.size, i), s.downAll, down); err != nil {
					return err
				}
			}
			if err := writeFrame(w, fRequest, u32(uint32(i))); err != nil {
				return err
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
		if len(reqs) > 0 || len(cancels) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.doneCh:
			return nil
		case <-ss.wake:
		case <-check.C:
			d.mu.Lock()
			waiting := len(ss.requested) > 0
			d.mu.Unlock()
			limit := s.stallTimeout
			if ss.relayed { // a relay past its data limit stalls the connection
				limit = min(limit, relayStallTimeout)
			}
			if idle := time.Since(time.Unix(0, ss.lastRecv.Load())); waiting && idle > limit {
				return fmt.Errorf("%w: nothing for %v", ErrStalled, idle.Round(time.Second))
			}
		}
	}
}
