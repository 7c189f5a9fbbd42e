package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/internal/stats"
	jpeer "github.com/juxta-p2p/juxta/peer"
)

// The discovery-at-scale rows (issue 14): a sharer's 10,000 files published
// in batches against one by one, and keyword queries over 100,000 indexed
// advertisements (50 publishers x 2,000) against a raw scan of the same names,
// with the index's memory per advertisement.

const (
	batchFiles     = 10_000
	scalePubs      = 50
	scalePerPub    = 2_000
	scaleQueries   = 1_000 // keyword queries per repetition (juxta)
	scaleScans     = 100   // raw scans per repetition (baseline)
	scaleVocabSize = 6_000
)

// fileName returns a file name of 4 to 7 words drawn Zipf-like from a
// vocabulary of made-up words (a few Hangul), with an extension.
type nameGen struct {
	r     *rand.Rand
	zipf  *rand.Zipf
	vocab []string
}

func newNameGen(seed uint64) *nameGen {
	r := rand.New(rand.NewPCG(seed, 1))
	syl := strings.Fields("ka ro mi su te na lo vi ze pa qui do re fa sol la ti an ber chen dor el fin gar hul")
	hangul := []rune("가나다라마바사아자차카타파하소리노래사랑")
	g := &nameGen{r: r, zipf: rand.NewZipf(r, 1.1, 2, scaleVocabSize-1)}
	seen := map[string]bool{}
	for len(g.vocab) < scaleVocabSize {
		var w string
		if r.IntN(10) == 0 {
			w = string([]rune{hangul[r.IntN(len(hangul))], hangul[r.IntN(len(hangul))]})
		} else {
			for range 2 + r.IntN(3) {
				w += syl[r.IntN(len(syl))]
			}
		}
		if !seen[w] {
			seen[w] = true
			g.vocab = append(g.vocab, w)
		}
	}
	return g
}

func (g *nameGen) name() string {
	n := 4 + g.r.IntN(4)
	words := make([]string, n)
	for i := range words {
		words[i] = g.vocab[g.zipf.Uint64()]
	}
	exts := []string{".mp3", ".flac", ".jpg", ".mkv", ".pdf"}
	return strings.Join(words, " ") + exts[g.r.IntN(len(exts))]
}

// ---- 10,000 files: PublishBatch against Publish one by one ----

// batchPublish measures the seconds from the first publish to the last file
// being searchable at the super-peer.
func batchPublish(batch bool) func(context.Context) (float64, error) {
	return func(ctx context.Context) (_ float64, err error) {
		ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
		defer cancel()
		nw, err := superPeerNet(ctx, 1, 1, discovery.Config{NoPeerAdvertisement: true, NoDHT: true})
		if err != nil {
			return 0, err
		}
		defer func() { err = errors.Join(err, nw.close()) }()
		g := newNameGen(7)
		ads := make([]discovery.Advertisement, batchFiles)
		for i := range ads {
			ads[i] = fileAd(fmt.Sprint("sha-", i), g.name())
		}
		last := fmt.Sprintf("zzlast%d", batchFiles)
		ads[batchFiles-1].Attrs["name"] = last + ".mp3"
		sp, e := nw.sps[0], nw.edges[0]
		start := time.Now()
		if batch {
			if _, err := e.d.PublishBatch(ctx, ads); err != nil {
				return 0, err
			}
		} else {
			for _, a := range ads {
				if _, err := e.d.Publish(ctx, a); err != nil {
					return 0, err
				}
			}
		}
		err = waitFor(ctx, "every file searchable", 10*time.Millisecond, 2*time.Minute, func() (bool, error) {
			rs, err := sp.d.LocalResults(discovery.Query{Type: fileType, Keywords: last})
			return len(rs) == 1 && sp.d.Stats().Cached >= batchFiles, err
		})
		return time.Since(start).Seconds(), err
	}
}

// ---- 100,000 advertisements at one super-peer ----

// scaleFixture is one super-peer indexing 100,000 advertisements from 50
// publishers, built once for the rows that share it and closed at exit.
type scaleFixture struct {
	once    sync.Once
	err     error
	sp      *jnode
	names   []string // lowercased, for the raw scan
	queries []string
	rssPer  float64 // KiB of RSS per indexed advertisement
	heapPer float64 // KiB of live heap per indexed advertisement
	rawPer  float64 // KiB of signed envelope per advertisement
}

var scale scaleFixture

func (f *scaleFixture) setup(ctx context.Context) (func() error, error) {
	f.once.Do(func() {
		f.err = f.build(ctx)
		if f.sp != nil {
			atExit = append(atExit, f.sp.close)
		}
	})
	return func() error { return nil }, f.err
}

func (f *scaleFixture) build(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	start := time.Now()
	sp, err := startJNode(ctx, jpeer.TestSuperPeerConfig(), discovery.Config{QueryRate: 1e6, NoPeerAdvertisement: true, NoDHT: true})
	if err != nil {
		return err
	}
	f.sp = sp
	g := newNameGen(11)
	total := scalePubs * scalePerPub
	names := make([]string, total)
	for i := range names {
		names[i] = g.name()
	}
	rss0, heap0 := memNow()
	var rawBytes int
	var mu sync.Mutex
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	errs := make([]error, scalePubs)
	for p := range scalePubs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			cfg := jpeer.TestConfig()
			cfg.SuperPeers = []string{sp.p.Invite()}
			e, err := startJNode(ctx, cfg, discovery.Config{NoPeerAdvertisement: true, NoDHT: true})
			if err != nil {
				errs[p] = err
				return
			}
			defer func() { errs[p] = errors.Join(errs[p], e.close()) }()
			if err := e.p.Ready(ctx); err != nil {
				errs[p] = err
				return
			}
			ads := make([]discovery.Advertisement, scalePerPub)
			for i := range ads {
				ads[i] = fileAd(fmt.Sprintf("sha-%d-%d", p, i), names[p*scalePerPub+i])
			}
			out, err := e.d.PublishBatch(ctx, ads)
			if err != nil {
				errs[p] = err
				return
			}
			n := 0
			for _, a := range out {
				if raw, ok := e.d.Raw(a.Key()); ok {
					n += len(raw)
				}
			}
			mu.Lock()
			rawBytes += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if c := sp.d.Stats().Cached; c != total {
		return fmt.Errorf("the super-peer indexed %d of %d", c, total)
	}
	time.Sleep(time.Second) // let the closed publishers' goroutines go
	rss1, heap1 := memNow()
	f.rssPer = float64(rss1-rss0) / float64(total) / 1024
	f.heapPer = float64(heap1-heap0) / float64(total) / 1024
	f.rawPer = float64(rawBytes) / float64(total) / 1024
	logf("    indexed %d advertisements from %d publishers in %.1fs; RSS %.1f MiB → %.1f MiB (%.2f KiB each), live heap %.2f KiB each, envelopes %.2f KiB each",
		total, scalePubs, time.Since(start).Seconds(), float64(rss0)/(1<<20), float64(rss1)/(1<<20), f.rssPer, f.heapPer, f.rawPer)

	for _, n := range names {
		f.names = append(f.names, strings.ToLower(n))
	}
	// Three keywords from a random name: two words and the prefix of a third.
	r := rand.New(rand.NewPCG(3, 4))
	for range scaleQueries {
		w := strings.Fields(strings.TrimSuffix(f.names[r.IntN(len(f.names))], ".mp3"))
		r.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
		third := []rune(w[2])
		f.queries = append(f.queries, w[0]+" "+w[1]+" "+string(third[:min(len(third), 3)]))
	}
	return nil
}

// memNow returns the process's RSS and live heap after a full collection.
func memNow() (rss, heap uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/status")
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.Fields(rest)[0], 10, 64)
			rss = kb << 10
		}
	}
	return rss, ms.HeapAlloc
}

// keywordQuery runs the three-keyword queries at the super-peer (the index
// answering; no network) and returns the pct-th percentile in ms.
func (f *scaleFixture) keywordQuery(pct float64) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		lat := make([]float64, 0, len(f.queries))
		for _, kw := range f.queries {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			t0 := time.Now()
			rs, err := f.sp.d.LocalResults(discovery.Query{Type: fileType, Keywords: kw, Limit: 50})
			lat = append(lat, ms(time.Since(t0)))
			if err != nil {
				return 0, err
			}
			if len(rs) == 0 {
				return 0, fmt.Errorf("%q found nothing", kw)
			}
		}
		return stats.Percentile(lat, pct), nil
	}
}

// rawScan scans every name for the query's words (substring match on the
// lowercased name, the cheapest scan there is), for the first scaleScans
// queries, and returns the pct-th percentile in ms.
func (f *scaleFixture) rawScan(pct float64) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		lat := make([]float64, 0, scaleScans)
		for _, kw := range f.queries[:scaleScans] {
			words := strings.Fields(kw)
			t0 := time.Now()
			hits := 0
			for _, n := range f.names {
				ok := true
				for _, w := range words {
					if !strings.Contains(n, w) {
						ok = false
						break
					}
				}
				if ok {
					hits++
				}
			}
			lat = append(lat, ms(time.Since(t0)))
			if hits == 0 {
				return 0, fmt.Errorf("scan for %q found nothing", kw)
			}
		}
		return stats.Percentile(lat, pct), nil
	}
}

// atExit are teardowns of fixtures shared between rows, run after all rows.
var atExit []func() error

func runAtExit() error {
	var errs []error
	for _, f := range atExit {
		errs = append(errs, f())
	}
	atExit = nil
	return errors.Join(errs...)
}
