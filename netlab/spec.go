package netlab

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
)

// NAT is how a home router translates and filters, in the terms of RFC 4787
// (mapping: how the router picks the public port; filtering: which inbound
// packets it lets through to that port). Every type drops unsolicited inbound
// packets silently: no TCP reset, no ICMP unreachable, since either would kill
// a hole punch in progress.
type NAT int

const (
	// NATPortRestricted is endpoint-independent mapping with address- and
	// port-dependent filtering: Linux's own masquerade and the most common home
	// router. A reply gets in only from the exact address and port the host
	// sent to. The zero value.
	NATPortRestricted NAT = iota
	// NATRestricted (address-restricted cone) is endpoint-independent mapping
	// with address-dependent filtering: once a host has sent to an address, any
	// port of that address may send back to the mapped port.
	NATRestricted
	// NATFullCone is endpoint-independent mapping and filtering: once a host
	// has sent from a port, anyone may send to the mapped public port.
	NATFullCone
	// NATSymmetric is endpoint-dependent mapping (a new random public port for
	// every destination) with address- and port-dependent filtering. Hole
	// punching between two symmetric NATs fails; relays remain.
	NATSymmetric
)

func (n NAT) String() string {
	switch n {
	case NATPortRestricted:
		return "port-restricted cone"
	case NATRestricted:
		return "restricted cone"
	case NATFullCone:
		return "full cone"
	case NATSymmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NAT(%d)", int(n))
}

// Stack is which IP versions a home (or a public host) has.
type Stack int

const (
	// StackIPv4 is IPv4 only: the zero value, and every home before IPv6.
	StackIPv4 Stack = iota
	// StackDual is dual-stack: IPv4 behind the router's NAT, and IPv6 with a
	// public /64 on the LAN, no NAT, behind the router's stateful firewall.
	StackDual
	// StackIPv6 is IPv6 only: the LAN has no IPv4 at all.
	StackIPv6
)

func (s Stack) String() string {
	switch s {
	case StackIPv4:
		return "IPv4"
	case StackDual:
		return "dual-stack"
	case StackIPv6:
		return "IPv6-only"
	}
	return fmt.Sprintf("Stack(%d)", int(s))
}

func (s Stack) v4() bool { return s != StackIPv6 }
func (s Stack) v6() bool { return s != StackIPv4 }

// Link shapes one attachment (a router's WAN side or a host's uplink). Each
// setting applies in both directions. The zero value is an ideal link: a plain
// veth pair. Delay or Loss put a small emulator in the process that built the
// lab between two TAP devices; Rate puts a token bucket (tbf) on both ends.
type Link struct {
	// Delay is the one-way delay added in each direction: a round trip over
	// this link takes 2×Delay longer.
	Delay time.Duration
	// Loss is the probability, in [0, 1), that a frame is dropped, drawn
	// independently for each frame in each direction. ARP frames too, as on
	// a real lossy link: the first packets to a new neighbour may wait for
	// ARP to retry.
	Loss float64
	// Rate caps the bandwidth in bits per second in each direction, with a
	// queue of about 50 ms beyond which packets are dropped. 0 means no cap.
	Rate int64
}

func (l Link) emulated() bool { return l.Delay > 0 || l.Loss > 0 }

func (l Link) String() string {
	var parts []string
	if l.Delay > 0 {
		parts = append(parts, l.Delay.String()+" delay")
	}
	if l.Loss > 0 {
		parts = append(parts, fmt.Sprintf("%g%% loss", l.Loss*100))
	}
	if l.Rate > 0 {
		parts = append(parts, formatRate(l.Rate))
	}
	if len(parts) == 0 {
		return "ideal"
	}
	return strings.Join(parts, ", ")
}

func formatRate(bps int64) string {
	switch {
	case bps >= 1e9 && bps%1e8 == 0:
		return fmt.Sprintf("%g Gbit/s", float64(bps)/1e9)
	case bps >= 1e6 && bps%1e5 == 0:
		return fmt.Sprintf("%g Mbit/s", float64(bps)/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%g kbit/s", float64(bps)/1e3)
	}
	return fmt.Sprintf("%d bit/s", bps)
}

func (l Link) check() error {
	if l.Delay < 0 || l.Delay > 10*time.Second {
		return fmt.Errorf("delay %v out of [0, 10s]", l.Delay)
	}
	if !(l.Loss >= 0 && l.Loss < 1) {
		return fmt.Errorf("loss %v out of [0, 1)", l.Loss)
	}
	if l.Rate < 0 || (l.Rate > 0 && l.Rate < 8000) {
		return fmt.Errorf("rate %d bit/s: want 0 (no cap) or at least 8000", l.Rate)
	}
	return nil
}

// RouterSpec describes a router: a namespace with a WAN side on the internet
// (or on another router's LAN, for double NAT) and a LAN bridge for what sits
// behind it.
type RouterSpec struct {
	// Name names the router in the lab; lowercase letters, digits and '-'.
	Name string
	// NAT is the router's translation and filtering behaviour.
	NAT NAT
	// Upstream is the router whose LAN this router's WAN side plugs into;
	// empty means the internet. A router that others sit behind is a
	// carrier-grade NAT (RFC 6598): its LAN defaults to 100.64.N.0/24. It must
	// come earlier in Spec.Routers.
	Upstream string
	// LAN is the router's LAN prefix; the router takes the first address and
	// hosts the following ones. Zero picks 192.168.N.0/24 (100.64.N.0/24 for a
	// carrier-grade NAT), N being the router's position in Spec.Routers,
	// counted from 1. Two homes may share the same LAN prefix, as real ones do.
	LAN netip.Prefix
	// WAN shapes the link from the router to its upstream.
	WAN Link
	// Stack is the home's IP versions. With IPv6 the LAN gets a /64 of the
	// lab's IPv6 internet, routed to the router, and the router filters
	// IPv6 like a port-restricted cone, without translating. Only a router
	// on the internet can have IPv6 (no carrier-grade NAT64 here).
	Stack Stack
}

// HostSpec describes a host: a laptop behind a router, or a machine with a
// public address on the internet (a super-peer, a public peer).
type HostSpec struct {
	// Name names the host in the lab; lowercase letters, digits and '-'.
	Name string
	// Router is the router the host sits behind; empty puts the host on the
	// internet with a public address.
	Router string
	// Link shapes the host's uplink (to its router's LAN or to the internet).
	Link Link
	// Stack applies to a public host: StackIPv4 (the zero value) or
	// StackDual, a public IPv6 address as well. A host behind a router has
	// its router's stack.
	Stack Stack
}

// Spec is a lab's topology: routers and hosts around one simulated internet.
type Spec struct {
	Routers []RouterSpec
	Hosts   []HostSpec
}

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// internetName names the internet's namespace; no node may take it.
const internetName = "internet"

// check validates the spec and says, for each router, whether others sit
// behind it.
func (s Spec) check() (carrier map[string]bool, err error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrBadSpec}, a...)...)
	}
	seen := map[string]bool{}
	name := func(kind, n string) error {
		if !nameRE.MatchString(n) {
			return bad("%s name %q: want 1-32 of a-z, 0-9 and '-', not starting with '-'", kind, n)
		}
		if n == internetName {
			return bad("%s name %q is reserved", kind, n)
		}
		if seen[n] {
			return bad("duplicate name %q", n)
		}
		seen[n] = true
		return nil
	}
	if len(s.Routers) > 250 {
		return nil, bad("%d routers: at most 250", len(s.Routers))
	}
	routers := map[string]RouterSpec{}
	carrier = map[string]bool{}
	for _, r := range s.Routers {
		if err := name("router", r.Name); err != nil {
			return nil, err
		}
		if r.NAT < NATPortRestricted || r.NAT > NATSymmetric {
			return nil, bad("router %q: unknown NAT %d", r.Name, int(r.NAT))
		}
		if r.Upstream != "" {
			if _, ok := routers[r.Upstream]; !ok {
				return nil, bad("router %q: upstream %q is not a router listed before it", r.Name, r.Upstream)
			}
			carrier[r.Upstream] = true
		}
		if r.Stack < StackIPv4 || r.Stack > StackIPv6 {
			return nil, bad("router %q: unknown stack %d", r.Name, int(r.Stack))
		}
		if r.Stack.v6() && r.Upstream != "" {
			return nil, bad("router %q: IPv6 (%v) only on a router on the internet", r.Name, r.Stack)
		}
		if err := r.WAN.check(); err != nil {
			return nil, bad("router %q WAN: %v", r.Name, err)
		}
		if r.LAN.IsValid() {
			if !r.LAN.Addr().Is4() || r.LAN.Bits() < 8 || r.LAN.Bits() > 29 {
				return nil, bad("router %q: LAN %v: want an IPv4 prefix of /8 to /29", r.Name, r.LAN)
			}
			if r.LAN.Overlaps(internetPrefix) {
				return nil, bad("router %q: LAN %v overlaps the lab's internet %v", r.Name, r.LAN, internetPrefix)
			}
		}
		routers[r.Name] = r
	}
	for _, h := range s.Hosts {
		if err := name("host", h.Name); err != nil {
			return nil, err
		}
		if h.Router != "" {
			if _, ok := routers[h.Router]; !ok {
				return nil, bad("host %q: unknown router %q", h.Name, h.Router)
			}
			if h.Stack != StackIPv4 {
				return nil, bad("host %q: a host behind a router has its router's stack", h.Name)
			}
		} else if h.Stack != StackIPv4 && h.Stack != StackDual {
			return nil, bad("host %q: a public host is IPv4 or dual-stack, not %v", h.Name, h.Stack)
		}
		if err := h.Link.check(); err != nil {
			return nil, bad("host %q link: %v", h.Name, err)
		}
	}
	return carrier, nil
}

// String draws the topology as a tree rooted at the internet.
func (s Spec) String() string {
	var b strings.Builder
	b.WriteString("internet\n")
	s.tree(&b, "", "")
	return b.String()
}

func (s Spec) tree(b *strings.Builder, parent, indent string) {
	type child struct {
		line string
		name string // set for routers, whose children follow
	}
	var kids []child
	for _, r := range s.Routers {
		if r.Upstream != parent {
			continue
		}
		line := r.Name + ": " + r.NAT.String() + " NAT"
		if r.Stack != StackIPv4 {
			line += ", " + r.Stack.String()
		}
		if r.LAN.IsValid() {
			line += ", LAN " + r.LAN.String()
		}
		if r.WAN != (Link{}) {
			line += ", WAN " + r.WAN.String()
		}
		kids = append(kids, child{line, r.Name})
	}
	for _, h := range s.Hosts {
		if h.Router != parent {
			continue
		}
		line := h.Name
		if parent == "" {
			line += ": public host"
			if h.Stack != StackIPv4 {
				line += ", " + h.Stack.String()
			}
		}
		if h.Link != (Link{}) {
			line += ", link " + h.Link.String()
		}
		kids = append(kids, child{line, ""})
	}
	for i, k := range kids {
		branch, next := "├── ", "│   "
		if i == len(kids)-1 {
			branch, next = "└── ", "    "
		}
		b.WriteString(indent + branch + k.line + "\n")
		if k.name != "" {
			s.tree(b, k.name, indent+next)
		}
	}
}
