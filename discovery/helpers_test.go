package discovery

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/peer"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

// node is a peer with discovery, closed at the end of the test.
type node struct {
	p *peer.Peer
	d *Service
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	t.Cleanup(cancel)
	return ctx
}

// newNode starts a loopback peer with discovery. Zero configs are fine.
func newNode(t testing.TB, pcfg peer.Config, dcfg Config) *node {
	t.Helper()
	ctx := testCtx(t)
	p, err := peer.New(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(ctx, p, dcfg)
	if err != nil {
		p.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		p.Close()
	})
	return &node{p, d}
}

func superPeer(t testing.TB, others ...*node) *node {
	cfg := peer.TestSuperPeerConfig()
	for _, o := range others {
		cfg.SuperPeers = append(cfg.SuperPeers, o.p.Invite())
	}
	n := newNode(t, cfg, Config{})
	if len(others) > 0 {
		if err := n.p.Ready(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func edge(t testing.TB, dcfg Config, sps ...*node) *node {
	cfg := peer.TestConfig()
	for _, s := range sps {
		cfg.SuperPeers = append(cfg.SuperPeers, s.p.Invite())
	}
	n := newNode(t, cfg, dcfg)
	if len(sps) > 0 {
		if err := n.p.Ready(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// connect links a and b directly (a LAN neighbour on loopback).
func connect(t *testing.T, a, b *node) {
	t.Helper()
	if _, err := a.p.Connect(testCtx(t), b.p.Addr()); err != nil {
		t.Fatal(err)
	}
}

// collect runs Find and returns the results; errors fail the test.
func collect(t *testing.T, d *Service, q Query) []Result {
	t.Helper()
	var out []Result
	for r, err := range d.Find(testCtx(t), q) {
		if err != nil {
			t.Fatalf("find: %v", err)
		}
		out = append(out, r)
	}
	return out
}

func fileAd(id, name string) Advertisement {
	return Advertisement{Type: "fileshare.file", ID: id, Attrs: map[string]string{"name": name}, Body: []byte("body of " + id)}
}

// patience bounds every wait for an event: generous, since a loaded 2-core
// machine under -race takes minutes where an idle one takes a second, and a
// wait that succeeds returns as soon as the event happens.
const patience = 4 * time.Minute

// eventually polls cond until it holds or patience runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func writeGarbage(dir string) error {
	return os.WriteFile(filepath.Join(dir, dbFile), []byte("this is not a bbolt database, it is just some bytes that are long enough to be read as a header page..............................................................................................................................................."), 0o600)
}

// keyID is the peer ID of a private key.
func keyID(k crypto.PrivKey) (peer.ID, error) {
	id, err := lpeer.IDFromPrivateKey(k)
	return peer.ID(id), err
}

// connectInvite connects p to the peer an invite names.
func connectInvite(ctx context.Context, p *peer.Peer, invite string) error {
	a, err := peer.ParseAddr(invite)
	if err != nil {
		return err
	}
	_, err = p.Connect(ctx, a)
	return err
}

// lpAddr is a juxta peer address as libp2p's, for tests that drive a raw host.
func lpAddr(a peer.Addr) lpeer.AddrInfo {
	ai := lpeer.AddrInfo{ID: lpeer.ID(a.ID)}
	for _, s := range a.Addrs {
		ai.Addrs = append(ai.Addrs, ma.StringCast(s))
	}
	return ai
}
