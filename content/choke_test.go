package content

import (
	"fmt"
	"testing"
	"time"
)

func cands(rates map[string]float64, interested ...string) []chokeCand[string] {
	var out []chokeCand[string]
	in := map[string]bool{}
	for _, k := range interested {
		in[k] = true
	}
	for k, r := range rates {
		out = append(out, chokeCand[string]{key: k, rate: r, interested: in[k]})
	}
	return out
}

func unchokedInterested(u map[string]bool, cs []chokeCand[string]) []string {
	var out []string
	for _, c := range cs {
		if c.interested && u[c.key] {
			out = append(out, c.key)
		}
	}
	return out
}

func TestChokerFourByRatePlusOptimistic(t *testing.T) {
	c := newChoker[string](4)
	pick := 0
	c.rand = func(n int) int { return pick % n }
	rates := map[string]float64{}
	var names []string
	for i := range 8 {
		k := fmt.Sprintf("p%d", i)
		rates[k] = float64(100 * (i + 1)) // p7 fastest
		names = append(names, k)
	}
	rates["idle"] = 1e9
	t0 := time.Unix(1000, 0)
	cs := cands(rates, names...)
	u := c.round(t0, cs)
	got := unchokedInterested(u, cs)
	if len(got) != 5 {
		t.Fatalf("unchoked %v, want 4 + 1", got)
	}
	for _, k := range []string{"p7", "p6", "p5", "p4"} {
		if !u[k] {
			t.Fatalf("fast peer %s choked: %v", k, got)
		}
	}
	if !u["idle"] {
		t.Fatal("an uninterested peer was choked")
	}
	opt := c.optimistic
	if rates[opt] >= rates["p4"] {
		t.Fatalf("optimistic %s is one of the regular four", opt)
	}

	// 10 s later p0 becomes the fastest: it is unchoked by rate; the
	// optimistic unchoke stays until 30 s have passed.
	rates["p0"] = 1e6
	pick = 1
	cs = cands(rates, names...)
	u = c.round(t0.Add(10*time.Second), cs)
	if !u["p0"] || u["p4"] && opt != "p4" {
		t.Fatalf("after a rate change: %v", unchokedInterested(u, cs))
	}
	if opt != "p0" && c.optimistic != opt {
		t.Fatalf("optimistic changed after 10 s: %s -> %s", opt, c.optimistic)
	}
	kept := c.optimistic
	u = c.round(t0.Add(20*time.Second), cands(rates, names...))
	if c.optimistic != kept {
		t.Fatalf("optimistic changed after 20 s")
	}
	// At 30 s the optimistic unchoke rotates.
	pick = 2
	u = c.round(t0.Add(30*time.Second), cands(rates, names...))
	if c.optimistic == kept {
		t.Fatalf("optimistic %s not rotated after 30 s", kept)
	}
	if n := len(unchokedInterested(u, cands(rates, names...))); n != 5 {
		t.Fatalf("%d unchoked, want 5", n)
	}
}

func TestChokerFewPeers(t *testing.T) {
	c := newChoker[string](4)
	cs := cands(map[string]float64{"a": 1, "b": 2}, "a", "b")
	u := c.round(time.Unix(0, 0), cs)
	if !u["a"] || !u["b"] {
		t.Fatalf("with room for all, %v", u)
	}
}
