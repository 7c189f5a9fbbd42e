package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// chatBin builds the command once per test into a temporary directory.
func chatBin(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chat")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func start(t *testing.T, ctx context.Context, bin string, args ...string) *proc {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		defer close(p.lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			p.lines <- s.Text()
		}
	}()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return p
}

func (p *proc) next(t *testing.T, ctx context.Context) string {
	t.Helper()
	select {
	case l, ok := <-p.lines:
		if !ok {
			t.Fatal("the chat ended early")
		}
		return l
	case <-ctx.Done():
		t.Fatal("no line from the chat")
	}
	return ""
}

// TestTwoProcesses runs the chat as two processes on loopback: the second
// dials the first's invite, and lines go both ways.
func TestTwoProcesses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := chatBin(t)
	a := start(t, ctx, bin, "-loopback")
	invite, ok := strings.CutPrefix(a.next(t, ctx), "invite: ")
	if !ok || !strings.HasPrefix(invite, "juxta2") {
		t.Fatalf("first line is not an invite naming a pipe: %q", invite)
	}
	b := start(t, ctx, bin, "-loopback", invite)
	if l := b.next(t, ctx); !strings.HasPrefix(l, "invite: ") {
		t.Fatalf("b's first line %q", l)
	}
	io.WriteString(b.in, "hello from b\n")
	if got := a.next(t, ctx); got != "hello from b" {
		t.Fatalf("a got %q", got)
	}
	io.WriteString(a.in, "hello from a\n")
	if got := b.next(t, ctx); got != "hello from a" {
		t.Fatalf("b got %q", got)
	}
	// End of input ends each chat cleanly.
	a.in.Close()
	b.in.Close()
	for _, p := range []*proc{a, b} {
		if err := p.cmd.Wait(); err != nil {
			t.Fatalf("exit: %v", err)
		}
	}
}

// TestCommandLine: -h exits 0 with usage on stderr; an extra argument or an
// unknown flag exits 2 with the reason on stderr.
func TestCommandLine(t *testing.T) {
	bin := chatBin(t)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-h"}, 0, "usage: chat"},
		{[]string{"--help"}, 0, "usage: chat"},
		{[]string{"-loopback", "one", "two"}, 2, "too many arguments: two"},
		{[]string{"-nosuchflag"}, 2, "flag provided but not defined"},
	} {
		cmd := exec.Command(bin, c.args...)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(stderr.String(), c.want) || len(out) != 0 {
			t.Errorf("chat %v: exit %d, stdout %q, stderr %q; want exit %d and %q on stderr", c.args, code, out, stderr.String(), c.code, c.want)
		}
	}
}

// TestREADMEShowsThisFile: the README's copy of the chat is this file.
func TestREADMEShowsThisFile(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```\n") {
		t.Fatal("README.md does not show examples/chat/main.go as it is; copy the file into its go block")
	}
	head := strings.Join(strings.SplitN(string(readme), "\n", 60)[:59], "\n")
	if !strings.Contains(head, "package main") {
		t.Fatal("the chat is not on the README's first screen (first 60 lines)")
	}
}

// TestThirtyLines: the chat stays at most 30 lines without blanks and
// comments, and imports nothing from libp2p.
func TestThirtyLines(t *testing.T) {
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(src), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "//") {
			n++
		}
	}
	if n > 30 {
		t.Fatalf("%d lines, limit 30", n)
	}
	if strings.Contains(string(src), "libp2p") || strings.Contains(string(src), "/internal/") {
		t.Fatal("the chat imports libp2p or internal packages")
	}
}
