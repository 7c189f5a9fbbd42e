package farm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/examples/taskfarm/mandel"
)

func noop(_ context.Context, in []byte) ([]byte, error) { return in, nil }

// runJob submits units to a rig and waits for all results.
func runJob(b *testing.B, r *rig, spec JobSpec, units []UnitSpec) time.Duration {
	start := time.Now()
	job, err := r.s.Submit(context.Background(), "c", spec, units)
	if err != nil {
		b.Fatal(err)
	}
	if res := r.collect("c", job, 5*time.Minute); len(res) != len(units) {
		b.Fatalf("%d results", len(res))
	}
	return time.Since(start)
}

// Bench 7: durable dispatch of no-op units through one scheduler (every
// grant and every result committed to bbolt with fsync before it is
// acknowledged), against BOINC's ~100 units/s; the baseline row is the same
// writes with one fsync'd transaction per transition, as without group
// commit.
func BenchmarkDurableDispatch(b *testing.B) {
	const n = 4000
	b.Run("group-commit", func(b *testing.B) {
		for range b.N {
			r := newRig(&testing.T{}, SchedulerConfig{Dir: b.TempDir()})
			for i := range 4 {
				r.provider(fmt.Sprint("p", i), 8, testProfile("p"), map[string]NativeFunc{"noop": noop})
			}
			el := runJob(b, r, JobSpec{Task: Task{Kind: KindNative, Name: "noop"}}, squareUnits(n, 1))
			st := r.s.Stats()
			r.close()
			b.ReportMetric(n/el.Seconds(), "units/s")
			b.ReportMetric(float64(st.Writes)/float64(st.Commits), "writes/fsync")
			b.ReportMetric(100, "BOINC-units/s")
		}
	})
	b.Run("fsync-per-transition", func(b *testing.B) {
		for range b.N {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, &bolt.Options{NoFreelistSync: true})
			if err != nil {
				b.Fatal(err)
			}
			db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bUnits); return err })
			rec := mustEnc(unitRec{State: Assigned, Quorum: 1, Need: 1, Inst: []instRec{{Prov: "p", Attempt: 1, State: iActive}}})
			start := time.Now()
			const m = 500
			for i := range m {
				for range 2 { // grant, then result
					db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bUnits).Put(unitKey(jobKey{}, uint32(i)), rec) })
				}
			}
			b.ReportMetric(m/time.Since(start).Seconds(), "units/s")
			db.Close()
		}
	})
}

// Bench 8: 100 ms (sleeping) units over 8 provider slots: ideal makespan
// over measured.
func BenchmarkSleepEfficiency(b *testing.B) {
	const n, slots = 320, 8
	sleep := func(ctx context.Context, in []byte) ([]byte, error) {
		select {
		case <-time.After(100 * time.Millisecond):
			return in, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	for range b.N {
		r := newRig(&testing.T{}, SchedulerConfig{Dir: b.TempDir()})
		r.provider("a", slots/2, testProfile("a"), map[string]NativeFunc{"sleep": sleep})
		r.provider("b", slots/2, testProfile("b"), map[string]NativeFunc{"sleep": sleep})
		el := runJob(b, r, JobSpec{Task: Task{Kind: KindNative, Name: "sleep"}}, squareUnits(n, 1))
		r.close()
		ideal := time.Duration(n/slots) * 100 * time.Millisecond
		b.ReportMetric(100*ideal.Seconds()/el.Seconds(), "%ideal")
		b.ReportMetric(el.Seconds(), "makespan-s")
	}
}

// Bench 9: replication overhead (instances run per unit, which is CPU per
// unit) of quorum-2 jobs: adaptive replication after a warm-up job, against
// full replication.
func BenchmarkReplication(b *testing.B) {
	for _, adaptive := range []bool{true, false} {
		name := map[bool]string{true: "adaptive", false: "full-quorum-2"}[adaptive]
		b.Run(name, func(b *testing.B) {
			for range b.N {
				r := newRig(&testing.T{}, SchedulerConfig{Dir: b.TempDir()})
				var ws []*Worker
				for i := range 4 {
					ws = append(ws, r.provider(fmt.Sprint("p", i), 4, testProfile("p"), map[string]NativeFunc{"square": square}))
				}
				spec := JobSpec{Task: Task{Kind: KindNative, Name: "square"}, Adaptive: adaptive}
				runJob(b, r, spec, squareUnits(400, 2)) // warm-up: providers earn trust
				before := ran(ws)
				const n = 2000
				runJob(b, r, spec, squareUnits(n, 2))
				r.close()
				b.ReportMetric(float64(ran(ws)-before)/n, "runs/unit")
			}
		})
	}
}

func ran(ws []*Worker) uint64 {
	var t uint64
	for _, w := range ws {
		n, _ := w.Ran()
		t += n
	}
	return t
}

// Bench 10: one 64×64 Mandelbrot tile (500 iterations) natively and as
// wasm in the sandbox; the last row is wazero without WithCloseOnContextDone
// (which the sandbox needs to stop runaway loops), to show its cost.
func BenchmarkMandelTile(b *testing.B) {
	tile := mandel.Tile{X0: -2.2, Y0: -1.2, Step: 3.2 / 64, W: 64, H: 64, MaxIter: 500}
	in := tile.Marshal()
	want := mandel.Render(tile)
	b.Run("native", func(b *testing.B) {
		for range b.N {
			mandel.Render(tile)
		}
	})
	mod := buildTile(b)
	ex, err := NewExecutor(b.TempDir(), mapFetch{RefOf(mod): mod}.get)
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Close()
	task := Task{Kind: KindWasm, Module: RefOf(mod), Size: int64(len(mod))}
	if out, err := ex.Run(context.Background(), task, in); err != nil || !bytes.Equal(out, want) {
		b.Fatalf("wasm tile differs from native: %v", err)
	}
	b.Run("wasm-sandbox", func(b *testing.B) {
		for range b.N {
			ex.Run(context.Background(), task, in)
		}
	})
	b.Run("wasm-no-close-on-ctx", func(b *testing.B) {
		ctx := context.Background()
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithMemoryLimitPages(1024))
		defer rt.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, rt)
		cm, err := rt.CompileModule(ctx, mod)
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for range b.N {
			var out bytes.Buffer
			m, _ := rt.InstantiateModule(ctx, cm, wazero.NewModuleConfig().WithName("").WithStdin(bytes.NewReader(in)).WithStdout(&out))
			if m != nil {
				m.Close(ctx)
			}
		}
	})
	b.Run("compile-cold", func(b *testing.B) {
		for range b.N {
			ex2, _ := NewExecutor("", mapFetch{RefOf(mod): mod}.get)
			ex2.Run(context.Background(), task, in)
			ex2.Close()
		}
	})
	cache := b.TempDir()
	warm, _ := NewExecutor(cache, mapFetch{RefOf(mod): mod}.get)
	warm.Run(context.Background(), task, in)
	warm.Close()
	b.Run("compile-from-cache", func(b *testing.B) {
		for range b.N {
			ex2, _ := NewExecutor(cache, mapFetch{RefOf(mod): mod}.get)
			ex2.Run(context.Background(), task, in)
			ex2.Close()
		}
	})
}

// buildTile builds the demo's tile program for wasip1.
func buildTile(b *testing.B) []byte {
	out := filepath.Join(b.TempDir(), "tile.wasm")
	cmd := exec.Command("go", "build", "-o", out, mandel.Package)
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v\n%s", err, o)
	}
	mod, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	return mod
}
