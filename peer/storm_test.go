package peer

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/attack"
)

// The reconnect-storm test runs the super-peer in a child process (this test
// binary with superPeerHelperEnv set), so that it can be stopped and started
// again on the same identity and port, and so that its CPU time can be read
// apart from the edges' (from /proc/<pid>/stat).
const superPeerHelperEnv = "JUXTA_PEER_SUPERPEER_HELPER"

// superPeerHelper runs a TCP-only super-peer on 127.0.0.1 with the identity
// in $JXP_DIR and the port $JXP_PORT, prints its invite on a line of its own
// and runs until SIGTERM.
func superPeerHelper() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	cfg := SuperPeerConfig(os.Getenv("JXP_DIR"), 0)
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/" + os.Getenv("JXP_PORT")}
	// Every edge of the test reserves a slot from 127.0.0.1.
	cfg.Relay = RelayLimits{MaxReservations: 1024, MaxReservationsPerIP: 1024}
	p, err := New(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("invite %s\n", p.Invite())
	<-ctx.Done()
	if err := p.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// superPeerProc is a running super-peer helper.
type superPeerProc struct {
	cmd    *exec.Cmd
	invite string
}

func startSuperPeerProc(t *testing.T, ctx context.Context, dir string, port int) *superPeerProc {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), superPeerHelperEnv+"=1", "JXP_DIR="+dir, "JXP_PORT="+strconv.Itoa(port))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sp := &superPeerProc{cmd: cmd}
	t.Cleanup(func() { sp.stop(t) })
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "invite "); ok {
				line <- s
				break
			}
		}
		close(line)
		for sc.Scan() { // drain until the helper exits
		}
	}()
	select {
	case s, ok := <-line:
		if !ok {
			t.Fatal("the super-peer helper exited before printing its invite")
		}
		sp.invite = s
	case <-ctx.Done():
		t.Fatal("the super-peer helper did not start")
	}
	return sp
}

// stop ends the helper with SIGTERM (a graceful close) and waits for it.
func (sp *superPeerProc) stop(t *testing.T) {
	if sp.cmd.ProcessState != nil {
		return
	}
	_ = sp.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- sp.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("super-peer helper: %v", err)
		}
	case <-time.After(time.Minute):
		_ = sp.cmd.Process.Kill()
		<-done
		t.Error("the super-peer helper did not stop on SIGTERM")
	}
}

// cpuTime is the user and system CPU time the process has used so far, from
// /proc/<pid>/stat (fields 14 and 15, in USER_HZ = 100 ticks per second).
func (sp *superPeerProc) cpuTime(t *testing.T) time.Duration {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(sp.cmd.Process.Pid), "stat"))
	if err != nil {
		t.Fatal(err)
	}
	// The command name (field 2) may hold spaces; count from after it.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("read /proc stat: %q", b)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestReconnectStorm: 200 edges hold a connection to one super-peer, which
// restarts with the same identity and port. Every edge is connected again
// within 30 s of the restart, and the edges come back spread out rather than
// in lockstep. The log reports the super-peer's CPU time for the storm.
//
// The edges are full juxta peers in this process, on TCP only (QUIC would
// notice the restart only after its idle timeout, which is keepalive's
// concern, not this test's) to keep 200 of them light; under the race
// detector, which multiplies memory several times, 50.
func TestReconnectStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("short: starts 200 peers")
	}
	n := 200
	if attack.Race {
		n = 50
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir, port := t.TempDir(), freeTCPPort(t)
	sp := startSuperPeerProc(t, ctx, dir, port)
	spAddr, err := ParseAddr(sp.invite)
	if err != nil {
		t.Fatal(err)
	}

	edges := make([]*Peer, n)
	for i := range edges {
		cfg := TestConfig()
		cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
		cfg.SuperPeers = []string{sp.invite}
		cfg.Reachability = ReachabilityPrivate // no AutoNAT probes: the storm is the redial
		edges[i] = newTestPeer(t, cfg)
	}
	connected := func(e *Peer) bool { return len(e.ConnectedSuperPeers()) == 1 }
	for i, e := range edges {
		if err := e.Ready(ctx); err != nil {
			t.Fatalf("edge %d: %v", i, err)
		}
	}
	t.Logf("%d edges connected to the super-peer", n)

	// Restart: a graceful stop, then the same identity on the same port.
	stopped := time.Now()
	sp.stop(t)
	for _, e := range edges {
		for connected(e) && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
	}
	restarted := time.Now()
	sp = startSuperPeerProc(t, ctx, dir, port)
	up := time.Now()
	if a, err := ParseAddr(sp.invite); err != nil || a.ID != spAddr.ID {
		t.Fatalf("restarted super-peer is %v (%v), want %s", a.ID, err, spAddr.ID)
	}
	cpuAtStart := sp.cpuTime(t)

	back := make([]time.Duration, n) // since the super-peer was up again
	left := n
	deadline := time.After(30 * time.Second)
	for left > 0 {
		select {
		case <-deadline:
			t.Fatalf("%d of %d edges not reconnected 30 s after the super-peer restarted", left, n)
		case <-time.After(20 * time.Millisecond):
		}
		for i, e := range edges {
			if back[i] == 0 && connected(e) {
				back[i] = max(time.Since(up), time.Nanosecond)
				left--
			}
		}
	}
	allBack := time.Since(up)
	// The reconnections are followed by identify, DHT and relay
	// reservations: count those too.
	time.Sleep(5 * time.Second)
	cpuStorm := sp.cpuTime(t) - cpuAtStart
	reserved := 0
	for _, e := range edges {
		if slices.Contains(e.Status().Relays, spAddr.ID) {
			reserved++
		}
	}
	slices.Sort(back)
	q := func(f float64) time.Duration { return back[int(f*float64(n-1))].Round(time.Millisecond) }
	t.Logf("super-peer down %v (stopping %v, starting the process %v); all %d edges back %v after it was up; arrivals p10 %v, p50 %v, p90 %v, max %v",
		up.Sub(stopped).Round(time.Millisecond), restarted.Sub(stopped).Round(time.Millisecond), up.Sub(restarted).Round(time.Millisecond),
		n, allBack.Round(time.Millisecond), q(0.1), q(0.5), q(0.9), q(1))
	// Lockstep shows as many edges back in one short window.
	crowd := 0
	for i, j := 0, 0; j < n; j++ {
		for back[j]-back[i] >= 100*time.Millisecond {
			i++
		}
		crowd = max(crowd, j-i+1)
	}
	t.Logf("at most %d of %d edges came back within one 100 ms window", crowd, n)
	t.Logf("super-peer CPU time (user+system, /proc/<pid>/stat) from its start until 5 s after the last edge was back: %v for %d edges; start-up alone %v; %d of %d edges hold a relay reservation again",
		cpuStorm+cpuAtStart, n, cpuAtStart, reserved, n)
	if q(0.9)-q(0.1) < 100*time.Millisecond {
		t.Errorf("edges came back in lockstep: 80%% of them within %v", q(0.9)-q(0.1))
	}
}

// TestRedialBackoff: the first redial after a loss comes within [0, 2 ×
// redialFirst], each failure doubles the window up to 2 × redialMax, and the
// delays of many edges are spread over the window, not equal.
func TestRedialBackoff(t *testing.T) {
	var first []time.Duration
	for range 200 {
		b := newRedialBackoff()
		d := b.NextBackOff()
		if d < 0 || d > 2*redialFirst+time.Nanosecond {
			t.Fatalf("first redial after %v, want within [0, %v]", d, 2*redialFirst)
		}
		first = append(first, d)
	}
	if spread := slices.Max(first) - slices.Min(first); spread < redialFirst {
		t.Fatalf("200 first redials span only %v: lockstep", spread)
	}
	b := newRedialBackoff()
	window := redialFirst
	for i := range 64 {
		d := b.NextBackOff()
		if d < 0 || d > 2*window+time.Nanosecond {
			t.Fatalf("failure %d: wait %v outside [0, %v]", i, d, 2*window)
		}
		window = min(2*window, redialMax)
	}
	b.Reset()
	if d := b.NextBackOff(); d > 2*redialFirst+time.Nanosecond {
		t.Fatalf("after Reset the wait is %v, want at most %v", d, 2*redialFirst)
	}
}
