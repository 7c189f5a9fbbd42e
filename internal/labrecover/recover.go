package labrecover

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

// Scenarios are the changes Run knows, in the order `juxta lab recover`
// lists them.
var Scenarios = []string{"renumber", "reboot", "roam", "idle"}

// The roles Options.Program runs in the lab's hosts.
const (
	RoleChat      = "chat"      // Chat
	RoleSuperPeer = "superpeer" // SuperPeer, or `juxta superpeer`
)

// Options say how to run a scenario.
type Options struct {
	// Program says how to start role (RoleChat or RoleSuperPeer) in a lab
	// host: the program, the arguments before the role's own, and extra
	// environment. The program must import netlab (its Command re-executes
	// the current binary to enter the host's namespace).
	Program func(role string) (path string, args, env []string)
	// Keepalive is the chat peers' peer.Config.Keepalive (0: the default).
	Keepalive time.Duration
	// Idle is the idle scenario's silence.
	Idle time.Duration
	// Log receives the scenario's steps; nil discards them.
	Log io.Writer
}

// chatLog collects the lines of a chat process, timestamped by the process.
type chatLog struct {
	cmd   *labProcIn
	mu    sync.Mutex
	lines []string
	wake  chan struct{} // closed and replaced on every line
	done  bool
}

// labProcIn is a lab process with a stdin.
type labProcIn struct {
	stop  func()
	stdin io.WriteCloser
}

// start runs role in h with args, collecting its output lines.
func start(ctx context.Context, h *netlab.Host, opt Options, role string, args ...string) (*chatLog, error) {
	prog, pre, env := opt.Program(role)
	cmd := h.Command(ctx, prog, append(pre, args...)...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = cmd.Stdout
	if err := h.Start(ctx, cmd); err != nil {
		return nil, err
	}
	l := &chatLog{wake: make(chan struct{})}
	l.cmd = &labProcIn{stdin: stdin, stop: func() { cmd.Process.Kill(); cmd.Wait() }}
	go l.read(stdout, h.Name())
	return l, nil
}

// read collects the lines of out until it ends; with JUXTA_LAB_DEBUG set it
// also copies them to juxta-chat-HOST.log in the temporary directory.
func (l *chatLog) read(out io.Reader, host string) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var debug io.Writer = io.Discard
	if dir := os.Getenv("JUXTA_LAB_DEBUG"); dir != "" {
		if f, err := os.Create(filepath.Join(os.TempDir(), "juxta-chat-"+host+".log")); err == nil {
			defer f.Close()
			debug = f
		}
	}
	for sc.Scan() {
		fmt.Fprintln(debug, sc.Text())
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		close(l.wake)
		l.wake = make(chan struct{})
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.done = true
	close(l.wake)
	l.wake = make(chan struct{})
	l.mu.Unlock()
}

// invite waits for the "invite: I" line and returns I.
func (l *chatLog) invite(ctx context.Context, d time.Duration) (string, error) {
	var inv string
	err := l.waitFor(ctx, d, "invite", func(ls []string) bool {
		for _, s := range ls {
			if v, ok := strings.CutPrefix(s, "invite: "); ok {
				inv = v
				return true
			}
		}
		return false
	})
	return inv, err
}

func (l *chatLog) send(cmd string) { io.WriteString(l.cmd.stdin, cmd+"\n") }

// waitFor waits until match accepts the log (all lines so far), or d.
func (l *chatLog) waitFor(ctx context.Context, d time.Duration, what string, match func([]string) bool) error {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		lines, wake, done := l.lines, l.wake, l.done
		l.mu.Unlock()
		if match(lines) {
			return nil
		}
		if done {
			return fmt.Errorf("exited before %s:\n%s", what, tail(lines, 20))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("no %s within %v:\n%s", what, d, tail(lines, 20))
		case <-wake:
		}
	}
}

func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// chatEvent is one "WORD VALUE NANOS" line.
type chatEvent struct {
	word, value string
	at          time.Time
}

func events(lines []string, word string) []chatEvent {
	var out []chatEvent
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) != 3 || f[0] != word {
			continue
		}
		ns, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, chatEvent{f[0], f[1], time.Unix(0, ns)})
	}
	return out
}

// Recovery is what one scenario measured.
type Recovery struct {
	Scenario string
	// Resume: from the change (renumber, move) or from the link's return
	// (reboot) to the first delivery of a message sent after it.
	Resume time.Duration
	// Direct: from the change to the direct path's return; for roam, from
	// the move home.
	Direct time.Duration
	// Relayed: roam only: the path in the symmetric home was relayed.
	Relayed bool
	// IdleDirect: idle only: the direct path lasted the idle time, no event.
	IdleDirect bool
	Sent       int
	Received   int
	Lost, Dup  int
	Reordered  int
}

func (r Recovery) String() string {
	s := fmt.Sprintf("%-8s sent %d, received %d, lost %d, duplicated %d, reordered %d", r.Scenario, r.Sent, r.Received, r.Lost, r.Dup, r.Reordered)
	if r.Resume > 0 {
		s += fmt.Sprintf("; messages again after %v", r.Resume.Round(time.Millisecond))
	}
	if r.Direct > 0 {
		s += fmt.Sprintf("; direct again after %v", r.Direct.Round(time.Millisecond))
	}
	if r.Scenario == "roam" {
		s += fmt.Sprintf("; relayed in the symmetric home: %v", r.Relayed)
	}
	if r.Scenario == "idle" {
		s += fmt.Sprintf("; direct path kept through the idle time: %v", r.IdleDirect)
	}
	return s
}

// spec: homes a and b (port-restricted), a café with a symmetric NAT
// and no one in it, one super-peer.
func spec() netlab.Spec {
	wan := netlab.Link{Delay: 25 * time.Millisecond}
	return netlab.Spec{
		Routers: []netlab.RouterSpec{
			{Name: "ra", NAT: netlab.NATPortRestricted, WAN: wan},
			{Name: "rb", NAT: netlab.NATPortRestricted, WAN: wan},
			{Name: "cafe", NAT: netlab.NATSymmetric, WAN: wan},
		},
		Hosts: []netlab.HostSpec{
			{Name: "a", Router: "ra"}, {Name: "b", Router: "rb"},
			{Name: "sp1", Link: netlab.Link{Delay: 15 * time.Millisecond}},
		},
	}
}

// Run runs one scenario in a fresh lab and returns what it measured. The
// lab's steps, timed from its start, go to opt.Log.
func Run(ctx context.Context, scenario string, opt Options) (rec Recovery, err error) {
	rec.Scenario = scenario
	if !slices.Contains(Scenarios, scenario) {
		return rec, fmt.Errorf("lab recover: unknown scenario %q (want one of %s)", scenario, strings.Join(Scenarios, ", "))
	}
	if opt.Program == nil {
		return rec, errors.New("lab recover: no Program to run in the lab's hosts")
	}
	log := opt.Log
	if log == nil {
		log = io.Discard
	}
	t0 := time.Now()
	mark := func(format string, a ...any) {
		fmt.Fprintf(log, "  %6.2fs %s\n", time.Since(t0).Seconds(), fmt.Sprintf(format, a...))
	}
	lab, err := netlab.New(ctx, spec())
	if err != nil {
		return rec, err
	}
	defer lab.Close()
	tmp, err := os.MkdirTemp("", "juxta-recover-*")
	if err != nil {
		return rec, err
	}
	defer os.RemoveAll(tmp)
	sp, err := start(ctx, lab.Host("sp1"), opt, RoleSuperPeer, "-dir", filepath.Join(tmp, "sp1"), "-port", "4001")
	if err != nil {
		return rec, err
	}
	defer sp.cmd.stop()
	inv, err := sp.invite(ctx, time.Minute)
	if err != nil {
		return rec, fmt.Errorf("super-peer: %w", err)
	}
	common := []string{"-superpeer", inv, "-keepalive=" + opt.Keepalive.String()}
	if os.Getenv("JUXTA_LAB_DEBUG") != "" {
		common = append(common, "-v")
	}
	a, err := start(ctx, lab.Host("a"), opt, RoleChat, common...)
	if err != nil {
		return rec, err
	}
	defer a.cmd.stop()
	target, err := a.invite(ctx, time.Minute)
	if err != nil {
		return rec, fmt.Errorf("a: %w", err)
	}
	b, err := start(ctx, lab.Host("b"), opt, RoleChat, append(common, "-dial", target)...)
	if err != nil {
		return rec, err
	}
	defer b.cmd.stop()
	if err := b.waitFor(ctx, time.Minute, "a direct path", pathAfter(time.Time{}, "direct")); err != nil {
		return rec, fmt.Errorf("b: %w", err)
	}
	mark("chat up, direct")
	b.send("run")
	if err := a.waitFor(ctx, time.Minute, "ten messages", func(ls []string) bool { return len(events(ls, "recv")) >= 10 }); err != nil {
		return rec, fmt.Errorf("a: %w", err)
	}
	switch scenario {
	case "renumber":
		err = scenarioRenumber(ctx, lab, a, b, &rec, mark)
	case "reboot":
		err = scenarioReboot(ctx, lab, a, b, &rec, mark)
	case "roam":
		err = scenarioRoam(ctx, lab, a, b, &rec, mark)
	case "idle":
		err = scenarioIdle(ctx, lab, a, b, opt.Idle, &rec, mark)
	}
	if err != nil {
		return rec, err
	}
	b.send("quit")
	if err := b.waitFor(ctx, 2*time.Minute, "all delivered", func(ls []string) bool {
		for _, l := range ls {
			if strings.HasPrefix(l, "delivered ") {
				return true
			}
		}
		return false
	}); err != nil {
		return rec, fmt.Errorf("b: %w", err)
	}
	sent := len(events(b.snapshot(), "sent"))
	if err := a.waitFor(ctx, time.Minute, "every message", func(ls []string) bool { return len(events(ls, "recv")) >= sent }); err != nil {
		return rec, fmt.Errorf("a: %w", err)
	}
	countDelivery(&rec, sent, events(a.snapshot(), "recv"))
	mark("%s", rec)
	return rec, nil
}

func (l *chatLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lines
}

// countDelivery checks that messages 1..sent arrived exactly once, in order.
func countDelivery(rec *Recovery, sent int, recv []chatEvent) {
	rec.Sent, rec.Received = sent, len(recv)
	seen := make(map[int]int)
	prev := 0
	for _, e := range recv {
		n, _ := strconv.Atoi(e.value)
		seen[n]++
		if n != prev+1 {
			rec.Reordered++
		}
		prev = n
	}
	for i := 1; i <= sent; i++ {
		switch c := seen[i]; {
		case c == 0:
			rec.Lost++
		case c > 1:
			rec.Dup += c - 1
		}
	}
}

// pathAfter matches a "path WANT" line timestamped after t that follows,
// after t, a line of another path (or is the first, for a zero t).
func pathAfter(t time.Time, want string) func([]string) bool {
	return func(ls []string) bool {
		_, ok := firstPathAfter(ls, t, want)
		return ok
	}
}

func firstPathAfter(ls []string, t time.Time, want string) (time.Time, bool) {
	left := t.IsZero()
	for _, e := range events(ls, "path") {
		if !e.at.After(t) {
			continue
		}
		if e.value != want {
			left = true
		} else if left {
			return e.at, true
		}
	}
	return time.Time{}, false
}

// firstSentAfter is the first message b sent after t; recvOf finds when a
// got it.
func firstSentAfter(ls []string, t time.Time) (string, bool) {
	for _, e := range events(ls, "sent") {
		if e.at.After(t) {
			return e.value, true
		}
	}
	return "", false
}

// waitResume waits until a has received a message b sent after t, and
// returns when, counted from t.
func waitResume(ctx context.Context, a, b *chatLog, t time.Time, d time.Duration) (time.Duration, error) {
	var got time.Time
	err := a.waitFor(ctx, d, "a message sent after the change", func(ls []string) bool {
		seq, ok := firstSentAfter(b.snapshot(), t)
		if !ok {
			return false
		}
		for _, e := range events(ls, "recv") {
			if e.value == seq {
				got = e.at
				return true
			}
		}
		return false
	})
	return got.Sub(t), err
}

func scenarioRenumber(ctx context.Context, lab *netlab.Lab, a, b *chatLog, rec *Recovery, mark func(string, ...any)) error {
	// The change comes at any moment of the peers' keepalive rounds: after
	// a random number of further messages (up to 3 s of them), so that runs
	// sample every phase, the worst included.
	more := len(events(a.snapshot(), "recv")) + rand.N(30)
	if err := a.waitFor(ctx, time.Minute, "more messages", func(ls []string) bool { return len(events(ls, "recv")) >= more }); err != nil {
		return err
	}
	t := time.Now()
	fresh, err := lab.Router("ra").Renumber(ctx)
	if err != nil {
		return err
	}
	mark("ra renumbered to %v", fresh)
	if rec.Resume, err = waitResume(ctx, a, b, t, 2*time.Minute); err != nil {
		return err
	}
	mark("messages again after %v", rec.Resume)
	if err := b.waitFor(ctx, 2*time.Minute, "a direct path again", pathAfter(t, "direct")); err != nil {
		return err
	}
	at, _ := firstPathAfter(b.snapshot(), t, "direct")
	rec.Direct = at.Sub(t)
	mark("direct again after %v", rec.Direct)
	return nil
}

// rebootOutage is the reboot scenario's WAN outage.
const rebootOutage = 10 * time.Second

func scenarioReboot(ctx context.Context, lab *netlab.Lab, a, b *chatLog, rec *Recovery, mark func(string, ...any)) error {
	mark("ra reboots, WAN down %v", rebootOutage)
	if err := lab.Router("ra").Reboot(ctx, rebootOutage); err != nil {
		return err
	}
	up := time.Now()
	mark("ra's link is back")
	var got time.Time
	err := a.waitFor(ctx, 2*time.Minute, "a message after the link came back", func(ls []string) bool {
		for _, e := range events(ls, "recv") {
			if e.at.After(up) {
				got = e.at
				return true
			}
		}
		return false
	})
	if err != nil {
		return err
	}
	rec.Resume = got.Sub(up)
	mark("messages again %v after the link came back", rec.Resume)
	if err := b.waitFor(ctx, 2*time.Minute, "a direct path again", pathAfter(up.Add(-rebootOutage), "direct")); err != nil {
		return err
	}
	at, _ := firstPathAfter(b.snapshot(), up.Add(-rebootOutage), "direct")
	rec.Direct = at.Sub(up)
	return nil
}

func scenarioRoam(ctx context.Context, lab *netlab.Lab, a, b *chatLog, rec *Recovery, mark func(string, ...any)) error {
	laptop := lab.Host("a")
	t := time.Now()
	if err := laptop.MoveTo(ctx, lab.Router("cafe")); err != nil {
		return err
	}
	mark("a moved to the symmetric café at %v", laptop.Addr())
	d, err := waitResume(ctx, a, b, t, 2*time.Minute)
	if err != nil {
		return err
	}
	mark("messages again after %v", d)
	// Theory: symmetric × port-restricted is relayed. Give the hole punch
	// its retries, then look.
	if err := b.waitFor(ctx, time.Minute, "a relayed path", pathAfter(t, "relayed")); err != nil {
		return err
	}
	settle := time.Now()
	if _, err := waitResume(ctx, a, b, settle.Add(5*time.Second), time.Minute); err != nil {
		return err
	}
	_, direct := firstPathAfter(b.snapshot(), t, "direct")
	rec.Relayed = !direct
	mark("in the café for %v: relayed %v", time.Since(t).Round(time.Second), rec.Relayed)
	home := time.Now()
	if err := laptop.MoveTo(ctx, lab.Router("ra")); err != nil {
		return err
	}
	mark("a back home at %v", laptop.Addr())
	if rec.Resume, err = waitResume(ctx, a, b, home, 2*time.Minute); err != nil {
		return err
	}
	mark("messages again after %v", rec.Resume)
	if err := b.waitFor(ctx, 2*time.Minute, "a direct path again", pathAfter(home, "direct")); err != nil {
		return err
	}
	at, _ := firstPathAfter(b.snapshot(), home, "direct")
	rec.Direct = at.Sub(home)
	mark("direct again after %v", rec.Direct)
	return nil
}

func scenarioIdle(ctx context.Context, lab *netlab.Lab, a, b *chatLog, idle time.Duration, rec *Recovery, mark func(string, ...any)) error {
	for _, r := range []string{"ra", "rb"} {
		if err := lab.Router(r).SetUDPTimeout(15 * time.Second); err != nil {
			return err
		}
	}
	b.send("pause")
	start := time.Now()
	mark("routers keep idle UDP mappings 15 s; the chat idles %v", idle)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(idle): // the silence is the test
	}
	end := time.Now()
	var during []string
	for _, e := range events(b.snapshot(), "path") {
		if e.at.After(start) {
			during = append(during, e.value)
		}
	}
	rec.IdleDirect = len(during) == 0
	b.send("run")
	d, err := waitResume(ctx, a, b, end, time.Minute)
	if err != nil {
		return err
	}
	mark("after %v idle: path events %v; next message in %v", idle, during, d)
	return nil
}
