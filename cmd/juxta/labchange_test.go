package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

func TestParseLabChange(t *testing.T) {
	good := map[string]labChange{
		"10s:renumber:a":       {at: 10 * time.Second, action: "renumber", node: "a"},
		"0s:reboot:rb:10s":     {action: "reboot", node: "rb", d: 10 * time.Second},
		"1m:move:a:b":          {at: time.Minute, action: "move", node: "a", arg: "b"},
		"2s:down:sp1":          {at: 2 * time.Second, action: "down", node: "sp1"},
		"0s:udp-timeout:a:15s": {action: "udp-timeout", node: "a", d: 15 * time.Second},
	}
	for s, want := range good {
		got, err := parseLabChange(s)
		want.raw = s
		if err != nil || got != want {
			t.Errorf("parseLabChange(%q) = %+v, %v; want %+v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "10s", "10s:renumber", "x:renumber:a", "-1s:renumber:a", "1s:explode:a",
		"1s:reboot:a", "1s:reboot:a:0s", "1s:renumber:a:extra", "1s:move:a", "1s:udp-timeout:a:soon", "1s:up:"} {
		if _, err := parseLabChange(s); err == nil {
			t.Errorf("parseLabChange(%q) accepted", s)
		}
	}
	var out bytes.Buffer
	if err := runLab(context.Background(), []string{"run", "-change", "1s:explode:a", "a", "--", "true"}, &out); err == nil || !strings.Contains(err.Error(), "unknown action") {
		t.Errorf("lab run with a bad change: %v", err)
	}
}

// The changes of `juxta lab run` reach the lab: in the two-homes topology,
// home a's router is renumbered and its UDP timeout set, b's cable is pulled
// and replugged, host a roams into home b, and b's router reboots.
func TestLabChanges(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec, err := twoHomes(natPortRestricted, natSymmetric, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	lab, err := netlab.New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	before := lab.Router("ra").WANAddr()
	var changes []labChange
	for _, s := range []string{"0s:udp-timeout:a:15s", "0s:renumber:a", "100ms:down:b", "200ms:up:b", "300ms:move:a:b", "400ms:reboot:rb:200ms"} {
		c, err := parseLabChange(s)
		if err != nil {
			t.Fatal(err)
		}
		changes = append(changes, c)
	}
	var log bytes.Buffer
	start := time.Now()
	if err := runLabChanges(ctx, lab, changes, start, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", log.String())
	if time.Since(start) < 600*time.Millisecond {
		t.Errorf("the changes took %v: the reboot's outage was not waited for", time.Since(start))
	}
	if got := lab.Router("ra").WANAddr(); got == before {
		t.Errorf("ra still has WAN %v", got)
	}
	if single, stream, err := lab.Router("ra").UDPTimeouts(); err != nil || single != 15*time.Second || stream != 15*time.Second {
		t.Errorf("ra's UDP timeouts %v, %v, %v", single, stream, err)
	}
	if r := lab.Host("a").Router(); r == nil || r.Name() != "rb" {
		t.Errorf("host a behind %v, want rb", r)
	}
	if n := strings.Count(log.String(), "lab: "); n != len(changes) {
		t.Errorf("%d changes logged, want %d", n, len(changes))
	}
	bad, _ := parseLabChange("0s:move:a:nowhere")
	if err := runLabChanges(ctx, lab, []labChange{bad}, time.Now(), &log); err == nil {
		t.Error("a move to no router succeeded")
	}
}
