package content

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"

	"github.com/juxta-p2p/juxta/peer"
)

// A download writes into dst+".part" and keeps its piece bitmap in
// dst+".part.state": a header (magic, ID, size), one byte per piece, set
// after the piece is verified and written, and the ID of the machine's boot
// (bootID) in which the bitmap last matched the part file. Neither file is
// fsynced while the download runs. After a crash of the process the kernel
// still writes both, so the bitmap says which pieces are good and only
// pieces in flight at the time are fetched again. After a power loss or a
// kernel crash (another boot ID, or none) the pieces the bitmap claims are
// verified first (recheck).
const (
	partSuffix  = ".part"
	stateSuffix = ".part.state"
	stateMagic  = "JXCPART1"
	stateHeader = 8 + 32 + 8
)

// download is one Fetch in progress.
type download struct {
	s     *Service
	id    ID
	name  string
	dst   string
	owned bool

	doneCh    chan struct{} // closed when every piece is verified and written
	treeCh    chan struct{} // closed when the tree is known and the swarm serves
	endCh     chan struct{} // closed when Fetch returns
	announced atomic.Bool   // announced as a provider while downloading
	doneOnce  sync.Once

	mu       sync.Mutex
	t        *tree                    // guarded by mu; nil until known
	sw       *swarm                   // guarded by mu; set with t
	state    *os.File                 // guarded by mu
	have     bitfield                 // guarded by mu
	nhave    int                      // guarded by mu
	inflight []uint8                  // guarded by mu: sessions asked for each piece
	idle     int                      // guarded by mu: pieces neither had nor asked for
	avail    []uint16                 // guarded by mu: sessions that have each piece
	sessions map[peer.ID]*downSession // guarded by mu
	ended    map[peer.ID]int64        // guarded by mu: bytes of ended sessions, by peer
	done     int64                    // guarded by mu: verified bytes
	fetched  int64                    // guarded by mu: bytes received this run
	failErr  error                    // guarded by mu: a local failure (disk)
}

func (d *download) part() string      { return d.dst + partSuffix }
func (d *download) statePath() string { return d.dst + stateSuffix }

func (d *download) tree() *tree {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.t
}

// setTree installs the verified tree and opens the part and state files,
// resuming from the state file when it matches.
func (d *download) setTree(ctx context.Context, t *tree) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t != nil {
		return nil
	}
	if err := d.s.st.saveTree(d.id, t); err != nil {
		return err
	}
	// A state file is believed only beside its part file: one left alone
	// (a crash between removing them) would claim pieces nobody has.
	_, err := os.Stat(d.part())
	newPart := errors.Is(err, fs.ErrNotExist)
	f, err := os.OpenFile(d.part(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	n := t.pieces()
	have, trusted, err := d.openState(t.size, n, newPart)
	if err == nil {
		err = f.Truncate(t.size)
	}
	if err == nil && !trusted {
		err = d.recheck(ctx, f, t, have)
	}
	if err == nil {
		err = preallocate(f, t.size)
	}
	if err != nil {
		f.Close()
		if d.state != nil {
			d.state.Close()
			d.state = nil
		}
		return err
	}
	d.t, d.have = t, have
	d.inflight, d.avail = make([]uint8, n), make([]uint16, n)
	for i := range n {
		if have.has(i) {
			d.nhave++
			d.done += int64(pieceLen(t.size, i))
		}
	}
	d.idle = n - d.nhave
	d.s.mu.Lock()
	if old := d.s.swarms[d.id]; old != nil { // a stale swarm of removed content
		delete(d.s.swarms, d.id)
	}
	d.sw = d.s.newSwarm(d.id, t, f)
	d.sw.dl = d
	d.s.mu.Unlock()
	for _, ss := range d.sessions {
		ss.avail(d)
	}
	close(d.treeCh)
	if !d.s.cfg.NoAnnounce { // a downloader serves what it has
		d.announced.Store(true)
		d.s.announce(d.id, d.name)
	}
	if d.nhave == n {
		d.doneOnce.Do(func() { close(d.doneCh) })
	}
	return nil
}

// recheck verifies the pieces a resumed download's state file claims when
// the machine may have lost writes since (see the top of this file),
// forgets those that fail, and stamps the state file with this boot. It
// runs with d.mu held, before any session can deliver; ctx ends it.
func (d *download) recheck(ctx context.Context, f *os.File, t *tree, have bitfield) error {
	good, bad, err := verifyPieces(ctx, f, t, have)
	if err != nil {
		return err
	}
	n := t.pieces()
	for i := range n {
		if have.has(i) && !good.has(i) {
			if _, err := d.state.WriteAt([]byte{0}, stateHeader+int64(i)); err != nil {
				return err
			}
		}
	}
	if boot := bootID(); boot != nil {
		if _, err := d.state.WriteAt(boot, stateHeader+int64(n)); err != nil {
			return err
		}
	}
	copy(have, good)
	if bad > 0 {
		d.s.log.Warn("content: resumed download had pieces the disk lost; fetching them again",
			"id", d.id, "path", d.part(), "bad_pieces", bad)
	}
	return nil
}

// openState opens or creates the state file and returns the bitmap it
// holds, and whether the bitmap is known to match the part file: it was
// stamped in this boot, or the file is new.
func (d *download) openState(size int64, n int, discard bool) (bitfield, bool, error) {
	f, err := os.OpenFile(d.statePath(), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false, err
	}
	have := newBitfield(n)
	boot := bootID()
	buf := make([]byte, stateHeader+n+len(boot))
	got, _ := io.ReadFull(f, buf)
	hdrOK := !discard && got >= stateHeader+n && string(buf[:8]) == stateMagic && ID(buf[8:40]) == d.id &&
		int64(binary.BigEndian.Uint64(buf[40:48])) == size
	if !hdrOK {
		err := f.Truncate(0)
		if err == nil {
			_, err = f.WriteAt(stateBytes(d.id, size, have), 0)
		}
		if err != nil {
			f.Close()
			return nil, false, err
		}
		d.state = f
		return have, true, nil
	}
	for i := range n {
		if buf[stateHeader+i] == 1 {
			have.set(i)
		}
	}
	d.state = f
	return have, boot != nil && got == len(buf) && bytes.Equal(buf[stateHeader+n:], boot), nil
}

func (d *download) hasPiece(i int) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.have != nil && d.have.has(i)
}

func (d *download) bitfieldCopy() bitfield {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append(bitfield(nil), d.have...)
}

func (d *download) peerRate(id peer.ID) (rate float64, given int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if ss := d.sessions[id]; ss != nil {
		// Smoothed over rounds, as BitTorrent's rolling average: one round
		// may see no whole piece from a peer that uploads steadily.
		got := ss.recv.Load()
		r := ss.chokeMeter.sample(d.s.clock.Now(), got)
		ss.chokeRate = 0.6*ss.chokeRate + 0.4*r
		return ss.chokeRate, got
	}
	return 0, 0
}

// endgameDepth is how many requests a session may have out when it is asked
// for pieces already in flight elsewhere (endgame).
const endgameDepth = 2

// pick chooses the next piece to ask ss for: the rarest piece it has that
// nobody was asked for, starting at the session's cursor so that a lone
// provider streams the file in order; when there is none (endgame), a piece
// in flight elsewhere that ss was not asked for. Called with d.mu held.
func (d *download) pick(ss *downSession) int {
	n := len(d.have) * 8
	n = min(n, d.t.pieces())
	best, bestA := -1, int(^uint(0)>>1)
	start := ss.cursor
	if len(d.sessions) > 1 {
		// Among several providers, start anywhere: downloaders scanning
		// in order from their cursors catch up with each other and then
		// ask a seed for the same pieces, one after the other.
		start = rand.IntN(n)
	}
	for k := range n {
		i := (start + k) % n
		if d.have.has(i) || d.inflight[i] > 0 || !ss.have.has(i) {
			continue
		}
		if a := int(d.avail[i]); a < bestA {
			best, bestA = i, a
			if a <= 1 {
				break
			}
		}
	}
	if best >= 0 {
		ss.cursor = (best + 1) % n
		return best
	}
	if d.idle > 0 {
		return -1 // not endgame: other providers will be asked for the rest
	}
	// Endgame: every piece left is in flight; ask again where least asked,
	// but only of a session that has run dry (fewer than endgameDepth
	// requests out): with many providers a second of data at each covers
	// much of a file, and duplicates asked of busy sessions would spend
	// the swarm's uplinks on copies.
	if len(ss.requested) >= endgameDepth {
		return -1
	}
	bestF := 255
	for i := range n {
		if d.have.has(i) || !ss.have.has(i) || d.inflight[i] >= 3 {
			continue
		}
		if _, asked := ss.requested[i]; asked {
			continue
		}
		if f := int(d.inflight[i]); f < bestF {
			best, bestF = i, f
		}
	}
	return best
}

// deliver verifies a piece from ss and writes it.
func (d *download) deliver(ss *downSession, i int, data []byte) error {
	d.mu.Lock()
	t := d.t
	d.fetched += int64(len(data))
	d.mu.Unlock()
	if !t.verify(i, data) {
		return d.bad(ss, i)
	}
	if d.hasPiece(i) {
		d.release(ss, i)
		return nil // a duplicate in endgame
	}
	if _, err := d.sw.f.WriteAt(data, int64(i)*PieceSize); err != nil {
		d.fail(fmt.Errorf("content: write %s: %w", d.part(), err))
		return err
	}
	d.mu.Lock()
	if d.have.has(i) {
		d.mu.Unlock()
		d.release(ss, i)
		return nil
	}
	if _, err := d.state.WriteAt([]byte{1}, stateHeader+int64(i)); err != nil {
		d.mu.Unlock()
		d.fail(fmt.Errorf("content: write %s: %w", d.statePath(), err))
		return err
	}
	d.have.set(i)
	if d.inflight[i] == 0 {
		d.idle--
	}
	d.nhave++
	d.done += int64(len(data))
	for _, o := range d.sessions {
		if _, ok := o.requested[i]; ok {
			delete(o.requested, i)
			d.dec(i)
			if o != ss {
				o.cancels = append(o.cancels, i)
			}
			o.poke()
		}
	}
	complete := d.nhave == d.t.pieces()
	sw := d.sw
	d.mu.Unlock()
	sw.announceHave(i)
	if complete {
		d.doneOnce.Do(func() { close(d.doneCh) })
	}
	return nil
}

// inc and dec count the sessions asked for piece i. Called with mu held.
func (d *download) inc(i int) {
	if d.inflight[i] == 0 && !d.have.has(i) {
		d.idle--
	}
	d.inflight[i]++
}

func (d *download) dec(i int) {
	d.inflight[i]--
	if d.inflight[i] == 0 && !d.have.has(i) {
		d.idle++
	}
}

// release forgets that ss was asked for piece i.
func (d *download) release(ss *downSession, i int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := ss.requested[i]; ok {
		delete(ss.requested, i)
		d.dec(i)
	}
	ss.poke()
}

// bad counts a piece that failed verification against ss and bans it after
// MaxBadPieces.
func (d *download) bad(ss *downSession, i int) error {
	d.release(ss, i)
	d.mu.Lock()
	ss.strikes++
	strikes := ss.strikes
	d.mu.Unlock()
	d.s.log.Warn("piece failed verification", "id", d.id, "piece", i, "peer", ss.peer, "strikes", strikes)
	if strikes >= d.s.cfg.MaxBadPieces {
		d.s.ban(ss.peer)
		return fmt.Errorf("%w: %s sent %d bad pieces and is banned", ErrBadData, ss.peer.ShortString(), strikes)
	}
	return nil
}

func (d *download) fail(err error) {
	d.mu.Lock()
	if d.failErr == nil {
		d.failErr = err
	}
	d.mu.Unlock()
	d.doneOnce.Do(func() { close(d.doneCh) })
}

// finish moves the completed part file to dst and records it.
func (d *download) finish() (Info, error) {
	d.mu.Lock()
	t, sw, state := d.t, d.sw, d.state
	d.mu.Unlock()
	// Not fsynced here: the syncer does it after Fetch returned, and until
	// then the record says so (durable.go). Nor is the disk asked to start
	// writing (sync_file_range): on ext4 the record's own fsync below then
	// waited behind the whole file, ~65 ms of a 64 MiB fetch's ~180.
	// The state file goes first: a state file without its part file
	// would otherwise tell a later download to this place that it has
	// every piece (setTree also guards against that).
	state.Close()
	os.Remove(d.statePath())
	if err := os.Rename(d.part(), d.dst); err != nil {
		return Info{}, err
	}
	fi, err := sw.f.Stat()
	if err != nil {
		return Info{}, err
	}
	r := record{Path: d.dst, Size: t.size, MTime: fi.ModTime().UnixNano(), Name: d.name, Owned: d.owned, Unsynced: true}
	j := d.s.queueSync(d.id, d.dst, r.MTime)
	if err := d.s.st.put(d.id, r); err != nil {
		d.s.dropSync(j)
		return Info{}, err
	}
	d.s.startSync(j)
	// The swarm remembers who gave to this download (its sessions have
	// ended, so d.ended holds every byte): as a seed it serves them first.
	d.mu.Lock()
	givers := make(map[peer.ID]bool, len(d.ended))
	for id, n := range d.ended {
		if n > 0 {
			givers[id] = true
		}
	}
	d.mu.Unlock()
	sw.mu.Lock()
	sw.givers = givers
	sw.mu.Unlock()
	d.s.mu.Lock()
	sw.dl = nil
	sw.rec.Store(&r)
	d.s.mu.Unlock()
	return Info{ID: d.id, Size: t.size, Name: d.name, Path: d.dst}, nil
}

// close releases the download's files; the part and state files stay for a
// later resume unless the download finished.
func (d *download) close() {
	d.mu.Lock()
	sw, state := d.sw, d.state
	d.mu.Unlock()
	if sw == nil {
		return
	}
	d.s.mu.Lock()
	if sw.dl == d {
		sw.dl = nil
		if d.s.swarms[d.id] == sw {
			delete(d.s.swarms, d.id) // incomplete: serve no more
		}
	}
	d.s.mu.Unlock()
	if sw.rec.Load() == nil {
		sw.closeSessions()
	}
	state.Close()
	d.s.releaseSwarm(sw)
}
