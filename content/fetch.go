package content

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/peer"
)

// FetchOption adjusts one Fetch.
type FetchOption func(*fetchOpts)

type fetchOpts struct {
	providers []peer.Addr
	name      string
	onlyHints bool
}

// WithProviders names providers to ask first; their addresses are hints.
func WithProviders(ais ...peer.Addr) FetchOption {
	return func(o *fetchOpts) { o.providers = append(o.providers, ais...) }
}

// FromLink takes providers and the name from a share link.
func FromLink(l Link) FetchOption {
	return func(o *fetchOpts) {
		o.providers = append(o.providers, l.Providers...)
		if o.name == "" {
			o.name = l.Name
		}
	}
}

// OnlyProviders stops Fetch from looking for providers beyond those named
// by WithProviders and FromLink.
func OnlyProviders() FetchOption { return func(o *fetchOpts) { o.onlyHints = true } }

// maxRetries is how many times in a row a provider's stream may fail without
// delivering a piece before the download gives up on it.
const maxRetries = 5

// Fetch downloads id into the file dst (empty: into Dir, managed by the
// service) from every provider it finds, and shares it once complete. Pieces
// are verified on arrival; a provider sending bad pieces is banned and its
// pieces are fetched elsewhere. An interrupted Fetch resumes where it
// stopped when called again with the same dst. Content already stored is not
// fetched again.
func (s *Service) Fetch(ctx context.Context, id ID, dst string, opts ...FetchOption) (Info, error) {
	var o fetchOpts
	for _, f := range opts {
		f(&o)
	}
	owned := dst == ""
	if owned {
		dst = s.st.blobPath(id)
	}
	dst, err := filepath.Abs(dst)
	if err != nil {
		return Info{}, fmt.Errorf("content: fetch %s: %w", id, err)
	}
	if info, err := s.Stat(id); err == nil {
		if info.Path == dst {
			return info, nil
		}
		return s.copyLocal(info, dst)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Info{}, fmt.Errorf("content: fetch %s: %w", id, net.ErrClosed)
	}
	if s.downloads[id] != nil {
		s.mu.Unlock()
		return Info{}, fmt.Errorf("content: fetch %s: %w", id, ErrBusy)
	}
	d := &download{s: s, id: id, name: o.name, dst: dst, owned: owned,
		doneCh: make(chan struct{}), sessions: map[peer.ID]*downSession{}}
	if d.name == "" && !owned {
		d.name = filepath.Base(dst)
	}
	s.downloads[id] = d
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.downloads, id)
		s.mu.Unlock()
		s.wg.Done()
	}()
	info, err := d.run(ctx, o)
	d.close()
	if err != nil {
		if d.announced.Load() {
			uctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			s.unannounce(uctx, id)
			cancel()
		}
		return Info{}, fmt.Errorf("content: fetch %s: %w", id, err)
	}
	s.announce(id, info.Name)
	return info, nil
}

func (s *Service) copyLocal(info Info, dst string) (Info, error) {
	src, err := os.Open(info.Path)
	if err != nil {
		return Info{}, err
	}
	defer src.Close()
	tmp := dst + partSuffix
	out, err := os.Create(tmp)
	if err != nil {
		return Info{}, err
	}
	_, err = io.Copy(out, src)
	err = errors.Join(err, out.Close())
	if err == nil {
		err = os.Rename(tmp, dst)
	}
	if err != nil {
		os.Remove(tmp)
		return Info{}, fmt.Errorf("content: fetch %s: %w", info.ID, err)
	}
	info.Path = dst
	return info, nil
}

type cand struct {
	ai      peer.Addr
	active  bool
	fails   int
	retryAt time.Time
	dead    bool
	lastErr error
	relayed bool
}

type sessEnd struct {
	id       peer.ID
	err      error
	progress bool
	relayed  bool
}

// run drives the download: it finds providers, keeps up to MaxPeers sessions
// and retries failed ones, until every piece is in or no provider is left.
func (d *download) run(ctx context.Context, o fetchOpts) (Info, error) {
	s := d.s
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(s.ctx, cancel)
	defer stop()
	if t, err := s.st.loadTree(d.id); err == nil {
		if err := d.setTree(t); err != nil {
			return Info{}, err
		}
	}
	found := make(chan peer.Addr)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); d.find(ctx, o, found) }()
	ended := make(chan sessEnd)
	cands := map[peer.ID]*cand{}
	var order []peer.ID
	active := 0
	tick := time.NewTicker(ProgressInterval)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	start := time.Now()
	meters := map[peer.ID]*meter{}
	var total meter
	for {
		now := time.Now()
		next := time.Time{}
		for _, id := range order {
			c := cands[id]
			if active >= s.cfg.MaxPeers {
				break
			}
			if c.active || c.dead {
				continue
			}
			if c.retryAt.After(now) {
				if next.IsZero() || c.retryAt.Before(next) {
					next = c.retryAt
				}
				continue
			}
			c.active = true
			active++
			wg.Add(1)
			go func(ai peer.Addr) {
				defer wg.Done()
				ss := &downSession{d: d, peer: ai.ID, wake: make(chan struct{}, 1), requested: map[int]struct{}{}}
				err := ss.run(ctx, ai)
				select {
				case ended <- sessEnd{id: ai.ID, err: err, progress: ss.delivered.Load() > 0, relayed: ss.relayed}:
				case <-ctx.Done():
				}
			}(c.ai)
		}
		if !next.IsZero() {
			retry.Reset(time.Until(next))
		}
		if active == 0 && found == nil && next.IsZero() {
			return Info{}, d.noProviders(cands)
		}
		select {
		case <-ctx.Done():
			return Info{}, ctx.Err()
		case <-d.doneCh:
			d.mu.Lock()
			ferr := d.failErr
			d.mu.Unlock()
			if ferr != nil {
				return Info{}, ferr
			}
			cancel()
			wg.Wait()
			info, err := d.finish()
			d.publish(start, meters, &total, true, err)
			return info, err
		case ai, ok := <-found:
			if !ok {
				found = nil
				continue
			}
			if ai.ID == s.p.ID() {
				continue
			}
			if c := cands[ai.ID]; c != nil {
				c.ai.Addrs = append(c.ai.Addrs, ai.Addrs...)
				if c.dead && !s.Banned(ai.ID) && c.lastErr != nil && !errors.Is(c.lastErr, ErrNotFound) {
					c.dead, c.fails = false, 0
				}
				continue
			}
			cands[ai.ID] = &cand{ai: ai}
			order = append(order, ai.ID)
		case e := <-ended:
			c := cands[e.id]
			c.active = false
			active--
			c.lastErr, c.relayed = e.err, e.relayed
			if e.progress {
				c.fails = 0
			}
			c.fails++
			switch {
			case e.err == nil:
				c.dead = true // the provider had nothing more for us
			case errors.Is(e.err, ErrNotFound) && c.fails >= 3:
				c.dead = true // asked again in case it was starting its own download
			case errors.Is(e.err, ErrDenied), errors.Is(e.err, ErrBadData),
				errors.Is(e.err, ErrProtocol), c.fails >= maxRetries:
				c.dead = true
			default:
				c.retryAt = time.Now().Add(time.Duration(1<<(c.fails-1)) * 250 * time.Millisecond)
			}
		case <-retry.C:
		case <-tick.C:
			d.publish(start, meters, &total, false, nil)
		}
	}
}

// noProviders explains why a download could not go on.
func (d *download) noProviders(cands map[peer.ID]*cand) error {
	if len(cands) == 0 {
		return fmt.Errorf("%w: none found", ErrNoProviders)
	}
	var errs []error
	allRelayed := true
	for id, c := range cands {
		if c.lastErr != nil {
			errs = append(errs, fmt.Errorf("%s: %w", id.ShortString(), c.lastErr))
		}
		allRelayed = allRelayed && c.relayed
	}
	err := fmt.Errorf("%w (%d tried): %w", ErrNoProviders, len(cands), errors.Join(errs...))
	if allRelayed {
		err = fmt.Errorf("%w: %w", ErrRelayOnly, err)
	}
	return err
}

func (d *download) publish(start time.Time, meters map[peer.ID]*meter, total *meter, last bool, err error) {
	now := time.Now()
	d.mu.Lock()
	ev := Progress{Op: OpFetch, ID: d.id, Name: d.name, Bytes: d.done, Pieces: d.nhave, Done: last, Err: err}
	if d.t != nil {
		ev.Total, ev.TotalPieces = d.t.size, d.t.pieces()
	}
	for id, ss := range d.sessions {
		m := meters[id]
		if m == nil {
			m = &meter{}
			meters[id] = m
		}
		n := d.ended[id] + ss.recv.Load()
		ev.Peers = append(ev.Peers, PeerRate{Peer: id, Down: m.sample(now, n), Bytes: n, Relayed: ss.relayed})
	}
	for id, n := range d.ended {
		if d.sessions[id] == nil {
			ev.Peers = append(ev.Peers, PeerRate{Peer: id, Bytes: n})
		}
	}
	d.mu.Unlock()
	if last {
		ev.Rate = float64(ev.Bytes) / max(now.Sub(start).Seconds(), 1e-9)
	} else {
		ev.Rate = total.sample(now, ev.Bytes)
		if ev.Rate > 0 && ev.Total > ev.Bytes {
			ev.ETA = time.Duration(float64(ev.Total-ev.Bytes) / ev.Rate * float64(time.Second))
		}
	}
	d.s.bus.Publish(ev)
}

// find sends providers to out: the hints first, then discovery's and the
// DHT's, and closes out.
func (d *download) find(ctx context.Context, o fetchOpts, out chan<- peer.Addr) {
	defer close(out)
	send := func(ai peer.Addr) bool {
		select {
		case out <- ai:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for _, ai := range o.providers {
		if !send(ai) {
			return
		}
	}
	if o.onlyHints {
		return
	}
	d.s.findProviders(ctx, d.id, send)
}

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
	if err := ss.handshake(br, w); err != nil {
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
func (ss *downSession) handshake(br *bufio.Reader, w *bufio.Writer) error {
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
		if err := d.setTree(t); err != nil {
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
