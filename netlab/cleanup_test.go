package netlab

import (
	"bufio"
	"context"
	"errors"
	"os"
	"testing"
)

// TestCleanupLeftovers simulates a crashed run: a lab whose process lets go
// of everything without tearing down, with a program still running inside,
// and whose marker names a process that is gone. The next New removes it
// all and leaves a live lab alone.
func TestCleanupLeftovers(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	spec := Spec{
		Routers: []RouterSpec{{Name: "home", NAT: NATFullCone}},
		Hosts:   []HostSpec{{Name: "laptop", Router: "home"}, {Name: "super", Link: Link{Delay: 1}}},
	}
	crashed, err := New(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	orphan := helper(ctx, t, crashed.Host("laptop").Namespace, "sleep")
	out, err := orphan.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := orphan.Start(); err != nil { // not through Start: the lab does not know it
		t.Fatal(err)
	}
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		t.Fatalf("helper said %q", line)
	}
	crashed.abandon()
	paths := crashed.namespacePaths()

	// A live run is never touched, even by Cleanup from its own process.
	if err := Cleanup(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("Cleanup removed %s of a run whose owner lives: %v", p, err)
		}
	}

	// The owner "dies": same PID, another start time, as after a reboot or
	// PID reuse.
	m := marker{PID: os.Getpid(), Start: 1}
	if err := putMarker(crashed.id, m); err != nil {
		t.Fatal(err)
	}

	live := newLab(t, spec) // runs Cleanup first
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s survived New (%v)", p, err)
		}
	}
	if _, err := os.Stat(markerPath(crashed.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover marker survived New (%v)", err)
	}
	if err := orphan.Wait(); err == nil {
		t.Errorf("the program left running in the crashed lab was not killed")
	}
	// The live lab is whole.
	if err := Cleanup(); err != nil {
		t.Fatal(err)
	}
	for _, p := range live.namespacePaths() {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Cleanup removed %s of a live lab: %v", p, err)
		}
	}
	if _, err := os.Stat(markerPath(live.id)); err != nil {
		t.Errorf("Cleanup removed a live lab's marker: %v", err)
	}
}
