package peer

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
)

func TestDecideSecurity(t *testing.T) {
	for _, tc := range []struct {
		aes, chacha float64
		want        string
	}{
		{3000, 1000, "tls"},   // AES-NI: AES-GCM three times as fast
		{1250, 1000, "tls"},   // exactly the margin
		{1200, 1000, "noise"}, // within the margin
		{300, 900, "noise"},   // no AES instructions: ChaCha20 wins
	} {
		got := decideSecurity(tc.aes, tc.chacha)
		if got.First != tc.want {
			t.Errorf("decideSecurity(%v, %v).First = %q, want %q (%s)", tc.aes, tc.chacha, got.First, tc.want, got.Reason)
		}
		if got.Reason == "" || got.AESGCM != tc.aes || got.ChaCha20Poly1305 != tc.chacha {
			t.Errorf("decideSecurity(%v, %v) = %+v: rates or reason missing", tc.aes, tc.chacha, got)
		}
	}
}

func TestSecurityMeasuresOnceAndOrdersOptions(t *testing.T) {
	a := Security()
	if a.First != "tls" && a.First != "noise" {
		t.Fatalf("Security().First = %q", a.First)
	}
	if a.AESGCM <= 0 || a.ChaCha20Poly1305 <= 0 || !strings.Contains(a.Reason, "MB/s") {
		t.Fatalf("Security() = %+v: no measurement", a)
	}
	if b := Security(); b != a {
		t.Fatalf("second Security() = %+v, want the cached %+v", b, a)
	}
	if len(securityOptions("tls")) != 2 || len(securityOptions("noise")) != 2 {
		t.Fatal("securityOptions must keep both protocols")
	}
}

func TestChooseSecurityIsShort(t *testing.T) {
	// The measurement runs once per process at start: it must stay about a
	// millisecond of sealing (three rounds each), whatever the machine.
	c := chooseSecurity(time.Millisecond)
	if c.AESGCM <= 0 || c.ChaCha20Poly1305 <= 0 {
		t.Fatalf("chooseSecurity = %+v", c)
	}
}

// TestSecurityBothOrdersInteroperate: whichever order this CPU chose, a juxta
// peer connects to stock hosts that speak only Noise or only TLS, in both
// directions, over that protocol.
func TestSecurityBothOrdersInteroperate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cfg := TestConfig()
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, sec := range []struct {
		id  string
		opt libp2p.Option
	}{
		{noise.ID, libp2p.Security(noise.ID, noise.New)},
		{libp2ptls.ID, libp2p.Security(libp2ptls.ID, libp2ptls.New)},
	} {
		h := rawHostOn(t, "127.0.0.1", sec.opt)
		// juxta dials the stock host.
		if _, err := p.Connect(ctx, Addr{ID: ID(h.ID()), Addrs: []string{h.Addrs()[0].String()}}); err != nil {
			t.Fatalf("juxta → %s-only host: %v", sec.id, err)
		}
		for _, c := range h.Network().ConnsToPeer(lpeer.ID(p.ID())) {
			if got := string(c.ConnState().Security); got != sec.id {
				t.Errorf("juxta → %s-only host ran %q", sec.id, got)
			}
		}
		h.Network().ClosePeer(lpeer.ID(p.ID()))
		// The stock host dials juxta.
		ai := lpeer.AddrInfo{ID: lpeer.ID(p.ID()), Addrs: p.Libp2p().Host.Addrs()}
		if err := h.Connect(ctx, ai); err != nil {
			t.Fatalf("%s-only host → juxta: %v", sec.id, err)
		}
		for _, c := range h.Network().ConnsToPeer(ai.ID) {
			if got := string(c.ConnState().Security); got != sec.id {
				t.Errorf("%s-only host → juxta ran %q", sec.id, got)
			}
		}
	}
}
