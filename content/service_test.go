package content

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

func TestAddRehashesChangedFile(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, nil)
	path := writeRandom(t, t.TempDir(), "f", 3*PieceSize, 1)
	first, err := a.s.Add(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	again, err := a.s.Add(ctx, path)
	if err != nil || again.ID != first.ID {
		t.Fatalf("unchanged file: %v, %v", again.ID, err)
	}
	// Change the file: it is stale until added again, and then has a new ID.
	if err := os.WriteFile(path, randBytes(3*PieceSize, 2), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(path, time.Now(), time.Now().Add(time.Second))
	if _, err := a.s.Stat(first.ID); !errors.Is(err, ErrStale) {
		t.Fatalf("Stat of a changed file: %v, want ErrStale", err)
	}
	second, err := a.s.Add(ctx, path)
	if err != nil || second.ID == first.ID {
		t.Fatalf("changed file: %v, %v", second.ID, err)
	}
	// A downloader asking for the old ID is told it is stale, not fed bad data.
	b := newNode(t, nil)
	_, err = b.s.Fetch(ctx, first.ID, filepath.Join(t.TempDir(), "x"), WithProviders(a.p.Addr()), OnlyProviders())
	if err == nil {
		t.Fatal("fetched content whose file changed")
	}
	if b.s.Banned(a.p.ID()) {
		t.Fatal("the provider was banned for a changed file")
	}
}

func TestAddBytesOpenRemove(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, nil)
	info, err := a.s.AddBytes(ctx, "module.wasm", []byte("\x00asm\x01\x00\x00\x00"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := a.s.Bytes(info.ID, 1<<20)
	if err != nil || string(b) != "\x00asm\x01\x00\x00\x00" {
		t.Fatalf("Bytes: %q, %v", b, err)
	}
	if _, err := a.s.Bytes(info.ID, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Bytes over the limit: %v", err)
	}
	f, err := a.s.Open(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if l := a.s.List(); len(l) != 1 || l[0].ID != info.ID {
		t.Fatalf("List: %v", l)
	}
	if err := a.s.Remove(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(info.Path); !os.IsNotExist(err) {
		t.Fatalf("blob still on disk: %v", err)
	}
	if _, err := a.s.Open(info.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Open after Remove: %v", err)
	}
	if err := a.s.Remove(ctx, info.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Remove: %v", err)
	}
}

func TestFetchIntoServiceAndProgress(t *testing.T) {
	ctx := testCtx(t)
	a, b := newNode(t, nil), newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "f", 20*PieceSize, 3)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	sub := b.s.Subscribe(ctx, 1024)
	got, err := b.s.Fetch(ctx, info.ID, "", WithProviders(a.p.Addr()), OnlyProviders())
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(got.Path) != filepath.Join(b.s.Dir(), "blobs") {
		t.Fatalf("fetched into %s, want the service's blobs", got.Path)
	}
	sameFile(t, src, got.Path)
	for ev := range sub.C {
		p, ok := ev.(Progress)
		if !ok || p.Op != OpFetch || !p.Done {
			continue
		}
		if p.Err != nil || p.Bytes != info.Size || p.Pieces != 20 || p.TotalPieces != 20 || p.ID != info.ID {
			t.Fatalf("last progress %+v", p)
		}
		break
	}
	// Fetching stored content again returns at once.
	if again, err := b.s.Fetch(ctx, info.ID, ""); err != nil || again.Path != got.Path {
		t.Fatalf("second fetch: %v, %v", again, err)
	}
	// Fetching it to another place copies it, with no provider to ask.
	a.s.Close()
	dst := filepath.Join(t.TempDir(), "copy")
	cp, err := b.s.Fetch(ctx, info.ID, dst)
	if err != nil || cp.Path != dst || cp.ID != info.ID {
		t.Fatalf("local copy: %+v, %v", cp, err)
	}
	sameFile(t, src, dst)
	// A copy that cannot be made durable says so and leaves nothing behind.
	if err := b.s.Flush(ctx); err != nil { // the syncer is idle from here
		t.Fatal(err)
	}
	eio := errors.New("input/output error")
	b.s.syncHook = func(*os.File) error { return eio }
	dir := t.TempDir()
	if _, err := b.s.Fetch(ctx, info.ID, filepath.Join(dir, "copy")); !errors.Is(err, eio) {
		t.Fatalf("copy with a failing fsync: %v, want the fsync's error", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind: %v", ents)
	}
}

func TestAllowScopesServingAndFetching(t *testing.T) {
	ctx := testCtx(t)
	// Allow runs in stream handlers, so the map is filled under a lock.
	var mu sync.Mutex
	var members = map[peer.ID]bool{}
	allow := func(id peer.ID) bool { mu.Lock(); defer mu.Unlock(); return members[id] }
	a := newNode(t, func(c *Config) { c.Allow = allow })
	member, outsider := newNode(t, func(c *Config) { c.Allow = allow }), newNode(t, nil)
	mu.Lock()
	members[a.p.ID()], members[member.p.ID()] = true, true
	mu.Unlock()
	info, err := a.s.AddBytes(ctx, "secret", randBytes(5000, 4))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := member.s.Fetch(ctx, info.ID, "", WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	_, err = outsider.s.Fetch(ctx, info.ID, "", WithProviders(a.p.Addr()), OnlyProviders())
	if !errors.Is(err, ErrDenied) {
		t.Fatalf("outsider fetch: %v, want ErrDenied", err)
	}
	// A scoped service does not fetch from non-members either.
	other, err := outsider.s.AddBytes(ctx, "public", randBytes(100, 5))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := member.s.Fetch(ctx, other.ID, "", WithProviders(outsider.p.Addr()), OnlyProviders()); !errors.Is(err, ErrDenied) {
		t.Fatalf("fetch from a non-member: %v, want ErrDenied", err)
	}
}

func TestCloseTwice(t *testing.T) {
	a := newNode(t, nil)
	if err := a.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.s.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := a.s.Fetch(testCtx(t), ID{1}, ""); !errors.Is(err, net.ErrClosed) && !errors.Is(err, ErrNotFound) {
		t.Fatalf("Fetch after Close: %v", err)
	}
}
