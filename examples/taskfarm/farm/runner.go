package farm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// NativeFunc is a task written in Go, registered by name on providers of
// trusted farms. It must be deterministic: quorum compares outputs bit for bit.
type NativeFunc func(ctx context.Context, input []byte) ([]byte, error)

// Executor runs units: wasip1 modules in wazero's sandbox, or registered
// native functions. One Executor serves all of a provider's slots.
//
// A wasm unit sees only its input on stdin and writes its output to stdout;
// it gets no filesystem, no network, no environment, no arguments, and
// wazero's deterministic clocks and random source. Its linear memory is
// capped by Task.MemoryPages and its run by Task.Timeout: the module is
// closed when the timeout passes, even inside a tight loop.
type Executor struct {
	cache   wazero.CompilationCache
	modules func(ctx context.Context, ref Ref, size int64) ([]byte, error)

	mu       sync.Mutex
	natives  map[string]NativeFunc        // guarded by mu
	runtimes map[uint32]wazero.Runtime    // guarded by mu; one per memory cap
	compiled map[compiledKey]*compileOnce // guarded by mu
	closed   bool                         // guarded by mu
}

type compiledKey struct {
	ref   Ref
	pages uint32
}

type compileOnce struct {
	done chan struct{}
	mod  wazero.CompiledModule
	err  error
}

// maxCompiled bounds the compiled modules an executor keeps.
const maxCompiled = 32

// MaxModule bounds a wasm module a provider fetches.
const MaxModule = 64 << 20

// NewExecutor returns an executor that keeps compiled modules in cacheDir
// ("" for memory only) and fetches modules with fetch.
func NewExecutor(cacheDir string, fetch func(ctx context.Context, ref Ref, size int64) ([]byte, error)) (*Executor, error) {
	e := &Executor{modules: fetch, natives: map[string]NativeFunc{}, runtimes: map[uint32]wazero.Runtime{}, compiled: map[compiledKey]*compileOnce{}}
	if cacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cacheDir)
		if err != nil {
			return nil, fmt.Errorf("farm: compilation cache: %w", err)
		}
		e.cache = c
	} else {
		e.cache = wazero.NewCompilationCache()
	}
	return e, nil
}

// Register makes a native task available under name.
func (e *Executor) Register(name string, f NativeFunc) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.natives[name] = f
}

// Natives lists the registered native task names.
func (e *Executor) Natives() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for n := range e.natives {
		out = append(out, n)
	}
	return out
}

// Close releases the runtimes and the compilation cache.
func (e *Executor) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return fmt.Errorf("farm: executor: %w", ErrClosed)
	}
	e.closed = true
	rts := e.runtimes
	e.runtimes = nil
	e.mu.Unlock()
	ctx := context.Background()
	for _, rt := range rts {
		rt.Close(ctx)
	}
	return e.cache.Close(ctx)
}

// Run runs one unit of task t on input and returns its output.
func (e *Executor) Run(ctx context.Context, t Task, input []byte) ([]byte, error) {
	if err := t.normalize(); err != nil {
		return nil, err
	}
	if t.Kind == KindNative {
		ctx, cancel := context.WithTimeout(ctx, t.Timeout)
		defer cancel()
		e.mu.Lock()
		f := e.natives[t.Name]
		e.mu.Unlock()
		if f == nil {
			return nil, fmt.Errorf("%w: %q", ErrNoTask, t.Name)
		}
		out, err := f(ctx, input)
		if err == nil && ctx.Err() != nil {
			err = fmt.Errorf("%w: stopped at its %v limit", ErrSandbox, t.Timeout)
		}
		return out, err
	}
	return e.runWasm(ctx, t, input)
}

func (e *Executor) runWasm(ctx context.Context, t Task, input []byte) ([]byte, error) {
	rt, cm, err := e.compile(ctx, t)
	if err != nil {
		return nil, err
	}
	// The wall-clock limit is the run's, not the fetch's and compilation's.
	ctx, cancel := context.WithTimeout(ctx, t.Timeout)
	defer cancel()
	stdout := &capped{max: MaxOutput}
	stderr := &capped{max: 4 << 10}
	cfg := wazero.NewModuleConfig().WithName("").WithStdin(bytes.NewReader(input)).WithStdout(stdout).WithStderr(stderr).WithStartFunctions("_start")
	mod, err := rt.InstantiateModule(ctx, cm, cfg)
	if mod != nil {
		mod.Close(context.Background())
	}
	var exit *sys.ExitError
	switch {
	case errors.As(err, &exit) && exit.ExitCode() == 0:
	case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeDeadlineExceeded || exit.ExitCode() == sys.ExitCodeContextCanceled):
		if ctx.Err() == context.DeadlineExceeded {
			return nil, fmt.Errorf("%w: stopped at its %v limit", ErrSandbox, t.Timeout)
		}
		return nil, fmt.Errorf("%w: cancelled", ErrSandbox)
	case err != nil:
		return nil, fmt.Errorf("%w: %v%s", ErrSandbox, err, tail(stderr))
	}
	if stdout.over {
		return nil, fmt.Errorf("%w: output exceeds %d bytes", ErrSandbox, MaxOutput)
	}
	return stdout.buf.Bytes(), nil
}

func tail(c *capped) string {
	if c.buf.Len() == 0 {
		return ""
	}
	lines := bytes.SplitN(bytes.TrimSpace(c.buf.Bytes()), []byte("\n"), 3)
	return "; stderr: " + clip(string(bytes.Join(lines[:min(2, len(lines))], []byte(" | "))), 300)
}

// compile returns the runtime for t's memory cap and the compiled module,
// compiling once per module and cap (from the on-disk cache when it can).
func (e *Executor) compile(ctx context.Context, t Task) (wazero.Runtime, wazero.CompiledModule, error) {
	k := compiledKey{t.Module, t.MemoryPages}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, nil, ErrClosed
	}
	rt := e.runtimes[t.MemoryPages]
	if rt == nil {
		rc := wazero.NewRuntimeConfig().WithCompilationCache(e.cache).WithMemoryLimitPages(t.MemoryPages).WithCloseOnContextDone(true)
		rt = wazero.NewRuntimeWithConfig(context.Background(), rc)
		if _, err := wasi_snapshot_preview1.Instantiate(context.Background(), rt); err != nil {
			e.mu.Unlock()
			return nil, nil, fmt.Errorf("farm: wasi: %w", err)
		}
		e.runtimes[t.MemoryPages] = rt
	}
	c := e.compiled[k]
	if c == nil {
		if len(e.compiled) >= maxCompiled {
			for old, oc := range e.compiled {
				select {
				case <-oc.done:
					if oc.mod != nil {
						oc.mod.Close(context.Background())
					}
					delete(e.compiled, old)
				default:
				}
				break
			}
		}
		c = &compileOnce{done: make(chan struct{})}
		e.compiled[k] = c
		e.mu.Unlock()
		c.mod, c.err = e.compileModule(ctx, rt, t)
		close(c.done)
		if c.err != nil {
			e.mu.Lock()
			delete(e.compiled, k)
			e.mu.Unlock()
		}
	} else {
		e.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	return rt, c.mod, c.err
}

func (e *Executor) compileModule(ctx context.Context, rt wazero.Runtime, t Task) (wazero.CompiledModule, error) {
	if e.modules == nil {
		return nil, fmt.Errorf("%w: no way to fetch module %s", ErrNoBlob, t.Module)
	}
	if t.Size > MaxModule {
		return nil, fmt.Errorf("%w: module of %d bytes (at most %d)", ErrTooLarge, t.Size, MaxModule)
	}
	bin, err := e.modules(ctx, t.Module, MaxModule)
	if err != nil {
		return nil, fmt.Errorf("farm: fetch module %s: %w", t.Module, err)
	}
	if RefOf(bin) != t.Module {
		return nil, fmt.Errorf("farm: module %s does not match its hash", t.Module)
	}
	cm, err := rt.CompileModule(context.WithoutCancel(ctx), bin)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid wasm module: %v", ErrSandbox, err)
	}
	return cm, nil
}

// capped is a writer that keeps at most max bytes and notes overflow.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if c.buf.Len()+len(p) > c.max {
		c.over = true
		p = p[:max(0, c.max-c.buf.Len())]
		c.buf.Write(p)
		return 0, errors.New("output limit")
	}
	return c.buf.Write(p)
}

// measure times f.
func measure(f func()) time.Duration {
	t := time.Now()
	f()
	return time.Since(t)
}
