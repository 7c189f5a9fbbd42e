package content

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Fetch returns once the file is verified and in place, without waiting
// for its fsync; until that is done the record says so, Flush waits for
// it, and Close does it before it returns.
func TestFetchDoesNotWaitForTheDisk(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "src", 3*PieceSize+100, 1)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c := newNode(t, func(cfg *Config) { cfg.Dir = dir })
	entered, release := make(chan struct{}, 1), make(chan struct{})
	c.s.syncHook = func(f *os.File) error {
		entered <- struct{}{}
		<-release
		return f.Sync()
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := c.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	if r, _ := c.s.st.get(info.ID); !r.Unsynced {
		t.Fatal("recorded as durable before its fsync")
	}
	// Served and returned meanwhile: this run wrote it, so it is trusted.
	if _, err := c.s.Stat(info.ID); err != nil {
		t.Fatal(err)
	}
	<-entered // the syncer holds it
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.s.Flush(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("Flush with the fsync held and ctx ended: %v", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.s.Close() }()
	close(release)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if r, ok := st.get(info.ID); !ok || r.Unsynced {
		t.Fatalf("after Close: record %+v, found %v; want durable", r, ok)
	}
}

// Flush returns when what was fetched is durable.
func TestFlush(t *testing.T) {
	ctx := testCtx(t)
	a, c := newNode(t, nil), newNode(t, nil)
	info, err := a.s.AddBytes(ctx, "x", randBytes(2*PieceSize, 3))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.s.Fetch(ctx, info.ID, "", WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, c} { // AddBytes writes a file too
		if err := n.s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if r, _ := n.s.st.get(info.ID); r.Unsynced {
			t.Fatal("not durable after Flush")
		}
	}
}

// A record left unsynced by an earlier run (the machine went down before
// the disk had the file) is verified before it is served or returned.
// Intact, it is trusted again even though its mtime moved; damaged or cut
// short, it becomes a download in progress, and fetching it again fetches
// only the damaged pieces.
func TestUncleanShutdownSettles(t *testing.T) {
	const pieces = 8
	for _, c := range []struct {
		name    string
		damage  func(t *testing.T, path string)
		refetch int // pieces
	}{
		{"intact", func(t *testing.T, path string) {
			old := time.Now().Add(-time.Hour)
			if err := os.Chtimes(path, old, old); err != nil {
				t.Fatal(err)
			}
		}, 0},
		{"piece zeroed", func(t *testing.T, path string) {
			// The metadata reached the disk, a piece did not: size and
			// mtime are what the index recorded.
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			_, err = f.WriteAt(make([]byte, 1000), 5*PieceSize+7)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Chtimes(path, fi.ModTime(), fi.ModTime())
			}
			if err != nil {
				t.Fatal(err)
			}
		}, 1},
		{"cut short", func(t *testing.T, path string) {
			// The size the disk had; the mtime no later than recorded.
			fi, err := os.Stat(path)
			if err == nil {
				err = os.Truncate(path, 5*PieceSize+10)
			}
			if err == nil {
				err = os.Chtimes(path, fi.ModTime(), fi.ModTime())
			}
			if err != nil {
				t.Fatal(err)
			}
		}, 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			a := newNode(t, nil)
			src := writeRandom(t, t.TempDir(), "src", pieces*PieceSize, 9)
			info, err := a.s.Add(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			n := newNode(t, func(cfg *Config) { cfg.Dir = dir })
			dst := filepath.Join(t.TempDir(), "dst")
			if _, err := n.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
				t.Fatal(err)
			}
			if err := n.s.Close(); err != nil {
				t.Fatal(err)
			}
			// What a crash before the fsync leaves: the record unsynced,
			// and the file as the disk had it.
			st, err := openStore(dir)
			if err != nil {
				t.Fatal(err)
			}
			r, _ := st.get(info.ID)
			r.Unsynced = true
			if err := st.put(info.ID, r); err != nil {
				t.Fatal(err)
			}
			st.close()
			c.damage(t, dst)

			s, err := New(ctx, Config{Peer: n.p, Dir: dir, NoAnnounce: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// What a request from a peer does first: refused while the
			// background settle runs, or after it found damage.
			sw, err := s.openSwarm(info.ID)
			if c.refetch == 0 {
				if err == nil {
					s.releaseSwarm(sw)
				} else if !errors.Is(err, errSettling) {
					t.Fatalf("intact content: openSwarm = %v", err)
				}
				if _, err := s.Stat(info.ID); err != nil {
					t.Fatal(err)
				}
				if sw, err := s.openSwarm(info.ID); err != nil {
					t.Fatalf("intact content not served once settled: %v", err)
				} else {
					s.releaseSwarm(sw)
				}
				if r, _ := s.st.get(info.ID); r.Unsynced {
					t.Fatal("still unsynced after it verified")
				}
				sameFile(t, src, dst)
				return
			}
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("damaged content: openSwarm = %v, want ErrNotFound", err)
			}
			if _, err := s.Stat(info.ID); !errors.Is(err, ErrNotFound) {
				t.Fatalf("damaged content: Stat = %v, want ErrNotFound", err)
			}
			if _, err := os.Stat(dst + partSuffix); err != nil {
				t.Fatalf("no part file to resume: %v", err)
			}
			before := a.s.Uploaded()
			if _, err := s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
				t.Fatal(err)
			}
			sameFile(t, src, dst)
			// The damaged pieces, once each; a piece asked again after a
			// stall on a loaded machine may add one more.
			if got, want := a.s.Uploaded()-before, int64(c.refetch*PieceSize); got < want || got > want+PieceSize {
				t.Errorf("fetched %d bytes again, want %d (%d pieces)", got, want, c.refetch)
			}
		})
	}
}

// leaveUnsynced makes dir's index look as a crash before the fsync of id
// left it, and lets more change the index; the service on dir is closed.
func leaveUnsynced(t *testing.T, dir string, id ID, more func(st *store)) {
	t.Helper()
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	r, ok := st.get(id)
	if !ok {
		t.Fatal("no record")
	}
	r.Unsynced = true
	if err := st.put(id, r); err != nil {
		t.Fatal(err)
	}
	if more != nil {
		more(st)
	}
}

// fetchedThenClosed fetches a fresh file of pieces pieces from a new
// provider into a node on dir, closes that node's service, and returns the
// provider, the node's peer, the source path, the content ID and dst.
func fetchedThenClosed(t *testing.T, dir string, pieces int) (a, n *node, src string, id ID, dst string) {
	t.Helper()
	ctx := testCtx(t)
	a = newNode(t, nil)
	src = writeRandom(t, t.TempDir(), "src", pieces*PieceSize, 17)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	n = newNode(t, func(cfg *Config) { cfg.Dir = dir })
	dst = filepath.Join(t.TempDir(), "dst")
	if _, err := n.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	if err := n.s.Close(); err != nil {
		t.Fatal(err)
	}
	return a, n, src, info.ID, dst
}

// A record left unsynced whose path now holds other content is dropped,
// and the file there is left alone; one whose file was edited since (a
// later mtime) is stale, and its file left alone too.
func TestSettleLeavesOtherFilesAlone(t *testing.T) {
	for _, c := range []string{"path reused", "file edited"} {
		t.Run(c, func(t *testing.T) {
			ctx := testCtx(t)
			dir := t.TempDir()
			_, n, _, id, dst := fetchedThenClosed(t, dir, 3)
			want, err := os.ReadFile(dst)
			if err != nil {
				t.Fatal(err)
			}
			leaveUnsynced(t, dir, id, func(st *store) {
				if c == "path reused" { // another ID fetched to the same place since
					other := ID{1, 2, 3}
					if err := st.put(other, record{Path: dst, Size: 5, Name: "other"}); err != nil {
						t.Fatal(err)
					}
				}
			})
			if c == "file edited" {
				later := time.Now().Add(time.Hour)
				if err := os.Chtimes(dst, later, later); err != nil {
					t.Fatal(err)
				}
			}
			s, err := New(ctx, Config{Peer: n.p, Dir: dir, NoAnnounce: true})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = s.Stat(id)
			switch {
			case c == "path reused" && !errors.Is(err, ErrNotFound):
				t.Fatalf("Stat = %v, want ErrNotFound", err)
			case c == "file edited" && !errors.Is(err, ErrStale):
				t.Fatalf("Stat = %v, want ErrStale", err)
			}
			got, err := os.ReadFile(dst)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("the file was touched: %v", err)
			}
			if _, err := os.Stat(dst + partSuffix); err == nil {
				t.Fatal("the file was turned into a part file")
			}
		})
	}
}

// A state file left without its part file (a crash between removing the
// two) claims nothing: the download fetches every piece. Believed, it
// would have made a file of zeros and called it complete.
func TestOrphanStateFileIgnored(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "src", 4*PieceSize, 23)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	all := newBitfield(4)
	for i := range 4 {
		all.set(i)
	}
	if err := writeState(dst+stateSuffix, info.ID, info.Size, all); err != nil {
		t.Fatal(err)
	}
	n := newNode(t, nil)
	if _, err := n.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	if got := a.s.Uploaded(); got != info.Size {
		t.Fatalf("provider sent %d bytes, want the whole %d", got, info.Size)
	}
}

// An fsync that fails is reported by Flush and Close, and the record stays
// unsynced, to be settled by the next run; this run still serves what it
// wrote.
func TestFsyncFailureReported(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "src", 2*PieceSize, 29)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	n := newNode(t, func(cfg *Config) { cfg.Dir = dir })
	eio := errors.New("input/output error")
	n.s.syncHook = func(*os.File) error { return eio }
	dst := filepath.Join(t.TempDir(), "dst")
	if _, err := n.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	if err := n.s.Flush(ctx); !errors.Is(err, eio) {
		t.Fatalf("Flush = %v, want the fsync's error", err)
	}
	if _, err := n.s.Stat(info.ID); err != nil {
		t.Fatalf("this run's own file: %v", err)
	}
	if sw, err := n.s.openSwarm(info.ID); err != nil {
		t.Fatalf("this run's own file not served: %v", err)
	} else {
		n.s.releaseSwarm(sw)
	}
	if err := n.s.Close(); !errors.Is(err, eio) {
		t.Fatalf("Close = %v, want the fsync's error", err)
	}
	st, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if r, _ := st.get(info.ID); !r.Unsynced {
		t.Fatal("recorded durable after a failed fsync")
	}
}

// TestCopySweepsWhatACrashLeft: a process that died during a local copy left
// its hidden temporary file beside the destination. The next copy to that
// destination removes it, and only it: a fresh one (a copy under way), one for
// another name, a user's file that merely starts alike and a directory stay.
func TestCopySweepsWhatACrashLeft(t *testing.T) {
	ctx := testCtx(t)
	n := newNode(t, nil)
	info, err := n.s.AddBytes(ctx, "doc.txt", []byte("the content"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dst := filepath.Join(dir, "doc.txt")
	old := time.Now().Add(-time.Hour)
	write := func(name string, mtime time.Time) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	stale := write(".doc.txt.copy-1234", old)
	live := write(".doc.txt.copy-5678", time.Now())
	other := write(".notes.txt.copy-1234", old)
	users := write(".doc.txt.copy-of-my-notes", old)
	if err := os.Mkdir(filepath.Join(dir, ".doc.txt.copy-dir"), 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := n.s.Fetch(ctx, info.ID, dst); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(dst); err != nil || string(b) != "the content" {
		t.Fatalf("copy: %q, %v", b, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the crashed copy's file is still there: %v", err)
	}
	for _, p := range []string{live, other, users, filepath.Join(dir, ".doc.txt.copy-dir")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}
