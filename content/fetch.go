package content

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
		return s.copyLocal(ctx, info, dst)
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
		doneCh: make(chan struct{}), treeCh: make(chan struct{}), endCh: make(chan struct{}), sessions: map[peer.ID]*downSession{}}
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
		close(d.endCh)
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

// copyLocal copies stored content to dst, durably before it is named: no
// index record names dst, so no later run would verify it. The copy is
// made under a name of its own, so that it never touches a download's part
// file, and ctx ends it.
func (s *Service) copyLocal(ctx context.Context, info Info, dst string) (Info, error) {
	err := s.copyFile(ctx, info.Path, dst)
	if err != nil {
		return Info{}, fmt.Errorf("content: fetch %s: %w", info.ID, err)
	}
	info.Path = dst
	return info, nil
}

func (s *Service) copyFile(ctx context.Context, src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	sweepCopies(dst, time.Now())
	out, err := os.CreateTemp(filepath.Dir(dst), copyPrefix(dst)+"*")
	if err != nil {
		return err
	}
	_, err = io.Copy(out, &progressReader{ctx: ctx, r: in})
	if err == nil {
		err = s.sync(out)
	}
	err = errors.Join(err, out.Close())
	if err == nil {
		err = os.Rename(out.Name(), dst)
	}
	if err != nil {
		os.Remove(out.Name())
		return err
	}
	// Named, but the name itself may not be durable yet: say so, as the
	// syncer would.
	return syncDir(filepath.Dir(dst))
}

// copyPrefix starts the names of copyFile's temporary files for dst.
func copyPrefix(dst string) string { return "." + filepath.Base(dst) + ".copy-" }

// staleCopy is how long a copy's temporary file must have gone unwritten
// before a later copy to the same destination removes it: a copy under way
// writes it continually.
const staleCopy = 10 * time.Minute

// sweepCopies removes the temporary files that copies to dst left when the
// process died during them. Nothing else is touched: only regular files named
// as copyFile names them for this very destination (the prefix, then the
// digits os.CreateTemp adds), unwritten for staleCopy.
func sweepCopies(dst string, now time.Time) {
	dir, prefix := filepath.Dir(dst), copyPrefix(dst)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return // CreateTemp reports it
	}
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" || !e.Type().IsRegular() {
			continue // not a name os.CreateTemp gave: a user's file
		}
		if fi, err := e.Info(); err == nil && now.Sub(fi.ModTime()) > staleCopy {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
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
		if err := d.setTree(ctx, t); err != nil {
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
			go func(ai peer.Addr) { defer wg.Done(); d.session(ctx, ai, ended) }(c.ai)
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
			order = d.addCandidate(cands, order, ai)
		case e := <-ended:
			cands[e.id].sessionEnded(e)
			active--
		case <-retry.C:
		case <-tick.C:
			d.publish(start, meters, &total, false, nil)
		}
	}
}

// session runs one download session with ai and reports how it ended on
// ended, unless ctx ends first.
func (d *download) session(ctx context.Context, ai peer.Addr, ended chan<- sessEnd) {
	ss := &downSession{d: d, peer: ai.ID, wake: make(chan struct{}, 1), requested: map[int]struct{}{}}
	err := ss.run(ctx, ai)
	select {
	case ended <- sessEnd{id: ai.ID, err: err, progress: ss.delivered.Load() > 0, relayed: ss.relayed}:
	case <-ctx.Done():
	}
}

// addCandidate records a provider that find reported, or more addresses for
// one already known (reviving it if it failed for a reason that may pass),
// and returns order with a new provider appended.
func (d *download) addCandidate(cands map[peer.ID]*cand, order []peer.ID, ai peer.Addr) []peer.ID {
	s := d.s
	if ai.ID == s.p.ID() {
		return order
	}
	if c := cands[ai.ID]; c != nil {
		c.ai.Addrs = append(c.ai.Addrs, ai.Addrs...)
		if c.dead && !s.Banned(ai.ID) && c.lastErr != nil && !errors.Is(c.lastErr, ErrNotFound) {
			c.dead, c.fails = false, 0
		}
		return order
	}
	cands[ai.ID] = &cand{ai: ai}
	return append(order, ai.ID)
}

// sessionEnded records how a session with c ended: the provider is dropped,
// or retried after a backoff that doubles with each failure.
func (c *cand) sessionEnded(e sessEnd) {
	c.active = false
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
