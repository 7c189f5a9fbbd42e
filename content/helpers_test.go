package content

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/peer"
)

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		os.Exit(helperMain())
	}
	leaktest.VerifyTestMain(m)
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

type node struct {
	p *peer.Peer
	s *Service
}

func newNode(t testing.TB, mod func(*Config)) *node {
	t.Helper()
	return newNodeWith(t, nil, mod)
}

func newNodeWith(t testing.TB, pmod func(*peer.Config), mod func(*Config)) *node {
	t.Helper()
	ctx := testCtx(t)
	pc := peer.TestConfig()
	if pmod != nil {
		pmod(&pc)
	}
	p, err := peer.New(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Peer: p, Dir: t.TempDir(), NoAnnounce: true}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(ctx, cfg)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		p.Close()
	})
	return &node{p: p, s: s}
}

// writeRandom writes n random bytes into dir/name and returns the path.
func writeRandom(t testing.TB, dir, name string, n int, seed uint64) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, randBytes(n, seed), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func sameFile(t testing.TB, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(x) != len(y) {
		t.Fatalf("%s has %d bytes, %s %d", a, len(x), b, len(y))
	}
	for i := range x {
		if x[i] != y[i] {
			t.Fatalf("%s and %s differ at byte %d", a, b, i)
		}
	}
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// lpAddr is a juxta peer address as libp2p's, for tests that drive a raw host.
func lpAddr(a peer.Addr) lpeer.AddrInfo {
	ai := lpeer.AddrInfo{ID: lpeer.ID(a.ID)}
	for _, s := range a.Addrs {
		ai.Addrs = append(ai.Addrs, ma.StringCast(s))
	}
	return ai
}

// jAddr is a raw host's address as juxta's.
func jAddr(h host.Host) peer.Addr {
	a := peer.Addr{ID: peer.ID(h.ID())}
	for _, m := range h.Addrs() {
		a.Addrs = append(a.Addrs, m.String())
	}
	return a
}

// lp is a juxta peer ID as libp2p's.
func lp(id peer.ID) lpeer.ID { return lpeer.ID(id) }

func afterMs(ms int) <-chan time.Time { return time.After(time.Duration(ms) * time.Millisecond) }
