package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// Networks that change while a lab runs: a router renumbered by its ISP or
// rebooted, a link that drops, a laptop that roams from one home to another,
// a NAT whose UDP mappings expire sooner. Each change is made the way the
// real event looks from inside the lab's hosts, and each is safe to call
// while processes run in the lab.

// uplink is how a node plugs into its upstream segment: a router's WAN side
// or a host's link to its LAN (or to the internet).
type uplink struct {
	seg    *segment
	port   string    // the parent end, a port of seg's bridge
	ifName string    // the child end
	link   Link      // its shaping
	emu    *emulator // nil for a plain veth pair
}

// ErrNoUplink is returned for a change to a link that a node does not have:
// the internet's own namespace has none.
var ErrNoUplink = errors.New("netlab: node has no uplink")

// lockChange takes the lab's change lock, failing once the lab is closed.
func (l *Lab) lockChange() error {
	l.chg.Lock()
	l.mu.Lock()
	closed := l.closed
	l.mu.Unlock()
	if closed {
		l.chg.Unlock()
		return fmt.Errorf("netlab: lab %s: %w", l.prefix, net.ErrClosed)
	}
	return nil
}

// Renumber gives the router a new address on its upstream network, as an
// ISP renumbering a home does: the old address disappears, and with it every
// NAT mapping (conntrack entries and, for cone types, the inbound map), so
// connections through the router break and the next packets of the hosts
// behind it leave from the new address. Hosts behind the router see nothing
// change. It returns the new WAN address.
func (r *Router) Renumber(ctx context.Context) (netip.Addr, error) {
	l := r.lab
	if err := ctx.Err(); err != nil {
		return netip.Addr{}, err
	}
	if err := l.lockChange(); err != nil {
		return netip.Addr{}, err
	}
	defer l.chg.Unlock()
	up := r.up
	fresh, err := up.seg.alloc()
	if err != nil {
		return netip.Addr{}, err
	}
	fail := func(what string, err error) (netip.Addr, error) {
		return netip.Addr{}, fmt.Errorf("netlab: renumber %s: %s: %w", r.name, what, err)
	}
	wan, err := r.handle.LinkByName(up.ifName)
	if err != nil {
		return fail("find "+up.ifName, err)
	}
	bits := up.seg.prefix.Bits()
	// The old address goes first: with it go the masquerade's connections
	// (the kernel flushes those of a vanished address) and the routes.
	if err := r.handle.AddrDel(wan, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(r.wan, bits))}); err != nil {
		return fail("remove "+r.wan.String(), err)
	}
	if err := r.handle.AddrAdd(wan, &netlink.Addr{IPNet: ipNet(netip.PrefixFrom(fresh, bits))}); err != nil {
		return fail("add "+fresh.String(), err)
	}
	if err := r.handle.RouteReplace(defaultRoute(wan, up.seg)); err != nil {
		return fail("default route", err)
	}
	r.wan = fresh
	if err := r.forgetMappings(); err != nil {
		return fail("forget mappings", err)
	}
	return fresh, nil
}

func defaultRoute(link netlink.Link, seg *segment) *netlink.Route {
	return &netlink.Route{
		LinkIndex: link.Attrs().Index,
		Gw:        seg.prefix.Addr().AsSlice(),
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
	}
}

// forgetMappings drops every NAT mapping of the router: its conntrack table
// and the cone types' inbound map.
func (r *Router) forgetMappings() error {
	if err := r.handle.ConntrackTableFlush(netlink.ConntrackTable); err != nil {
		return fmt.Errorf("conntrack flush: %w", err)
	}
	if r.nat != NATFullCone && r.nat != NATRestricted {
		return nil
	}
	c, err := nftables.New(nftables.WithNetNSFd(int(r.fd)))
	if err != nil {
		return err
	}
	t := &nftables.Table{Family: nftables.TableFamilyIPv4, Name: "netlab"}
	set, err := c.GetSetByName(t, "cone")
	if err != nil {
		return fmt.Errorf("cone map: %w", err)
	}
	c.FlushSet(set)
	return c.Flush()
}

// Reboot takes the router's WAN link down for the given time, as a router
// that restarts does, and brings it back with every NAT mapping forgotten:
// what the hosts behind it send during the outage is lost, and afterwards
// their connections through it are gone (the next packets make new
// mappings). Reboot returns once the link carries traffic again, or with
// ctx's error (the link then stays down; LinkUp brings it back).
func (r *Router) Reboot(ctx context.Context, down time.Duration) error {
	if err := r.LinkDown(); err != nil {
		return err
	}
	if err := r.lab.withChange(r.forgetMappings); err != nil {
		return fmt.Errorf("netlab: reboot %s: %w", r.name, err)
	}
	t := time.NewTimer(down)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	// Packets sent during the outage made mappings that a rebooted router
	// would not have.
	if err := r.lab.withChange(r.forgetMappings); err != nil {
		return fmt.Errorf("netlab: reboot %s: %w", r.name, err)
	}
	return r.LinkUp(ctx)
}

func (l *Lab) withChange(fn func() error) error {
	if err := l.lockChange(); err != nil {
		return err
	}
	defer l.chg.Unlock()
	return fn()
}

// LinkDown cuts the node's uplink (a router's WAN side, a host's link to
// its LAN or to the internet), as pulling the cable does: the node keeps
// its addresses, routes and, for a router, its NAT mappings, but nothing
// passes either way until LinkUp.
func (n *Namespace) LinkDown() error { return n.setLink(context.Background(), false) }

// LinkUp restores the node's uplink after LinkDown, and returns once it
// carries traffic again.
func (n *Namespace) LinkUp(ctx context.Context) error { return n.setLink(ctx, true) }

func (n *Namespace) setLink(ctx context.Context, up bool) error {
	l := n.lab
	if err := l.lockChange(); err != nil {
		return err
	}
	if n.up == nil {
		l.chg.Unlock()
		return fmt.Errorf("%w: %s", ErrNoUplink, n.name)
	}
	seg := n.up.seg
	// The parent end goes down: the child keeps its link, addresses and
	// routes (they only lose carrier), as a host whose cable is pulled.
	port, err := seg.ns.handle.LinkByName(n.up.port)
	if err == nil {
		if up {
			err = seg.ns.handle.LinkSetUp(port)
		} else {
			err = seg.ns.handle.LinkSetDown(port)
		}
	}
	l.chg.Unlock()
	if err != nil {
		return fmt.Errorf("netlab: %s: link %s: %w", n.name, map[bool]string{true: "up", false: "down"}[up], err)
	}
	if !up {
		return nil
	}
	return l.waitNamespacesReady(ctx, n, seg.ns)
}

// waitNamespacesReady waits until the links of the given namespaces carry
// traffic, for at most 10 s.
func (l *Lab) waitNamespacesReady(ctx context.Context, nss ...*Namespace) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		var pending []string
		for _, n := range nss {
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
			return fmt.Errorf("netlab: links not up after 10s: %v", pending)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// MoveTo moves the host to the LAN of router r, as a laptop carried from one
// home to another: its link is unplugged, and it joins r's LAN with a new
// address there (the next one free, as a DHCP server would hand out) and a
// default route through r. Its link keeps its shaping. Sockets bound to the
// old address stop working; sockets bound to the wildcard address carry on
// from the new one. Moving back to the first home gives a new address there
// too.
func (h *Host) MoveTo(ctx context.Context, r *Router) error {
	if r == nil || r.lanSeg == nil || r.lab != h.lab {
		return fmt.Errorf("%w: move %s: want a router of this lab", ErrBadSpec, h.name)
	}
	if r.carrier {
		return fmt.Errorf("%w: move %s: %s is a carrier-grade NAT, not a home", ErrBadSpec, h.name, r.name)
	}
	l := h.lab
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.lockChange(); err != nil {
		return err
	}
	old := h.up
	if old == nil {
		l.chg.Unlock()
		return fmt.Errorf("%w: %s", ErrNoUplink, h.name)
	}
	err := h.unplug(ctx, old)
	if err == nil {
		var addr netip.Addr
		addr, err = l.attach(r.lanSeg, h.Namespace, old.ifName, old.link)
		if err == nil {
			h.addr, h.router = addr, r
		}
	}
	l.chg.Unlock()
	if err != nil {
		return fmt.Errorf("netlab: move %s to %s: %w", h.name, r.name, err)
	}
	return l.waitNamespacesReady(ctx, h.Namespace, r.Namespace)
}

// unplug removes the host's uplink, both ends, and waits until its
// interface name is free again. Called with l.chg held.
func (h *Host) unplug(ctx context.Context, up *uplink) error {
	if up.emu != nil {
		up.emu.close() // the TAP devices go with their descriptors
	} else if port, err := up.seg.ns.handle.LinkByName(up.port); err == nil {
		if err := up.seg.ns.handle.LinkDel(port); err != nil {
			return fmt.Errorf("remove %s: %w", up.port, err)
		}
	}
	h.up = nil
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := h.handle.LinkByName(up.ifName)
		var notFound netlink.LinkNotFoundError
		if errors.As(err, &notFound) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s still present after 10s", up.ifName)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// SetUDPTimeout sets how long the router keeps a UDP mapping after the last
// packet through it: conntrack's UDP timeouts in the router's namespace,
// both for flows that saw one packet and for those that saw replies
// (net.netfilter.nf_conntrack_udp_timeout and _stream; Linux's defaults are
// 30 s and 120 s). Existing mappings take the new timeout with their next
// packet. The cone types' inbound map keeps its own two minutes, but
// forwards only to a mapping that still exists. d must be whole seconds,
// from 1 s to 1 h.
func (r *Router) SetUDPTimeout(d time.Duration) error {
	if d < time.Second || d > time.Hour || d%time.Second != 0 {
		return fmt.Errorf("%w: UDP timeout %v: want whole seconds from 1s to 1h", ErrBadSpec, d)
	}
	secs := strconv.Itoa(int(d / time.Second))
	return r.lab.withChange(func() error {
		for _, k := range []string{"net.netfilter.nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout_stream"} {
			if err := r.sysctl(k, secs); err != nil {
				return fmt.Errorf("netlab: %s: %s: %w", r.name, k, err)
			}
		}
		return nil
	})
}

// UDPTimeouts reads the router's conntrack UDP timeouts: for a flow that
// saw one packet and for one that saw replies.
func (r *Router) UDPTimeouts() (single, stream time.Duration, err error) {
	read := func(k string) (time.Duration, error) {
		var v string
		err := inNS(r.fd, func() error {
			b, err := readSysctl(k)
			v = b
			return err
		})
		if err != nil {
			return 0, err
		}
		n, err := strconv.Atoi(v)
		return time.Duration(n) * time.Second, err
	}
	if single, err = read("net.netfilter.nf_conntrack_udp_timeout"); err != nil {
		return 0, 0, fmt.Errorf("netlab: %s: %w", r.name, err)
	}
	if stream, err = read("net.netfilter.nf_conntrack_udp_timeout_stream"); err != nil {
		return 0, 0, fmt.Errorf("netlab: %s: %w", r.name, err)
	}
	return single, stream, nil
}

// readSysctl reads a sysctl in the namespace of the calling thread.
func readSysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	return strings.TrimSpace(string(b)), err
}
