package content

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Durability. A finished download is verified piece by piece as it
// arrives, renamed into place and recorded at once; making it durable (an
// fsync of the file and of its directory) happens afterwards, on the
// service's syncer, so that Fetch returns when the bytes are in place and
// not when the disk has written them: on some disks the fsync of a large
// file takes as long as its whole transfer. Flush waits for the syncer.
//
// Until its fsync is done, the index record says so (record.Unsynced). A
// record left that way by an earlier run (the machine crashed, or lost
// power, before the disk had the bytes) is not trusted: before its content
// is served or returned, every piece is verified against the stored tree
// (settle). Content that verifies is fsynced and trusted again. Content
// that does not is turned back into a download in progress: the file goes
// back to its part name with a state file naming the pieces that verified,
// and the record goes, so that Fetch to the same destination fetches only
// the damaged pieces. A peer never serves bytes it has not verified, a
// crash costs at most the pieces the disk had not written, and nobody
// waits for the disk on the way.

// syncJob is one finished download waiting for its fsync.
type syncJob struct {
	id    ID
	path  string
	mtime int64
	done  chan struct{} // closed when the job ran, whatever the outcome
}

// queueSync marks id as written by this run and not yet durable: settle
// trusts it, since the bytes the kernel holds are the verified ones. The
// job goes to the syncer once its record is in the index (startSync).
func (s *Service) queueSync(id ID, path string, mtime int64) *syncJob {
	j := &syncJob{id: id, path: path, mtime: mtime, done: make(chan struct{})}
	s.mu.Lock()
	s.syncing[id] = j
	s.mu.Unlock()
	return j
}

// startSync hands j to the syncer; dropSync forgets a job whose record
// could not be written.
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
	if s.syncing[j.id] == j {
		delete(s.syncing, j.id)
	}
	s.mu.Unlock()
	close(j.done)
}

// syncLoop makes finished downloads durable, one at a time, in the order
// they finished. On Close it makes the rest durable before it returns, so
// a clean shutdown leaves nothing to settle.
func (s *Service) syncLoop() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		q := s.syncQ
		s.syncQ = nil
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
			q := s.syncQ
			s.syncQ, s.syncEnded = nil, true
			s.mu.Unlock()
			for _, j := range q {
				s.syncOne(j)
			}
			return
		}
	}
}

func (s *Service) syncOne(j *syncJob) {
	defer func() {
		s.mu.Lock()
		if s.syncing[j.id] == j {
			delete(s.syncing, j.id)
		}
		s.mu.Unlock()
		close(j.done)
	}()
	if err := s.syncFile(j.path); errors.Is(err, fs.ErrNotExist) {
		return // removed meanwhile
	} else if err != nil {
		// The record stays unsynced: the next look at it settles it.
		s.log.Error("content: could not make a download durable", "id", j.id, "path", j.path, "err", err)
		return
	}
	if err := s.st.markSynced(j.id, j.path, j.mtime); err != nil {
		s.log.Error("content: index", "id", j.id, "err", err)
	}
}

// syncFile fsyncs the file at path and the directory that names it.
func (s *Service) syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	if s.syncHook != nil {
		err = s.syncHook(f)
	} else {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Flush waits until every download finished so far is durable on disk, or
// ctx ends.
func (s *Service) Flush(ctx context.Context) error {
	s.mu.Lock()
	var wait []chan struct{}
	for _, j := range s.syncing {
		wait = append(wait, j.done)
	}
	s.mu.Unlock()
	for _, c := range wait {
		select {
		case <-c:
		case <-ctx.Done():
			return fmt.Errorf("content: flush: %w", ctx.Err())
		}
	}
	return nil
}

// settle returns r once it can be trusted: at once for a durable record
// or one this run wrote; otherwise after verifying its file (see the top of
// this file). Content that fails is made a resumable download, and the
// error wraps ErrNotFound.
func (s *Service) settle(id ID, r record) (record, error) {
	if !r.Unsynced {
		return r, nil
	}
	s.mu.Lock()
	_, ours := s.syncing[id]
	s.mu.Unlock()
	if ours {
		return r, nil
	}
	s.settleMu.Lock()
	defer s.settleMu.Unlock()
	r, ok := s.st.get(id) // settled meanwhile?
	if !ok {
		return r, ErrNotFound
	}
	if !r.Unsynced {
		return r, nil
	}
	// Neither size nor mtime is checked (record.fresh): after a crash the
	// file's metadata may be older than what was recorded, and the pieces
	// say more than either.
	fi, err := os.Stat(r.Path)
	if err != nil {
		return r, err
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
		r.Unsynced, r.MTime = false, fi.ModTime().UnixNano()
		if err := s.st.put(id, r); err != nil {
			return r, err
		}
		s.log.Info("content: verified after an unclean shutdown", "id", id, "path", r.Path)
		return r, nil
	}
	// Damaged: back to a download in progress. The state file first, then
	// the rename, then the record: a crash in between leaves a record
	// whose file is gone (stale, never served) or a part nobody indexes.
	if err := writeState(r.Path+stateSuffix, id, r.Size, have); err != nil {
		return r, err
	}
	if err := os.Rename(r.Path, r.Path+partSuffix); err != nil {
		return r, err
	}
	if _, err := s.st.delete(id); err != nil && !errors.Is(err, ErrNotFound) {
		return r, err
	}
	s.log.Warn("content: damaged by an unclean shutdown; Fetch it again to fetch the damaged pieces",
		"id", id, "path", r.Path, "bad_pieces", bad, "pieces", t.pieces())
	return r, fmt.Errorf("%w: %s was damaged by an unclean shutdown (%d of %d pieces); Fetch it again to resume",
		ErrNotFound, r.Path, bad, t.pieces())
}

// verifyFile checks every piece of the file at path against t: the pieces
// that verify, and how many do not.
func verifyFile(ctx context.Context, path string, t *tree) (bitfield, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	n := t.pieces()
	have := newBitfield(n)
	bad := 0
	buf := getBuf()
	defer putBuf(buf)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, 0, err
		}
		b := (*buf)[:pieceLen(t.size, i)]
		_, err := io.ReadFull(io.NewSectionReader(f, int64(i)*PieceSize, int64(len(b))), b)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, 0, err
		}
		if err == nil && t.verify(i, b) { // a file cut short lacks the rest
			have.set(i)
		} else {
			bad++
		}
	}
	return have, bad, nil
}

// writeState writes a download's state file (see download.openState),
// durably.
func writeState(path string, id ID, size int64, have bitfield) error {
	n := numPieces(size)
	buf := make([]byte, stateHeader+n)
	copy(buf, stateMagic)
	copy(buf[8:], id[:])
	binary.BigEndian.PutUint64(buf[40:], uint64(size))
	for i := range n {
		if have.has(i) {
			buf[stateHeader+i] = 1
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
