package farm

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// Acceptance 1: 1,000 units on 5 providers, one lying on 30% of its results,
// quorum 2: no wrong result is accepted and the liar ends distrusted.
func TestQuorumLiar(t *testing.T) {
	r := newRig(t, SchedulerConfig{})
	for i, id := range []string{"p1", "p2", "p3", "p4", "liar"} {
		f := square
		if id == "liar" {
			f = liar
		}
		r.provider(id, 2+i%2, testProfile(id), map[string]NativeFunc{"square": f})
	}
	ctx := context.Background()
	job, err := r.s.Submit(ctx, "client", JobSpec{Name: "squares", Task: Task{Kind: KindNative, Name: "square"}}, squareUnits(1000, 2))
	if err != nil {
		t.Fatal(err)
	}
	res := r.collect("client", job, 3*time.Minute)
	if len(res) != 1000 {
		t.Fatalf("%d results, want 1000", len(res))
	}
	seen := map[uint32]bool{}
	for _, x := range res {
		want, _ := square(ctx, squareInput(int(x.Unit)))
		if x.Err != "" || !bytes.Equal(x.Output, want) {
			t.Fatalf("unit %d accepted %x (err %q), want %x", x.Unit, x.Output, x.Err, want)
		}
		if seen[x.Unit] {
			t.Fatalf("unit %d accepted twice", x.Unit)
		}
		seen[x.Unit] = true
	}
	st := r.s.Stats()
	for _, p := range st.Providers {
		t.Logf("%s valid %d invalid %d distrusted %v", p.ID, p.Valid, p.Invalid, p.Distrusted)
		if (p.ID == "liar") != p.Distrusted {
			t.Errorf("provider %s distrusted=%v", p.ID, p.Distrusted)
		}
	}
}

// Acceptance 5: a unit needing more memory than any provider has stays
// queued with a clear reason and is never assigned; the others run.
func TestMatchmakingUnsatisfiable(t *testing.T) {
	r := newRig(t, SchedulerConfig{Tick: 50 * time.Millisecond})
	r.provider("small", 2, testProfile("small"), map[string]NativeFunc{"square": square})
	us := squareUnits(20, 1)
	us[7].Req.MinMemory = 1 << 50
	us[7].Priority = 10 // first in line, and still never assigned
	job, err := r.s.Submit(context.Background(), "c", JobSpec{Task: Task{Kind: KindNative, Name: "square"}}, us)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		rs, _, _ := r.s.Results("c", job, 0, 100)
		info, _ := r.s.Unit("c", job, 7)
		if len(rs) == 19 && strings.Contains(info.Reason, "requirements") {
			if info.State != Queued || info.Instances != 0 {
				t.Fatalf("unit 7: %+v", info)
			}
			t.Logf("unit 7 waits: %s", info.Reason)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d results; unit 7 %+v", len(rs), info)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A scheduler reopened from its directory continues where it stopped: the
// committed results are there once, and the rest completes.
func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	r := newRig(t, SchedulerConfig{Dir: dir})
	job, err := r.s.Submit(context.Background(), "c", JobSpec{Task: Task{Kind: KindNative, Name: "square"}}, squareUnits(200, 1))
	if err != nil {
		t.Fatal(err)
	}
	r.provider("p", 2, testProfile("p"), map[string]NativeFunc{"square": square})
	deadline := time.Now().Add(time.Minute)
	for {
		rs, _, _ := r.s.Results("c", job, 0, 1000)
		if len(rs) >= 50 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no progress")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r.close()
	r2 := newRig(t, SchedulerConfig{Dir: dir})
	r2.provider("p", 2, testProfile("p"), map[string]NativeFunc{"square": square})
	res := r2.collect("c", job, time.Minute)
	seen := map[uint32]bool{}
	for _, x := range res {
		if seen[x.Unit] {
			t.Fatalf("unit %d twice", x.Unit)
		}
		seen[x.Unit] = true
	}
	if len(seen) != 200 {
		t.Fatalf("%d units, want 200", len(seen))
	}
}
