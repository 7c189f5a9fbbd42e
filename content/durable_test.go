package content

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
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
			if err := os.Truncate(path, 5*PieceSize+10); err != nil {
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
			sw, err := s.openSwarm(info.ID) // what a request from a peer does first
			if c.refetch == 0 {
				if err != nil {
					t.Fatalf("intact content not served: %v", err)
				}
				s.releaseSwarm(sw)
				if _, err := s.Stat(info.ID); err != nil {
					t.Fatal(err)
				}
				if r, _ := s.st.get(info.ID); r.Unsynced {
					t.Fatal("still unsynced after it verified")
				}
				sameFile(t, src, dst)
				return
			}
			if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "unclean shutdown") {
				t.Fatalf("damaged content: openSwarm = %v, want ErrNotFound naming the unclean shutdown", err)
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
