package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

// The lab tests need root (network namespaces, nftables) and a juxta binary
// to run inside the lab's hosts.
func needLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root (network namespaces, netlink, nftables): run the tests as root, as CI does")
	}
	if testing.Short() {
		t.Skip("the lab tests take minutes")
	}
	if juxtaProgram == "" {
		bin := filepath.Join(t.TempDir(), "juxta")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("build juxta: %v\n%s", err, out)
		}
		juxtaProgram = bin
		t.Cleanup(func() { juxtaProgram = "" })
	}
}

// Every pair of NAT types, once: every pair connects, every pair NAT theory
// allows ends direct. CI runs this reduced matrix; docs/NAT.md holds a run
// with more tries.
func TestNATMatrixEachPairOnce(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var trials []Trial
	for i, a := range allTypes {
		for _, b := range allTypes[i:] {
			// As in the IPv6 rows: a pair theory says goes direct gets up
			// to three tries, since a hole punch on a loaded machine can
			// miss its timing; it fails only if none goes direct.
			for try := 1; ; try++ {
				tr := runTrial(ctx, a, b, 25*time.Millisecond, 10*time.Second)
				trials = append(trials, tr)
				if !tr.Connected {
					t.Errorf("%s × %s did not connect: %s", a, b, tr.Err)
					break
				}
				if tr.FirstPath == "relayed" && tr.FinalPath == "direct" && tr.TimeToDirectMs <= 0 {
					t.Errorf("%s × %s: relayed then direct, but no time to direct", a, b)
				}
				if !expectDirect(a, b) || tr.FinalPath == "direct" {
					break
				}
				if try == 3 {
					t.Errorf("%s × %s: theory allows direct, got %s in %d tries", a, b, tr.FinalPath, try)
					break
				}
				t.Logf("%s × %s: try %d went %s; trying again", a, b, try, tr.FinalPath)
			}
		}
	}
	var b strings.Builder
	markdown(&b, summarize(trials), 1, 25*time.Millisecond)
	t.Logf("\n%s", b.String())
	for _, s := range summarize(trials) {
		if s.Outcome != "as expected" {
			t.Logf("%s × %s: %s", s.A, s.B, s.Outcome)
		}
	}
}

// The IPv6 rows, once each: two dual-stack homes go direct over IPv6 (even
// behind symmetric IPv4 NATs), IPv6-only homes go direct over IPv6, and an
// IPv4-only and an IPv6-only home connect through a super-peer that has both.
func TestNATMatrixIPv6Rows(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var trials []Trial
	for _, pair := range ipv6Pairs {
		a, b := pair[0], pair[1]
		want := expectVia(a, b)
		// A hole punch is a race of timed packets, and on a loaded machine
		// one try in several misses it; a pair theory says goes direct gets
		// up to three tries, and fails only if none goes direct.
		for try := 1; ; try++ {
			tr := runTrial(ctx, a, b, 25*time.Millisecond, 10*time.Second)
			trials = append(trials, tr)
			if !tr.Connected {
				t.Errorf("%s × %s did not connect: %s", a, b, tr.Err)
				break
			}
			if want == "" {
				if tr.FinalPath != "relayed" {
					t.Logf("%s × %s: theory says relayed, got %s over %s", a, b, tr.FinalPath, tr.DirectVia)
				}
				break
			}
			if tr.FinalPath == "direct" && tr.DirectVia == want {
				break
			}
			if try == 3 {
				t.Errorf("%s × %s: theory says direct over %s, got %s over %q in %d tries", a, b, want, tr.FinalPath, tr.DirectVia, try)
				break
			}
			t.Logf("%s × %s: try %d went %s over %q; trying again", a, b, try, tr.FinalPath, tr.DirectVia)
		}
	}
	var b strings.Builder
	markdown(&b, summarize(trials), 1, 25*time.Millisecond)
	t.Logf("\n%s", b.String())
}

// juxta doctor, run inside the lab, tells the NATs apart: mapping and
// filtering over UDP and TCP for every NAT type of the lab. sp2 counts sp1
// among its super-peers, so that sp1 can have it probe from another address.
// The log holds the table docs/NAT.md shows.
func TestDoctorInLab(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	spec := netlab.Spec{
		Routers: []netlab.RouterSpec{
			{Name: "full", NAT: netlab.NATFullCone},
			{Name: "restr", NAT: netlab.NATRestricted},
			{Name: "port", NAT: netlab.NATPortRestricted},
			{Name: "sym", NAT: netlab.NATSymmetric},
			{Name: "cgn", NAT: netlab.NATPortRestricted},
			{Name: "dbl", NAT: netlab.NATPortRestricted, Upstream: "cgn"},
			{Name: "dual", Stack: netlab.StackDual},
			{Name: "six", Stack: netlab.StackIPv6},
		},
		Hosts: []netlab.HostSpec{
			{Name: "sp1", Stack: netlab.StackDual}, {Name: "sp2", Stack: netlab.StackDual}, {Name: "pub"},
			{Name: "h-dual", Router: "dual"}, {Name: "h-six", Router: "six"},
			{Name: "h-full", Router: "full"}, {Name: "h-restr", Router: "restr"}, {Name: "h-port", Router: "port"},
			{Name: "h-sym", Router: "sym"}, {Name: "h-dbl", Router: "dbl"},
		},
	}
	lab, err := netlab.New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	var invites []string
	for _, sp := range []string{"sp1", "sp2"} {
		args := []string{"superpeer", "-dir", t.TempDir(), "-port", "4001"}
		if len(invites) > 0 {
			args = append(args, "-superpeer", invites[0])
		}
		p, err := startIn(ctx, lab.Host(sp), args...)
		if err != nil {
			t.Fatal(err)
		}
		defer p.stop()
		inv, err := p.waitInvite(4 * time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		invites = append(invites, inv)
	}
	const (
		eim, edm       = "endpoint-independent", "endpoint-dependent"
		eif, adf, apdf = "endpoint-independent", "address-dependent", "address-and-port-dependent"
	)
	cases := []struct{ host, kind, reach, mapping, filtering, relayedTo string }{
		{"pub", "public", "public", "none", eif, ""},
		{"h-full", "full cone", "", eim, eif, ""},
		{"h-restr", "restricted cone", "private", eim, adf, ""},
		{"h-port", "port-restricted cone", "private", eim, apdf, "symmetric"},
		{"h-sym", "symmetric", "private", edm, apdf, "port-restricted,symmetric"},
		{"h-dbl", "double NAT", "private", eim, apdf, "symmetric"},
		// IPv6 homes: no NAT, a stateful firewall.
		{"h-dual", "dual-stack (IPv4 port-restricted)", "private", eim, apdf, "symmetric"},
		{"h-six", "IPv6-only", "firewalled", "none", apdf, "symmetric"},
	}
	table := "| home | reachability | UDP mapping | UDP filtering | TCP mapping | TCP filtering | IPv6 (UDP) | direct to | relayed to |\n|---|---|---|---|---|---|---|---|---|\n"
	for _, c := range cases {
		cmd := lab.Host(c.host).Command(ctx, juxtaProgram, "doctor", "-json", "-wait", "3s", "-superpeer", invites[0], "-superpeer", invites[1])
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: doctor: %v\n%s", c.host, err, out)
		}
		var rep Report
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("%s: %v\n%s", c.host, err, out)
		}
		t.Logf("%s: reachability %s, mapping %s, filtering %s, relays %d, notes %v: %s", c.host, rep.Reachability, rep.Mapping, rep.Filtering, len(rep.Relays), rep.Notes, rep.Verdict)
		// A full-cone host may be found public by AutoNAT (anyone can dial its
		// mapping); every other NAT must read private.
		if c.reach != "" && rep.Reachability != c.reach {
			t.Errorf("%s: reachability %q, want %q", c.host, rep.Reachability, c.reach)
		}
		if c.host == "h-full" && rep.Reachability == "unknown" {
			t.Errorf("h-full: reachability unknown")
		}
		if rep.Mapping != c.mapping || rep.Filtering != c.filtering {
			t.Errorf("%s: mapping %q, filtering %q; want %q, %q", c.host, rep.Mapping, rep.Filtering, c.mapping, c.filtering)
		}
		got := map[string]NetReport{}
		for _, n := range rep.Network {
			got[n.Network] = n
		}
		networks := []string{"udp4", "tcp4"}
		if c.host == "h-six" {
			networks = nil
		}
		if strings.HasPrefix(c.host, "h-dual") || c.host == "h-six" {
			// IPv6: the host's own address, port-restricted filtering.
			for _, network := range []string{"udp6", "tcp6"} {
				if n := got[network]; n.Mapping != "none" || n.Filtering != apdf {
					t.Errorf("%s over %s: mapping %q, filtering %q; want none, %q", c.host, network, n.Mapping, n.Filtering, apdf)
				}
			}
			if !strings.HasPrefix(rep.IPv6, "yes, no NAT") {
				t.Errorf("%s: IPv6 %q", c.host, rep.IPv6)
			}
		} else if !strings.HasPrefix(rep.IPv6, "none") {
			t.Errorf("%s: IPv6 %q, want none", c.host, rep.IPv6)
		}
		for _, network := range networks {
			if n := got[network]; n.Mapping != c.mapping || n.Filtering != c.filtering {
				t.Errorf("%s over %s: mapping %q, filtering %q; want %q, %q", c.host, network, n.Mapping, n.Filtering, c.mapping, c.filtering)
			}
		}
		if rep.Reachability != "public" && strings.Join(rep.RelayedTo, ",") != c.relayedTo {
			t.Errorf("%s: relayed to %v, want %q", c.host, rep.RelayedTo, c.relayedTo)
		}
		table += fmt.Sprintf("| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.kind, rep.Reachability,
			got["udp4"].Mapping, got["udp4"].Filtering, got["tcp4"].Mapping, got["tcp4"].Filtering, rep.IPv6,
			strings.Join(rep.DirectTo, ", "), orDash(strings.Join(rep.RelayedTo, ", ")))
	}
	t.Logf("what juxta doctor printed:\n%s", table)
}

// Two laptops behind the same home router find each other over mDNS, with no
// super-peer (the messenger's LAN case), and discovery's LAN source finds what
// one publishes through the other.
func TestMDNSOnHomeLAN(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lab, err := netlab.New(ctx, netlab.Spec{
		Routers: []netlab.RouterSpec{{Name: "home"}},
		Hosts:   []netlab.HostSpec{{Name: "alice", Router: "home"}, {Name: "bob", Router: "home"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	a, err := startIn(ctx, lab.Host("alice"), "lab", "peer", "-mdns", "-publish", "holiday-photos")
	if err != nil {
		t.Fatal(err)
	}
	defer a.stop()
	if _, err := a.waitInvite(4 * time.Minute); err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`(?m)^id: (\S+)`).FindStringSubmatch(a.all.String())
	if id == nil {
		t.Fatalf("no id from alice: %s", a.all.String())
	}
	b, err := startIn(ctx, lab.Host("bob"), "lab", "peer", "-mdns", "-expect", id[1], "-find", "holiday*")
	if err != nil {
		t.Fatal(err)
	}
	defer b.stop()
	deadline := time.After(4 * time.Minute)
	connected, found := false, false
	for !connected || !found {
		select {
		case l, ok := <-b.lines:
			if !ok {
				t.Fatalf("bob exited: %s", b.all.String())
			}
			b.all.WriteString(l + "\n")
			connected = connected || strings.HasPrefix(l, "connected "+id[1]+" direct")
			found = found || strings.HasPrefix(l, "found holiday-photos from "+id[1]+" via lan")
		case <-deadline:
			t.Fatalf("bob: connected over mDNS %v, found the advertisement over the LAN %v:\n%s", connected, found, b.all.String())
		}
	}
}
