package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/juxta-p2p/juxta/netlab"
)

// The IPv6 homes of the matrix. IPv6 has no NAT in netlab: a dual-stack or
// IPv6-only home has a public /64 behind a stateful firewall that filters
// like a port-restricted cone (netlab/doc.go). An IPv4-only home is any of
// the IPv4 types, port-restricted in the rows below.
const (
	natDual    natType = "dual-stack"           // IPv4 port-restricted NAT + IPv6 firewall
	natDualSym natType = "dual-stack-symmetric" // IPv4 symmetric NAT + IPv6 firewall
	natIPv6    natType = "ipv6-only"            // IPv6 firewall, no IPv4
)

var ipv6Types = []natType{natDual, natDualSym, natIPv6}

// ipv6Pairs are the matrix's IPv6 rows.
var ipv6Pairs = [][2]natType{
	{natDual, natDual},              // direct, over IPv6
	{natDualSym, natDualSym},        // direct over IPv6, where IPv4 alone stays relayed
	{natIPv6, natIPv6},              // direct over IPv6
	{natDual, natIPv6},              // direct over IPv6
	{natPortRestricted, natIPv6},    // no common IP version: relayed, through a super-peer with both
	{natDual, natPortRestricted},    // direct over IPv4
	{natDualSym, natPortRestricted}, // relayed: IPv4 symmetric × port-restricted, no IPv6 on one side
}

func (t natType) hasIPv6() bool { return t == natDual || t == natDualSym || t == natIPv6 }

// ipv4Type is how the home behaves over IPv4, "" without IPv4.
func (t natType) ipv4Type() natType {
	switch t {
	case natDual:
		return natPortRestricted
	case natDualSym:
		return natSymmetric
	case natIPv6:
		return ""
	}
	return t
}

// expectVia is the IP version theory expects a direct path over, "" for a
// relayed pair: IPv6 whenever both sides have it (two firewalls that filter
// like port-restricted cones punch, and go-libp2p dials IPv6 first), else
// IPv4 by the IPv4 rule.
func expectVia(a, b natType) string {
	if a.hasIPv6() && b.hasIPv6() {
		return "ip6"
	}
	a4, b4 := a.ipv4Type(), b.ipv4Type()
	if a4 == "" || b4 == "" || !expectDirect(a4, b4) {
		return ""
	}
	return "ip4"
}

// addIPv6Home adds a host named name in a home of IPv6 type t.
func addIPv6Home(spec *netlab.Spec, name string, t natType, wan netlab.Link) {
	r := netlab.RouterSpec{Name: "r" + name, WAN: wan, Stack: netlab.StackDual}
	switch t {
	case natDualSym:
		r.NAT = netlab.NATSymmetric
	case natIPv6:
		r.Stack = netlab.StackIPv6
	}
	spec.Routers = append(spec.Routers, r)
	spec.Hosts = append(spec.Hosts, netlab.HostSpec{Name: name, Router: r.Name})
}

// viaSummary names the IP versions of the direct paths: "IPv6" when all were.
func viaSummary(via map[string]int, direct int) string {
	names := map[string]string{"ip6": "IPv6", "ip4": "IPv4", "": "unknown"}
	var parts []string
	for _, v := range []string{"ip6", "ip4", ""} {
		switch n := via[v]; {
		case n == 0:
		case n == direct:
			return names[v]
		default:
			parts = append(parts, fmt.Sprintf("%s %d/%d", names[v], n, direct))
		}
	}
	return strings.Join(parts, ", ")
}

// matrixPairs lists the pairs the matrix runs: every pair of the IPv4 types
// given (all by default), then the IPv6 rows when asked for, or every pair
// of the types given when -types names IPv6 types.
func matrixPairs(types string, withIPv6 bool) ([][2]natType, error) {
	sel := allTypes
	if types != "" {
		sel = nil
		for _, t := range strings.Split(types, ",") {
			if !slices.Contains(allTypes, natType(t)) && !slices.Contains(ipv6Types, natType(t)) {
				return nil, fmt.Errorf("lab: unknown NAT type %q (see 'juxta lab types')", t)
			}
			sel = append(sel, natType(t))
		}
	}
	var pairs [][2]natType
	for i, a := range sel {
		for _, b := range sel[i:] {
			pairs = append(pairs, [2]natType{a, b})
		}
	}
	if withIPv6 && types == "" {
		pairs = append(pairs, ipv6Pairs...)
	}
	return pairs, nil
}
