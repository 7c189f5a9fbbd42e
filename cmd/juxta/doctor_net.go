package main

import (
	"fmt"
	"strings"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/peer"
)

// netReport copies what peer.CheckNetwork found into the report and returns
// the UDP/IPv4 observations, which decide reachability and the verdict.
// Failing to reach a super-peer over UDP/IPv4 is a problem; anything else
// that could not be measured is a note.
func netReport(rep *Report, nc peer.NetCheck, superPeers int) []ma.Multiaddr {
	rep.IPv6 = "none (no public IPv6 address)"
	for _, c := range nc.Checks {
		nr := NetReport{Network: c.Network, Mapping: c.Mapping, Filtering: c.Filtering}
		for _, o := range c.Observed {
			nr.Observed = append(nr.Observed, o.Addr)
		}
		rep.Network = append(rep.Network, nr)
		for _, pb := range c.Problems {
			rep.Notes = append(rep.Notes, c.Network+": "+pb)
		}
		if c.Network == "udp6" {
			rep.IPv6 = ipv6Summary(c)
		}
	}
	// UDP over IPv4 decides, or over IPv6 on a host that reached no
	// super-peer over IPv4 (an IPv6-only home).
	primary, ok := nc.Check("udp4")
	if c6, ok6 := nc.Check("udp6"); ok6 && len(c6.Observed) > len(primary.Observed) {
		primary, ok = c6, true
	}
	if !ok {
		return nil
	}
	var obs []ma.Multiaddr
	for _, o := range primary.Observed {
		a, err := ma.NewMultiaddr(o.Addr)
		if err != nil {
			continue
		}
		obs = append(obs, a)
		rep.Observed = append(rep.Observed, Observation{SuperPeer: o.SuperPeer.String(), Addr: a.String(), Transport: transportOf(a)})
	}
	rep.Filtering = primary.Filtering
	if len(primary.Observed) < superPeers {
		rep.Problems = append(rep.Problems, primary.Problems...)
	}
	return obs
}

func ipv6Summary(c peer.TransportCheck) string {
	switch {
	case len(c.Observed) == 0:
		return "public address, but no super-peer reachable over IPv6"
	case c.Mapping == peer.MappingNone:
		return "yes, no NAT; firewall filtering " + c.Filtering
	}
	return fmt.Sprintf("yes, behind NAT (mapping %s, filtering %s)", c.Mapping, c.Filtering)
}

// The kinds of peer, as the lab names them (juxta lab types).
var peerKinds = []string{"public", "full-cone", "restricted", "port-restricted", "symmetric"}

// reachDirect says which kinds of peer a home with this mapping and
// filtering reaches directly (a direct dial or a hole punch), by the theory in
// docs/NAT.md: a punch works when each side's packets get through the other
// side's filter. Nil, nil when the mapping is unknown.
func reachDirect(mapping, filtering string) (direct, relayed []string) {
	var reach func(kind string) bool
	switch {
	case mapping == peer.MappingNone && filtering == peer.FilteringEndpointIndependent,
		mapping == peer.MappingEndpointIndependent && filtering != peer.FilteringAddressPortDependent && !strings.HasPrefix(filtering, peer.FilteringUnknown):
		// Reachable by anyone, or letting in every port of an address it
		// has sent to: meets everyone, symmetric NATs too.
		reach = func(string) bool { return true }
	case mapping == peer.MappingNone, mapping == peer.MappingEndpointIndependent:
		// Port-restricted (or a stateful firewall with no NAT): the
		// other side must answer from the port it was observed at.
		reach = func(k string) bool { return k != "symmetric" }
	case mapping == peer.MappingEndpointDependent:
		// A fresh port per destination: only peers whose filter ignores
		// the port let it in.
		reach = func(k string) bool { return k == "public" || k == "full-cone" || k == "restricted" }
	default:
		return nil, nil
	}
	for _, k := range peerKinds {
		if reach(k) {
			direct = append(direct, k)
		} else {
			relayed = append(relayed, k)
		}
	}
	return direct, relayed
}

// directVia is "ip6" when a direct connection to id runs over IPv6, "ip4"
// when one runs over IPv4 only, "" without a direct connection.
func directVia(p *peer.Peer, id peer.ID) string {
	via := ""
	for _, c := range p.Status().Conns {
		if c.Peer != id || c.Path != peer.PathDirect {
			continue
		}
		if strings.HasPrefix(c.Addr, "/ip6/") {
			return "ip6"
		}
		via = "ip4"
	}
	return via
}

// listenOn is TCP and QUIC on one IP address, IPv4 or IPv6, at port.
func listenOn(ip string, port int) []string {
	v := "ip4"
	if strings.Contains(ip, ":") {
		v = "ip6"
	}
	return []string{fmt.Sprintf("/%s/%s/tcp/%d", v, ip, port), fmt.Sprintf("/%s/%s/udp/%d/quic-v1", v, ip, port)}
}
