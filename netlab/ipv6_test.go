package netlab

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

func ipv6Spec() Spec {
	return Spec{
		Routers: []RouterSpec{
			{Name: "da", Stack: StackDual},
			{Name: "db", Stack: StackDual, NAT: NATSymmetric},
			{Name: "six", Stack: StackIPv6},
			{Name: "four"},
		},
		Hosts: []HostSpec{
			{Name: "a", Router: "da"}, {Name: "b", Router: "db"}, {Name: "c", Router: "six"}, {Name: "d", Router: "four"},
			{Name: "srv", Stack: StackDual},
		},
	}
}

// udp6 opens an IPv6 UDP socket inside h on port (0: any).
func udp6(t *testing.T, h *Host, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	inside(t, h.Namespace, func() error {
		var err error
		c, err = net.ListenUDP("udp6", &net.UDPAddr{IP: h.Addr6().AsSlice(), Port: port})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// gets reports whether c receives tag within wait, and from where.
func gets(c *net.UDPConn, tag string, wait time.Duration) (netip.AddrPort, bool) {
	buf := make([]byte, 256)
	c.SetReadDeadline(time.Now().Add(wait))
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return netip.AddrPort{}, false
		}
		if string(buf[:n]) == tag {
			return from, true
		}
	}
}

func send(t *testing.T, c *net.UDPConn, to netip.AddrPort, tag string) {
	t.Helper()
	if _, err := c.WriteToUDPAddrPort([]byte(tag), to); err != nil {
		t.Fatalf("send %s to %v: %v", tag, to, err)
	}
}

func addrPort(c *net.UDPConn) netip.AddrPort {
	a := c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// IPv6 homes: public addresses with no NAT, in the benchmarking prefix; a
// stateful firewall that lets in only replies from the exact address and port
// sent to, and a simultaneous open through two of them; IPv6-only and
// IPv4-only homes have only their own version.
func TestIPv6Homes(t *testing.T) {
	needRoot(t)
	l := newLab(t, ipv6Spec())
	a, b, c, d, srv := l.Host("a"), l.Host("b"), l.Host("c"), l.Host("d"), l.Host("srv")
	for _, h := range []*Host{a, b, c, srv} {
		if !h.Addr6().IsValid() || !internetPrefix6.Contains(h.Addr6()) {
			t.Fatalf("%s: IPv6 address %v, want one in %v", h.Name(), h.Addr6(), internetPrefix6)
		}
	}
	if !l.Router("da").LAN6().Contains(a.Addr6()) || l.Router("da").LAN6() == l.Router("db").LAN6() {
		t.Fatalf("homes' /64s: %v, %v; a at %v", l.Router("da").LAN6(), l.Router("db").LAN6(), a.Addr6())
	}
	if !a.Addr().IsValid() || c.Addr().IsValid() || d.Addr6().IsValid() || !srv.Addr().IsValid() {
		t.Fatalf("stacks: a %v, c %v (IPv6-only), d %v (IPv4-only), srv %v", a.Addr(), c.Addr(), d.Addr6(), srv.Addr())
	}
	t.Log(l)

	// Out and back: the server sees the host's own address, no NAT.
	echo := udp6(t, srv, 7000)
	ca := udp6(t, a, 0)
	send(t, ca, addrPort(echo), "hello")
	from, ok := gets(echo, "hello", 5*time.Second)
	if !ok || from != addrPort(ca) {
		t.Fatalf("server got hello %v from %v, want from %v", ok, from, addrPort(ca))
	}
	send(t, echo, from, "reply")
	if _, ok := gets(ca, "reply", 5*time.Second); !ok {
		t.Fatal("the reply did not get through a's firewall")
	}
	// From another port of the same address: filtered.
	other := udp6(t, srv, 7001)
	send(t, other, from, "other port")
	if _, ok := gets(ca, "other port", time.Second); ok {
		t.Fatal("a's firewall let in a datagram from a port a never sent to")
	}
	// Unsolicited, to a host that has sent nothing: filtered.
	cb := udp6(t, b, 0)
	send(t, echo, addrPort(cb), "unsolicited")
	if _, ok := gets(cb, "unsolicited", time.Second); ok {
		t.Fatal("b's firewall let in an unsolicited datagram")
	}
	// A hole punch between two firewalled homes (b's IPv4 is symmetric:
	// IPv6 does not care), and from the IPv6-only home.
	cc := udp6(t, c, 0)
	for _, pair := range [][2]*net.UDPConn{{ca, cb}, {cb, cc}} {
		x, y := pair[0], pair[1]
		send(t, x, addrPort(y), "punch")
		send(t, y, addrPort(x), "punch")
		send(t, x, addrPort(y), "through")
		send(t, y, addrPort(x), "through")
		if _, ok := gets(y, "through", 5*time.Second); !ok {
			t.Fatalf("%v → %v: no datagram through after the punch", addrPort(x), addrPort(y))
		}
		if _, ok := gets(x, "through", 5*time.Second); !ok {
			t.Fatalf("%v → %v: no datagram through after the punch", addrPort(y), addrPort(x))
		}
	}
	// The IPv4-only home has no route to the IPv6 internet.
	inside(t, d.Namespace, func() error {
		if _, err := net.DialUDP("udp6", nil, net.UDPAddrFromAddrPort(addrPort(echo))); err == nil {
			t.Error("an IPv4-only home reached the IPv6 internet")
		}
		return nil
	})
}

func TestIPv6SpecErrors(t *testing.T) {
	for _, s := range []Spec{
		{Routers: []RouterSpec{{Name: "cg"}, {Name: "r", Upstream: "cg", Stack: StackDual}}},
		{Routers: []RouterSpec{{Name: "r"}}, Hosts: []HostSpec{{Name: "h", Router: "r", Stack: StackDual}}},
		{Hosts: []HostSpec{{Name: "h", Stack: StackIPv6}}},
		{Routers: []RouterSpec{{Name: "r", Stack: Stack(9)}}},
	} {
		if _, err := s.check(); err == nil {
			t.Errorf("%+v: no error", s)
		}
	}
}
