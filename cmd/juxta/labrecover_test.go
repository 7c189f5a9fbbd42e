package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/labrecover"
)

// Issue 16, acceptance 1-3: the chat between two port-restricted homes
// survives a renumbered router, a rebooted one and a laptop that roams to a
// symmetric NAT and back, exactly once and in order, within the bounds.
// The peers run the default keepalive (peer.DefaultKeepalive): the bounds
// hold for the configuration users get.
func TestLabRecovery(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	check := func(t *testing.T, rec labrecover.Recovery) {
		t.Helper()
		t.Log(rec)
		if rec.Lost != 0 || rec.Dup != 0 || rec.Reordered != 0 || rec.Received != rec.Sent || rec.Sent == 0 {
			t.Errorf("%s: sent %d, received %d: lost %d, duplicated %d, reordered %d", rec.Scenario, rec.Sent, rec.Received, rec.Lost, rec.Dup, rec.Reordered)
		}
	}
	run := func(t *testing.T, scenario string) labrecover.Recovery {
		var log strings.Builder
		rec, err := labrecover.Run(ctx, scenario, recoverOptions(0, 0, &log))
		t.Logf("\n%s", log.String())
		if err != nil {
			t.Fatal(err)
		}
		check(t, rec)
		return rec
	}
	// A latency bound that a try misses gets up to two more tries, each
	// logged: on a loaded machine a starved process, and in about 1 in 20
	// idle renumberings a relayed detour (see the issue 16 note), can push
	// one recovery past the bound. Losses, duplicates and reordering are
	// never retried: check fails the test on any try.
	within := func(t *testing.T, scenario string, miss func(labrecover.Recovery) string) {
		const tries = 3
		for try := 1; ; try++ {
			m := miss(run(t, scenario))
			if m == "" {
				return
			}
			if try == tries {
				t.Errorf("%s on each of %d tries; the last: %s", scenario, tries, m)
				return
			}
			t.Logf("try %d of %d: %s; trying again", try, tries, m)
		}
	}
	t.Run("renumber", func(t *testing.T) {
		within(t, "renumber", func(rec labrecover.Recovery) string {
			switch {
			case rec.Resume > 5*time.Second:
				return fmt.Sprintf("messages again %v after the renumbering, want within 5 s", rec.Resume)
			case rec.Direct > 15*time.Second:
				return fmt.Sprintf("direct again %v after the renumbering, want within 15 s", rec.Direct)
			}
			return ""
		})
	})
	t.Run("reboot", func(t *testing.T) {
		within(t, "reboot", func(rec labrecover.Recovery) string {
			if rec.Resume > 5*time.Second {
				return fmt.Sprintf("messages again %v after the link came back, want within 5 s", rec.Resume)
			}
			return ""
		})
	})
	t.Run("roam", func(t *testing.T) {
		rec := run(t, "roam")
		if !rec.Relayed {
			t.Error("direct in the symmetric café: theory says relayed (a better NAT than the lab's?)")
		}
		if rec.Direct <= 0 {
			t.Error("not direct again at home")
		}
	})
}

// Issue 16, acceptance 4: with 15 s UDP mappings at both routers, the direct
// path of an idle chat lives 5 minutes, kept open by the default keepalive.
// It takes that long, so it runs where JUXTA_LONG=1 (.ci/run sets it in its long step).
func TestLabIdleDirect(t *testing.T) {
	if os.Getenv("JUXTA_LONG") == "" {
		t.Skip("a 5-minute idle: set JUXTA_LONG=1 (CI does)")
	}
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var log strings.Builder
	rec, err := labrecover.Run(ctx, "idle", recoverOptions(0, 5*time.Minute, &log))
	t.Logf("\n%s", log.String())
	if err != nil {
		t.Fatal(err)
	}
	if !rec.IdleDirect {
		t.Error("the direct path did not last 5 minutes idle")
	}
	if rec.Lost != 0 || rec.Dup != 0 || rec.Received != rec.Sent {
		t.Errorf("%v", rec)
	}
}
