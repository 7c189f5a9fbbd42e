package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/juxta-p2p/juxta/internal/labrecover"
)

// The lab rows run issue 16's recovery scenarios (internal/labrecover) in a
// netlab lab: two port-restricted homes chatting over a reliable message
// pipe through a super-peer, with peer's default keepalive, while home a's
// router is renumbered or laptop a roams to a symmetric NAT and back. There
// is no baseline: stock go-libp2p has no recovery to compare. The times are
// absolute, which is meaningful here (unlike the loopback rows): the lab's
// links are emulated (25 ms each way on each home's WAN, 15 ms to the
// super-peer), and what the rows measure is the keepalive's patience and
// the recovery's round trips, not CPU speed.

// labRoleEnv starts this binary as a lab program (a chat peer or the
// super-peer) instead of the benchmark: the lab's hosts run it so.
const labRoleEnv = "JUXTA_BENCH_LAB_ROLE"

// runLabRole runs the role this process was started in, if any.
func runLabRole() (code int, ok bool) {
	role := os.Getenv(labRoleEnv)
	if role == "" {
		return 0, false
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := labrecover.Main(ctx, role, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "bench: lab %s: %v\n", role, err)
		return 1, true
	}
	return 0, true
}

// labMissing says why the lab rows cannot run here, or "".
func labMissing() string {
	switch {
	case runtime.GOOS != "linux":
		return "netlab needs Linux network namespaces"
	case os.Geteuid() != 0:
		return "netlab needs root (network namespaces, netlink, nftables): run the bench as root to measure it"
	}
	return ""
}

// labRenumberDirect collects the time-to-direct of the renumber row's
// repetitions, for the row derived from them.
var labRenumberDirect []float64

// labRecovery measures one repetition of scenario, in seconds: what pick
// takes from it. A repetition that lost, duplicated or reordered a message
// fails.
func labRecovery(scenario string, pick func(labrecover.Recovery) time.Duration) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		self, err := os.Executable()
		if err != nil {
			return 0, err
		}
		var log strings.Builder
		rec, err := labrecover.Run(ctx, scenario, labrecover.Options{
			Program: func(role string) (string, []string, []string) {
				return self, nil, []string{labRoleEnv + "=" + role}
			},
			Log: &log,
		})
		logf("%s", strings.TrimRight(log.String(), "\n"))
		if err != nil {
			return 0, err
		}
		if rec.Lost != 0 || rec.Dup != 0 || rec.Reordered != 0 || rec.Received != rec.Sent {
			return 0, fmt.Errorf("messages not delivered exactly once, in order: %v", rec)
		}
		if scenario == "renumber" {
			labRenumberDirect = append(labRenumberDirect, rec.Direct.Seconds())
		}
		d := pick(rec)
		if d <= 0 {
			return 0, fmt.Errorf("not measured: %v", rec)
		}
		return d.Seconds(), nil
	}
}

// labRows are the rows that run in a netlab lab; -lab=false leaves them out.
var labRows = []row{
	{
		name:   "lab: time to messages after renumbering",
		unit:   "s",
		better: lower,
		juxta:  labRecovery("renumber", func(r labrecover.Recovery) time.Duration { return r.Resume }),
		n:      3,
		lab:    true,
		note:   "absolute time (emulated links, so meaningful; no baseline: stock go-libp2p does not recover); netlab lab, as root: two port-restricted homes chat over a reliable message pipe (a message every 100 ms) through a super-peer, peer's default keepalive; home a's router gets a new public address at a random moment; from then to the arrival of the first message sent after it; every message must arrive exactly once, in order; 3 repetitions at most (-n lowers it), about 12 s each; issue 16 bound: 5 s",
	},
	{
		name:   "lab: time to direct after renumbering",
		unit:   "s",
		better: lower,
		derive: func([]result) ([]float64, []float64, error) {
			if len(labRenumberDirect) == 0 {
				return nil, nil, fmt.Errorf("the renumbering row measured nothing (run it too: -run '^lab:')")
			}
			return labRenumberDirect, nil, nil
		},
		lab:  true,
		note: "from the repetitions of the row above: from the renumbering to the direct path's return (b's PathChanged to direct); issue 16 bound: 15 s",
	},
	{
		name:   "lab: time to direct after roaming home",
		unit:   "s",
		better: lower,
		juxta:  labRecovery("roam", func(r labrecover.Recovery) time.Duration { return r.Direct }),
		n:      2,
		lab:    true,
		note:   "absolute time, no baseline, the same lab: laptop a moves mid-chat to a café behind a symmetric NAT (relayed there, as theory says), then back home; from the move home to the direct path's return; every message exactly once, in order; 2 repetitions at most, about 40 s each",
	},
}
