package netlab

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/vishvananda/netlink"
)

// rootSnapshot describes the machine's own network namespace: links,
// addresses, routes, policy rules, nftables and the forwarding and bridge
// sysctls. Counters and address lifetimes are left out, since they move on
// their own. It must run on a goroutine outside any lab namespace, as tests
// do.
func rootSnapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		a := l.Attrs()
		fmt.Fprintf(&b, "link %d %s type=%s flags=%v mtu=%d hw=%s master=%d parent=%d txq=%d oper=%v\n",
			a.Index, a.Name, l.Type(), a.Flags, a.MTU, a.HardwareAddr, a.MasterIndex, a.ParentIndex, a.TxQLen, a.OperState)
	}
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		fmt.Fprintf(&b, "addr %d %s label=%s flags=%d scope=%d peer=%v bcast=%v\n",
			a.LinkIndex, a.IPNet, a.Label, a.Flags, a.Scope, a.Peer, a.Broadcast)
	}
	routes, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: 0}, netlink.RT_FILTER_TABLE)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range routes {
		fmt.Fprintf(&b, "route table=%d %s type=%d proto=%d scope=%d src=%v prio=%d\n",
			r.Table, r.String(), r.Type, r.Protocol, r.Scope, r.Src, r.Priority)
	}
	rules, err := netlink.RuleList(netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rules {
		fmt.Fprintf(&b, "rule %s prio=%d\n", r.String(), r.Priority)
	}
	c, err := nftables.New()
	if err != nil {
		t.Fatal(err)
	}
	tables, err := c.ListTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range tables {
		fmt.Fprintf(&b, "nft table %d %s\n", tb.Family, tb.Name)
	}
	chains, err := c.ListChains()
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chains {
		rs, err := c.GetRules(ch.Table, ch)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "nft chain %s %s rules=%d\n", ch.Table.Name, ch.Name, len(rs))
	}
	for _, k := range []string{"ipv4/ip_forward", "ipv6/conf/all/forwarding", "ipv6/conf/all/disable_ipv6",
		"ipv6/conf/default/disable_ipv6", "bridge/bridge-nf-call-iptables", "bridge/bridge-nf-call-ip6tables"} {
		v, err := os.ReadFile("/proc/sys/net/" + k)
		fmt.Fprintf(&b, "sysctl %s=%q %v\n", k, v, err)
	}
	return b.String()
}

// TestRootNamespaceUntouched builds a lab with every feature, runs traffic
// through it and tears it down: the machine's own namespace reads the same
// before, during and after.
func TestRootNamespaceUntouched(t *testing.T) {
	needRoot(t)
	before := rootSnapshot(t)
	spec := natSpec()
	spec.Routers[0].WAN = Link{Delay: 2 * time.Millisecond, Loss: 0.01, Rate: 20_000_000}
	spec.Hosts[0].Link = Link{Rate: 50_000_000}
	l, err := New(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	s1 := startEcho(t, l.Host("s1"), 3478)
	for _, h := range []string{"h-pr", "h-rc", "h-fc", "h-sym", "h-flat"} {
		mapped(t, udpSocket(t, l.Host(h)), s1.addr)
	}
	during := rootSnapshot(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	after := rootSnapshot(t)
	t.Logf("root namespace:\n%s", before)
	if during != before {
		t.Errorf("root namespace changed while the lab ran:\n%s", diffLines(before, during))
	}
	if after != before {
		t.Errorf("root namespace changed after the lab:\n%s", diffLines(before, after))
	}
}

func diffLines(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	var out []string
	for _, l := range al {
		if !slices.Contains(bl, l) {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if !slices.Contains(al, l) {
			out = append(out, "+ "+l)
		}
	}
	return strings.Join(out, "\n")
}
