package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// These tests drive the messenger as a user would: separate processes in
// plain mode, on 127.0.0.1 only, with mDNS off, introduced by invites.

var binary string

// patience bounds every wait for an event (a line of output): generous, since a
// loaded 2-core machine takes minutes where an idle one takes a second, and a
// wait that succeeds returns as soon as the line appears.
const patience = 4 * time.Minute

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "messenger-bin-*")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "messenger")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build messenger: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running messenger with its output lines.
type proc struct {
	t     *testing.T
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser

	mu    sync.Mutex
	lines []string
	grew  chan struct{}
	done  chan struct{}
}

func start(t *testing.T, name string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	return startCmd(t, name, cmd, cmd.Start)
}

// startCmd starts cmd with run (cmd.Start, or a lab host's Start) and collects
// its output lines.
func startCmd(t *testing.T, name string, cmd *exec.Cmd, run func() error) *proc {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{t: t, name: name, cmd: cmd, stdin: stdin, grew: make(chan struct{}, 1), done: make(chan struct{})}
	if err := run(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.grew <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		if t.Failed() {
			t.Logf("--- output of %s:\n%s", name, strings.Join(p.snapshot(), "\n"))
		}
	})
	return p
}

func (p *proc) snapshot() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// waitFor waits for a line matching re and returns its submatches.
func (p *proc) waitFor(re string, d time.Duration) []string {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(d)
	for {
		for _, l := range p.snapshot() {
			if m := rx.FindStringSubmatch(l); m != nil {
				return m
			}
		}
		select {
		case <-p.grew:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			p.t.Fatalf("%s: no line matching %q within %s", p.name, re, d)
		}
	}
}

// waitCount waits until n lines match re.
func (p *proc) waitCount(re string, n int, d time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for p.count(re) < n {
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: %d lines matching %q within %s, want %d", p.name, p.count(re), re, d, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *proc) count(re string) int {
	rx := regexp.MustCompile(re)
	n := 0
	for _, l := range p.snapshot() {
		if rx.MatchString(l) {
			n++
		}
	}
	return n
}

func (p *proc) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: write %q: %v", p.name, line, err)
	}
}

func (p *proc) quit() {
	p.t.Helper()
	p.send("/quit")
	p.stdin.Close()
	select {
	case <-p.done:
	case <-time.After(patience):
		p.t.Fatalf("%s did not quit", p.name)
	}
	p.cmd.Wait()
}

// interrupt stops a process as Ctrl+C would, and waits for it.
func (p *proc) interrupt() {
	p.t.Helper()
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(patience):
		p.t.Fatalf("%s did not stop on interrupt", p.name)
	}
	p.cmd.Wait()
}

func (p *proc) kill9() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	<-p.done
}

func (p *proc) invite() string {
	return p.waitFor(`^invite: (juxta1\S+)`, patience)[1]
}

func user(t *testing.T, name, dir string, extra ...string) *proc {
	args := append([]string{"-plain", "-loopback", "-name", name, "-dir", dir}, extra...)
	return start(t, name, args...)
}

// befriend makes a and b contacts: a asks, b accepts.
func befriend(t *testing.T, a, b *proc, aName, bName string) {
	t.Helper()
	a.send("/add " + b.invite() + " " + bName)
	m := b.waitFor(`^request: \S+ wants to be your contact; /accept (\S+)`, patience)
	b.send("/accept " + m[1])
	a.waitFor(`^contact: `+bName+` is online`, patience)
	b.waitFor(`^contact: `+aName+` is online`, patience)
}

func TestTwoMessengersChat(t *testing.T) {
	base := t.TempDir()
	alice := user(t, "alice", filepath.Join(base, "alice"))
	bob := user(t, "bob", filepath.Join(base, "bob"))
	befriend(t, alice, bob, "alice", "bob")

	alice.send("@bob hello bob, by peer ID")
	bob.waitFor(`^msg from alice: hello bob, by peer ID$`, patience)
	alice.waitFor(`^delivered to bob: hello bob, by peer ID$`, patience)
	bob.send("/open alice")
	alice.waitFor(`^read by bob: hello bob, by peer ID$`, patience)
	bob.send("@alice hi alice")
	alice.waitFor(`^msg from bob: hi alice$`, patience)

	// Presence travels.
	bob.send("/status busy in a meeting")
	alice.waitFor(`^contact: bob is busy: in a meeting$`, patience)
	bob.send("/status invisible")
	alice.waitFor(`^contact: bob is offline$`, patience)
	bob.send("@alice still here, invisibly")
	alice.waitFor(`^msg from bob: still here, invisibly$`, patience)

	// History is searchable.
	alice.send("/search PEER id")
	alice.waitFor(`you to bob: hello bob, by peer ID`, patience)
	alice.quit()
	bob.waitFor(`^contact: alice is offline$`, patience)
	bob.quit()
}

func TestContactMustAcceptFirst(t *testing.T) {
	base := t.TempDir()
	alice := user(t, "alice", filepath.Join(base, "alice"))
	eve := user(t, "eve", filepath.Join(base, "eve"))
	eve.send("/add " + alice.invite() + " alice")
	alice.waitFor(`^request: eve wants to be your contact`, patience)
	eve.send("@alice buy my stuff")
	eve.waitFor(`^error: .*has not accepted you yet`, patience)
	time.Sleep(time.Second)
	if n := alice.count(`^msg from`); n != 0 {
		t.Fatalf("alice received %d messages before accepting", n)
	}
	eve.send("/add not-an-invite")
	eve.waitFor(`^error: peer: not a juxta invite`, patience)
}

func TestOfflineMailbox(t *testing.T) {
	base := t.TempDir()
	spDir := filepath.Join(base, "sp")
	sp := start(t, "super-peer", "superpeer", "-loopback", "-port", "0", "-dir", spDir)
	spInvite := sp.waitFor(`^invite: (juxta1\S+)`, patience)[1]

	alice := user(t, "alice", filepath.Join(base, "alice"), "-superpeer", spInvite)
	bob := user(t, "bob", filepath.Join(base, "bob"), "-superpeer", spInvite)
	befriend(t, alice, bob, "alice", "bob")
	bob.quit()
	alice.waitFor(`^contact: bob is offline$`, patience)

	secrets := []string{"the first secret", "the second secret", "the third secret", "the fourth secret", "the fifth secret"}
	for _, s := range secrets {
		alice.send("@bob " + s)
	}
	alice.waitCount(`^sent to bob: the \w+ secret$`, len(secrets), patience)
	alice.quit()

	// The super-peer holds them, sealed: none of the plaintext is in its store.
	store, err := os.ReadFile(filepath.Join(spDir, "superpeer", "mailbox.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		if bytes.Contains(store, []byte(s)) || bytes.Contains(store, []byte("secret")) {
			t.Fatalf("the super-peer's store contains plaintext %q", s)
		}
	}

	// Bob comes back alone: all five, decrypted, once each, in order.
	bob = user(t, "bob", filepath.Join(base, "bob"), "-superpeer", spInvite)
	for _, s := range secrets {
		bob.waitFor(`^msg from alice: `+s+`$`, patience)
	}
	var got []string
	for _, l := range bob.snapshot() {
		if strings.HasPrefix(l, "msg from alice: ") {
			got = append(got, strings.TrimPrefix(l, "msg from alice: "))
		}
	}
	if strings.Join(got, "|") != strings.Join(secrets, "|") {
		t.Fatalf("bob got %q, want %q in order, once each", got, secrets)
	}
	// Fetched and acknowledged: the mailbox deletes them.
	time.Sleep(500 * time.Millisecond)
	bob.quit()
	sp.interrupt()
}

func TestKillDuringBurst(t *testing.T) {
	base := t.TempDir()
	aliceDir := filepath.Join(base, "alice")
	alice := user(t, "alice", aliceDir)
	bob := user(t, "bob", filepath.Join(base, "bob"))
	befriend(t, alice, bob, "alice", "bob")

	const n = 100
	go func() {
		for i := 1; i <= n; i++ {
			if _, err := io.WriteString(alice.stdin, fmt.Sprintf("@bob burst %03d\n", i)); err != nil {
				return
			}
		}
	}()
	alice.waitFor(`^sent to bob: burst \d+$`, patience)
	time.Sleep(30 * time.Millisecond) // somewhere in the middle of the burst
	alice.kill9()

	// What the UI showed as sent before the kill.
	sent := map[int]bool{}
	for _, l := range alice.snapshot() {
		var k int
		if _, err := fmt.Sscanf(l, "sent to bob: burst %d", &k); err == nil {
			sent[k] = true
		}
	}
	if len(sent) == 0 {
		t.Fatal("nothing was shown as sent before the kill")
	}
	t.Logf("killed after %d shown as sent", len(sent))

	// After a restart, the outbox goes out again; bob keeps each message once.
	alice2 := user(t, "alice", aliceDir)
	_ = alice2
	for k := range sent {
		bob.waitFor(fmt.Sprintf(`^msg from alice: burst %03d$`, k), patience)
	}
	time.Sleep(2 * time.Second) // let any duplicate show itself
	for k := 1; k <= n; k++ {
		if c := bob.count(fmt.Sprintf(`^msg from alice: burst %03d$`, k)); c > 1 {
			t.Fatalf("message %d delivered %d times", k, c)
		}
	}
	for k := range sent {
		if bob.count(fmt.Sprintf(`^msg from alice: burst %03d$`, k)) != 1 {
			t.Fatalf("message %d was shown as sent but not delivered exactly once", k)
		}
	}
}
