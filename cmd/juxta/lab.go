package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/internal/labrecover"
	"github.com/juxta-p2p/juxta/netlab"
	"github.com/juxta-p2p/juxta/peer"
)

const labUsage = `usage:
  juxta lab matrix [-n N] [-delay D] [-types t1,t2,...] [-md FILE] [-json]
      run every pair of NAT types with a super-peer on the simulated internet;
      print a markdown table of the outcomes
  juxta lab run [-a TYPE] [-b TYPE] [-change AT:ACTION:NODE[:ARG]...] HOST -- COMMAND [ARGS...]
      bring up two homes (hosts a and b, behind NATs of the given types) and two
      super-peers (sp1, sp2) on the simulated internet, and run COMMAND in HOST,
      changing the network at the given times (see 'juxta lab run -h')
  juxta lab recover [-keepalive D] SCENARIO...
      chat between two homes while the network changes (renumber, reboot, roam,
      idle) and print how long the chat took to recover
  juxta lab types
      list the NAT types

netlab needs root (network namespaces, netlink, nftables). Nothing it builds is
visible outside its namespaces.
`

// natType is one column of the matrix: where a peer sits.
type natType string

const (
	natPublic         natType = "public"
	natFullCone       natType = "full-cone"
	natRestricted     natType = "restricted"
	natPortRestricted natType = "port-restricted"
	natSymmetric      natType = "symmetric"
	natDouble         natType = "double-nat"
)

var allTypes = []natType{natPublic, natFullCone, natRestricted, natPortRestricted, natSymmetric, natDouble}

// endpointIndependent: the type maps one local port to one public port for
// every destination (a double NAT of two such layers does too).
func (t natType) endpointIndependent() bool { return t != natSymmetric }

// expectDirect is the outcome NAT theory predicts for a pair (docs/NAT.md):
// direct when one side is public or full cone, or both map endpoint-
// independently; relayed otherwise.
func expectDirect(a, b natType) bool {
	if a.hasIPv6() || b.hasIPv6() {
		return expectVia(a, b) != ""
	}
	if a == natPublic || b == natPublic || a == natFullCone || b == natFullCone {
		return true
	}
	return a.endpointIndependent() && b.endpointIndependent()
}

func runLab(ctx context.Context, args []string, out io.Writer) error {
	if len(args) == 0 {
		return &usageError{msg: "lab: no subcommand", usage: labUsage}
	}
	switch args[0] {
	case "matrix":
		return runMatrix(ctx, args[1:], out)
	case "run":
		return runInLab(ctx, args[1:], out)
	case "types":
		fs := flag.NewFlagSet("juxta lab types", flag.ContinueOnError)
		if err := parseFlags(fs, args[1:], out, 0); err != nil {
			return err
		}
		for _, t := range append(slices.Clone(allTypes), ipv6Types...) {
			fmt.Fprintln(out, t)
		}
		return nil
	case "peer":
		return runLabPeer(ctx, args[1:], out)
	case "chat":
		return labrecover.Chat(ctx, args[1:], out)
	case "recover":
		return runRecoverCmd(ctx, args[1:], out)
	}
	if isHelp(args[0]) {
		fmt.Fprint(out, labUsage)
		return flag.ErrHelp
	}
	return &usageError{msg: fmt.Sprintf("lab: unknown subcommand %q", args[0]), usage: labUsage}
}

// addHome adds a host named name in the given position to spec.
func addHome(spec *netlab.Spec, name string, t natType, wan netlab.Link) error {
	router := "r" + name
	switch t {
	case natDual, natDualSym, natIPv6:
		addIPv6Home(spec, name, t, wan)
		return nil
	case natPublic:
		spec.Hosts = append(spec.Hosts, netlab.HostSpec{Name: name, Link: wan})
		return nil
	case natDouble:
		carrier := "cg" + name
		spec.Routers = append(spec.Routers,
			netlab.RouterSpec{Name: carrier, NAT: netlab.NATPortRestricted, WAN: wan},
			netlab.RouterSpec{Name: router, NAT: netlab.NATPortRestricted, Upstream: carrier})
	default:
		nat, ok := map[natType]netlab.NAT{natFullCone: netlab.NATFullCone, natRestricted: netlab.NATRestricted,
			natPortRestricted: netlab.NATPortRestricted, natSymmetric: netlab.NATSymmetric}[t]
		if !ok {
			return fmt.Errorf("lab: unknown NAT type %q (see 'juxta lab types')", t)
		}
		spec.Routers = append(spec.Routers, netlab.RouterSpec{Name: router, NAT: nat, WAN: wan})
	}
	spec.Hosts = append(spec.Hosts, netlab.HostSpec{Name: name, Router: router})
	return nil
}

// twoHomes is the matrix's topology: hosts a and b behind NATs of the given
// types, each router's WAN link with delay, and two super-peers (sp1, sp2) on
// the internet.
func twoHomes(a, b natType, delay time.Duration) (netlab.Spec, error) {
	var spec netlab.Spec
	wan := netlab.Link{Delay: delay}
	if err := addHome(&spec, "a", a, wan); err != nil {
		return spec, err
	}
	if err := addHome(&spec, "b", b, wan); err != nil {
		return spec, err
	}
	// The super-peers sit a little further away, as a hosted server does: a
	// relayed round trip is longer than a direct one.
	far := netlab.Link{Delay: 15 * time.Millisecond}
	var stack netlab.Stack
	if a.hasIPv6() || b.hasIPv6() {
		stack = netlab.StackDual // a relay for IPv4-only and IPv6-only homes alike
	}
	spec.Hosts = append(spec.Hosts, netlab.HostSpec{Name: "sp1", Link: far, Stack: stack}, netlab.HostSpec{Name: "sp2", Link: far, Stack: stack})
	return spec, nil
}

// labProc is a juxta process inside a lab host.
type labProc struct {
	cmd   *exec.Cmd
	lines chan string
	all   *strings.Builder
}

// juxtaProgram is the juxta binary the lab runs in its hosts: this one, unless
// a test built it elsewhere.
var juxtaProgram = ""

func juxtaBinary() (string, error) {
	if juxtaProgram != "" {
		return juxtaProgram, nil
	}
	return os.Executable()
}

func startIn(ctx context.Context, h *netlab.Host, args ...string) (*labProc, error) {
	self, err := juxtaBinary()
	if err != nil {
		return nil, err
	}
	cmd := h.Command(ctx, self, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := h.Start(ctx, cmd); err != nil {
		return nil, err
	}
	p := &labProc{cmd: cmd, lines: make(chan string, 1024), all: &strings.Builder{}}
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case p.lines <- sc.Text():
			default:
			}
		}
	}()
	return p, nil
}

var inviteRE = regexp.MustCompile(`^invite: (juxta1\S+)`)

// waitInvite reads the process's output until it prints its invite.
func (p *labProc) waitInvite(d time.Duration) (string, error) {
	deadline := time.After(d)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				return "", fmt.Errorf("exited before printing an invite: %s", p.all.String())
			}
			p.all.WriteString(l + "\n")
			if m := inviteRE.FindStringSubmatch(l); m != nil {
				return m[1], nil
			}
		case <-deadline:
			return "", fmt.Errorf("no invite within %s: %s", d, p.all.String())
		}
	}
}

func (p *labProc) stop() {
	if p.cmd.Process != nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	}
}

// Trial is one connection attempt of the matrix.
type Trial struct {
	A, B           natType
	Connected      bool
	FirstPath      string
	FinalPath      string
	ConnectMs      float64
	TimeToDirectMs float64
	RelayedRTTMs   float64
	DirectRTTMs    float64
	DirectVia      string // ip4 or ip6: the IP version of the direct path
	MappingB       string
	Err            string
}

// runTrial builds the two-homes lab for (a, b), starts two super-peers and an
// edge in a, and runs `juxta doctor -peer` from b.
func runTrial(ctx context.Context, a, b natType, delay, wait time.Duration) (tr Trial) {
	tr = Trial{A: a, B: b}
	t0 := time.Now()
	mark := func(what string) {
		if os.Getenv("JUXTA_LAB_DEBUG") != "" {
			fmt.Fprintf(os.Stderr, "  %6.2fs %s\n", time.Since(t0).Seconds(), what)
		}
	}
	defer mark("done")
	fail := func(err error) Trial { tr.Err = err.Error(); return tr }
	spec, err := twoHomes(a, b, delay)
	if err != nil {
		return fail(err)
	}
	lab, err := netlab.New(ctx, spec)
	if err != nil {
		return fail(err)
	}
	defer lab.Close()
	mark("lab up")
	tmp, err := os.MkdirTemp("", "juxta-lab-*")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(tmp)
	var invites []string
	for _, sp := range []string{"sp1", "sp2"} {
		args := []string{"superpeer", "-dir", filepath.Join(tmp, sp), "-port", "4001"}
		if len(invites) > 0 {
			// sp2 counts sp1 among its super-peers: it probes for it
			// (the doctor's filtering reading).
			args = append(args, "-superpeer", invites[0])
		}
		p, err := startIn(ctx, lab.Host(sp), args...)
		if err != nil {
			return fail(err)
		}
		defer p.stop()
		inv, err := p.waitInvite(20 * time.Second)
		if err != nil {
			return fail(fmt.Errorf("%s: %w", sp, err))
		}
		invites = append(invites, inv)
		mark(sp + " up")
	}
	edge, err := startIn(ctx, lab.Host("a"), "lab", "peer", "-superpeer", invites[0])
	if err != nil {
		return fail(err)
	}
	defer edge.stop()
	target, err := edge.waitInvite(30 * time.Second)
	if err != nil {
		return fail(fmt.Errorf("edge in a: %w", err))
	}
	mark("edge ready")
	self, err := juxtaBinary()
	if err != nil {
		return fail(err)
	}
	doc := lab.Host("b").Command(ctx, self, "doctor", "-json", "-wait", wait.String(),
		"-superpeer", invites[0], "-superpeer", invites[1], "-peer", target)
	var stdout, stderr strings.Builder
	doc.Stdout, doc.Stderr = &stdout, &stderr
	if err := lab.Host("b").Run(ctx, doc); err != nil {
		return fail(fmt.Errorf("doctor in b: %v: %s", err, stderr.String()))
	}
	mark("doctor finished")
	var rep Report
	if err := json.Unmarshal([]byte(stdout.String()), &rep); err != nil {
		return fail(fmt.Errorf("doctor output: %v", err))
	}
	tr.MappingB = rep.Mapping
	if rep.Path == nil {
		return fail(fmt.Errorf("no connection: %s", strings.Join(rep.Problems, "; ")))
	}
	tr.Connected = true
	tr.FirstPath, tr.FinalPath = rep.Path.FirstPath, rep.Path.FinalPath
	tr.ConnectMs, tr.TimeToDirectMs, tr.RelayedRTTMs, tr.DirectRTTMs = rep.Path.ConnectMs, rep.Path.TimeToDirectMs, rep.Path.RelayedRTTMs, rep.Path.DirectRTTMs
	tr.DirectVia = rep.Path.DirectVia
	return tr
}

// runLabPeer is the edge the matrix runs inside the lab: it prints its invite
// once it can be reached (a relay reservation when private) and serves until
// killed.
func runLabPeer(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta lab peer", flag.ContinueOnError)
	mdns := fs.Bool("mdns", false, "find LAN peers with mDNS (only inside a lab)")
	expect := fs.String("expect", "", "print 'connected ID PATH' when this peer connects")
	publish := fs.String("publish", "", "publish a lab.note advertisement with this name")
	find := fs.String("find", "", "search the LAN for lab.note advertisements matching this name (wildcards) and print 'found NAME from ID'")
	var sps multi
	fs.Var(&sps, "superpeer", "a super-peer's invite (repeatable)")
	if err := parseFlags(fs, args, out, 0); err != nil {
		return err
	}
	p, err := peer.New(ctx, peer.Config{SuperPeers: sps, NoMDNS: !*mdns})
	if err != nil {
		return err
	}
	defer p.Close()
	sub := p.Subscribe(ctx, 0)
	if len(sps) > 0 {
		if err := p.Ready(ctx); err != nil {
			return err
		}
		deadline := time.Now().Add(20 * time.Second)
		for len(p.Status().Relays) == 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
	}
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true})
	if err != nil {
		return err
	}
	defer d.Close()
	if *publish != "" {
		if _, err := d.Publish(ctx, discovery.Advertisement{Type: "lab.note", ID: *publish, Attrs: map[string]string{"name": *publish}}); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "id: %s\ninvite: %s\n", p.ID(), p.Invite())
	var findTick <-chan time.Time
	if *find != "" {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		findTick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-sub.C:
			if !ok {
				return nil
			}
			if pc, ok := ev.(peer.PeerConnected); ok && pc.Peer.String() == *expect {
				fmt.Fprintf(out, "connected %s %s\n", pc.Peer, pc.Path)
			}
		case <-findTick:
			q := discovery.Query{Type: "lab.note", Attr: "name", Value: *find, Sources: discovery.SourceLAN}
			for r, err := range d.Find(ctx, q) {
				if err == nil {
					fmt.Fprintf(out, "found %s from %s via %s\n", r.ID, r.Publisher, r.Source)
					findTick = nil
				}
			}
		}
	}
}

func runInLab(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta lab run", flag.ContinueOnError)
	a := fs.String("a", string(natPortRestricted), "NAT type of home a")
	b := fs.String("b", string(natPortRestricted), "NAT type of home b")
	delay := fs.Duration("delay", 25*time.Millisecond, "one-way delay on each router's WAN link")
	var changeFlags multi
	fs.Var(&changeFlags, "change", "change the network at a time: AT:ACTION:NODE[:ARG] (repeatable; see below)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: juxta lab run [flags] HOST -- COMMAND [ARGS...]")
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), labChangeUsage)
	}
	if err := parseFlags(fs, args, out, -1); err != nil {
		return err
	}
	var changes []labChange
	for _, s := range changeFlags {
		c, err := parseLabChange(s)
		if err != nil {
			return &usageError{msg: err.Error(), usage: flagUsage(fs)}
		}
		changes = append(changes, c)
	}
	rest := fs.Args()
	if len(rest) < 3 || rest[1] != "--" {
		return &usageError{msg: "lab run: want HOST -- COMMAND [ARGS...]", usage: flagUsage(fs)}
	}
	spec, err := twoHomes(natType(*a), natType(*b), *delay)
	if err != nil {
		return err
	}
	lab, err := netlab.New(ctx, spec)
	if err != nil {
		return err
	}
	defer lab.Close()
	fmt.Fprintf(out, "%s\n", lab)
	h := lab.Host(rest[0])
	if h == nil {
		return fmt.Errorf("lab run: no host %q (hosts: a, b, sp1, sp2)", rest[0])
	}
	cmd := h.Command(ctx, rest[2], rest[3:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, out, os.Stderr
	if err := h.Start(ctx, cmd); err != nil {
		return err
	}
	cctx, stop := context.WithCancel(ctx)
	changed := make(chan error, 1)
	go func() { changed <- runLabChanges(cctx, lab, changes, time.Now(), os.Stderr) }()
	err = cmd.Wait()
	stop()
	if cerr := <-changed; cerr != nil && !errors.Is(cerr, context.Canceled) {
		return errors.Join(err, cerr)
	}
	return err
}
