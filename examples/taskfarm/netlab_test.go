package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

// Acceptance 6: the scheduler on the simulated internet, one provider behind
// a symmetric NAT and one behind a port-restricted NAT, and a client behind
// a third home router: both providers take work and return results.
func TestProvidersBehindNATs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root (network namespaces, netlink, nftables): run the tests as root, as CI does")
	}
	if testing.Short() {
		t.Skip("builds a lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	wan := netlab.Link{Delay: 20 * time.Millisecond}
	lab, err := netlab.New(ctx, netlab.Spec{
		Routers: []netlab.RouterSpec{
			{Name: "sym-home", NAT: netlab.NATSymmetric, WAN: wan},
			{Name: "pr-home", NAT: netlab.NATPortRestricted, WAN: wan},
			{Name: "client-home", NAT: netlab.NATPortRestricted, WAN: wan},
		},
		Hosts: []netlab.HostSpec{
			{Name: "sched", Link: netlab.Link{Delay: 10 * time.Millisecond}},
			{Name: "sym", Router: "sym-home"},
			{Name: "pr", Router: "pr-home"},
			{Name: "client", Router: "client-home"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	base := t.TempDir()
	inLab := func(host string, args ...string) *proc {
		cmd := lab.Host(host).Command(ctx, bin, args...)
		return startLab(t, cmd, func() error { return lab.Host(host).Start(ctx, cmd) })
	}
	sched := inLab("sched", "scheduler", "-dir", filepath.Join(base, "sched"), "-password", "lab farm", "-port", "4001", "-stats", "0")
	m, _, _ := sched.waitFor(`^invite: (\S+)`, 0, time.Minute)
	invite := m[1]
	for _, h := range []string{"sym", "pr"} {
		p := inLab(h, "provider", "-dir", filepath.Join(base, h), "-invite", invite, "-native", "-slots", "2", "-name", h)
		p.waitFor(`^provider \S+:`, 0, 2*time.Minute)
		p.waitFor(`^connected: true`, 0, 2*time.Minute)
	}
	client := inLab("client", "submit", "-dir", filepath.Join(base, "client"), "-invite", invite, "-sleep-units", "40", "-ms", "200")
	client.waitFor(`^done: 40 units`, 0, 3*time.Minute)
	for _, h := range []string{"sym", "pr"} {
		m, _, _ := client.waitFor(`^provider `+h+`: (\d+) valid`, 0, time.Second)
		if n, _ := strconv.Atoi(m[1]); n == 0 {
			t.Fatalf("the provider behind %s took no work", h)
		}
		t.Logf("provider behind %s: %s units", h, m[1])
	}
}

// startLab starts cmd with run (a lab host's Start) and collects its lines.
func startLab(t *testing.T, cmd *exec.Cmd, run func() error) *proc {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{t: t, cmd: cmd, grew: make(chan struct{}, 1), done: make(chan struct{})}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	go p.read(out)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.mu.Lock()
			for _, l := range p.lines {
				t.Log(cmd.Args[1], "| ", l)
			}
			p.mu.Unlock()
		}
	})
	return p
}

var _ = regexp.MustCompile
