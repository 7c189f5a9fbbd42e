package labrecover

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func line(word, value string, at time.Time) string {
	return fmt.Sprintf("%s %s %d", word, value, at.UnixNano())
}

// Delivery counts every message lost, duplicated and out of order.
func TestCountDelivery(t *testing.T) {
	t0 := time.Unix(1000, 0)
	var recv []string
	for _, n := range []string{"1", "2", "2", "4", "3"} {
		recv = append(recv, line("recv", n, t0))
	}
	var rec Recovery
	countDelivery(&rec, 5, events(recv, "recv"))
	if rec.Sent != 5 || rec.Received != 5 || rec.Lost != 1 || rec.Dup != 1 || rec.Reordered != 3 {
		t.Errorf("got %+v", rec)
	}
	rec = Recovery{}
	countDelivery(&rec, 2, events([]string{line("recv", "1", t0), line("recv", "2", t0), "recv 3 notanumber", "noise"}, "recv"))
	if rec.Lost != 0 || rec.Dup != 0 || rec.Reordered != 0 || rec.Received != 2 {
		t.Errorf("got %+v", rec)
	}
}

// A path counts as back only after another path came between.
func TestFirstPathAfter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ls := []string{
		line("path", "direct", t0.Add(1*time.Second)),
		line("path", "direct", t0.Add(3*time.Second)), // still the old one
		line("path", "relayed", t0.Add(4*time.Second)),
		line("path", "direct", t0.Add(5*time.Second)),
	}
	if at, ok := firstPathAfter(ls, t0.Add(2*time.Second), "direct"); !ok || !at.Equal(t0.Add(5*time.Second)) {
		t.Errorf("direct again at %v, %v; want %v", at, ok, t0.Add(5*time.Second))
	}
	if at, ok := firstPathAfter(ls, time.Time{}, "direct"); !ok || !at.Equal(t0.Add(time.Second)) {
		t.Errorf("first direct at %v, %v", at, ok)
	}
	if _, ok := firstPathAfter(ls, t0.Add(5*time.Second), "direct"); ok {
		t.Error("a direct path after the last line")
	}
}

// Run refuses what it cannot run before it builds a lab (no root needed).
func TestRunRefuses(t *testing.T) {
	ctx := context.Background()
	if _, err := Run(ctx, "flood", Options{}); err == nil || !strings.Contains(err.Error(), "unknown scenario") {
		t.Errorf("unknown scenario: %v", err)
	}
	if _, err := Run(ctx, "renumber", Options{}); err == nil || !strings.Contains(err.Error(), "no Program") {
		t.Errorf("no program: %v", err)
	}
	if err := Main(ctx, "nobody", nil, nil); err == nil {
		t.Error("unknown role accepted")
	}
	var out strings.Builder
	if err := SuperPeer(ctx, []string{"-port", "0"}, &out); err == nil {
		t.Error("a super-peer without -dir")
	}
}

func ExampleRecovery_String() {
	fmt.Println(Recovery{Scenario: "renumber", Sent: 64, Received: 64, Resume: 3200 * time.Millisecond, Direct: 3400 * time.Millisecond})
	// Output:
	// renumber sent 64, received 64, lost 0, duplicated 0, reordered 0; messages again after 3.2s; direct again after 3.4s
}
