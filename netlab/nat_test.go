package netlab

import (
	"errors"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
)

// How long a packet that should not arrive is waited for, and how long a TCP
// dial that should not connect may try. The lab adds no delay here; a packet
// that gets through arrives within a millisecond.
// What should arrive is waited for much longer (arriveWait): on a loaded
// machine the reader may run late, and a short window would read "dropped".
const (
	dropWait   = 300 * time.Millisecond
	synWait    = 700 * time.Millisecond
	arriveWait = 10 * time.Second
)

// within is how long to wait for a packet that should (want) or should not
// arrive; synWithin, for a TCP dial that should or should not connect.
func within(want bool) time.Duration {
	if want {
		return arriveWait
	}
	return dropWait
}

func synWithin(want bool) time.Duration {
	if want {
		return arriveWait
	}
	return synWait
}

// natSpec: one router of each kind with a laptop behind it, a laptop behind
// double NAT, and three public hosts.
func natSpec() Spec {
	return Spec{
		Routers: []RouterSpec{
			{Name: "pr", NAT: NATPortRestricted},
			{Name: "rc", NAT: NATRestricted},
			{Name: "fc", NAT: NATFullCone},
			{Name: "sym", NAT: NATSymmetric},
			{Name: "isp", NAT: NATPortRestricted},
			{Name: "flat", NAT: NATPortRestricted, Upstream: "isp"},
		},
		Hosts: []HostSpec{
			{Name: "h-pr", Router: "pr"},
			{Name: "h-rc", Router: "rc"},
			{Name: "h-fc", Router: "fc"},
			{Name: "h-sym", Router: "sym"},
			{Name: "h-flat", Router: "flat"},
			{Name: "s1"}, {Name: "s2"}, {Name: "s3"},
		},
	}
}

// TestNAT checks each behaviour with a STUN-like echo on public hosts s1 and
// s2 (ports 3478 and 3479) and probes from s1's other port and from s3, a
// third party the laptop never contacted.
func TestNAT(t *testing.T) {
	l := newLab(t, natSpec())
	s1a := startEcho(t, l.Host("s1"), 3478)
	s1b := startEcho(t, l.Host("s1"), 3479)
	s2 := startEcho(t, l.Host("s2"), 3478)
	s3 := startEcho(t, l.Host("s3"), 3478)
	tcp1 := tcpEcho(t, l.Host("s1"), 3478)
	tcp2 := tcpEcho(t, l.Host("s2"), 3478)

	for _, tc := range []struct {
		router string
		eim    bool // endpoint-independent mapping
		fromIP bool // any port of a contacted address gets in
		anyone bool // anyone gets in once mapped
	}{
		{"pr", true, false, false},
		{"rc", true, true, false},
		{"fc", true, true, true},
		{"sym", false, false, false},
	} {
		r := l.Router(tc.router)
		h := l.Host("h-" + tc.router)
		t.Run(r.NAT().String()+"/udp", func(t *testing.T) {
			t.Parallel()
			c := udpSocket(t, h)
			m1 := mapped(t, c, s1a.addr)
			m2 := mapped(t, c, s2.addr)
			t.Logf("%v maps to %v towards s1, %v towards s2", c.LocalAddr(), m1, m2)
			if m1.Addr() != r.PublicAddr() || m2.Addr() != r.PublicAddr() {
				t.Errorf("mapped addresses %v, %v; want the router's %v", m1, m2, r.PublicAddr())
			}
			if got := m1 == m2; got != tc.eim {
				t.Errorf("same mapping towards both servers: %v, want %v", got, tc.eim)
			}
			s1a.probe(t, m1, "contacted")
			if !receives(c, "contacted", arriveWait) {
				t.Errorf("no packet from the contacted endpoint %v", s1a.addr)
			}
			s1b.probe(t, m1, "other-port")
			if got := receives(c, "other-port", within(tc.fromIP)); got != tc.fromIP {
				t.Errorf("packet from another port of a contacted address (%v) got in: %v, want %v", s1b.addr, got, tc.fromIP)
			}
			s3.probe(t, m1, "third")
			if got := receives(c, "third", within(tc.anyone)); got != tc.anyone {
				t.Errorf("packet from the uncontacted %v got in: %v, want %v", s3.addr, got, tc.anyone)
			}
			// A socket that never sent has no mapping: nothing gets in, on
			// any NAT, full cone included.
			fresh := udpSocket(t, h)
			port := uint16(fresh.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port())
			s3.probe(t, netip.AddrPortFrom(r.PublicAddr(), port), "unsolicited")
			s1a.probe(t, netip.AddrPortFrom(r.PublicAddr(), port), "unsolicited")
			if receives(fresh, "unsolicited", dropWait) {
				t.Errorf("unsolicited packet reached a socket that never sent")
			}
		})
		t.Run(r.NAT().String()+"/tcp", func(t *testing.T) {
			t.Parallel()
			// As go-libp2p does: listen on a port and dial from it too.
			const lport = 4001
			ln := tcpListenReuse(t, h, lport)
			o1, err := dialTCP(h, lport, tcp1, 2*time.Second)
			if err != nil {
				t.Fatalf("dial s1: %v", err)
			}
			o2, err := dialTCP(h, lport, tcp2, 2*time.Second)
			if err != nil {
				t.Fatalf("dial s2: %v", err)
			}
			m1, m2 := netip.MustParseAddrPort(o1), netip.MustParseAddrPort(o2)
			t.Logf("port %d maps to %v towards s1, %v towards s2", lport, m1, m2)
			if got := m1 == m2; got != tc.eim {
				t.Errorf("same mapping towards both servers: %v, want %v", got, tc.eim)
			}
			// s1 dials back from an ephemeral port: a SYN from another port
			// of a contacted address.
			_, err = dialTCP(l.Host("s1"), 0, m1, synWithin(tc.fromIP))
			if got := err == nil; got != tc.fromIP {
				t.Errorf("SYN from another port of contacted s1 got in: %v (%v), want %v", got, err, tc.fromIP)
			}
			if err != nil && !isTimeout(err) {
				t.Errorf("SYN from s1 was answered with %v; a router must stay silent", err)
			}
			_, err = dialTCP(l.Host("s3"), 0, m1, synWithin(tc.anyone))
			if got := err == nil; got != tc.anyone {
				t.Errorf("SYN from uncontacted s3 got in: %v (%v), want %v", got, err, tc.anyone)
			}
			if err != nil && !isTimeout(err) {
				t.Errorf("SYN from s3 was answered with %v; a router must stay silent", err)
			}
			ln.Close()
		})
	}

	t.Run("double-nat", func(t *testing.T) {
		t.Parallel()
		isp, flat := l.Router("isp"), l.Router("flat")
		if !netip.MustParsePrefix("100.64.0.0/10").Contains(flat.WANAddr()) {
			t.Errorf("inner router's WAN %v is not in 100.64.0.0/10", flat.WANAddr())
		}
		c := udpSocket(t, l.Host("h-flat"))
		m1 := mapped(t, c, s1a.addr)
		m2 := mapped(t, c, s2.addr)
		t.Logf("behind %v (WAN %v) behind %v (WAN %v): seen as %v and %v", flat.Name(), flat.WANAddr(), isp.Name(), isp.WANAddr(), m1, m2)
		if m1.Addr() != isp.WANAddr() {
			t.Errorf("seen from %v, want the carrier's public address %v", m1.Addr(), isp.WANAddr())
		}
		if m1 != m2 {
			t.Errorf("two port-restricted layers should keep one mapping: %v vs %v", m1, m2)
		}
		s3.probe(t, m1, "third")
		if receives(c, "third", dropWait) {
			t.Error("unsolicited packet crossed double NAT")
		}
	})

	t.Run("silent-drop", func(t *testing.T) {
		t.Parallel()
		// Control: a public host with nothing on the port answers with a
		// reset, so the test can tell a reset from silence.
		if _, err := dialTCP(l.Host("s1"), 0, netip.AddrPortFrom(l.Host("s2").Addr(), 4444), arriveWait); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("control: dial a closed port of s2: %v, want connection refused", err)
		}
		if err := udpRefused(t, l.Host("s1"), netip.AddrPortFrom(l.Host("s2").Addr(), 4444), arriveWait); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("control: UDP to a closed port of s2: %v, want connection refused (ICMP)", err)
		}
		var wg sync.WaitGroup
		for _, name := range []string{"pr", "rc", "fc", "sym", "isp"} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				dst := netip.AddrPortFrom(l.Router(name).PublicAddr(), 4444)
				if _, err := dialTCP(l.Host("s1"), 0, dst, synWait); !isTimeout(err) {
					t.Errorf("unsolicited SYN to router %s: %v, want a timeout (no reset)", name, err)
				}
				if err := udpRefused(t, l.Host("s1"), dst, dropWait); !isTimeout(err) {
					t.Errorf("unsolicited UDP to router %s: %v, want a timeout (no ICMP unreachable)", name, err)
				}
			}()
		}
		wg.Wait()
	})
}

// udpRefused sends a datagram from a connected socket inside h and returns
// the read error: ECONNREFUSED if an ICMP unreachable came back within
// wait, a timeout if nothing did.
func udpRefused(t *testing.T, h *Host, dst netip.AddrPort, wait time.Duration) error {
	var err error
	inside(t, h.Namespace, func() error {
		c, derr := netDialUDP(dst)
		if derr != nil {
			return derr
		}
		defer c.Close()
		c.Write([]byte("probe x"))
		c.SetReadDeadline(time.Now().Add(wait))
		_, err = c.Read(make([]byte, 64))
		return nil
	})
	return err
}
