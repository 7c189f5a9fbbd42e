package netlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
)

// The lab's internet: public-looking addresses (manet.IsPublicAddr accepts
// them, so go-libp2p treats them as public) that exist only inside the lab's
// namespaces. Nothing routes them into the machine's own namespace.
var (
	internetPrefix  = netip.MustParsePrefix("11.0.0.0/8")
	internetGateway = netip.MustParseAddr("11.0.0.1")  // the internet bridge itself
	internetFirst   = netip.MustParseAddr("11.0.0.10") // first public address handed out
)

// The lab's IPv6 internet: 2001:2::/48, which IANA set aside for
// benchmarking (RFC 5180) and nothing routes on the real internet, yet
// manet.IsPublicAddr counts as public (it lies in 2000::/3 and outside the
// documentation prefix). The backbone is 2001:2::/64, with the internet
// namespace at 2001:2::1 routing; home N (the router's position in
// Spec.Routers, from 1) gets 2001:2:0:N::/64, routed to its router.
var (
	internetPrefix6  = netip.MustParsePrefix("2001:2::/48")
	internetGateway6 = netip.MustParsePrefix("2001:2::1/64")
	internetFirst6   = netip.MustParseAddr("2001:2::10")
)

// homePrefix6 is the IPv6 /64 of the router at position i (from 0) in
// Spec.Routers.
func homePrefix6(i int) netip.Prefix {
	b := internetPrefix6.Addr().As16()
	b[6], b[7] = byte((i+1)>>8), byte(i+1)
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// usesIPv6 reports whether any node of the spec has IPv6.
func (s Spec) usesIPv6() bool {
	for _, r := range s.Routers {
		if r.Stack.v6() {
			return true
		}
	}
	for _, h := range s.Hosts {
		if h.Router == "" && h.Stack.v6() {
			return true
		}
	}
	return false
}

// Lab is a running home-network lab. Its methods are safe for concurrent use.
type Lab struct {
	id     string // random run id, 6 hex digits
	prefix string // "jxl" + id: every namespace's name starts with it
	spec   Spec

	internet *Namespace // never nil after New
	routers  map[string]*Router
	hosts    map[string]*Host

	// Built up by New, read-only afterwards; Close undoes them in reverse.
	namespaces []*Namespace
	links      []*emulator

	wg sync.WaitGroup // emulator goroutines; all exit on Close

	// chg serialises runtime changes (change.go) and guards what they
	// change: hosts' addresses and routers, routers' WAN addresses, links.
	chg sync.Mutex

	mu     sync.Mutex
	procs  []*os.Process // guarded by mu; started by Start, killed on Close
	closed bool          // guarded by mu
}

// Addr6 is the host's IPv6 address (public: the lab's IPv6 has no NAT), or
// the invalid Addr when it has none.
func (h *Host) Addr6() netip.Addr {
	h.lab.chg.Lock()
	defer h.lab.chg.Unlock()
	return h.addr6
}

// Host is an end host: a laptop behind a router, or a machine on the internet
// with a public address.
type Host struct {
	*Namespace
	addr   netip.Addr
	router *Router // nil for a public host
}

// Addr is the host's own address: private behind a router, public on the
// internet.
func (h *Host) Addr() netip.Addr {
	h.lab.chg.Lock()
	defer h.lab.chg.Unlock()
	return h.addr
}

// Router is the router the host sits behind, nil for a public host.
func (h *Host) Router() *Router {
	h.lab.chg.Lock()
	defer h.lab.chg.Unlock()
	return h.router
}

// PublicAddr is the address the internet sees the host's packets come from:
// its own for a public host, else the outermost router's WAN address.
func (h *Host) PublicAddr() netip.Addr {
	h.lab.chg.Lock()
	defer h.lab.chg.Unlock()
	if h.router == nil {
		return h.addr
	}
	return h.router.publicAddr()
}

// Router is a NAT router: a namespace with a WAN side and a LAN bridge.
type Router struct {
	*Namespace
	nat      NAT
	wan      netip.Addr
	lan      netip.Prefix
	upstream *Router // nil when the WAN side is on the internet
	carrier  bool    // other routers sit behind it
	lan6     netip.Prefix
}

// NAT is the router's behaviour.
func (r *Router) NAT() NAT { return r.nat }

// WANAddr is the router's address on its upstream: public on the internet,
// in 100.64.0.0/10 behind a carrier-grade NAT.
func (r *Router) WANAddr() netip.Addr {
	r.lab.chg.Lock()
	defer r.lab.chg.Unlock()
	return r.wan
}

// LAN is the prefix of the router's LAN; the router holds its first address.
// Invalid for an IPv6-only home.
func (r *Router) LAN() netip.Prefix { return r.lan }

// Stack is the home's IP versions.
func (r *Router) Stack() Stack { return r.Namespace.stack }

// LAN6 is the IPv6 /64 of the router's LAN, invalid without IPv6; the router
// holds its ::1, hosts get ::10 on.
func (r *Router) LAN6() netip.Prefix { return r.lan6 }

// WANAddr6 is the router's IPv6 address on the internet, invalid without.
func (r *Router) WANAddr6() netip.Addr {
	r.lab.chg.Lock()
	defer r.lab.chg.Unlock()
	return r.addr6
}

// Upstream is the router this one sits behind, nil for one on the internet.
func (r *Router) Upstream() *Router { return r.upstream }

// PublicAddr is the address the internet sees: the outermost router's WAN
// address.
func (r *Router) PublicAddr() netip.Addr {
	r.lab.chg.Lock()
	defer r.lab.chg.Unlock()
	return r.publicAddr()
}

func (r *Router) publicAddr() netip.Addr {
	for r.upstream != nil {
		r = r.upstream
	}
	return r.wan
}

// New builds the lab described by spec. It first removes what crashed runs
// left behind (see Cleanup), and returns once every link carries traffic:
// the kernel brings links and bridge ports up asynchronously, and a bridge
// drops what reaches a port that is not forwarding yet. A New that fails
// part-way tears down what it built. Building takes a few milliseconds per
// node.
func New(ctx context.Context, spec Spec) (_ *Lab, err error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	carrier, err := spec.check()
	if err != nil {
		return nil, err
	}
	if err := Cleanup(); err != nil {
		return nil, fmt.Errorf("netlab: clean up leftovers: %w", err)
	}
	var id [3]byte
	rand.Read(id[:])
	l := &Lab{
		id:      hex.EncodeToString(id[:]),
		spec:    spec,
		routers: map[string]*Router{},
		hosts:   map[string]*Host{},
	}
	l.prefix = namePrefix + l.id
	// The marker comes first: a namespace of this run never exists without
	// it, so Cleanup can tell a live run from a dead one.
	if err := writeMarker(l.id); err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	defer func() {
		if err != nil {
			l.Close()
		}
	}()
	if err := l.build(ctx, carrier); err != nil {
		return nil, err
	}
	if err := l.waitReady(ctx); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *Lab) build(ctx context.Context, carrier map[string]bool) error {
	inet, err := l.newNamespace(internetName)
	if err != nil {
		return err
	}
	l.internet = inet
	v6 := l.spec.usesIPv6()
	// Without IPv6 nodes the internet speaks IPv4 only; interfaces made later
	// inherit "default". With them it routes IPv6 between the homes.
	sysctls := [][2]string{{"net.ipv6.conf.all.disable_ipv6", "1"}, {"net.ipv6.conf.default.disable_ipv6", "1"}}
	if v6 {
		sysctls = [][2]string{{"net.ipv6.conf.all.forwarding", "1"}}
	}
	for _, kv := range sysctls {
		if err := inet.sysctl(kv[0], kv[1]); err != nil {
			return fmt.Errorf("netlab: internet: %s: %w", kv[0], err)
		}
	}
	inetSeg, err := l.newSegment(inet, "br0", netip.PrefixFrom(internetGateway, internetPrefix.Bits()), internetFirst)
	if err != nil {
		return err
	}
	if v6 {
		if err := inetSeg.addIPv6(internetGateway6, internetFirst6); err != nil {
			return err
		}
	}
	segs := map[string]*segment{"": inetSeg}

	for i, rs := range l.spec.Routers {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := l.buildRouter(i, rs, carrier[rs.Name], segs)
		if err != nil {
			return err
		}
		l.routers[rs.Name] = r
	}

	for _, hs := range l.spec.Hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		h := &Host{router: l.routers[hs.Router]}
		if h.Namespace, err = l.newNamespace(hs.Name); err != nil {
			return err
		}
		h.Namespace.stack = hs.Stack
		if h.addr, err = l.attach(segs[hs.Router], h.Namespace, hostIf, hs.Link); err != nil {
			return err
		}
		if hs.Router == "" && !hs.Stack.v6() {
			_ = h.sysctl("net.ipv6.conf."+hostIf+".disable_ipv6", "1")
		}
		l.hosts[hs.Name] = h
	}
	return nil
}

// buildRouter builds the router rs at position i in Spec.Routers, with its
// LAN segment in segs.
func (l *Lab) buildRouter(i int, rs RouterSpec, carrier bool, segs map[string]*segment) (*Router, error) {
	r := &Router{nat: rs.NAT, lan: rs.LAN.Masked(), carrier: carrier}
	if !rs.Stack.v4() {
		r.lan = netip.Prefix{}
	} else if !r.lan.IsValid() {
		if r.carrier {
			r.lan = netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64, byte(i + 1), 0}), 24)
		} else {
			r.lan = netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(i + 1), 0}), 24)
		}
	}
	if rs.Upstream != "" {
		r.upstream = l.routers[rs.Upstream]
	}
	up := segs[rs.Upstream]
	if r.lan.Overlaps(up.prefix) {
		return nil, fmt.Errorf("%w: router %q: LAN %v overlaps its upstream's network %v", ErrBadSpec, rs.Name, r.lan, up.prefix)
	}
	var err error
	if r.Namespace, err = l.newNamespace(rs.Name); err != nil {
		return nil, err
	}
	if err := r.sysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, fmt.Errorf("netlab: %s: enable forwarding: %w", rs.Name, err)
	}
	r.Namespace.stack = rs.Stack
	if r.wan, err = l.attach(up, r.Namespace, wanIf, rs.WAN); err != nil {
		return nil, err
	}
	if rs.Upstream == "" && !rs.Stack.v6() {
		_ = r.sysctl("net.ipv6.conf."+wanIf+".disable_ipv6", "1")
	}
	var gw, first netip.Addr
	if r.lan.IsValid() {
		gw = r.lan.Masked().Addr().Next()
		first = gw.Next()
		if r.lan.Bits() <= 27 {
			for range 8 { // hosts from .10, as a home router's DHCP might
				first = first.Next()
			}
		}
	}
	var gwp netip.Prefix
	if gw.IsValid() {
		gwp = netip.PrefixFrom(gw, r.lan.Bits())
	}
	if segs[rs.Name], err = l.newSegment(r.Namespace, lanIf, gwp, first); err != nil {
		return nil, err
	}
	if err := installNAT(r.Namespace, rs.NAT); err != nil {
		return nil, fmt.Errorf("netlab: %s: nftables: %w", rs.Name, err)
	}
	if rs.Stack.v6() {
		if err := l.homeIPv6(r, i, segs[rs.Name]); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Host returns the host with this name, or nil.
func (l *Lab) Host(name string) *Host { return l.hosts[name] }

// Router returns the router with this name, or nil.
func (l *Lab) Router(name string) *Router { return l.routers[name] }

// Internet returns the namespace of the internet: a bridge that every public
// host and every router on the internet plugs into, with the address
// 11.0.0.1. Handy for watching traffic; it forwards nothing itself.
func (l *Lab) Internet() *Namespace { return l.internet }

// Prefix is the run's name prefix, "jxl" and six hex digits: every namespace
// of this lab is named prefix-node under /run/netns.
func (l *Lab) Prefix() string { return l.prefix }

// String lists the lab's nodes with their namespaces and addresses.
func (l *Lab) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "lab %s: internet %v (namespace %s)\n", l.prefix, internetPrefix, l.internet.path)
	if l.spec.usesIPv6() {
		fmt.Fprintf(&b, "  IPv6 internet %v, backbone %v\n", internetPrefix6, internetGateway6.Masked())
	}
	for _, rs := range l.spec.Routers {
		r := l.routers[rs.Name]
		if r == nil {
			continue
		}
		switch {
		case !r.lan.IsValid():
			fmt.Fprintf(&b, "  router %s: IPv6 only, WAN %v, LAN %v\n", rs.Name, r.WANAddr6(), r.lan6)
		case r.lan6.IsValid():
			fmt.Fprintf(&b, "  router %s: %v NAT, WAN %v, LAN %v, public %v; IPv6 WAN %v, LAN %v\n", rs.Name, r.nat, r.WANAddr(), r.lan, r.PublicAddr(), r.WANAddr6(), r.lan6)
		default:
			fmt.Fprintf(&b, "  router %s: %v NAT, WAN %v, LAN %v, public %v\n", rs.Name, r.nat, r.WANAddr(), r.lan, r.PublicAddr())
		}
	}
	for _, hs := range l.spec.Hosts {
		h := l.hosts[hs.Name]
		if h == nil {
			continue
		}
		where := "internet"
		if r := h.Router(); r != nil {
			where = "behind " + r.name
		}
		switch a4, a6 := h.Addr(), h.Addr6(); {
		case a4.IsValid() && a6.IsValid():
			fmt.Fprintf(&b, "  host %s: %v and %v, %s\n", hs.Name, a4, a6, where)
		case a6.IsValid():
			fmt.Fprintf(&b, "  host %s: %v, %s\n", hs.Name, a6, where)
		default:
			fmt.Fprintf(&b, "  host %s: %v, %s\n", hs.Name, a4, where)
		}
	}
	return b.String()
}

// Close tears the lab down: it kills the processes running in its
// namespaces, stops the link emulators, deletes the namespaces with every
// link and rule inside them, and removes the run's marker. Nothing of the lab
// is left in the machine's own namespace, since nothing was ever put there.
// A second Close returns an error wrapping net.ErrClosed.
func (l *Lab) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("netlab: lab %s: %w", l.prefix, net.ErrClosed)
	}
	l.closed = true // from here on, no Do or Start can begin
	procs := l.procs
	l.procs = nil
	l.mu.Unlock()

	var errs []error
	for _, p := range procs {
		p.Kill() // an already finished process is fine
	}
	errs = append(errs, killInNamespaces(l.namespacePaths()))
	l.stopLinks()
	for i := len(l.namespaces) - 1; i >= 0; i-- {
		n := l.namespaces[i]
		n.release()
		if err := removeNamespace(n.path); err != nil {
			errs = append(errs, fmt.Errorf("netlab: remove %s: %w", n.path, err))
		}
	}
	if err := removeMarker(l.id); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// abandon drops the lab as a crash would: it frees what the process holds
// but leaves namespaces and marker behind. For tests of Cleanup.
func (l *Lab) abandon() {
	l.mu.Lock()
	l.closed = true
	l.mu.Unlock()
	l.stopLinks()
	for _, n := range l.namespaces {
		n.release()
	}
}

func (l *Lab) stopLinks() {
	l.chg.Lock()
	links := l.links
	l.chg.Unlock()
	for _, e := range links {
		e.close()
	}
	l.wg.Wait()
}

func (l *Lab) namespacePaths() []string {
	paths := make([]string, len(l.namespaces))
	for i, n := range l.namespaces {
		paths[i] = n.path
	}
	return paths
}
