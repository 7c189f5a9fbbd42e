package share

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// collect takes changes until want returns true or the deadline passes.
func collect(t *testing.T, w *Watcher, want func(map[string]Op) bool) map[string]Op {
	t.Helper()
	state := map[string]Op{}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for !want(state) {
		cs, err := w.Next(ctx)
		if err != nil {
			t.Fatalf("Next: %v (state %v)", err, state)
		}
		for _, c := range cs {
			state[c.Rel()] = c.Op
		}
	}
	return state
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherFollowsChanges(t *testing.T) {
	root := t.TempDir()
	write(t, filepath.Join(root, "a.mp3"), "a")
	write(t, filepath.Join(root, "sub", "b.mp3"), "b")
	write(t, filepath.Join(root, ".hidden", "c.mp3"), "c")
	write(t, filepath.Join(root, ".partial"), "p")
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	w, err := Watch([]string{root}, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	st := collect(t, w, func(s map[string]Op) bool { return len(s) >= 2 })
	if len(st) != 2 || st["a.mp3"] != Upsert || st["sub/b.mp3"] != Upsert {
		t.Fatalf("initial scan: %v", st)
	}

	write(t, filepath.Join(root, "new.ogg"), "n")
	collect(t, w, func(s map[string]Op) bool { return s["new.ogg"] == Upsert })

	write(t, filepath.Join(root, "a.mp3"), "changed")
	collect(t, w, func(s map[string]Op) bool { return s["a.mp3"] == Upsert })

	if err := os.Rename(filepath.Join(root, "new.ogg"), filepath.Join(root, "sub", "renamed.ogg")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, func(s map[string]Op) bool { return s["new.ogg"] == Remove && s["sub/renamed.ogg"] == Upsert })

	// A folder moved in brings its files; one moved out takes them away.
	outside := t.TempDir()
	write(t, filepath.Join(outside, "album", "t1.flac"), "1")
	write(t, filepath.Join(outside, "album", "t2.flac"), "2")
	if err := os.Rename(filepath.Join(outside, "album"), filepath.Join(root, "album")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, func(s map[string]Op) bool { return s["album/t1.flac"] == Upsert && s["album/t2.flac"] == Upsert })
	write(t, filepath.Join(root, "album", "deep", "t3.flac"), "3")
	collect(t, w, func(s map[string]Op) bool { return s["album/deep/t3.flac"] == Upsert })
	if err := os.Rename(filepath.Join(root, "album"), filepath.Join(outside, "gone")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, func(s map[string]Op) bool {
		return s["album/t1.flac"] == Remove && s["album/t2.flac"] == Remove && s["album/deep/t3.flac"] == Remove
	})

	if err := os.Remove(filepath.Join(root, "sub", "b.mp3")); err != nil {
		t.Fatal(err)
	}
	collect(t, w, func(s map[string]Op) bool { return s["sub/b.mp3"] == Remove })
}

func TestWatcherErrors(t *testing.T) {
	if _, err := Watch([]string{filepath.Join(t.TempDir(), "missing")}, 0); err == nil {
		t.Error("watching a missing folder succeeded")
	}
	f := filepath.Join(t.TempDir(), "file")
	write(t, f, "x")
	if _, err := Watch([]string{f}, 0); err == nil {
		t.Error("watching a file succeeded")
	}
	w, err := Watch(nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Next(context.Background()); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Next after Close: %v", err)
	}
}

func TestSampleLibrary(t *testing.T) {
	files := SampleLibrary(7)
	if len(files) < 200 || len(files) > 500 {
		t.Fatalf("%d files", len(files))
	}
	korean, big := 0, 0
	for _, f := range files {
		for _, r := range f.Rel {
			if r >= 0xAC00 && r <= 0xD7A3 {
				korean++
				break
			}
		}
		if f.Size >= 4<<20 {
			big++
		}
	}
	if korean < 20 || big < 2 {
		t.Errorf("%d Korean names, %d large files", korean, big)
	}
	dir1, dir2 := t.TempDir(), t.TempDir()
	some := files[:5]
	if err := WriteSample(dir1, some); err != nil {
		t.Fatal(err)
	}
	if err := WriteSample(dir2, some); err != nil {
		t.Fatal(err)
	}
	for _, f := range some {
		a, _ := os.ReadFile(filepath.Join(dir1, f.Rel))
		b, _ := os.ReadFile(filepath.Join(dir2, f.Rel))
		if int64(len(a)) != f.Size || string(a) != string(b) {
			t.Errorf("%s: %d bytes, same on both: %v", f.Rel, len(a), string(a) == string(b))
		}
	}
}
