package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"
)

// These tests run the command as its users do: separate processes on
// 127.0.0.1 with mDNS off.

var bin, cacheDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "taskfarm-bin-*")
	if err != nil {
		panic(err)
	}
	bin, cacheDir = filepath.Join(dir, "taskfarm"), filepath.Join(dir, "cache")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build taskfarm: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running command with its output lines.
type proc struct {
	t     *testing.T
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	times []time.Time
	grew  chan struct{}
	done  chan struct{}
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "."
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	p := &proc{t: t, cmd: cmd, grew: make(chan struct{}, 1), done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go p.read(out)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			p.mu.Lock()
			t.Logf("--- %v:\n%s", args[:1], bytes.Join(func() [][]byte {
				var b [][]byte
				for _, l := range p.lines {
					b = append(b, []byte(l))
				}
				return b
			}(), []byte("\n")))
			p.mu.Unlock()
		}
	})
	return p
}

func (p *proc) read(r io.Reader) {
	defer close(p.done)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		p.mu.Lock()
		p.lines = append(p.lines, sc.Text())
		p.times = append(p.times, time.Now())
		p.mu.Unlock()
		select {
		case p.grew <- struct{}{}:
		default:
		}
	}
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		<-p.done
	}
}

// waitFor waits for a line matching re from line from on and returns its
// submatches, its index and when it was read.
func (p *proc) waitFor(re string, from int, d time.Duration) ([]string, int, time.Time) {
	p.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(d)
	for {
		p.mu.Lock()
		for i := from; i < len(p.lines); i++ {
			if m := rx.FindStringSubmatch(p.lines[i]); m != nil {
				at := p.times[i]
				p.mu.Unlock()
				return m, i, at
			}
		}
		p.mu.Unlock()
		select {
		case <-p.grew:
		case <-p.done:
			p.mu.Lock()
			n := len(p.lines)
			p.mu.Unlock()
			if n == from || !p.matchFrom(rx, from) {
				p.t.Fatalf("the process ended without a line matching %q", re)
			}
		case <-deadline:
			p.t.Fatalf("no line matching %q within %v", re, d)
		}
	}
}

func (p *proc) matchFrom(rx *regexp.Regexp, from int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := from; i < len(p.lines); i++ {
		if rx.MatchString(p.lines[i]) {
			return true
		}
	}
	return false
}

// Acceptance 11: the demo's PNG is byte-identical across runs and provider
// counts (tiles land in any order, from any provider).
func TestDemoPNGIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the wasm module and runs the demo twice")
	}
	dir := t.TempDir()
	var pngs [][]byte
	for _, n := range []string{"1", "3"} {
		out := filepath.Join(dir, "m"+n+".png")
		p := start(t, "demo", "-providers", n, "-size", "128x80", "-tile", "32", "-iter", "300", "-plain", "-cache", cacheDir, "-out", out)
		p.waitFor(`^done: 12 tiles \(0 failed\)`, 0, 5*time.Minute)
		<-p.done
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		pngs = append(pngs, b)
	}
	if !bytes.Equal(pngs[0], pngs[1]) {
		t.Fatal("the PNG differs between 1 and 3 providers")
	}
}

var _ = context.Background
