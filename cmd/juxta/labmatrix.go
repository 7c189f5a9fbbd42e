package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/internal/stats"
	"github.com/juxta-p2p/juxta/netlab"
)

type pairKey struct{ a, b natType }

// Summary is a pair's outcome over N trials.
type Summary struct {
	A, B           natType
	Expected       string
	N              int
	Direct         int
	Relayed        int
	Failed         int
	ConnectMs      float64 // median time to the first connection
	TimeToDirectMs float64 // median over direct trials that began relayed
	RelayedRTTMs   float64 // median
	DirectRTTMs    float64 // median
	Outcome        string  // as expected, better, worse
	Via            string  // IP versions of the direct paths: "IPv6", "IPv4", "IPv6 4/5, IPv4 1/5"
	Errors         []string
}

func summarize(trials []Trial) []Summary {
	groups := map[pairKey][]Trial{}
	var order []pairKey
	for _, t := range trials {
		k := pairKey{t.A, t.B}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], t)
	}
	var out []Summary
	for _, k := range order {
		ts := groups[k]
		s := Summary{A: k.a, B: k.b, N: len(ts), Expected: "relayed"}
		if expectDirect(k.a, k.b) {
			s.Expected = "direct"
		}
		var ttd, rr, dr, cm []float64
		via := map[string]int{}
		for _, t := range ts {
			if t.FinalPath == "direct" {
				via[t.DirectVia]++
			}
			if t.Connected {
				cm = append(cm, t.ConnectMs)
			}
			switch {
			case !t.Connected:
				s.Failed++
				s.Errors = append(s.Errors, t.Err)
			case t.FinalPath == "direct":
				s.Direct++
				if t.FirstPath == "relayed" {
					ttd = append(ttd, t.TimeToDirectMs)
				}
			default:
				s.Relayed++
			}
			if t.RelayedRTTMs > 0 {
				rr = append(rr, t.RelayedRTTMs)
			}
			if t.DirectRTTMs > 0 {
				dr = append(dr, t.DirectRTTMs)
			}
		}
		s.ConnectMs, s.TimeToDirectMs, s.RelayedRTTMs, s.DirectRTTMs = stats.Median(cm), stats.Median(ttd), stats.Median(rr), stats.Median(dr)
		s.Via = viaSummary(via, s.Direct)
		want := expectVia(k.a, k.b)
		switch {
		case s.Failed > 0:
			s.Outcome = "worse: some tries failed to connect"
		case s.Expected == "direct" && s.Direct < s.N:
			s.Outcome = fmt.Sprintf("worse: %d of %d relayed", s.Relayed, s.N)
		case s.Expected == "relayed" && s.Direct > 0:
			s.Outcome = fmt.Sprintf("better: %d of %d direct", s.Direct, s.N)
		case (k.a.hasIPv6() || k.b.hasIPv6()) && want != "" && via[want] < s.Direct:
			s.Outcome = fmt.Sprintf("worse: %d of %d direct over %s", via[want], s.Direct, want)
		default:
			s.Outcome = "as expected"
		}
		out = append(out, s)
	}
	return out
}

func markdown(w io.Writer, sums []Summary, n int, delay time.Duration) {
	fmt.Fprintf(w, "| peer A | peer B | expected | direct | relayed | failed | first connection | time to direct | RTT relayed | RTT direct | direct over | outcome |\n")
	fmt.Fprintf(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|\n")
	f := func(x float64) string {
		if x == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f ms", x)
	}
	for _, s := range sums {
		fmt.Fprintf(w, "| %s | %s | %s | %d/%d | %d | %d | %s | %s | %s | %s | %s | %s |\n",
			s.A, s.B, s.Expected, s.Direct, s.N, s.Relayed, s.Failed, f(s.ConnectMs), f(s.TimeToDirectMs), f(s.RelayedRTTMs), f(s.DirectRTTMs), orDash(s.Via), s.Outcome)
	}
	fmt.Fprintf(w, "\n%d tries per pair; each router's WAN link adds %s each way; the two super-peers sit on the simulated internet behind 15 ms links. Times are medians from the start of the dial: \"first connection\" is the first path up (relayed for a private peer), \"time to direct\" the moment the direct connection replaced it. \"RTT relayed\" shows only where the hole punch had not finished before the ping.\n", n, delay)
}

func runMatrix(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta lab matrix", flag.ContinueOnError)
	n := fs.Int("n", 1, "tries per pair")
	delay := fs.Duration("delay", 25*time.Millisecond, "one-way delay on each router's WAN link")
	wait := fs.Duration("wait", 10*time.Second, "how long a try waits for a direct connection")
	types := fs.String("types", "", "comma-separated NAT types (default: all; see 'juxta lab types')")
	mdFile := fs.String("md", "", "also write the markdown table to this file")
	asJSON := fs.Bool("json", false, "print every try as JSON instead of the table")
	withIPv6 := fs.Bool("ipv6", true, "add the IPv6 rows (dual-stack, IPv6-only and IPv4-only homes)")
	if err := parseFlags(fs, args, out, 0); err != nil {
		return err
	}
	pairs, err := matrixPairs(*types, *withIPv6)
	if err != nil {
		return &usageError{msg: err.Error(), usage: flagUsage(fs)}
	}
	if err := netlab.Cleanup(); err != nil && errors.Is(err, netlab.ErrNotRoot) {
		return err
	}
	var trials []Trial
	prog := &matrixProgress{total: len(pairs) * *n, start: time.Now()}
	for _, pair := range pairs {
		a, b := pair[0], pair[1]
		for try := range *n {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			tr := runTrial(ctx, a, b, *delay, *wait)
			fmt.Fprintln(os.Stderr, prog.line(a, b, try+1, tr, time.Now()))
			trials = append(trials, tr)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(trials)
	}
	sums := summarize(trials)
	markdown(out, sums, *n, *delay)
	if *mdFile != "" {
		var b strings.Builder
		markdown(&b, sums, *n, *delay)
		if err := os.WriteFile(*mdFile, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	for _, s := range sums {
		if s.Failed > 0 {
			return fmt.Errorf("lab: %s × %s failed to connect %d of %d times", s.A, s.B, s.Failed, s.N)
		}
	}
	return nil
}

// matrixProgress counts the matrix's tries as they finish, for a progress
// line per try: tries done of the total, and the time left estimated from the
// mean time per try so far.
type matrixProgress struct {
	total int
	done  int
	start time.Time
}

// line records one finished try of the pair a, b and describes it.
func (p *matrixProgress) line(a, b natType, try int, tr Trial, now time.Time) string {
	p.done++
	left := time.Duration(float64(now.Sub(p.start)) / float64(p.done) * float64(p.total-p.done)).Round(time.Second)
	s := fmt.Sprintf("[%d/%d, ETA %s] %-20s %-20s try %d: %s", p.done, p.total, left, a, b, try, orDash(tr.FinalPath))
	if tr.DirectVia != "" {
		s += " " + tr.DirectVia
	}
	if tr.Err != "" {
		s += " (" + tr.Err + ")"
	}
	return s
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}
