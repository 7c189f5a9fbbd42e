package content

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/juxta-p2p/juxta/peer"
)

// TestAllowContent: a service serves each content only to the peers its
// AllowContent hook admits for that content.
func TestAllowContent(t *testing.T) {
	ctx := testCtx(t)
	var (
		mu     sync.Mutex
		secret ID
		asked  int
	)
	prov := newNode(t, func(c *Config) {
		c.AllowContent = func(_ peer.ID, id ID) bool {
			mu.Lock()
			defer mu.Unlock()
			asked++
			return id != secret
		}
	})
	dir := t.TempDir()
	pub, err := prov.s.Add(ctx, writeRandom(t, dir, "public", 300<<10, 1))
	if err != nil {
		t.Fatal(err)
	}
	sec, err := prov.s.Add(ctx, writeRandom(t, dir, "secret", 300<<10, 2))
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = sec.ID
	mu.Unlock()
	b := newNode(t, nil)
	out := t.TempDir()
	if _, err := b.s.Fetch(ctx, pub.ID, filepath.Join(out, "public"), WithProviders(prov.p.Addr()), OnlyProviders()); err != nil {
		t.Fatalf("allowed content: %v", err)
	}
	sameFile(t, filepath.Join(dir, "public"), filepath.Join(out, "public"))
	_, err = b.s.Fetch(ctx, sec.ID, filepath.Join(out, "secret"), WithProviders(prov.p.Addr()), OnlyProviders())
	if !errors.Is(err, ErrNoProviders) || !errors.Is(err, ErrDenied) {
		t.Fatalf("refused content: err %v, want ErrNoProviders and ErrDenied", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if asked < 2 {
		t.Errorf("the hook was asked %d times", asked)
	}
}
