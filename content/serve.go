package content

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/juxta-p2p/juxta/peer"
)

// Bounds of the serving side.
const (
	// maxQueued bounds the requests one downloader may have queued at a
	// provider; more is a protocol violation and ends the stream.
	maxQueued = 64
	// helloTimeout bounds the wait for a downloader's hello.
	helloTimeout = 30 * time.Second
	// writeTimeout bounds one frame write to a downloader that stopped reading.
	writeTimeout = 2 * time.Minute
)

// piecePool holds buffers of one whole frame: a provider reads a piece into
// the buffer behind the frame's header and index, and writes it in one call.
var piecePool = sync.Pool{New: func() any { b := make([]byte, frameHeader+maxFrame); return &b }}

func getBuf() *[]byte  { return piecePool.Get().(*[]byte) }
func putBuf(b *[]byte) { piecePool.Put(b) }

// swarm is one ID being served: a complete file, or a download's .part file.
type swarm struct {
	s   *Service
	id  ID
	t   *tree
	f   *os.File               // the data; closed when the last reference goes
	rec atomic.Pointer[record] // the index record of complete content; nil while downloading

	refs int       // guarded by s.mu
	dl   *download // guarded by s.mu: set while downloading

	mu       sync.Mutex
	sessions map[*upSession]struct{} // guarded by mu
	choker   *choker[*upSession]     // guarded by mu
	givers   map[peer.ID]bool        // guarded by mu: peers that gave to our finished download
	super    *superSeed              // guarded by mu: nil unless super-seeding (superseed.go)
	superOn  atomic.Bool             // super != nil, read without mu on the send path
}

// openSwarm returns the swarm of id with a reference taken, opening the
// stored content if nobody serves it yet.
func (s *Service) openSwarm(id ID) (*swarm, error) {
	s.mu.Lock()
	if sw := s.swarms[id]; sw != nil {
		sw.refs++
		s.mu.Unlock()
		return sw, nil
	}
	s.mu.Unlock()
	r, ok := s.st.get(id)
	if !ok {
		return nil, ErrNotFound
	}
	r, err := s.settle(id, r, false) // a peer is not kept waiting
	if err != nil {
		return nil, err
	}
	if err := r.fresh(); err != nil {
		return nil, err
	}
	t, err := s.st.loadTree(id)
	if err != nil {
		return nil, fmt.Errorf("%w: tree: %v", ErrNotFound, err)
	}
	f, err := os.Open(r.Path)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sw := s.swarms[id]; sw != nil { // raced with another opener
		f.Close()
		sw.refs++
		return sw, nil
	}
	sw := s.newSwarm(id, t, f)
	sw.rec.Store(&r)
	if sw.super = newSuperSeed(t.pieces()); sw.super != nil {
		sw.superOn.Store(true)
	}
	return sw, nil
}

// newSwarm registers a swarm with one reference. Called with s.mu held.
func (s *Service) newSwarm(id ID, t *tree, f *os.File) *swarm {
	sw := &swarm{s: s, id: id, t: t, f: f, refs: 1,
		sessions: map[*upSession]struct{}{}, choker: newChoker[*upSession](s.cfg.UploadSlots)}
	sw.choker.optEvery = s.optimisticEvery
	s.swarms[id] = sw
	return sw
}

func (s *Service) releaseSwarm(sw *swarm) {
	s.mu.Lock()
	sw.refs--
	last := sw.refs == 0
	if last && s.swarms[sw.id] == sw {
		delete(s.swarms, sw.id)
	}
	s.mu.Unlock()
	if last {
		sw.f.Close()
	}
}

// has reports whether piece i can be served.
func (sw *swarm) has(i int) bool {
	sw.s.mu.Lock()
	dl := sw.dl
	sw.s.mu.Unlock()
	if dl == nil {
		return true
	}
	return dl.hasPiece(i)
}

func (sw *swarm) bitfield() bitfield {
	sw.s.mu.Lock()
	dl := sw.dl
	sw.s.mu.Unlock()
	if dl != nil {
		return dl.bitfieldCopy()
	}
	b := newBitfield(sw.t.pieces())
	for i := range sw.t.pieces() {
		b.set(i)
	}
	return b
}

// announceHave tells every downloader of the swarm about a new piece.
func (sw *swarm) announceHave(i int) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for us := range sw.sessions {
		us.mu.Lock()
		us.haves = append(us.haves, uint32(i))
		us.mu.Unlock()
		us.poke()
	}
}

func (sw *swarm) closeSessions() {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	for us := range sw.sessions {
		us.str.Reset()
	}
}

// rechoke runs a choking round over the swarm's downloaders.
func (sw *swarm) rechoke(now time.Time) {
	sw.s.mu.Lock()
	dl := sw.dl
	sw.s.mu.Unlock()
	sw.mu.Lock()
	defer sw.mu.Unlock()
	cands := make([]chokeCand[*upSession], 0, len(sw.sessions))
	for us := range sw.sessions {
		var r float64
		var given int64
		tier := 0
		if dl != nil {
			r, given = dl.peerRate(us.peer) // tit for tat: what the peer gives us
		} else {
			// A seed shares fairly: who got least from it comes first, so a
			// fast taker that never uploads cannot hog it. A seed that was
			// a downloader here serves first those that gave to it then, so
			// a free-rider does not catch up on the leechers as they finish.
			r = -float64(us.sent.Load())
			if sw.givers[us.peer] {
				tier = 1
			}
		}
		cands = append(cands, chokeCand[*upSession]{key: us, tier: tier, rate: r, given: given, interested: us.interested(now)})
	}
	if sw.super != nil {
		// A super-seeding seed serves every downloader: each is shown
		// pieces that no other was, and the sooner each holds some, the
		// sooner its uplink has something to trade.
		for us := range sw.sessions {
			us.setChoked(false)
		}
		return
	}
	unchoke := sw.choker.round(now, cands)
	for us := range sw.sessions {
		us.setChoked(!unchoke[us])
	}
}

// upSession serves one downloader on one stream.
type upSession struct {
	sw   *swarm
	peer peer.ID
	str  network.Stream
	wake chan struct{}
	sent atomic.Int64 // bytes of pieces sent

	mu      sync.Mutex
	queue   []uint32  // guarded by mu: requested pieces, in order
	haves   []uint32  // guarded by mu: have-updates to send
	ctrl    []byte    // guarded by mu: choke/unchoke frames to send
	choked  bool      // guarded by mu
	lastReq time.Time // guarded by mu
	wants   bool      // guarded by mu: the downloader said it is interested
	meter   meter     // used by rechoke under sw.mu

	view         *superView // guarded by sw.mu: what a super-seeded downloader was shown
	superCounted bool       // guarded by sw.mu: counted in sw.super.active
}

func (us *upSession) poke() {
	select {
	case us.wake <- struct{}{}:
	default:
	}
}

func (us *upSession) interested(now time.Time) bool {
	us.mu.Lock()
	defer us.mu.Unlock()
	return us.wants || len(us.queue) > 0
}

func (us *upSession) setChoked(c bool) {
	us.mu.Lock()
	if us.choked == c {
		us.mu.Unlock()
		return
	}
	us.choked = c
	if c {
		us.queue = us.queue[:0]
		us.ctrl = append(us.ctrl, fChoke)
	} else {
		us.ctrl = append(us.ctrl, fUnchoke)
	}
	us.mu.Unlock()
	us.poke()
}

// handle serves one incoming content stream.
func (s *Service) handle(str network.Stream) {
	s.mu.Lock()
	if s.closed || s.uploads >= s.cfg.MaxUploads {
		busy := !s.closed
		s.mu.Unlock()
		if busy {
			refuse(str, codeBusy, "too many uploads")
			str.Close()
			return
		}
		str.Reset()
		return
	}
	s.uploads++
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.uploads--
		s.mu.Unlock()
		s.wg.Done()
	}()
	if err := s.serve(str); err != nil {
		if errors.Is(err, errRefused) {
			str.Close() // the error frame is on its way
			return
		}
		s.log.Debug("upload ended", "peer", str.Conn().RemotePeer(), "err", err)
		str.Reset()
		return
	}
	str.Close()
}

// errRefused marks a stream answered with an error frame.
var errRefused = errors.New("refused")

func refuse(str network.Stream, code byte, msg string) {
	str.SetWriteDeadline(time.Now().Add(5 * time.Second))
	w := bufio.NewWriter(str)
	if writeFrame(w, fError, []byte{code}, []byte(msg)) == nil {
		w.Flush()
	}
}

func (s *Service) serve(str network.Stream) error {
	remote := peer.ID(str.Conn().RemotePeer())
	if !s.allowed(remote) || (s.cfg.test != nil && s.cfg.test.noServe) {
		refuse(str, codeDenied, "not allowed")
		return fmt.Errorf("%w: %w", errRefused, ErrDenied)
	}
	// Close resets the stream through its context while we wait for hello.
	stop := context.AfterFunc(s.ctx, func() { str.Reset() })
	defer stop()
	str.SetReadDeadline(time.Now().Add(helloTimeout))
	br := bufio.NewReaderSize(str, 512)
	var small [64]byte
	typ, p, err := readFrame(br, small[:], len(small))
	if err != nil {
		return err
	}
	if typ != fHello {
		refuse(str, codeProtocol, "expected hello")
		return fmt.Errorf("%w: frame %d before hello", ErrProtocol, typ)
	}
	var id ID
	copy(id[:], p[:32])
	wantTree := p[32]&helloWantTree != 0
	if s.cfg.AllowContent != nil && !s.cfg.AllowContent(remote, id) {
		refuse(str, codeDenied, "not allowed")
		return fmt.Errorf("%w: %w", errRefused, ErrDenied)
	}
	sw, err := s.openSwarm(id)
	if errors.Is(err, ErrNotFound) && s.awaitTree(id) {
		// Peers that start downloading together ask each other before
		// any has the tree: answered at once with "not found" they would
		// give up on each other, and the swarm would run from the seed.
		sw, err = s.openSwarm(id)
	}
	if err != nil {
		code := codeNotFound
		if errors.Is(err, ErrStale) {
			code = codeStale
		}
		refuse(str, code, fmt.Sprintf("%s: not available", id))
		return fmt.Errorf("%w: %w", errRefused, err)
	}
	defer s.releaseSwarm(sw)
	str.SetReadDeadline(time.Time{})

	us := &upSession{sw: sw, peer: remote, str: str, wake: make(chan struct{}, 1)}
	w := bufio.NewWriterSize(str, 64<<10)
	str.SetWriteDeadline(time.Now().Add(writeTimeout))
	if err := sw.writeIntro(w, wantTree, sw.introBitfield(us)); err != nil {
		sw.mu.Lock()
		sw.superLeave(us)
		sw.mu.Unlock()
		return err
	}
	sw.mu.Lock()
	unchoked := 0
	for o := range sw.sessions {
		if !o.choked {
			unchoked++
		}
	}
	us.choked = unchoked > s.cfg.UploadSlots && sw.super == nil // room for 4 + 1: serve at once
	if us.choked {
		us.ctrl = append(us.ctrl, fChoke)
	}
	sw.sessions[us] = struct{}{}
	sw.superJoin(us)
	sw.mu.Unlock()
	defer func() {
		sw.mu.Lock()
		delete(sw.sessions, us)
		sw.superLeave(us)
		sw.mu.Unlock()
	}()
	us.poke()

	// The writer ends with the reader: it may be waiting for work, not in
	// a write that the reset below would fail.
	wctx, wcancel := context.WithCancel(s.ctx)
	defer wcancel()
	done := make(chan error, 1)
	go func() { done <- us.writeLoop(wctx, w) }()
	rerr := us.readLoop(br)
	wcancel()
	str.Reset() // ends the writer if it is blocked in a write
	werr := <-done
	if rerr == nil || errors.Is(rerr, errEOF) {
		if errors.Is(werr, context.Canceled) && s.ctx.Err() == nil {
			return nil // ended by us, after the downloader closed
		}
		return werr
	}
	return rerr
}

// awaitTree waits, at most helloTimeout and no longer than the download
// runs, for a download of id that does not know its tree yet to learn it,
// and reports whether it did. The wait holds one of MaxUploads streams.
func (s *Service) awaitTree(id ID) bool {
	s.mu.Lock()
	d := s.downloads[id]
	s.mu.Unlock()
	if d == nil {
		return false
	}
	t := time.NewTimer(helloTimeout)
	defer t.Stop()
	select {
	case <-d.treeCh:
		return true
	case <-d.endCh:
		return false
	case <-t.C:
		return false
	case <-s.ctx.Done():
		return false
	}
}

var errEOF = errors.New("content: downloader closed the stream")

func (sw *swarm) writeIntro(w *bufio.Writer, wantTree bool, have bitfield) error {
	if err := writeFrame(w, fInfo, be64(uint64(sw.t.size)), have); err != nil {
		return err
	}
	if wantTree {
		ob := sw.t.outboard
		for off := 0; off < len(ob); off += PieceSize {
			end := min(off+PieceSize, len(ob))
			if err := writeFrame(w, fTree, u32(uint32(off)), ob[off:end]); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

func (us *upSession) readLoop(br *bufio.Reader) error {
	var small [16]byte
	n := us.sw.t.pieces()
	for {
		typ, p, err := readFrame(br, small[:], len(small))
		if err != nil {
			if err.Error() == "EOF" {
				return errEOF
			}
			return err
		}
		switch typ {
		case fRequest:
			i := getU32(p)
			if int(i) >= n {
				return fmt.Errorf("%w: request for piece %d of %d", ErrProtocol, i, n)
			}
			us.mu.Lock()
			if len(us.queue) >= maxQueued {
				us.mu.Unlock()
				return fmt.Errorf("%w: more than %d requests queued", ErrProtocol, maxQueued)
			}
			us.lastReq = us.sw.s.clock.Now()
			if !us.choked {
				us.queue = append(us.queue, i)
			}
			us.mu.Unlock()
			us.poke()
		case fInterested, fNotInterested:
			us.mu.Lock()
			lost := us.wants && typ == fNotInterested
			us.wants = typ == fInterested
			us.mu.Unlock()
			if lost && us.sw.superOn.Load() {
				us.sw.superUninterested(us)
			}
		case fCancel:
			i := getU32(p)
			us.mu.Lock()
			for k, q := range us.queue {
				if q == i {
					us.queue = append(us.queue[:k], us.queue[k+1:]...)
					break
				}
			}
			us.mu.Unlock()
			if us.sw.superOn.Load() {
				us.sw.superCancel(us, int(i))
			}
		default:
			return fmt.Errorf("%w: frame %d from a downloader", ErrProtocol, typ)
		}
	}
}

// writeLoop sends control frames, have-updates and requested pieces.
// It returns when ctx ends.
func (us *upSession) writeLoop(ctx context.Context, w *bufio.Writer) error {
	buf := getBuf()
	defer putBuf(buf)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-us.wake:
		}
		for {
			us.mu.Lock()
			ctrl, haves := us.ctrl, us.haves
			us.ctrl, us.haves = nil, nil
			piece := -1
			if !us.choked && len(us.queue) > 0 {
				piece = int(us.queue[0])
				us.queue = us.queue[1:]
			}
			us.mu.Unlock()
			if len(ctrl) == 0 && len(haves) == 0 && piece < 0 {
				break
			}
			us.str.SetWriteDeadline(time.Now().Add(writeTimeout))
			for _, c := range ctrl {
				if err := writeFrame(w, c); err != nil {
					return err
				}
			}
			for _, h := range haves {
				if err := writeFrame(w, fHave, u32(h)); err != nil {
					return err
				}
			}
			if piece >= 0 && us.sw.has(piece) {
				if err := us.sendPiece(ctx, w, piece, *buf); err != nil {
					return err
				}
			}
		}
		if err := w.Flush(); err != nil {
			return err
		}
	}
}

// sendPiece reads piece i into buf behind the frame's header and writes the
// frame with one Write to the stream, not copied through w's buffer.
func (us *upSession) sendPiece(ctx context.Context, w *bufio.Writer, i int, buf []byte) error {
	sw := us.sw
	// rec turns non-nil when this peer's own download finishes while it
	// uploads to others (download.finish).
	if rec := sw.rec.Load(); rec != nil && i%16 == 0 {
		if err := rec.fresh(); err != nil {
			return err
		}
	}
	n := pieceLen(sw.t.size, i)
	frame := buf[:frameHeader+4+n]
	data := frame[frameHeader+4:]
	if _, err := sw.f.ReadAt(data, int64(i)*PieceSize); err != nil && n > 0 {
		return fmt.Errorf("content: read piece %d: %w", i, err)
	}
	if t := sw.s.cfg.test; t != nil && t.corrupt != nil {
		t.corrupt(i, data)
	}
	putHeader(frame, fPiece, 4+n)
	binary.BigEndian.PutUint32(frame[frameHeader:], uint32(i))
	pl, _ := sw.s.peerLimiters(us.peer)
	if w.Buffered() > 0 {
		// Control frames and haves go first; an empty buffer passes the
		// frame straight to the stream. Nor are frames held while waiting
		// for tokens.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := wait(ctx, n, sw.s.upAll, pl); err != nil {
		return err
	}
	if _, err := w.Write(frame); err != nil {
		return err
	}
	us.sent.Add(int64(n))
	sw.s.uploaded.Add(int64(n))
	if sw.superOn.Load() {
		sw.superSent(us, i)
	}
	return nil
}

func be64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
	return b
}
