package farm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// square is the test task: the input's number squared, as 8 bytes.
func square(_ context.Context, in []byte) ([]byte, error) {
	if len(in) != 8 {
		return nil, fmt.Errorf("want 8 bytes, got %d", len(in))
	}
	v := binary.BigEndian.Uint64(in)
	return binary.BigEndian.AppendUint64(nil, v*v), nil
}

func squareInput(i int) []byte { return binary.BigEndian.AppendUint64(nil, uint64(i)) }

// liar answers wrong for 30% of inputs (chosen by hash, so stable).
func liar(ctx context.Context, in []byte) ([]byte, error) {
	h := sha256.Sum256(in)
	if h[0]%10 < 3 {
		return []byte("lies-lies"), nil
	}
	return square(ctx, in)
}

// rig is a scheduler with in-process providers.
type rig struct {
	t      *testing.T
	s      *Scheduler
	dir    string
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	stops  map[string]context.CancelFunc
}

func newRig(t *testing.T, cfg SchedulerConfig) *rig {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	s, err := OpenScheduler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{t: t, s: s, dir: cfg.Dir, ctx: ctx, cancel: cancel, stops: map[string]context.CancelFunc{}}
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	r.cancel()
	r.wg.Wait()
	r.s.Close()
}

func testProfile(name string) Profile {
	return Profile{Name: name, Cores: 4, OS: "linux", Arch: "amd64", Memory: 8 << 30, DiskFree: 100 << 30, Score: RefScore}
}

// provider starts an in-process provider with natives registered.
func (r *rig) provider(id string, slots int, prof Profile, natives map[string]NativeFunc) *Worker {
	r.t.Helper()
	ex, err := NewExecutor("", nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for n, f := range natives {
		ex.Register(n, f)
	}
	w := NewWorker(ex, slots)
	ctx, cancel := context.WithCancel(r.ctx)
	r.mu.Lock()
	r.stops[id] = cancel
	r.mu.Unlock()
	r.wg.Add(2)
	go func() { defer r.wg.Done(); w.Run(ctx) }()
	go func() {
		defer r.wg.Done()
		defer ex.Close()
		w.ServeLocal(ctx, r.s, id, prof)
		<-ctx.Done()
	}()
	return w
}

func (r *rig) stop(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stops[id]()
}

// collect reads every result of a job until it ends or the timeout passes.
func (r *rig) collect(owner, job string, d time.Duration) []Result {
	r.t.Helper()
	var out []Result
	var after uint64
	deadline := time.After(d)
	for {
		ch := r.s.Changed()
		rs, done, err := r.s.Results(owner, job, after, 1000)
		if err != nil {
			r.t.Fatal(err)
		}
		out = append(out, rs...)
		if len(rs) > 0 {
			after = rs[len(rs)-1].Seq
		}
		if done {
			return out
		}
		if len(rs) > 0 {
			continue
		}
		select {
		case <-ch:
		case <-time.After(200 * time.Millisecond):
		case <-deadline:
			r.t.Fatalf("job %s: %d results after %v; stats %+v", job, len(out), d, r.s.Stats().Units)
		}
	}
}

func squareUnits(n, quorum int) []UnitSpec {
	us := make([]UnitSpec, n)
	for i := range us {
		us[i] = UnitSpec{Input: squareInput(i), Quorum: quorum}
	}
	return us
}
