package netlab

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// homeIPv6 gives router r (at position i in Spec.Routers) its IPv6 home: the
// LAN segment lan gets the home's /64, the internet routes the /64 to the
// router's WAN address, and the router forwards IPv6 behind a stateful
// firewall, without translation.
func (l *Lab) homeIPv6(r *Router, i int, lan *segment) error {
	if !r.addr6.IsValid() {
		return fmt.Errorf("netlab: %s: no IPv6 address on the internet", r.name)
	}
	if err := r.sysctl("net.ipv6.conf.all.forwarding", "1"); err != nil {
		return fmt.Errorf("netlab: %s: enable IPv6 forwarding: %w", r.name, err)
	}
	p := homePrefix6(i)
	r.lan6 = p
	gw := p.Addr().Next()
	first := gw
	for range 15 { // hosts from ::10
		first = first.Next()
	}
	if err := lan.addIPv6(netip.PrefixFrom(gw, 64), first); err != nil {
		return err
	}
	br, err := l.internet.handle.LinkByName("br0")
	if err != nil {
		return fmt.Errorf("netlab: internet: br0: %w", err)
	}
	route := &netlink.Route{LinkIndex: br.Attrs().Index, Dst: ipNet(p), Gw: net.IP(r.addr6.AsSlice())}
	if err := l.internet.handle.RouteAdd(route); err != nil {
		return fmt.Errorf("netlab: internet: route %v via %s: %w", p, r.name, err)
	}
	if err := installFirewall6(r.Namespace); err != nil {
		return fmt.Errorf("netlab: %s: IPv6 firewall: %w", r.name, err)
	}
	return nil
}

// installFirewall6 writes the router's IPv6 ruleset, table "ip6 netlab6":
// no translation, and filtering like a port-restricted cone, by conntrack.
//
//	input:    iif wan0 meta l4proto icmpv6 accept   (neighbour discovery, ping)
//	          iif wan0 ct state established,related accept
//	          iif wan0 drop
//	forward:  iif wan0 ct state established,related accept
//	          iif wan0 drop
//
// A datagram gets in only from the exact address and port a host sent to,
// a TCP SYN only from the exact address and port a host sent a SYN to (a
// simultaneous open), as with NATPortRestricted. Drops are silent.
func installFirewall6(ns *Namespace) error {
	c, err := nftables.New(nftables.WithNetNSFd(int(ns.fd)))
	if err != nil {
		return err
	}
	t := c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv6, Name: "netlab6"})
	accept := nftables.ChainPolicyAccept
	for _, hook := range []struct {
		name string
		num  *nftables.ChainHook
	}{{"input", nftables.ChainHookInput}, {"forward", nftables.ChainHookForward}} {
		ch := c.AddChain(&nftables.Chain{Name: hook.name, Table: t, Type: nftables.ChainTypeFilter,
			Hooknum: hook.num, Priority: nftables.ChainPriorityFilter, Policy: &accept})
		if hook.name == "input" {
			c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(iif(wanIf), l4(unix.IPPROTO_ICMPV6), accepted())})
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(iif(wanIf),
			ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED), accepted())})
		c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: cat(iif(wanIf), []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}})})
	}
	return c.Flush()
}
