package peer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityPersists(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := TestConfig()
	cfg.Dir = dir
	p1, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	id := p1.ID()
	if err := p1.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	if mode := fi.Mode().Perm(); mode != 0o600 {
		t.Fatalf("key file mode %o, want 600", mode)
	}
	p2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if p2.ID() != id {
		t.Fatalf("ID changed across restart: %s -> %s", id, p2.ID())
	}
}

func TestCorruptKeyFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	if err := os.WriteFile(path, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := TestConfig()
	cfg.Dir = dir
	_, err := New(context.Background(), cfg)
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ErrBadKey naming %s", err, path)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "not a key" {
		t.Fatal("corrupt key file was replaced")
	}
}

func TestUnreadableKeyFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, KeyFile)
	// A directory where the key should be cannot be read as a file, even by root.
	if err := os.Mkdir(path, 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := loadOrCreateKey(dir)
	if !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), path) {
		t.Fatalf("got %v, want ErrBadKey naming %s", err, path)
	}
}

func TestBadConfigFailsCleanly(t *testing.T) {
	ctx := context.Background()
	cfg := TestConfig()
	cfg.SuperPeers = []string{"juxta1garbage"}
	if _, err := New(ctx, cfg); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad super-peer: %v", err)
	}
	cfg = TestConfig()
	cfg.ListenAddrs = []string{"/ip4/nope"}
	if _, err := New(ctx, cfg); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad listen address: %v", err)
	}
	// A listen address that parses but cannot be bound makes libp2p fail after
	// the key is loaded: New must release what it opened (goleak checks).
	cfg = TestConfig()
	cfg.ListenAddrs = []string{"/ip4/203.0.113.1/tcp/0"}
	if _, err := New(ctx, cfg); err == nil {
		t.Fatal("New succeeded on an address this machine does not have")
	}
}
