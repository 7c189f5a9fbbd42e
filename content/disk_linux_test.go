package content

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// A download into a disk too small for the file fails before anything is
// fetched, saying why, and does not blame the provider.
func TestFetchIntoFullDiskFailsAtOnce(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root: run the tests as root, as CI does")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	ctx := testCtx(t)
	a, b := newNode(t, nil), newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "f", 16*PieceSize, 12)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.s.Fetch(ctx, info.ID, filepath.Join(dir, "out"), WithProviders(a.p.Addr()), OnlyProviders())
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("error %v, want ENOSPC", err)
	}
	if errors.Is(err, ErrNoProviders) || b.s.Banned(a.p.ID()) {
		t.Fatalf("the provider was blamed: %v", err)
	}
	if n := a.s.uploaded.Load(); n != 0 {
		t.Fatalf("%d bytes fetched for a file that cannot be written", n)
	}
}
