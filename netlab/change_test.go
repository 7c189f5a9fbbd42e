package netlab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// query asks srv for c's mapping once and says whether an answer came
// within wait.
func answered(t *testing.T, c *net.UDPConn, srv netip.AddrPort, wait time.Duration) bool {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte("query"), srv); err != nil {
		return false // no route: as unanswered
	}
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		_, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return false
		}
		if from == srv {
			return true
		}
	}
}

// A renumbered router leaves from its new address, and the mappings of the
// old one are gone: a reply to the old public port does not get in until the
// host sends again. For a full cone too, whose inbound map is emptied.
func TestRenumber(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "port"}, {Name: "full", NAT: NATFullCone}},
		Hosts:   []HostSpec{{Name: "h-port", Router: "port"}, {Name: "h-full", Router: "full"}, {Name: "server"}},
	})
	srv := startEcho(t, l.Host("server"), 3478)
	other := startEcho(t, l.Host("server"), 3479)
	for _, name := range []string{"port", "full"} {
		r, h := l.Router(name), l.Host("h-"+name)
		c := udpSocket(t, h)
		before := mapped(t, c, srv.addr)
		if before.Addr() != r.PublicAddr() {
			t.Fatalf("%s: mapped %v, want the router's %v", name, before, r.PublicAddr())
		}
		if r.NAT() == NATFullCone {
			other.probe(t, before, "cone-before")
			if !receives(c, "cone-before", 2*time.Second) {
				t.Fatalf("%s: a full cone drops a stranger before the renumbering", name)
			}
		}
		fresh, err := r.Renumber(context.Background())
		if err != nil {
			t.Fatalf("%s: Renumber: %v", name, err)
		}
		if fresh == before.Addr() || r.WANAddr() != fresh || r.PublicAddr() != fresh || h.PublicAddr() != fresh {
			t.Fatalf("%s: renumbered to %v; WAN %v, public %v, host's public %v; was %v",
				name, fresh, r.WANAddr(), r.PublicAddr(), h.PublicAddr(), before.Addr())
		}
		// The mapping is forgotten: the same public port at the new address
		// lets nothing in before the host sends again.
		stale := netip.AddrPortFrom(fresh, before.Port())
		srv.probe(t, stale, "stale")
		other.probe(t, stale, "stale")
		if receives(c, "stale", time.Second) {
			t.Errorf("%s: a packet to %v got in before the host sent from the new address", name, stale)
		}
		after := mapped(t, c, srv.addr)
		if after.Addr() != fresh {
			t.Errorf("%s: after renumbering the host appears as %v, want %v", name, after, fresh)
		}
		srv.probe(t, after, "new")
		if !receives(c, "new", 2*time.Second) {
			t.Errorf("%s: the reply to the new mapping %v did not get in", name, after)
		}
	}
}

// A reboot cuts the WAN link for the given time and forgets the mappings;
// pulling a cable (LinkDown) cuts it as long, but the mappings survive.
func TestRebootAndLinkDown(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home", WAN: Link{Delay: time.Millisecond}}},
		Hosts:   []HostSpec{{Name: "laptop", Router: "home"}, {Name: "server"}},
	})
	ctx := context.Background()
	srv := startEcho(t, l.Host("server"), 3478)
	r, laptop := l.Router("home"), l.Host("laptop")
	c := udpSocket(t, laptop)

	// Cable pulled, at the router and at the laptop: nothing passes, and the
	// mapping outlives the outage.
	for _, n := range []*Namespace{r.Namespace, laptop.Namespace} {
		m := mapped(t, c, srv.addr)
		if err := n.LinkDown(); err != nil {
			t.Fatalf("LinkDown %s: %v", n.Name(), err)
		}
		if answered(t, c, srv.addr, 500*time.Millisecond) {
			t.Errorf("%s: link down, yet the server answered", n.Name())
		}
		if err := n.LinkUp(ctx); err != nil {
			t.Fatalf("LinkUp %s: %v", n.Name(), err)
		}
		srv.probe(t, m, "kept-"+n.Name())
		if !receives(c, "kept-"+n.Name(), 2*time.Second) {
			t.Errorf("%s: the mapping %v did not survive a pulled cable", n.Name(), m)
		}
	}

	m := mapped(t, c, srv.addr)
	start := time.Now()
	if err := r.Reboot(ctx, 300*time.Millisecond); err != nil {
		t.Fatalf("Reboot: %v", err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("Reboot returned after %v, before its outage ended", d)
	}
	srv.probe(t, m, "after-reboot")
	if receives(c, "after-reboot", time.Second) {
		t.Errorf("the mapping %v survived the reboot", m)
	}
	if got := mapped(t, c, srv.addr); got.Addr() != r.PublicAddr() {
		t.Errorf("after the reboot the laptop appears as %v, want %v", got, r.PublicAddr())
	}

	// A reboot whose wait is cut short leaves the link down, for LinkUp.
	cctx, cancel := context.WithCancel(ctx)
	go func() {
		time.Sleep(50 * time.Millisecond)
		cancel()
	}()
	if err := r.Reboot(cctx, time.Hour); !errors.Is(err, context.Canceled) {
		t.Fatalf("Reboot with a cancelled context: %v, want context.Canceled", err)
	}
	if answered(t, c, srv.addr, 300*time.Millisecond) {
		t.Error("a cancelled reboot left the link up")
	}
	if err := r.LinkUp(ctx); err != nil {
		t.Fatal(err)
	}
	if !answered(t, c, srv.addr, 2*time.Second) {
		t.Error("no answer after LinkUp")
	}

	if err := l.Internet().LinkDown(); !errors.Is(err, ErrNoUplink) {
		t.Errorf("LinkDown on the internet: %v, want ErrNoUplink", err)
	}
}

// A laptop roams from a port-restricted home to a symmetric one and back: a
// socket bound to the wildcard address carries on, from each home's public
// address in turn, with a new LAN address each time.
func TestMoveTo(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home"}, {Name: "cafe", NAT: NATSymmetric}},
		Hosts: []HostSpec{
			{Name: "laptop", Router: "home", Link: Link{Delay: time.Millisecond}},
			{Name: "phone", Router: "home"},
			{Name: "server"},
		},
	})
	ctx := context.Background()
	srv := startEcho(t, l.Host("server"), 3478)
	other := startEcho(t, l.Host("server"), 3479)
	home, cafe := l.Router("home"), l.Router("cafe")
	for _, h := range []*Host{l.Host("laptop"), l.Host("phone")} { // emulated and plain links
		c := udpSocket(t, h)
		first := h.Addr()
		if got := mapped(t, c, srv.addr); got.Addr() != home.PublicAddr() {
			t.Fatalf("%s at home appears as %v", h.Name(), got)
		}
		if err := h.MoveTo(ctx, cafe); err != nil {
			t.Fatalf("MoveTo cafe: %v", err)
		}
		if h.Router() != cafe || !cafe.LAN().Contains(h.Addr()) || h.PublicAddr() != cafe.PublicAddr() {
			t.Fatalf("%s moved: router %v, address %v, public %v", h.Name(), h.Router().Name(), h.Addr(), h.PublicAddr())
		}
		a, b := mapped(t, c, srv.addr), mapped(t, c, other.addr)
		if a.Addr() != cafe.PublicAddr() || a == b {
			t.Errorf("%s in the symmetric cafe: mappings %v and %v, want two ports of %v", h.Name(), a, b, cafe.PublicAddr())
		}
		if err := h.MoveTo(ctx, home); err != nil {
			t.Fatalf("MoveTo home: %v", err)
		}
		if got := mapped(t, c, srv.addr); got.Addr() != home.PublicAddr() {
			t.Errorf("%s back home appears as %v, want %v", h.Name(), got, home.PublicAddr())
		}
		if h.Addr() == first || !home.LAN().Contains(h.Addr()) {
			t.Errorf("%s back home at %v (first %v): want a new address of %v", h.Name(), h.Addr(), first, home.LAN())
		}
	}
	if err := l.Host("laptop").MoveTo(ctx, nil); !errors.Is(err, ErrBadSpec) {
		t.Errorf("MoveTo nil: %v, want ErrBadSpec", err)
	}
}

// conntrackUDP counts the router's UDP connections to dst.
func conntrackUDP(t *testing.T, r *Router, dst netip.AddrPort) int {
	t.Helper()
	flows, err := r.handle.ConntrackTableList(netlink.ConntrackTable, unix.AF_INET)
	if err != nil {
		t.Fatalf("conntrack list: %v", err)
	}
	n := 0
	for _, f := range flows {
		if f.Forward.Protocol == unix.IPPROTO_UDP && f.Forward.DstIP.Equal(dst.Addr().AsSlice()) && f.Forward.DstPort == dst.Port() {
			n++
		}
	}
	return n
}

// A shorter UDP timeout makes a replied-to mapping expire in seconds, where
// Linux keeps it two minutes.
func TestSetUDPTimeout(t *testing.T) {
	l := newLab(t, Spec{
		Routers: []RouterSpec{{Name: "home"}},
		Hosts:   []HostSpec{{Name: "laptop", Router: "home"}, {Name: "server"}},
	})
	r := l.Router("home")
	if err := r.SetUDPTimeout(500 * time.Millisecond); !errors.Is(err, ErrBadSpec) {
		t.Errorf("SetUDPTimeout(500ms): %v, want ErrBadSpec", err)
	}
	if err := r.SetUDPTimeout(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	single, stream, err := r.UDPTimeouts()
	if err != nil || single != 2*time.Second || stream != 2*time.Second {
		t.Fatalf("UDPTimeouts: %v, %v, %v; want 2s, 2s", single, stream, err)
	}
	srv := startEcho(t, l.Host("server"), 3478)
	c := udpSocket(t, l.Host("laptop"))
	m := mapped(t, c, srv.addr)
	start := time.Now()
	if conntrackUDP(t, r, srv.addr) == 0 {
		t.Fatal("no conntrack entry for the mapping")
	}
	// Wait for the expiry itself, with a deadline far below Linux's 120 s.
	for conntrackUDP(t, r, srv.addr) > 0 {
		if time.Since(start) > 30*time.Second {
			t.Fatal("the mapping outlived 30 s with a 2 s timeout")
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("mapping expired after %v", time.Since(start).Round(time.Millisecond))
	srv.probe(t, m, "expired")
	if receives(c, "expired", time.Second) {
		t.Error("a reply got in through an expired mapping")
	}
}
