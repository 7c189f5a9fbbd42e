package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
)

// Report is what juxta doctor finds; -json prints it as is.
type Report struct {
	ID           string        `json:"id"`
	LocalAddrs   []string      `json:"local_addrs"`
	SuperPeers   int           `json:"super_peers"` // how many were given
	Observed     []Observation `json:"observed"`
	Reachability string        `json:"reachability"`         // public, private, local (super-peers on this machine or LAN), unknown
	Mapping      string        `json:"mapping"`              // over UDP (QUIC), IPv4: none, endpoint-independent, endpoint-dependent, unknown
	Filtering    string        `json:"filtering"`            // over UDP (QUIC), IPv4: endpoint-independent, address-dependent, address-and-port-dependent, unknown
	Network      []NetReport   `json:"network"`              // mapping and filtering per transport and IP family
	IPv6         string        `json:"ipv6"`                 // none, unreachable, or what the super-peers saw
	DirectTo     []string      `json:"direct_to,omitempty"`  // kinds of peer this home reaches directly
	RelayedTo    []string      `json:"relayed_to,omitempty"` // kinds of peer it reaches only through a relay
	PortMapping  string        `json:"port_mapping"`
	Relays       []string      `json:"relays"`
	Path         *PathReport   `json:"path,omitempty"`
	Verdict      string        `json:"verdict"`
	Advice       []string      `json:"advice,omitempty"`
	Problems     []string      `json:"problems,omitempty"`
	Notes        []string      `json:"notes,omitempty"` // what could not be measured, not failures
}

// NetReport is the mapping and filtering of one transport ("udp4", "tcp4",
// "udp6", "tcp6") as the super-peers read it.
type NetReport struct {
	Network   string   `json:"network"`
	Observed  []string `json:"observed"`
	Mapping   string   `json:"mapping"`
	Filtering string   `json:"filtering"`
}

// Observation is one super-peer's view of this peer's address.
type Observation struct {
	SuperPeer string `json:"super_peer"`
	Addr      string `json:"addr"`
	Transport string `json:"transport"`
}

// PathReport is how a connection to another peer went.
type PathReport struct {
	Peer           string  `json:"peer"`
	FirstPath      string  `json:"first_path"`
	FinalPath      string  `json:"final_path"`
	ConnectMs      float64 `json:"connect_ms"`
	TimeToDirectMs float64 `json:"time_to_direct_ms,omitempty"`
	RelayedRTTMs   float64 `json:"relayed_rtt_ms,omitempty"`
	DirectRTTMs    float64 `json:"direct_rtt_ms,omitempty"`
	DirectVia      string  `json:"direct_via,omitempty"` // ip6 or ip4: the direct path's IP version (ip6 if any is)
	HolePunches    int     `json:"hole_punches"`
}

func runDoctor(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta doctor", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	target := fs.String("peer", "", "another peer's invite: connect and report the path (relayed, then direct or not)")
	portMap := fs.Bool("port-mapping", false, "try UPnP/NAT-PMP port mapping on the router (sends multicast on the LAN)")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for reservations and hole punches")
	port := fs.Int("port", 0, "port to listen on")
	listen := fs.String("listen", "", "listen on this IP only (default: all interfaces)")
	var sps multi
	fs.Var(&sps, "superpeer", "a super-peer's invite (repeatable; two tell the NAT's mapping behaviour)")
	if err := parseFlags(fs, args, out, 0); err != nil {
		return err
	}
	if len(sps) == 0 {
		return &usageError{msg: "doctor needs at least one -superpeer INVITE (two to classify the NAT)", usage: flagUsage(fs)}
	}
	cfg := peer.Config{SuperPeers: sps, NoMDNS: true, PortMapping: *portMap, Port: *port}
	if *listen != "" {
		cfg.ListenAddrs = listenOn(*listen, *port)
	}
	rep, err := diagnose(ctx, cfg, *listen, *target, *wait)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
		return doctorFailed(rep)
	}
	printReport(out, rep)
	return doctorFailed(rep)
}

func diagnose(ctx context.Context, cfg peer.Config, listen, target string, wait time.Duration) (*Report, error) {
	portMap := cfg.PortMapping
	p, err := peer.New(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	sub := p.Subscribe(ctx, 0)
	defer sub.Cancel()
	rep := &Report{ID: p.ID().String(), Reachability: "unknown", Mapping: "unknown", PortMapping: "off"}
	for _, a := range p.Libp2p().Host.Network().ListenAddresses() {
		if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err != nil {
			rep.LocalAddrs = append(rep.LocalAddrs, a.String())
		}
	}

	// Mapping and filtering over UDP (QUIC, the transport hole punching
	// relies on) and TCP, for IPv4 and IPv6, each from a fresh socket.
	ncfg := peer.NetCheckConfig{SuperPeers: p.SuperPeers()}
	if ip := net.ParseIP(listen); ip != nil && ip.To4() != nil {
		ncfg.ListenIP4 = listen
	} else if ip != nil {
		ncfg.ListenIP6 = listen
	}
	nc, err := peer.CheckNetwork(ctx, ncfg)
	if err != nil {
		return nil, err
	}
	rep.SuperPeers = len(ncfg.SuperPeers)
	obs := netReport(rep, nc, len(ncfg.SuperPeers))
	for i, pb := range rep.Problems {
		rep.Problems[i] = nameSuperPeers(pb, ncfg.SuperPeers)
	}
	for i, n := range rep.Notes {
		rep.Notes[i] = nameSuperPeers(n, ncfg.SuperPeers)
	}
	classify(rep, p, obs)

	// A private peer should hold a relay reservation.
	if rep.Reachability != "public" {
		deadline := time.Now().Add(wait)
		for len(p.Status().Relays) == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, r := range p.Status().Relays {
		rep.Relays = append(rep.Relays, r.String())
	}
	if portMap {
		rep.PortMapping = "no mapping appeared (no UPnP/NAT-PMP gateway answered)"
		for _, a := range p.Libp2p().Host.Addrs() {
			if manet.IsPublicAddr(a) && !slices.ContainsFunc(obs, a.Equal) {
				rep.PortMapping = "mapped " + a.String()
				break
			}
		}
	}
	if target != "" {
		rep.Path, err = checkPath(ctx, p, sub, target, wait)
		if err != nil {
			rep.Problems = append(rep.Problems, "test peer: "+err.Error())
		}
	}
	verdict(rep)
	return rep, nil
}

func transportOf(a ma.Multiaddr) string {
	if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
		return "udp"
	}
	if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
		return "tcp"
	}
	return "other"
}

func hostPort(a ma.Multiaddr) (net.IP, string) {
	ip, err := manet.ToIP(a)
	if err != nil {
		return nil, ""
	}
	for _, c := range a {
		if c.Protocol().Code == ma.P_UDP || c.Protocol().Code == ma.P_TCP {
			return ip, c.Value()
		}
	}
	return ip, ""
}

// classify decides reachability and the mapping from the observations. An
// observed address that is one of ours means no NAT; two super-peers that see
// the same public port mean endpoint-independent mapping.
func classify(rep *Report, p *peer.Peer, obs []ma.Multiaddr) {
	if len(obs) == 0 {
		return
	}
	local := map[string]bool{}
	ifaddrs, _ := net.InterfaceAddrs()
	for _, a := range ifaddrs {
		if ipn, ok := a.(*net.IPNet); ok {
			local[ipn.IP.String()] = true
		}
	}
	ip, _ := hostPort(obs[0])
	if ip != nil && local[ip.String()] {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() {
			// The super-peers are on this machine or this LAN: they say
			// nothing about how the internet sees this peer.
			rep.Reachability = "local"
			rep.Mapping = "unknown (the super-peers see a local address; use super-peers on the internet to measure)"
			return
		}
		rep.Reachability, rep.Mapping = "public", "none"
		if rep.Filtering == peer.FilteringAddressDependent || rep.Filtering == peer.FilteringAddressPortDependent {
			rep.Reachability = "firewalled" // a public address behind a stateful firewall (IPv6 homes)
		}
		return
	}
	rep.Reachability = "private"
	// AutoNAT found a dialable address (port mapping or full cone). Its
	// dial-back comes from the super-peer's own address, which a restricted
	// cone lets in too; the filtering probes know better.
	if p.Status().Reachability == peer.ReachabilityPublic && rep.Filtering != peer.FilteringAddressDependent && rep.Filtering != peer.FilteringAddressPortDependent {
		rep.Reachability = "public"
	}
	if len(obs) < 2 {
		rep.Mapping = "unknown (two super-peers are needed to tell)"
		if rep.SuperPeers >= 2 {
			rep.Mapping = "unknown (only one super-peer answered)"
		}
		return
	}
	ports := map[string]bool{}
	for _, o := range obs {
		ip, port := hostPort(o)
		ports[ip.String()+":"+port] = true
	}
	if len(ports) == 1 {
		rep.Mapping = "endpoint-independent"
	} else {
		rep.Mapping = "endpoint-dependent"
	}
}

func checkPath(ctx context.Context, p *peer.Peer, sub *event.Subscription[peer.Event], invite string, wait time.Duration) (*PathReport, error) {
	// Time the connection, not this peer's own start-up.
	to, err := peer.ParseAddr(invite)
	if err != nil {
		return nil, err
	}
	hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
	_ = p.AwaitHolePunching(hctx) // best effort: a relayed path is measured too
	hcancel()
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	id := to.ID
	path, err := p.Connect(cctx, to)
	if err != nil {
		return nil, err
	}
	pr := &PathReport{Peer: id.String(), FirstPath: path.String(), ConnectMs: ms(time.Since(start))}
	if path == peer.PathRelayed {
		if rtt, err := pingOnce(ctx, p, id); err == nil && p.PathTo(id) == peer.PathRelayed {
			pr.RelayedRTTMs = ms(rtt)
		}
		deadline := time.After(wait)
	loop:
		for p.PathTo(id) != peer.PathDirect {
			select {
			case ev := <-sub.C:
				if hp, ok := ev.(peer.HolePunch); ok && hp.Peer == id {
					pr.HolePunches++
				}
			case <-time.After(50 * time.Millisecond):
			case <-deadline:
				break loop
			}
		}
		if p.PathTo(id) == peer.PathDirect {
			pr.TimeToDirectMs = ms(time.Since(start))
		}
	}
	pr.FinalPath = p.PathTo(id).String()
	pr.DirectVia = directVia(p, id)
	if pr.FinalPath == "direct" {
		if rtt, err := pingOnce(ctx, p, id); err == nil {
			pr.DirectRTTMs = ms(rtt)
		}
	}
	return pr, nil
}

func pingOnce(ctx context.Context, p *peer.Peer, id peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "doctor"), 5*time.Second)
	defer cancel()
	var best time.Duration
	n := 0
	for r := range ping.Ping(ctx, p.Libp2p().Host, lpeer.ID(id)) {
		if r.Error != nil {
			return 0, r.Error
		}
		if n == 0 || r.RTT < best {
			best = r.RTT
		}
		if n++; n == 3 {
			break
		}
	}
	return best, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func verdict(rep *Report) {
	switch {
	case rep.Reachability == "local":
		rep.Verdict = "Your super-peers are on this machine or this LAN: peers here reach you directly, but this says nothing about the internet."
		rep.Advice = append(rep.Advice, "To learn what your NAT does, give super-peers with public addresses (-superpeer).")
	case rep.Reachability == "public":
		rep.Verdict = "You are reachable directly: other peers can dial you, and you can serve as a super-peer."
	case rep.Reachability == "firewalled":
		rep.Verdict = "You have a public address behind a stateful firewall (no NAT), as IPv6 homes do: nobody can dial you unasked, but hole punching works, so your chats go direct after a first moment through a relay."
	case rep.Mapping == "endpoint-independent":
		rep.Verdict = "You are behind a NAT that keeps one public port per socket: hole punching works, so your chats go direct after a first moment through a relay."
		if rep.Filtering == peer.FilteringAddressPortDependent {
			rep.Advice = append(rep.Advice, "A friend behind a symmetric NAT stays relayed: your router lets in only the exact port you sent to, and a symmetric NAT answers from a new one.")
		} else {
			rep.Advice = append(rep.Advice, "Nothing to change: your router lets in more than the exact port you sent to, so you meet even peers behind symmetric NATs directly.")
		}
	case rep.Mapping == "endpoint-dependent":
		rep.Verdict = "You are behind a symmetric NAT (a new public port for every destination): public and full-cone peers, and those behind restricted-cone NATs, are still reached directly; peers behind port-restricted or symmetric NATs reach you through a super-peer's relay."
		rep.Advice = append(rep.Advice,
			"Relayed chat works; large transfers are slower and bounded by the relay's limits.",
			"Try -port-mapping if your router supports UPnP or NAT-PMP, or use IPv6 if your provider offers it.",
			"Carrier-grade NAT (100.64.0.0/10 addresses) often behaves this way; ask your provider for a public IPv4 address.")
	case len(rep.Observed) == 0:
		rep.Verdict = "No super-peer answered, so nothing could be measured."
	case rep.SuperPeers >= 2:
		rep.Verdict = "Could not classify your NAT: only one of your super-peers answered."
	default:
		rep.Verdict = "Could not classify your NAT."
		rep.Advice = append(rep.Advice, "Give a second super-peer with -superpeer so that the mapping can be measured.")
	}
	rep.Advice = append(rep.Advice, problemAdvice(rep.Problems)...)
	switch rep.Reachability {
	case "public":
		rep.DirectTo = peerKinds
	case "private", "firewalled":
		rep.DirectTo, rep.RelayedTo = reachDirect(rep.Mapping, rep.Filtering)
	}
	if strings.HasPrefix(rep.IPv6, "yes") {
		rep.Advice = append(rep.Advice, "You have IPv6: peers that have it too are reached directly over it, through your router's firewall by hole punching.")
	}
	if (rep.Reachability == "private" || rep.Reachability == "firewalled") && len(rep.Relays) == 0 {
		rep.Advice = append(rep.Advice, "No relay reservation: peers that cannot punch through will not reach you. Check that the super-peers are reachable.")
	}
	if rep.Path != nil {
		switch {
		case rep.Path.FinalPath == "direct" && rep.Path.FirstPath == "relayed":
			rep.Verdict += fmt.Sprintf(" The test peer went from relayed to direct in %.0f ms.", rep.Path.TimeToDirectMs)
		case rep.Path.FinalPath == "direct":
			rep.Verdict += " The test peer was reached directly."
		default:
			rep.Verdict += " The test peer stayed relayed."
		}
	}
}

func printReport(out io.Writer, r *Report) {
	fmt.Fprintf(out, "juxta doctor\n\n  peer ID        %s\n", r.ID)
	fmt.Fprintf(out, "  local          %s\n", strings.Join(r.LocalAddrs, " "))
	for _, o := range r.Observed {
		fmt.Fprintf(out, "  seen by %s as %s (%s)\n", shortID(o.SuperPeer), o.Addr, o.Transport)
	}
	fmt.Fprintf(out, "  reachability   %s\n  NAT mapping    %s\n  NAT filtering  %s\n  port mapping   %s\n", r.Reachability, r.Mapping, r.Filtering, r.PortMapping)
	for _, n := range r.Network {
		fmt.Fprintf(out, "  %-14s mapping %s, filtering %s (seen as %s)\n", n.Network, n.Mapping, n.Filtering, strings.Join(n.Observed, ", "))
	}
	fmt.Fprintf(out, "  IPv6           %s\n", r.IPv6)
	if len(r.DirectTo) > 0 {
		fmt.Fprintf(out, "  direct to      %s peers\n", strings.Join(r.DirectTo, ", "))
	}
	if len(r.RelayedTo) > 0 {
		fmt.Fprintf(out, "  relayed to     %s peers\n", strings.Join(r.RelayedTo, ", "))
	}
	if len(r.Relays) > 0 {
		for _, rl := range r.Relays {
			fmt.Fprintf(out, "  relay          reservation on %s\n", shortID(rl))
		}
	} else {
		fmt.Fprintf(out, "  relay          no reservation\n")
	}
	if p := r.Path; p != nil {
		fmt.Fprintf(out, "  path to %s: %s", shortID(p.Peer), p.FirstPath)
		if p.FinalPath != p.FirstPath {
			fmt.Fprintf(out, " -> %s after %.0f ms (%d hole punch attempts)", p.FinalPath, p.TimeToDirectMs, p.HolePunches)
		}
		fmt.Fprintln(out)
		if p.RelayedRTTMs > 0 {
			fmt.Fprintf(out, "  RTT relayed    %.1f ms\n", p.RelayedRTTMs)
		}
		if p.DirectRTTMs > 0 {
			fmt.Fprintf(out, "  RTT direct     %.1f ms\n", p.DirectRTTMs)
		}
	}
	for _, pb := range r.Problems {
		fmt.Fprintf(out, "  problem        %s\n", pb)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(out, "  note           %s\n", n)
	}
	fmt.Fprintf(out, "\nverdict: %s\n", r.Verdict)
	for _, a := range r.Advice {
		fmt.Fprintf(out, "  - %s\n", a)
	}
}

func shortID(s string) string {
	if len(s) > 10 {
		return "…" + s[len(s)-8:]
	}
	return s
}

// errDoctorFailed: a check failed; the report says which.
var errDoctorFailed = errors.New("doctor: a check failed")

// doctorFailed makes the exit status non-zero when the report lists problems.
func doctorFailed(rep *Report) error {
	if len(rep.Problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s (the report above says what to do)", errDoctorFailed, strings.Join(rep.Problems, "; "))
}

// nameSuperPeers names the super-peers in a problem line as the rest of the
// report does (shortID), not in libp2p's "<peer.ID 12*abcdef>" form nor in
// full, and puts a multi-line dial error on one line.
func nameSuperPeers(line string, sps []peer.Addr) string {
	for _, sp := range sps {
		line = strings.ReplaceAll(line, sp.ID.ShortString(), shortID(sp.ID.String()))
		line = strings.ReplaceAll(line, sp.ID.String(), shortID(sp.ID.String()))
	}
	return strings.Join(strings.Fields(line), " ")
}

// problemAdvice says what to do about the failed checks.
func problemAdvice(problems []string) []string {
	var superPeer, testPeer bool
	for _, pb := range problems {
		superPeer = superPeer || strings.HasPrefix(pb, "super-peer ")
		testPeer = testPeer || strings.HasPrefix(pb, "test peer: ")
	}
	var out []string
	if superPeer {
		out = append(out, "A super-peer did not answer: check that it is running, that its invite is current (it changes with the super-peer's addresses), and that no firewall blocks UDP to it; then run juxta doctor again.")
	}
	if testPeer {
		out = append(out, "The test peer (-peer) was not reached: check that it is running and that its invite is current.")
	}
	if len(problems) > 0 && !superPeer && !testPeer {
		out = append(out, "A check failed (see the problem lines); run juxta doctor again, and if it fails the same way, report it with the -json output.")
	}
	return out
}
