package main

import (
	"strings"
	"testing"

	"github.com/juxta-p2p/juxta/peer"
)

// The kinds of peer a home reaches directly follow docs/NAT.md's theory, and
// the lab's matrix measured it.
func TestReachDirect(t *testing.T) {
	for _, c := range []struct{ mapping, filtering, relayed string }{
		{peer.MappingNone, peer.FilteringEndpointIndependent, ""},
		{peer.MappingNone, peer.FilteringAddressPortDependent, "symmetric"}, // a stateful firewall
		{peer.MappingEndpointIndependent, peer.FilteringEndpointIndependent, ""},
		{peer.MappingEndpointIndependent, peer.FilteringAddressDependent, ""},
		{peer.MappingEndpointIndependent, peer.FilteringNotPortDependent, ""},
		{peer.MappingEndpointIndependent, peer.FilteringAddressPortDependent, "symmetric"},
		{peer.MappingEndpointIndependent, peer.FilteringUnknown, "symmetric"},
		{peer.MappingEndpointDependent, peer.FilteringAddressPortDependent, "port-restricted,symmetric"},
	} {
		direct, relayed := reachDirect(c.mapping, c.filtering)
		if got := strings.Join(relayed, ","); got != c.relayed || len(direct)+len(relayed) != len(peerKinds) {
			t.Errorf("%s/%s: direct %v, relayed %v; want relayed %q", c.mapping, c.filtering, direct, relayed, c.relayed)
		}
	}
	if d, r := reachDirect(peer.MappingUnknown, peer.FilteringUnknown); d != nil || r != nil {
		t.Errorf("unknown mapping: %v, %v", d, r)
	}
}

func TestListenOn(t *testing.T) {
	if got := strings.Join(listenOn("::1", 4001), " "); got != "/ip6/::1/tcp/4001 /ip6/::1/udp/4001/quic-v1" {
		t.Fatal(got)
	}
	if got := strings.Join(listenOn("127.0.0.1", 0), " "); got != "/ip4/127.0.0.1/tcp/0 /ip4/127.0.0.1/udp/0/quic-v1" {
		t.Fatal(got)
	}
}
