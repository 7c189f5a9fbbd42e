package content

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

func TestFetchOneProvider(t *testing.T) {
	ctx := testCtx(t)
	a, b := newNode(t, nil), newNode(t, nil)
	for _, n := range []int{0, 1000, PieceSize, 5*PieceSize + 123} {
		src := writeRandom(t, t.TempDir(), "f", n, uint64(n)+7)
		info, err := a.s.Add(ctx, src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(t.TempDir(), "out")
		got, err := b.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders())
		if err != nil {
			t.Fatalf("size %d: %v", n, err)
		}
		if got.ID != info.ID || got.Size != int64(n) || got.Path != dst {
			t.Fatalf("fetched %+v, want %+v", got, info)
		}
		sameFile(t, src, dst)
		if _, err := os.Stat(dst + partSuffix); !os.IsNotExist(err) {
			t.Fatalf("part file left behind: %v", err)
		}
		// The downloader now serves it.
		if _, err := b.s.Stat(info.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFetchRoundTrip100MiB(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := testCtx(t)
	a, b := newNode(t, nil), newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "big", 100<<20, 42)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "big")
	if _, err := b.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
}

// A provider's upload ends when its downloader is done: fetched again and
// again, it keeps no session (each holding a goroutine, a piece buffer and
// one of MaxUploads) and no slot of the choker that a next downloader needs.
func TestUploadEndsWithDownload(t *testing.T) {
	ctx := testCtx(t)
	a, b := newNode(t, nil), newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "f", 2*PieceSize+1, 8)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	for range a.s.cfg.UploadSlots + 3 {
		if _, err := b.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
			t.Fatal(err)
		}
		sameFile(t, src, dst)
		if err := b.s.Remove(ctx, info.ID); err != nil {
			t.Fatal(err)
		}
		os.Remove(dst)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		a.s.mu.Lock()
		n := a.s.uploads
		a.s.mu.Unlock()
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d uploads still open after their downloads ended", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func flipEvery(piece int, data []byte) {
	if len(data) > 0 {
		data[len(data)/2] ^= 0x40
	}
}

func TestLiarIsBannedAndPiecesComeFromElsewhere(t *testing.T) {
	ctx := testCtx(t)
	honest, b := newNode(t, nil), newNode(t, nil)
	liar := newNode(t, func(c *Config) { c.test = &testHooks{corrupt: flipEvery} })
	src := writeRandom(t, t.TempDir(), "f", 40*PieceSize+5, 3)
	info, err := honest.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := liar.s.Add(ctx, src); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "out")
	_, err = b.s.Fetch(ctx, info.ID, dst, WithProviders(liar.p.Addr(), honest.p.Addr()), OnlyProviders())
	if err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	if !b.s.Banned(liar.p.ID()) {
		t.Fatal("the liar was not banned")
	}
	if b.s.Banned(honest.p.ID()) {
		t.Fatal("the honest provider was banned")
	}
}

func TestOnlyLiarFailsNamingID(t *testing.T) {
	ctx := testCtx(t)
	liar := newNode(t, func(c *Config) { c.test = &testHooks{corrupt: flipEvery} })
	b := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "f", 10*PieceSize, 4)
	info, err := liar.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.s.Fetch(ctx, info.ID, filepath.Join(t.TempDir(), "out"), WithProviders(liar.p.Addr()), OnlyProviders())
	if err == nil {
		t.Fatal("fetch from a liar succeeded")
	}
	if !errors.Is(err, ErrNoProviders) || !errors.Is(err, ErrBadData) {
		t.Fatalf("error %v, want ErrNoProviders and ErrBadData", err)
	}
	if want := info.ID.String(); !contains(err.Error(), want) {
		t.Fatalf("error %q does not name %s", err, want)
	}
	if !b.s.Banned(liar.p.ID()) {
		t.Fatal("the liar was not banned")
	}
}

func TestFetchUnknownID(t *testing.T) {
	ctx := testCtx(t)
	a, b := newNode(t, nil), newNode(t, nil)
	_, err := b.s.Fetch(ctx, ID{9}, filepath.Join(t.TempDir(), "x"), WithProviders(a.p.Addr()), OnlyProviders())
	if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrNoProviders) {
		t.Fatalf("error %v, want ErrNotFound within ErrNoProviders", err)
	}
	_, err = b.s.Fetch(ctx, ID{9}, filepath.Join(t.TempDir(), "x"), OnlyProviders())
	if !errors.Is(err, ErrNoProviders) {
		t.Fatalf("error %v, want ErrNoProviders", err)
	}
	_ = peer.Addr{}
}

func contains(s, sub string) bool { return len(sub) == 0 || (len(s) >= len(sub) && index(s, sub) >= 0) }

func index(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}
