// Command bench measures juxta against a raw go-libp2p baseline, side by side
// in one process, and prints a markdown table of medians.
//
//	go run ./bench [-run REGEX] [-n N] [-warmup N] [-netns=false] [-msgs=false] [-v] [-list]
//
// Every row runs its juxta and its baseline measurement alternately (A B A B
// ...), so that drift of a shared machine hits both sides alike, and reports
// the median of each side and their ratio. All traffic goes to 127.0.0.1; as
// root on Linux the program first moves itself into a fresh network namespace
// (see netns_linux.go). Rows are listed in rows.go. A second table, messages
// per query under each discovery strategy, follows (messages.go).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/juxta-p2p/juxta/internal/stats"
	jpeer "github.com/juxta-p2p/juxta/peer"
)

// Flags shared by the row implementations.
var (
	flagPeers  = flag.Int("peers", 20, "peers started per repetition by the idle-memory row")
	flagMiB    = flag.Int("mib", 256, "MiB sent per repetition by the throughput rows")
	flagSettle = flag.Duration("settle", 100*time.Millisecond, "pause after starting hosts, before a timed region, so start-up work does not leak into it")
)

// logw receives per-repetition detail: os.Stderr with -v, else io.Discard.
var logw io.Writer = io.Discard

func logf(format string, args ...any) { fmt.Fprintf(logw, format+"\n", args...) }

func main() {
	if code, ok := runLabRole(); ok {
		os.Exit(code) // started by a lab row in one of its hosts
	}
	os.Exit(run())
}

func run() int {
	var (
		netns  = flag.Bool("netns", true, "as root on Linux, re-run in a fresh network namespace")
		runRe  = flag.String("run", "", "run only rows whose name matches this regular expression")
		n      = flag.Int("n", 7, "measured repetitions per side and row")
		warmup = flag.Int("warmup", 1, "unmeasured repetitions per side and row, run first")
		list   = flag.Bool("list", false, "list the rows and exit")
		v      = flag.Bool("v", false, "print every repetition to stderr")
		prof   = flag.String("cpuprofile", "", "write a CPU profile of the measurements to this file")
		big    = flag.Bool("big", true, "include the rows that build networks of 50 peers")
		lab    = flag.Bool("lab", true, "include the rows that run in a netlab lab (root, Linux; skipped elsewhere)")
	)
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bench: unexpected arguments %q\n", flag.Args())
		return 2
	}
	if *n < 1 || *warmup < 0 || *flagPeers < 1 || *flagMiB < 1 {
		fmt.Fprintln(os.Stderr, "bench: -n, -peers and -mib must be at least 1, -warmup at least 0")
		return 2
	}
	re, err := regexp.Compile(*runRe)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: -run: %v\n", err)
		return 2
	}
	var selected []row
	for _, r := range append(rows, labRows...) {
		if re.MatchString(r.name) && (*big || !r.big) && (*lab || !r.lab) {
			selected = append(selected, r)
		}
	}
	msgs := *flagMsgs && re.MatchString(msgsName)
	if *list {
		for _, r := range append(rows, labRows...) {
			fmt.Println(r.name)
		}
		fmt.Println(msgsName)
		return 0
	}
	if len(selected) == 0 && !msgs {
		fmt.Fprintf(os.Stderr, "bench: no row matches -run %q (see -list)\n", *runRe)
		return 2
	}

	network, code, done := isolate(*netns)
	if done {
		return code
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Printf("# juxta vs go-libp2p\n\n")
	fmt.Printf("- network: %s\n", network)
	fmt.Printf("- %s %s/%s, %d CPUs, GOMAXPROCS %d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	sec := jpeer.Security()
	fmt.Printf("- juxta's security order on TCP: %s first; %s\n", sec.First, sec.Reason)
	fmt.Printf("- %d measured repetitions per side (after %d warm-up), juxta and baseline back to back, alternating which goes first; ratios are medians of the pairs' ratios\n\n", *n, *warmup)

	if *v {
		logw = os.Stderr
	}
	if *prof != "" {
		f, err := os.Create(*prof)
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: -cpuprofile: %v\n", err)
			return 2
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "bench: -cpuprofile: %v\n", err)
			return 2
		}
		defer pprof.StopCPUProfile()
	}
	results, failed := runRows(ctx, selected, *n, *warmup)
	if err := runAtExit(); err != nil {
		fmt.Fprintf(os.Stderr, "bench: teardown of shared fixtures: %v\n", err)
		failed = true
	}
	if len(results) > 0 {
		printTable(os.Stdout, results)
	}
	if msgs && ctx.Err() == nil && !runMessages(ctx, len(results) > 0) {
		failed = true
	}
	if failed || ctx.Err() != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(os.Stderr, "bench: interrupted")
		}
		return 1
	}
	return 0
}

// runRows measures the selected rows one after another, saying on stderr how
// each went, until ctx ends; failed reports that a row or its teardown failed.
func runRows(ctx context.Context, selected []row, n, warmup int) (results []result, failed bool) {
	results = make([]result, 0, len(selected))
	for _, r := range selected {
		fmt.Fprintf(os.Stderr, "bench: %s ...\n", r.name)
		start := time.Now()
		var res result
		if why := labMissing(); r.lab && why != "" {
			fmt.Fprintf(os.Stderr, "bench: %s: skipped: %s\n", r.name, why)
			results = append(results, result{row: r, skipped: why})
			continue
		}
		if r.derive != nil {
			res = result{row: r}
			res.juxta, res.base, res.err = r.derive(results)
		} else {
			res = runRow(ctx, r, n, warmup)
		}
		fmt.Fprintf(os.Stderr, "bench: %s done in %.1fs\n", r.name, time.Since(start).Seconds())
		if res.err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", r.name, res.err)
			failed = true
		}
		if res.teardownErr != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: teardown: %v\n", r.name, res.teardownErr)
			failed = true
		}
		results = append(results, res)
		if ctx.Err() != nil {
			break
		}
	}
	return results, failed
}

// runMessages measures and prints the message-pipe table, after the row table
// if there was one; it reports whether that worked.
func runMessages(ctx context.Context, afterTable bool) (ok bool) {
	ok = true
	fmt.Fprintf(os.Stderr, "bench: %s ...\n", msgsName)
	start := time.Now()
	lines, err := messagesTable(ctx)
	fmt.Fprintf(os.Stderr, "bench: %s done in %.1fs\n", msgsName, time.Since(start).Seconds())
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: %s: %v\n", msgsName, err)
		ok = false
	}
	if len(lines) > 0 {
		if afterTable {
			fmt.Println()
		}
		printMessages(os.Stdout, lines)
	}
	return ok
}

// result is what one row measured.
type result struct {
	row
	juxta, base []float64 // measured repetitions, in order
	err         error     // the first failure; the row is then incomplete
	skipped     string    // why the row did not run here
	teardownErr error     // the row's teardown failed (its values stand)
}

// runRow runs the row's setup, if any, then measures it, then tears the setup
// down.
func runRow(ctx context.Context, r row, n, warmup int) (res result) {
	if r.setup == nil {
		return measure(ctx, r, n, warmup)
	}
	start := time.Now()
	teardown, err := r.setup(ctx)
	if err != nil {
		return result{row: r, err: fmt.Errorf("setup: %w", err)}
	}
	logf("  setup    %.1fs", time.Since(start).Seconds())
	defer func() {
		start := time.Now()
		res.teardownErr = teardown()
		logf("  teardown %.1fs; %d goroutines left", time.Since(start).Seconds(), runtime.NumGoroutine())
	}()
	return measure(ctx, r, n, warmup)
}

// measure runs warmup unmeasured then n measured repetitions of each side of r,
// alternating juxta and baseline (juxta alone if the row has no baseline). It
// stops at the first error.
func measure(ctx context.Context, r row, n, warmup int) result {
	res := result{row: r}
	if r.n > 0 {
		n, warmup = min(n, r.n), 0
	}
	type side struct {
		name string
		f    func(context.Context) (float64, error)
		out  *[]float64
	}
	juxta, base := side{"juxta", r.juxta, &res.juxta}, side{"baseline", r.base, &res.base}
	for i := -warmup; i < n; i++ {
		// Which side goes first alternates (juxta, baseline, baseline, juxta,
		// ...), so that neither always inherits the other's warm caches or its
		// garbage; each side starts from a collected heap.
		order := []side{juxta, base}
		if i%2 != 0 {
			order = []side{base, juxta}
		}
		for _, side := range order {
			if side.f == nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				res.err = err
				return res
			}
			runtime.GC()
			v, err := side.f(ctx)
			if err != nil {
				res.err = fmt.Errorf("%s, repetition %d: %w", side.name, i+1, err)
				return res
			}
			if i < 0 {
				logf("  %-8s warm-up  %10.3f %s", side.name, v, r.unit)
				continue
			}
			logf("  %-8s rep %-4d %10.3f %s", side.name, i+1, v, r.unit)
			*side.out = append(*side.out, v)
		}
	}
	return res
}

// printTable writes the results as a markdown table with notes.
func printTable(w io.Writer, results []result) {
	fmt.Fprintln(w, "| benchmark | juxta | baseline | unit | better | juxta ÷ baseline | per-pair range | juxta is | target (juxta ÷ baseline) |")
	fmt.Fprintln(w, "|---|---:|---:|---|---|---:|---|---|---|")
	for _, r := range results {
		noBase := r.row.base == nil && (r.row.derive == nil || r.lab)
		if r.skipped != "" {
			fmt.Fprintf(w, "| %s | skipped | – | %s | %s | – | – | – (%s) | – |\n", r.name, r.unit, r.better, r.skipped)
			continue
		}
		if r.err != nil && (len(r.juxta) == 0 || (!noBase && len(r.base) == 0)) {
			fmt.Fprintf(w, "| %s | error | error | %s | %s | – | – | – | %s |\n", r.name, r.unit, r.better, targetText(r.row, 0, false))
			continue
		}
		j, b := stats.Median(r.juxta), stats.Median(r.base)
		name := r.name
		if r.err != nil {
			name += fmt.Sprintf(" (incomplete: %d/%d reps)", len(r.juxta), len(r.base))
		}
		if noBase {
			fmt.Fprintf(w, "| %s | %s | – | %s | %s | – | – | – (no baseline) | – |\n", name, num(j), r.unit, r.better)
			continue
		}
		ratio, lo, hi := pairedRatio(r.juxta, r.base)
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %.2f | %.2f–%.2f | %s | %s |\n",
			name, num(j), num(b), r.unit, r.better, ratio, lo, hi, verdict(r.row, ratio), targetText(r.row, ratio, true))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "juxta and baseline are the medians of the repetitions. juxta ÷ baseline is the median of the ratios of")
	fmt.Fprintln(w, "repetitions measured back to back (pair k: juxta's k-th against the baseline's k-th), so that load that")
	fmt.Fprintln(w, "comes and goes during a row cancels; the per-pair range is the lowest and highest of those ratios.")
	fmt.Fprintln(w, "Where higher is better, a ratio above 1 favours juxta;")
	fmt.Fprintln(w, "where lower is better, a ratio below 1 favours juxta. \"juxta is\" states it in words.")
	fmt.Fprintln(w, "Absolute numbers drift on shared machines: compare ratios within one run only.")
	var notes []string
	for _, r := range results {
		if r.note != "" {
			notes = append(notes, fmt.Sprintf("- %s: %s", r.name, r.note))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, strings.Join(notes, "\n"))
	}
}

// verdict says in words how juxta compares, given juxta ÷ baseline.
func verdict(r row, ratio float64) string {
	adv := ratio // how many times better juxta is
	if r.better == lower {
		adv = 1 / ratio
	}
	switch {
	case adv >= 1.005:
		return fmt.Sprintf("%.2f× better", adv)
	case adv <= 1/1.005:
		return fmt.Sprintf("%.2f× worse", 1/adv)
	}
	return "even"
}

func targetText(r row, ratio float64, have bool) string {
	if r.target == 0 {
		return "–"
	}
	op, met := "≤", ratio <= r.target
	if r.better == higher {
		op, met = "≥", ratio >= r.target
	}
	s := fmt.Sprintf("%s %.2f", op, r.target)
	switch {
	case !have:
	case met:
		s += " met"
	default:
		s += " **missed**"
	}
	return s
}

// pairedRatio is the median, lowest and highest of juxta[k]/base[k], the
// ratios of repetitions measured back to back. Rows whose sides have different
// counts (none measured by measure) fall back to the ratio of the medians.
func pairedRatio(juxta, base []float64) (median, lo, hi float64) {
	if len(juxta) != len(base) || len(juxta) == 0 {
		r := stats.Median(juxta) / stats.Median(base)
		return r, r, r
	}
	ratios := make([]float64, len(juxta))
	for k := range juxta {
		ratios[k] = juxta[k] / base[k]
	}
	return stats.Median(ratios), slices.Min(ratios), slices.Max(ratios)
}

// num formats a value with three significant digits or more.
func num(x float64) string {
	switch {
	case x >= 100:
		return fmt.Sprintf("%.0f", x)
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}
