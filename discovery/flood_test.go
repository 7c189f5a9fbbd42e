package discovery

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/juxta-p2p/juxta/internal/attack"
	"github.com/juxta-p2p/juxta/internal/stats"
	"github.com/juxta-p2p/juxta/peer"
)

// Acceptance 7: one peer sends 100,000 publishes to a super-peer. The index
// stays within its configured bound, the process's RSS grows by less than
// floodMaxRSSGrowth, and another peer's queries are still answered (p50 and
// p99 are logged).

const (
	floodTotal      = 100_000
	floodSybilTotal = 20_000 // 8 identities: 2,500 each, quota 1,000
	floodCapacity   = 5_000
	floodQuota      = 1_000
	floodStreams    = 4 // concurrent publish streams per attacker
	// floodBatch is the advertisements per publish frame: fewer than
	// MaxPublishBatch, so that a frame is verified well within StreamTimeout
	// even under the race detector with 32 streams at once.
	floodBatch        = 128
	floodMinQueries   = 200
	floodQueryEvery   = 2 * time.Millisecond // at most 500 queries a second
	floodMaxRSSGrowth = 200 << 20
	floodMaxDuration  = 4 * time.Minute // a guard: the flood runs at whatever speed the machine has
	floodType         = "flood.junk"
)

// floodRace reports whether the race detector is on. It slows signing and
// verification about tenfold, so the heavier variants send less under it.
func floodRace() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// floodRSS is the process's resident set size, in bytes.
func floodRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			kb, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || len(f) < 2 || f[1] != "kB" {
				t.Fatalf("cannot parse %q", line)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// floodSign signs n distinct, valid advertisements of pub, on every core.
func floodSign(t *testing.T, key crypto.PrivKey, pub peer.ID, n int) [][]byte {
	t.Helper()
	out := make([][]byte, n)
	now := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Pointer[error]
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				ad := Advertisement{
					Type: floodType, ID: fmt.Sprintf("junk-%06d", i),
					Attrs:    map[string]string{"name": fmt.Sprintf("junk %d", i)},
					Body:     []byte("junk"),
					Lifetime: time.Hour, Expiration: 15 * time.Minute,
					Publisher: pub, Seq: 1, Issued: now,
				}
				raw, err := seal(ad, key)
				if err != nil {
					failed.Store(&err)
					return
				}
				out[i] = raw
			}
		})
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(*err)
	}
	return out
}

// floodIndexed counts the index's entries, and those of the publisher holding
// the most.
func floodIndexed(n *node) (total, maxPerPublisher int) {
	s := n.d.store
	s.mu.Lock()
	defer s.mu.Unlock()
	per := map[peer.ID]int{}
	for k, e := range s.byKey {
		if !e.local {
			per[k.Publisher]++
		}
	}
	for _, c := range per {
		maxPerPublisher = max(maxPerPublisher, c)
	}
	return len(s.byKey), maxPerPublisher
}

type floodResult struct {
	sent, accepted, sendErrs int64
	maxIndex, maxPerPub      int
	index, perPub            int
	rssGrowth                int64
	elapsed                  time.Duration
	latencies                []time.Duration // of queries made during the flood
	queries                  int             // in all
	missed                   int             // queries that found nothing
	drops                    map[string]uint64
	legitStayed              bool
}

// floodRun starts a super-peer with cfg, a partner that publishes one
// legitimate advertisement to it, and a querier that looks for that
// advertisement every floodQueryEvery while attacking peers send total distinct,
// validly signed advertisements between them, each on floodStreams concurrent
// streams of floodBatch, as fast as they can. With tolerateEviction, a
// query that no longer finds the legitimate advertisement is counted in
// floodResult.missed rather than failing the test.
func floodRun(t *testing.T, cfg Config, total, attackers int, tolerateEviction bool) floodResult {
	cfg.NoPeerAdvertisement = true // the index holds remote entries only
	sp := newNode(t, peer.TestSuperPeerConfig(), cfg)
	partner := edge(t, Config{NoPeerAdvertisement: true}, sp)
	querier := edge(t, Config{NoPeerAdvertisement: true}, sp)
	// Longer than testCtx: signing and the flood take long under -race.
	ctx, cancel := context.WithTimeout(context.Background(), floodMaxDuration+2*time.Minute)
	defer cancel()
	legit, err := partner.d.Publish(ctx, fileAd("legit", "Legit Song.mp3"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the legitimate advertisement indexed", func() bool {
		_, ok := sp.d.store.get(legit.Key())
		return ok
	})

	type attacker struct {
		h   *hostile
		ads [][]byte
	}
	var atk []attacker
	signStart := time.Now()
	for i := range attackers {
		h := newHostile(t, peer.TestConfig())
		if _, err := h.p.Connect(ctx, sp.p.Addr()); err != nil {
			t.Fatal(err)
		}
		n := total / attackers
		if i == attackers-1 {
			n = total - n*(attackers-1)
		}
		atk = append(atk, attacker{h, floodSign(t, h.key, h.p.ID(), n)})
	}
	t.Logf("signed %d advertisements in %v", total, time.Since(signStart).Round(time.Millisecond))

	runtime.GC()
	debug.FreeOSMemory()
	rssBefore := floodRSS(t)
	mem := attack.WatchMemory()
	dropsBefore := sp.d.Stats().Dropped

	var r floodResult
	var sent, accepted, sendErrs atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var floodDone atomic.Bool
	floodEnded := make(chan struct{})

	// The index's size, sampled through the flood.
	var sampler sync.WaitGroup
	var maxIndex, maxPerPub atomic.Int64
	sampler.Go(func() {
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			n, per := floodIndexed(sp)
			if c := int64(sp.d.Stats().Cached); c > int64(n) {
				n = int(c)
			}
			if int64(n) > maxIndex.Load() {
				maxIndex.Store(int64(n))
			}
			if int64(per) > maxPerPub.Load() {
				maxPerPub.Store(int64(per))
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})

	batchN := floodBatch
	if floodRace() {
		batchN = 16
	}
	start := time.Now()
	var flood sync.WaitGroup
	for _, a := range atk {
		var next atomic.Int64
		for range floodStreams {
			flood.Go(func() {
				for {
					i := int(next.Add(int64(batchN)) - int64(batchN))
					if i >= len(a.ads) {
						return
					}
					batch := a.ads[i:min(i+batchN, len(a.ads))]
					resp, err := secPublish(ctx, a.h.p.Libp2p().Host, sp.p.ID(), batch)
					if err != nil {
						sendErrs.Add(1)
						firstErr.CompareAndSwap(nil, &err)
						continue
					}
					sent.Add(int64(len(batch)))
					accepted.Add(int64(resp.Accepted))
				}
			})
		}
	}
	go func() {
		flood.Wait()
		r.elapsed = time.Since(start)
		floodDone.Store(true)
		close(floodEnded)
	}()

	// The querier asks every floodQueryEvery until the flood is over, and at
	// least floodMinQueries times.
	q := Query{Type: "fileshare.file", Attr: "name", Value: "legit song*", Sources: SourceSuperPeers}
	for i := 0; i < floodMinQueries || !floodDone.Load(); i++ {
		if time.Since(start) > floodMaxDuration {
			t.Fatalf("the flood did not end within %v: sent %d", floodMaxDuration, sent.Load())
		}
		if i > 0 {
			time.Sleep(time.Until(start.Add(time.Duration(i) * floodQueryEvery)))
		}
		during := !floodDone.Load()
		t0 := time.Now()
		var got []Result
		for res, err := range querier.d.Find(ctx, q) {
			if err != nil {
				t.Fatalf("query %d: %v", i, err)
			}
			got = append(got, res)
		}
		d := time.Since(t0)
		if len(got) == 0 && tolerateEviction {
			r.missed++
		} else if len(got) != 1 || got[0].Key() != legit.Key() || got[0].From != sp.p.ID() {
			t.Fatalf("query %d answered %+v, want the legitimate advertisement", i, got)
		}
		if during {
			r.latencies = append(r.latencies, d)
		}
		r.queries++
	}
	<-floodEnded
	close(stop)
	sampler.Wait()
	mem.SuperPeer(t, fmt.Sprintf("issue 14 flood (%s), %d advertisements from %d identities", t.Name(), total, attackers), stats.Percentile(r.latencies, 99))
	rssAfter := floodRSS(t)

	r.sent, r.accepted, r.sendErrs = sent.Load(), accepted.Load(), sendErrs.Load()
	if e := firstErr.Load(); e != nil {
		t.Errorf("%d publish streams failed, the first with %v", r.sendErrs, *e)
	}
	r.maxIndex, r.maxPerPub = int(maxIndex.Load()), int(maxPerPub.Load())
	r.index, r.perPub = floodIndexed(sp)
	r.rssGrowth = rssAfter - rssBefore
	r.drops = secDrops(dropsBefore, sp.d.Stats().Dropped)
	_, r.legitStayed = sp.d.store.get(legit.Key())

	t.Logf("flood: sent %d, accepted %d, index %d/%d (max seen %d, max per publisher %d/%d), RSS +%.1f MiB (%.1f → %.1f MiB), query p50 %v p99 %v (%d queries during the flood, %d in all), flood took %v, drops %v",
		r.sent, r.accepted, r.index, cfg.Capacity, r.maxIndex, r.maxPerPub, cfg.PublisherQuota,
		float64(r.rssGrowth)/(1<<20), float64(rssBefore)/(1<<20), float64(rssAfter)/(1<<20),
		stats.Percentile(r.latencies, 50).Round(10*time.Microsecond), stats.Percentile(r.latencies, 99).Round(10*time.Microsecond),
		len(r.latencies), r.queries, r.elapsed.Round(time.Millisecond), r.drops)

	// Common assertions.
	if r.sent != int64(total) {
		t.Errorf("sent %d advertisements, want %d", r.sent, total)
	}
	if r.maxIndex > cfg.Capacity || r.index > cfg.Capacity {
		t.Errorf("index reached %d entries (now %d), capacity %d", r.maxIndex, r.index, cfg.Capacity)
	}
	if r.maxPerPub > cfg.PublisherQuota || r.perPub > cfg.PublisherQuota {
		t.Errorf("one publisher held %d entries (now %d), quota %d", r.maxPerPub, r.perPub, cfg.PublisherQuota)
	}
	// Every advertisement was accepted or refused, and every refusal counted.
	if got := r.accepted + int64(r.drops[DropRateLimited]+r.drops[DropQuota]); got != int64(total) {
		t.Errorf("accepted %d + rate-limited %d + quota %d = %d, want %d", r.accepted, r.drops[DropRateLimited], r.drops[DropQuota], got, total)
	}
	// The race detector's shadow memory multiplies what the same heap costs
	// in RSS (internal/attack scales its bounds the same way).
	maxGrowth := int64(floodMaxRSSGrowth)
	if floodRace() {
		maxGrowth *= 8
	}
	if r.rssGrowth > maxGrowth {
		t.Errorf("RSS grew by %.1f MiB, limit %d MiB", float64(r.rssGrowth)/(1<<20), maxGrowth>>20)
	}
	if len(r.latencies) == 0 {
		t.Error("no query ran during the flood")
	}
	return r
}

// One peer floods a super-peer at its default publish rate: the rate limit
// refuses most, the index stays bounded, and queries are answered.
func TestFloodPublishesRateLimited(t *testing.T) {
	// The querier asks up to 500 times a second; a query rate above the
	// default 20/s keeps its own limit out of the measurement. The publish
	// rate is 100/s, below the quota the flood would fill in a second.
	cfg := Config{Capacity: floodCapacity, PublisherQuota: floodQuota, QueryRate: 1000, PublishRate: 100}
	total := floodTotal
	if floodRace() {
		total /= 5 // signing 100,000 takes minutes under -race
		t.Logf("race detector on: sending %d instead of %d", total, floodTotal)
	}
	r := floodRun(t, cfg, total, 1, false)
	// A batch waits up to publishWait for its tokens. Under the race
	// detector the super-peer verifies so slowly that the flood may not
	// outrun 100/s at all, so nothing need be refused; the pacing bound below
	// still holds, and the refusal path is checked by the plain run.
	if floodRace() {
		t.Logf("race detector on: %d of %d refused for rate; checking pacing only", r.drops[DropRateLimited], total)
	} else if r.drops[DropRateLimited] < uint64(total)/2 {
		t.Errorf("only %d publishes were rate-limited", r.drops[DropRateLimited])
	}
	// A token bucket of 100/s with a burst of 200, plus slack.
	if limit := 200 + 100*r.elapsed.Seconds() + 50; float64(r.accepted) > limit {
		t.Errorf("accepted %d in %v, more than the publish rate allows (%.0f)", r.accepted, r.elapsed, limit)
	}
	if !r.legitStayed {
		t.Error("the legitimate advertisement was evicted")
	}
}

// With no effective rate limit, the per-publisher quota alone bounds what one
// peer holds in the index.
func TestFloodPublishesUnlimitedRate(t *testing.T) {
	cfg := Config{Capacity: floodCapacity, PublisherQuota: floodQuota, QueryRate: 1000, PublishRate: 1e6}
	total := floodTotal
	if floodRace() {
		total /= 5 // every one is verified: too slow under -race
		t.Logf("race detector on: sending %d instead of %d", total, floodTotal)
	}
	r := floodRun(t, cfg, total, 1, false)
	if r.drops[DropRateLimited] != 0 {
		t.Errorf("%d publishes were rate-limited", r.drops[DropRateLimited])
	}
	if r.accepted != floodQuota || r.perPub != floodQuota {
		t.Errorf("accepted %d, the attacker holds %d entries; want the quota, %d", r.accepted, r.perPub, floodQuota)
	}
	if !r.legitStayed {
		t.Error("the legitimate advertisement was evicted")
	}
}

// Several identities flood together, more than the capacity between them: the
// capacity bound holds too.
//
// The legitimate advertisement survives: when the index is full, eviction takes
// from the publisher holding the most entries, so the identities flooding it
// evict each other.
func TestFloodPublishesSybilsCapacity(t *testing.T) {
	cfg := Config{Capacity: floodCapacity, PublisherQuota: floodQuota, QueryRate: 1000, PublishRate: 1e6}
	total := floodSybilTotal
	if floodRace() {
		total = 8 * floodQuota // slow under -race
		t.Logf("race detector on: sending %d instead of %d", total, floodSybilTotal)
	}
	r := floodRun(t, cfg, total, 8, true)
	if r.index != floodCapacity {
		t.Errorf("index holds %d entries, want it full at %d", r.index, floodCapacity)
	}
	if r.accepted < floodCapacity {
		t.Errorf("accepted %d, want at least the capacity, %d", r.accepted, floodCapacity)
	}
	if !r.legitStayed || r.missed > 0 {
		t.Errorf("the legitimate advertisement was evicted by the flood; %d of %d queries found nothing", r.missed, r.queries)
	}
}
