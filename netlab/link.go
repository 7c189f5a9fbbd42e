package netlab

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"
)

// Interface names inside the lab's namespaces. Each namespace has its own
// set of names, so they never clash with the machine's.
const (
	wanIf  = "wan0" // a router's upstream side
	lanIf  = "lan0" // a router's LAN bridge
	hostIf = "eth0" // a host's uplink
	mtu    = 1500
)

// segment is a layer-2 network: a bridge in some namespace that children
// plug into, with a subnet and a gateway (the bridge's own address).
type segment struct {
	ns      *Namespace
	bridge  *netlink.Bridge
	prefix  netip.Prefix // gateway address with the subnet's length; invalid: no IPv4
	next    netip.Addr   // the next address to hand out
	nextTap int          // numbers the bridge ports: p1, p2, ...
	prefix6 netip.Prefix // IPv6 gateway address with /64; invalid: no IPv6
	next6   netip.Addr   // the next IPv6 address to hand out
}

// newSegment makes a bridge named name in ns holding the address gw.
func (l *Lab) newSegment(ns *Namespace, name string, gw netip.Prefix, first netip.Addr) (*segment, error) {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu}}
	if err := ns.handle.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("netlab: %s: add bridge %s: %w", ns.name, name, err)
	}
	if gw.IsValid() {
		if err := ns.handle.AddrAdd(br, &netlink.Addr{IPNet: ipNet(gw)}); err != nil {
			return nil, fmt.Errorf("netlab: %s: address %v on %s: %w", ns.name, gw, name, err)
		}
	}
	if err := ns.handle.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("netlab: %s: %s up: %w", ns.name, name, err)
	}
	seg := &segment{ns: ns, bridge: br, prefix: gw, next: first}
	ns.lanSeg = seg
	return seg, nil
}

// addIPv6 gives the segment's bridge the IPv6 gateway address gw (a /64),
// and hands out addresses from first.
func (s *segment) addIPv6(gw netip.Prefix, first netip.Addr) error {
	if err := s.ns.handle.AddrAdd(s.bridge, &netlink.Addr{IPNet: ipNet(gw), Flags: unix.IFA_F_NODAD}); err != nil {
		return fmt.Errorf("netlab: %s: address %v on %s: %w", s.ns.name, gw, s.bridge.Name, err)
	}
	s.prefix6, s.next6 = gw, first
	return nil
}

func (s *segment) alloc() (netip.Addr, error) {
	a := s.next
	if !s.prefix.Masked().Contains(a) || a == s.lastAddr() {
		return netip.Addr{}, fmt.Errorf("%w: %s: network %v is full", ErrBadSpec, s.ns.name, s.prefix.Masked())
	}
	s.next = a.Next()
	return a, nil
}

// lastAddr is the subnet's broadcast address.
func (s *segment) lastAddr() netip.Addr {
	b := s.prefix.Masked().Addr().As4()
	host := uint32(1)<<(32-s.prefix.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// attach plugs child into seg through an interface named ifName, gives it the
// next address of the segment and a default route through the segment's
// gateway, and shapes the link. Both ends are made directly in their
// namespaces: nothing ever appears in the machine's own namespace.
//
// IPv4 and IPv6 go as far as both ends have them: a node on the internet
// takes the versions of its own stack, a node on a LAN those of the LAN. The
// IPv4 address is returned (invalid without IPv4), the IPv6 one kept in
// child.addr6.
func (l *Lab) attach(seg *segment, child *Namespace, ifName string, link Link) (netip.Addr, error) {
	want := StackDual
	if seg.ns == l.internet {
		want = child.stack
	}
	var addr netip.Addr
	var err error
	v4 := seg.prefix.IsValid() && want.v4()
	if v4 {
		if addr, err = seg.alloc(); err != nil {
			return netip.Addr{}, err
		}
	}
	seg.nextTap++
	port := fmt.Sprintf("p%d", seg.nextTap)
	fail := func(what string, err error) (netip.Addr, error) {
		return netip.Addr{}, fmt.Errorf("netlab: attach %s to %s: %s: %w", child.name, seg.ns.name, what, err)
	}

	up := &uplink{seg: seg, port: port, ifName: ifName, link: link}
	if link.emulated() {
		if up.emu, err = l.emulatedLink(seg.ns, port, child, ifName, link); err != nil {
			return fail("emulated link", err)
		}
	} else {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: port, MTU: mtu},
			PeerName:      ifName,
			PeerNamespace: netlink.NsFd(child.fd),
		}
		if err := seg.ns.handle.LinkAdd(veth); err != nil {
			return fail("add veth", err)
		}
	}
	child.up = up
	parentEnd, err := seg.ns.handle.LinkByName(port)
	if err != nil {
		return fail("find "+port, err)
	}
	if err := seg.ns.handle.LinkSetMaster(parentEnd, seg.bridge); err != nil {
		return fail("enslave "+port, err)
	}
	if err := seg.ns.handle.LinkSetUp(parentEnd); err != nil {
		return fail(port+" up", err)
	}
	childEnd, err := child.handle.LinkByName(ifName)
	if err != nil {
		return fail("find "+ifName, err)
	}
	if v4 {
		if err := child.handle.AddrAdd(childEnd, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(addr, seg.prefix.Bits()))}); err != nil {
			return fail("address", err)
		}
	}
	child.addr6 = netip.Addr{}
	v6 := seg.prefix6.IsValid() && want.v6()
	if v6 {
		child.addr6 = seg.next6
		seg.next6 = seg.next6.Next()
		if err := child.handle.AddrAdd(childEnd, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(child.addr6, 64)), Flags: unix.IFA_F_NODAD}); err != nil {
			return fail("IPv6 address", err)
		}
	}
	if err := child.handle.LinkSetUp(childEnd); err != nil {
		return fail(ifName+" up", err)
	}
	if v4 {
		route := &netlink.Route{
			LinkIndex: childEnd.Attrs().Index,
			Gw:        seg.prefix.Addr().AsSlice(),
			Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		}
		if err := child.handle.RouteAdd(route); err != nil {
			return fail("default route", err)
		}
	}
	if v6 {
		route := &netlink.Route{
			LinkIndex: childEnd.Attrs().Index,
			Gw:        seg.prefix6.Addr().AsSlice(),
			Dst:       &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)},
		}
		if err := child.handle.RouteAdd(route); err != nil {
			return fail("IPv6 default route", err)
		}
	}
	if link.Rate > 0 {
		if err := shape(seg.ns.handle, parentEnd, link.Rate); err != nil {
			return fail("shape "+port, err)
		}
		if err := shape(child.handle, childEnd, link.Rate); err != nil {
			return fail("shape "+ifName, err)
		}
	}
	return addr, nil
}

// shape caps what link sends at rate bits per second with a token bucket
// filter: bursts of a few milliseconds' worth, a queue of about 50 ms.
func shape(h *netlink.Handle, link netlink.Link, rate int64) error {
	bytesPerSec := uint64(rate / 8)
	burst := max(uint32(bytesPerSec/250), 2*(mtu+14)) // ≥ one tick (HZ=250) of data
	limit := uint32(bytesPerSec/20) + burst           // ≈ 50 ms of queue
	tbf := &netlink.Tbf{
		QdiscAttrs: netlink.QdiscAttrs{
			LinkIndex: link.Attrs().Index,
			Handle:    netlink.MakeHandle(1, 0),
			Parent:    netlink.HANDLE_ROOT,
		},
		Rate:   bytesPerSec,
		Limit:  limit,
		Buffer: netlink.Xmittime(bytesPerSec, burst),
	}
	if err := h.QdiscReplace(tbf); err != nil {
		return fmt.Errorf("tbf: %w", err)
	}
	return nil
}

// openTap creates a TAP device named name inside ns and returns its file
// descriptor, non-blocking. The device lives as long as the descriptor.
func openTap(ns *Namespace, name string) (int, error) {
	fd := -1
	err := inNS(ns.fd, func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		return nil
	})
	if err != nil {
		return -1, err
	}
	return fd, nil
}

// brStateForwarding is BR_STATE_FORWARDING from linux/if_bridge.h.
const brStateForwarding = 3

// notReady lists the links of ns that cannot carry traffic yet: links whose
// operational state is not up, and bridge ports not yet forwarding. The
// kernel brings both about asynchronously (linkwatch) after a link comes up,
// sometimes a second later; until then a bridge drops what a port receives.
func (n *Namespace) notReady() ([]string, error) {
	links, err := n.handle.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		a := l.Attrs()
		if a.Name == "lo" {
			continue
		}
		if a.OperState != netlink.OperUp && a.OperState != netlink.OperUnknown {
			out = append(out, fmt.Sprintf("%s is %v", a.Name, a.OperState))
		}
	}
	err = inNS(n.fd, func() error {
		req := nl.NewNetlinkRequest(unix.RTM_GETLINK, unix.NLM_F_DUMP)
		req.AddData(nl.NewIfInfomsg(unix.AF_BRIDGE))
		msgs, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWLINK)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			info := nl.DeserializeIfInfomsg(m)
			attrs, err := nl.ParseRouteAttr(m[info.Len():])
			if err != nil {
				return err
			}
			name, state := "", -1
			for _, a := range attrs {
				switch a.Attr.Type {
				case unix.IFLA_IFNAME:
					name = strings.TrimRight(string(a.Value), "\x00")
				case unix.IFLA_PROTINFO | unix.NLA_F_NESTED:
					port, err := nl.ParseRouteAttr(a.Value)
					if err != nil {
						return err
					}
					for _, p := range port {
						if p.Attr.Type == nl.IFLA_BRPORT_STATE && len(p.Value) > 0 {
							state = int(p.Value[0])
						}
					}
				}
			}
			if state >= 0 && state != brStateForwarding {
				out = append(out, fmt.Sprintf("bridge port %s in state %d", name, state))
			}
		}
		return nil
	})
	return out, err
}

// waitReady waits until every link of the lab carries traffic.
func (l *Lab) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pending []string
		for _, n := range l.namespaces {
			nr, err := n.notReady()
			if err != nil {
				return fmt.Errorf("netlab: %s: link states: %w", n.name, err)
			}
			for _, s := range nr {
				pending = append(pending, n.name+": "+s)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netlab: links not up after 10s: %s", strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}
