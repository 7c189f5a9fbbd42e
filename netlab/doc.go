// Package netlab builds home networks inside one Linux machine, for testing
// NAT traversal: network namespaces joined into a simulated internet, home
// routers with the NAT behaviours found in the wild, laptops behind them,
// public hosts (a super-peer, a public peer) on the internet, carrier-grade
// NAT for double NAT, and links with delay, loss and a bandwidth cap. It is
// written over netlink and nftables and needs root, but no tool on PATH (no
// ip, tc, nft). JXTA left NAT traversal to relays and to users who typed
// their public address into a dialog; libp2p punches holes, and this lab is
// where juxta shows that it does.
//
// # Topology
//
// A [Spec] lists routers ([RouterSpec]) and hosts ([HostSpec]); [New] builds
// it into a [Lab] and [Lab.Close] tears it down. [Lab.Host] and [Lab.Router]
// return the nodes, with their addresses:
//
//	internet (namespace jxl<run>-internet: bridge br0, 11.0.0.0/8)
//	├── super: public host 11.0.0.x
//	├── home: router, WAN 11.0.0.x, LAN bridge lan0 192.168.N.0/24
//	│   └── laptop 192.168.N.10
//	└── isp: carrier-grade NAT, WAN 11.0.0.x, LAN 100.64.N.0/24
//	    └── flat: router, WAN 100.64.N.10, LAN 192.168.M.0/24
//	        └── phone
//
// Every node is a namespace named jxl<run>-<node> under /run/netns, so
// `ip netns exec jxl<run>-laptop ...` looks inside a running lab. The
// internet is a bridge in a namespace of its own: every public host and every
// router on the internet plugs into it and routes by default through 11.0.0.1,
// the bridge itself, which forwards nothing. Its addresses look public to
// go-libp2p (manet.IsPublicAddr), which only punches holes from addresses it
// believes public, yet they exist only inside the lab: every link is made
// directly inside the lab's namespaces, so the machine's own namespace gets
// no address, route or link, and no packet of the lab can reach a real
// network. LANs have IPv6 link-local addresses, as real ones do, and
// multicast (mDNS) works within each LAN.
//
// # IPv6
//
// A router's [Stack] makes its home IPv4-only (the zero value), dual-stack
// or IPv6-only, and a public host may be dual-stack too. With any IPv6 node
// the lab gets an IPv6 internet in 2001:2::/48, the prefix IANA set aside
// for benchmarking (RFC 5180): nothing routes it on the real internet, yet
// manet.IsPublicAddr counts it public. The backbone is 2001:2::/64, where
// the internet namespace (2001:2::1) routes; home N, the router's position
// in Spec.Routers from 1, gets 2001:2:0:N::/64, its router ::1 and hosts
// ::10 on, statically (no router advertisements). IPv6 is not translated: a
// host's address is public ([Host.Addr6]). The router filters it with a
// stateful firewall, table "ip6 netlab6", like a port-restricted cone:
// conntrack lets in only replies from the exact address and port a host
// sent to, a TCP SYN from where a host sent one (simultaneous open), and
// ICMPv6 to the router itself (neighbour discovery); it drops the rest
// silently. An IPv6-only home has no IPv4 at all, an IPv4-only home no
// route to the IPv6 internet. Only routers on the internet have IPv6.
//
// # NAT behaviours
//
// Each router runs one nftables table ("ip netlab") in its namespace. The
// mapping and filtering of each [NAT] follow RFC 4787:
//
//   - NATPortRestricted: endpoint-independent mapping, address- and
//     port-dependent filtering. Masquerade without random flags: Linux keeps
//     a socket's source port as the public port whenever that is unique, so
//     one socket shows one public port to every destination. Linux departs
//     from a textbook NAT when two hosts of one LAN use the same source port:
//     towards the same destination the second gets another public port,
//     towards different destinations both share it (and the cone types below
//     forward new inbound packets for that port to whichever host sent
//     first). Give lab hosts distinct ports, or port 0. Filtering is conntrack's:
//     only replies to what was sent get in. UDP: a datagram from the exact
//     address and port the host sent to. TCP: a SYN from the exact address
//     and port the host sent a SYN to, which is what a simultaneous open
//     needs.
//   - NATRestricted: as above, plus a dynamic nftables map filled on every
//     outbound packet with (protocol, remote address, public port) → (host,
//     host port), kept for two minutes after the last packet. A new inbound
//     packet whose (protocol, source address, destination port) is in the map
//     is forwarded to the host: any port of an address the host has sent to
//     may reach it. For TCP this lets a SYN from another port of that address
//     through.
//   - NATFullCone: the map is keyed by (protocol, public port) only: once a
//     host has sent from a port, anyone may reach that port for the next two
//     minutes, over UDP and TCP alike. This is a real per-mapping full cone,
//     not a static 1:1 NAT, and several hosts may sit behind one.
//   - NATSymmetric: masquerade with fully random ports: every new connection
//     (one per destination address and port) gets a fresh random public port;
//     filtering as port-restricted. Hole punching towards it only works from a
//     peer that can guess the port, that is almost never; relays remain.
//
// Every router drops unsolicited inbound packets without a word: the input
// and forward chains accept from the WAN side only what conntrack knows
// (established or related) or, for the cone types, what the map forwarded,
// and drop the rest. No TCP reset and no ICMP unreachable goes back, since
// either would end a hole punch. A router behind another (RouterSpec.Upstream)
// makes double NAT; the outer one, with its LAN in 100.64.0.0/10, plays the
// carrier-grade NAT and may have any of the four behaviours.
//
// To look at a router's rules and connections while a lab runs: `ip netns
// exec jxl<run>-<router> nft list chain ip netlab prerouting` (or forward,
// input, postrouting) and `conntrack -L`. nft 1.0 cannot print the "record"
// chain, whose `ct original saddr` google/nftables writes in the
// family-dependent form that nft's parser rejects; the kernel runs it fine.
//
// # Links
//
// [Link] shapes a router's WAN side or a host's uplink. Rate puts a token
// bucket filter (tbf, through netlink) on both ends. Delay and Loss need no
// netem: the link becomes a pair of TAP devices, one in each namespace, and
// the process that built the lab moves the Ethernet frames between them
// through a delay queue, dropping each with probability Loss. Frames keep
// their order; the delay is accurate to about a millisecond on an idle
// machine.
//
// # Changes at runtime
//
// Home networks do not sit still, and a lab need not either. While processes
// run inside, [Router.Renumber] gives a router a new WAN address, as an ISP
// does (the mappings of the old one are gone); [Router.Reboot] takes its WAN
// link down for a while and brings it back with every mapping forgotten;
// [Namespace.LinkDown] and [Namespace.LinkUp] pull and replug a router's or a
// host's cable, mappings kept; [Host.MoveTo] carries a laptop to another
// home's LAN, where it gets a new address; [Router.SetUDPTimeout] shortens or
// lengthens how long the NAT keeps an idle UDP mapping (conntrack's UDP
// timeouts in the router's namespace). `juxta lab run -change` schedules
// them from the command line.
//
// # Running code inside
//
// [Namespace.Command] returns an exec.Cmd that runs a program inside a host
// (or router), however it is started: this is how tests run juxta peers in
// the lab, one process each, often the test binary itself re-executed into a
// helper mode. [Namespace.Start] starts any exec.Cmd inside and kills it when
// the lab closes. [Namespace.Do] runs a function on a thread moved into the
// namespace: sockets it creates stay inside for good, but goroutines it
// starts are outside, so a library that makes sockets in the background,
// as go-libp2p does for every dial, belongs in a process, not in Do.
//
// # Leftovers
//
// A lab writes a marker naming its process (PID and start time) under
// /run/juxta-netlab before it makes any namespace. [Cleanup], which New runs
// first, removes the namespaces of runs whose process is gone, kills what
// still runs inside them and removes their markers; live labs are left
// alone. TAP devices and emulators die with the process that held them.
package netlab
