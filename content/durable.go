package content

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
)

// Durability. A finished download is verified piece by piece as it
// arrives, renamed into place and recorded at once; making it durable (an
// fsync of the file and of its directory) happens afterwards, on the
// service's syncer, so that Fetch returns when the bytes are in place and
// not when the disk has written them: on some disks the fsync of a large
// file takes as long as its whole transfer. Flush waits for the syncer,
// and Close drains it.
//
// Until its fsync is done, the index record says so (record.Unsynced).
// This run trusts what it wrote itself (the kernel holds the verified
// bytes). A record left unsynced by an earlier run (the machine crashed, or
// lost power, before the disk had the bytes) is not trusted: it is settled
// first, in the background from New and on demand before its content is
// served or returned. Settling verifies every piece against the stored
// tree:
//   - intact, the file is fsynced and the record trusted again;
//   - damaged or cut short, the file goes back to its part name with a
//     state file naming the pieces that verified, and the record goes, so
//     that Fetch to the same destination fetches only the damaged pieces;
//   - a record whose path now holds other content, or a download's part
//     file, is dropped and the file left alone; one whose file was changed
//     since (a later mtime: a crash only loses time) is stale, as before.
//
// So a peer never serves bytes it has not verified, a crash costs only
// what the disk lost, and nobody waits for the disk on the way. A peer
// asking for content being settled is refused (not found) at once rather
// than kept waiting.

// errSettling refuses a peer's request for content being settled.
var errSettling = fmt.Errorf("%w: being verified after an unclean shutdown", ErrNotFound)

// syncJob is one finished file waiting for its fsync.
type syncJob struct {
	id    ID
	path  string
	mtime int64
	done  chan struct{} // closed when the job ran, whatever the outcome
}

// syncMark names the file of a record this run wrote: it trusts that one.
type syncMark struct {
	path  string
	mtime int64
}

// queueSync marks the file at path as written by this run and not yet
// durable. The job goes to the syncer once its record is in the index
// (startSync), or is dropped (dropSync).
func (s *Service) queueSync(id ID, path string, mtime int64) *syncJob {
	j := &syncJob{id: id, path: path, mtime: mtime, done: make(chan struct{})}
	s.mu.Lock()
	s.ours[id] = syncMark{path, mtime}
	s.pending[j] = struct{}{}
	s.mu.Unlock()
	return j
}

func (s *Service) startSync(j *syncJob) {
	s.mu.Lock()
	if s.syncEnded { // closing: nobody else will
		s.mu.Unlock()
		s.syncOne(j)
		return
	}
	s.syncQ = append(s.syncQ, j)
	s.mu.Unlock()
	select {
	case s.syncKick <- struct{}{}:
	default:
	}
}

func (s *Service) dropSync(j *syncJob) {
	s.mu.Lock()
	if s.ours[j.id] == (syncMark{j.path, j.mtime}) {
		delete(s.ours, j.id)
	}
	delete(s.pending, j)
	s.mu.Unlock()
	close(j.done)
}

// wrote reports whether this run wrote the file r names, so that it needs
// no settling.
func (s *Service) wrote(id ID, r record) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.ours[id]
	return ok && m == syncMark{r.Path, r.MTime}
}

// syncLoop makes finished files durable, one at a time, in the order they
// finished; on Close, the rest before it returns.
func (s *Service) syncLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		q := s.syncQ
		s.syncQ = nil
		if len(q) == 0 && s.ctx.Err() != nil {
			s.syncEnded = true
		}
		s.mu.Unlock()
		for _, j := range q {
			s.syncOne(j)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-s.syncKick:
		case <-s.ctx.Done():
			s.mu.Lock()
			ended := s.syncEnded
			s.mu.Unlock()
			if ended {
				return
			}
		}
	}
}

// syncOne makes j's file durable and says so in the index. A failed fsync
// leaves the record unsynced and the file trusted by this run only (the
// kernel's copy is the verified one; a later fsync that succeeds proves
// nothing about the pages the failed one lost), and is reported by Flush
// and Close.
func (s *Service) syncOne(j *syncJob) {
	err := s.syncFile(j.path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil // removed meanwhile: nothing to keep
	} else if err == nil {
		err = s.st.markSynced(j.id, j.path, j.mtime)
	}
	s.mu.Lock()
	delete(s.pending, j)
	if err == nil && s.ours[j.id] == (syncMark{j.path, j.mtime}) {
		delete(s.ours, j.id) // durable: the record says so now
	}
	if err != nil {
		err = fmt.Errorf("content: make %s durable: %w", j.path, err)
		if s.syncErr == nil {
			s.syncErr = err
		}
		if s.flushErr == nil {
			s.flushErr = err
		}
	}
	s.mu.Unlock()
	if err != nil {
		s.log.Error("content: could not make a file durable", "id", j.id, "err", err)
	}
	close(j.done)
}

// syncFile fsyncs the file at path and the directory that names it.
func (s *Service) syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = s.sync(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// sync fsyncs f, through the test hook if one is set.
func (s *Service) sync(f *os.File) error {
	if s.syncHook != nil {
		return s.syncHook(f)
	}
	return f.Sync()
}

// Flush waits until every file finished so far is durable on disk, or ctx
// ends. It returns the first fsync that failed since the last Flush, like
// fsync itself: a file it names is not durable, and the next run verifies
// it before it is used.
func (s *Service) Flush(ctx context.Context) error {
	s.mu.Lock()
	var wait []*syncJob
	for j := range s.pending {
		wait = append(wait, j)
	}
	s.mu.Unlock()
	for _, j := range wait {
		select {
		case <-j.done:
		case <-ctx.Done():
			return fmt.Errorf("content: flush: %w", ctx.Err())
		}
	}
	s.mu.Lock()
	err := s.flushErr
	s.flushErr = nil
	s.mu.Unlock()
	return err
}

// lockID takes id's lock: settle, Remove and AddBytes of one ID run one at
// a time. Without wait it fails at once when the lock is taken; with wait
// it fails only when the service closes.
func (s *Service) lockID(id ID, wait bool) (unlock func(), ok bool) {
	for {
		s.mu.Lock()
		c, busy := s.idLocks[id]
		if !busy {
			c = make(chan struct{})
			s.idLocks[id] = c
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.idLocks, id)
				s.mu.Unlock()
				close(c)
			}, true
		}
		s.mu.Unlock()
		if !wait {
			return nil, false
		}
		select {
		case <-c:
		case <-s.ctx.Done():
			return nil, false
		}
	}
}

// settle returns r once it can be trusted: at once for a durable record or
// one this run wrote, otherwise after settling it (see the top of this
// file). Without wait, content being settled meanwhile gives errSettling.
// Content found damaged gives an error wrapping ErrNotFound.
func (s *Service) settle(id ID, r record, wait bool) (record, error) {
	if !r.Unsynced || s.wrote(id, r) {
		return r, nil
	}
	unlock, ok := s.lockID(id, wait)
	if !ok {
		if s.ctx.Err() != nil {
			return r, net.ErrClosed
		}
		return r, errSettling
	}
	defer unlock()
	r, ok = s.st.get(id) // settled or changed meanwhile?
	if !ok {
		return r, ErrNotFound
	}
	if !r.Unsynced || s.wrote(id, r) {
		return r, nil
	}
	if owner, ok := s.st.byPath(r.Path); !ok || owner != id {
		s.st.deleteIf(id, r)
		return r, fmt.Errorf("%w: %s holds other content now", ErrNotFound, r.Path)
	}
	fi, err := os.Stat(r.Path)
	if err != nil {
		return r, err
	}
	if fi.ModTime().UnixNano() > r.MTime {
		return r, fmt.Errorf("%w: %s", ErrStale, r.Path) // changed since: a crash only loses time
	}
	t, err := s.st.loadTree(id)
	if err != nil {
		return r, fmt.Errorf("%w: tree: %v", ErrNotFound, err)
	}
	have, bad, err := verifyFile(s.ctx, r.Path, t)
	if err != nil {
		return r, err
	}
	if bad == 0 && fi.Size() == r.Size {
		if err := s.syncFile(r.Path); err != nil {
			return r, err
		}
		nr := r
		nr.Unsynced, nr.MTime = false, fi.ModTime().UnixNano()
		if err := s.st.replace(id, r, nr); err != nil {
			return r, err
		}
		s.log.Info("content: verified after an unclean shutdown", "id", id, "path", r.Path)
		return nr, nil
	}
	msg := fmt.Errorf("%w: %s was damaged by an unclean shutdown (%d of %d pieces); Fetch it again",
		ErrNotFound, r.Path, bad, t.pieces())
	if err := s.toPart(id, r, have); err != nil {
		// A download to the same place has begun, or the move failed: the
		// record goes, and the damaged file stays for the download to
		// replace.
		s.log.Warn("content: damaged by an unclean shutdown; left in place", "id", id, "path", r.Path, "why", err)
		if derr := s.st.deleteIf(id, r); derr != nil {
			return r, derr
		}
		return r, msg
	}
	s.log.Warn("content: damaged by an unclean shutdown; Fetch it again to fetch the damaged pieces",
		"id", id, "path", r.Path, "bad_pieces", bad, "pieces", t.pieces())
	return r, fmt.Errorf("%w to fetch only those", msg)
}

// toPart turns r's damaged file back into a download in progress: a state
// file naming the pieces in have, the file under its part name, both
// durable, then the record gone. It touches nothing when a download of id,
// or to r.Path, is under way or left its files.
func (s *Service) toPart(id ID, r record, have bitfield) error {
	part, state := r.Path+partSuffix, r.Path+stateSuffix
	s.mu.Lock()
	busy := s.downloads[id] != nil
	s.mu.Unlock()
	if busy {
		return ErrBusy
	}
	if err := writeState(state, id, r.Size, have); err != nil {
		return err // one exists already: a download to r.Path
	}
	if err := renameNoReplace(r.Path, part); err != nil {
		os.Remove(state)
		return err
	}
	if err := syncDir(filepath.Dir(r.Path)); err != nil {
		return err
	}
	return s.st.deleteIf(id, r)
}

// settleAll settles, in the background from New, every record an earlier
// run left unsynced, so that peers asking for them soon after a restart
// find them ready.
func (s *Service) settleAll() {
	defer s.wg.Done()
	for _, u := range s.st.unsynced() {
		if s.ctx.Err() != nil {
			return
		}
		if _, err := s.settle(u.id, u.r, true); err != nil && s.ctx.Err() == nil {
			s.log.Info("content: settling after an unclean shutdown", "id", u.id, "err", err)
		}
	}
}

// verifyFile checks every piece of the file at path against t: the pieces
// that verify, and how many do not. A file cut short lacks the rest.
func verifyFile(ctx context.Context, path string, t *tree) (bitfield, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	return verifyPieces(ctx, f, t, nil)
}

// verifyPieces checks the pieces of f that only names (every piece when only
// is nil) against t: those that verify, and how many of them do not. A
// piece that cannot be read (a bad sector) does not verify; fetching it
// again rewrites it.
func verifyPieces(ctx context.Context, f *os.File, t *tree, only bitfield) (bitfield, int, error) {
	n := t.pieces()
	have := newBitfield(n)
	bad := 0
	buf := getBuf()
	defer putBuf(buf)
	for i := range n {
		if only != nil && !only.has(i) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		b := (*buf)[:pieceLen(t.size, i)]
		_, err := io.ReadFull(io.NewSectionReader(f, int64(i)*PieceSize, int64(len(b))), b)
		if err == nil && t.verify(i, b) {
			have.set(i)
		} else {
			bad++
		}
	}
	return have, bad, nil
}

// writeState writes a new download state file holding have (pieces verified
// in this boot), durably; it fails if one exists.
func writeState(path string, id ID, size int64, have bitfield) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(stateBytes(id, size, have))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
	}
	return err
}

// stateBytes is a download state file (see download.go) holding have,
// stamped with this boot.
func stateBytes(id ID, size int64, have bitfield) []byte {
	n := numPieces(size)
	boot := bootID()
	buf := make([]byte, stateHeader+n, stateHeader+n+len(boot))
	copy(buf, stateMagic)
	copy(buf[8:], id[:])
	binary.BigEndian.PutUint64(buf[40:], uint64(size))
	for i := range n {
		if have.has(i) {
			buf[stateHeader+i] = 1
		}
	}
	return append(buf, boot...)
}
