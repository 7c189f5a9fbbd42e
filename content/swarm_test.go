package content

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// TestSwarmLeechersServeEachOther: one seed with a slow uplink and four
// leechers starting together. The leechers trade pieces, so the seed sends
// far less than four copies.
func TestSwarmLeechersServeEachOther(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := testCtx(t)
	const size = 12 << 20
	seed := newNode(t, func(c *Config) { c.UploadRate = 3 << 20 })
	src := writeRandom(t, t.TempDir(), "src", size, 41)
	info, err := seed.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	var leechers []*node
	for range 4 {
		leechers = append(leechers, newNode(t, func(c *Config) { c.NoAnnounce = false }))
	}
	hints := []peer.Addr{seed.p.Addr()}
	for _, l := range leechers {
		hints = append(hints, l.p.Addr())
	}
	var wg sync.WaitGroup
	errs := make([]error, len(leechers))
	dsts := make([]string, len(leechers))
	for i, l := range leechers {
		dsts[i] = filepath.Join(t.TempDir(), fmt.Sprint("copy", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = l.s.Fetch(ctx, info.ID, dsts[i], WithProviders(hints...), OnlyProviders())
		}()
	}
	wg.Wait()
	for i := range leechers {
		if errs[i] != nil {
			t.Fatalf("leecher %d: %v", i, errs[i])
		}
		sameFile(t, src, dsts[i])
	}
	var fromLeechers int64
	for _, l := range leechers {
		fromLeechers += l.s.Uploaded()
	}
	t.Logf("seed sent %.2f copies, leechers %.2f copies", float64(seed.s.Uploaded())/size, float64(fromLeechers)/size)
	// Client-server would have the seed send 4 copies.
	if seed.s.Uploaded() >= 7*size/2 || fromLeechers < size/2 {
		t.Fatalf("the seed sent %.2f copies and the leechers %.2f: they did not trade",
			float64(seed.s.Uploaded())/size, float64(fromLeechers)/size)
	}
}

// TestSwarmWithFreeRider: a seed (2 MiB/s), six leechers and a free-rider
// that serves nobody (1 MiB/s uplinks, 1 + 1 upload slots), starting
// together. All must finish, in a time near the Kurose–Ross lower bound
// max(F/u_s, N·F/(u_s + Σu_i)). The free-rider's rank is logged: choking
// does not reliably make it last here (see the issue report): rarest-first
// keeps the leechers' piece sets so alike that few peers are interested in
// any one leecher at a time, so its slots are seldom contested. The rounds
// are shortened (0.5 s regular, 1.5 s optimistic) so the test runs in seconds.
func TestSwarmWithFreeRider(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	rechokeDefault, optimisticDefault = 500*time.Millisecond, 1500*time.Millisecond
	defer func() { rechokeDefault, optimisticDefault = RechokeInterval, OptimisticInterval }()
	ctx := testCtx(t)
	const size, uplink = 10 << 20, 1 << 20
	seed := newNode(t, func(c *Config) { c.UploadRate, c.UploadSlots = 2*uplink, 1 })
	src := writeRandom(t, t.TempDir(), "src", size, 51)
	info, err := seed.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	nodes := []*node{}
	for i := range 7 {
		nodes = append(nodes, newNode(t, func(c *Config) {
			c.UploadRate, c.UploadSlots = uplink, 1
			c.test = &testHooks{noServe: i == 6} // the free-rider
		}))
	}
	hints := []peer.Addr{seed.p.Addr()}
	for _, n := range nodes {
		hints = append(hints, n.p.Addr())
	}
	start := time.Now()
	took := make([]time.Duration, len(nodes))
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := filepath.Join(t.TempDir(), "copy")
			_, errs[i] = n.s.Fetch(ctx, info.ID, dst, WithProviders(hints...), OnlyProviders())
			took[i] = time.Since(start)
			if errs[i] == nil {
				sameFile(t, src, dst)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
	}
	rank := 1
	for _, d := range took[:6] {
		if d < took[6] {
			rank++
		}
	}
	bound := max(float64(size)/(2*uplink), 7*float64(size)/(2*uplink+6*uplink))
	last := slices.Max(took)
	t.Logf("leechers took %v; the free-rider %v (rank %d of 7); all done in %v = %.2f × the lower bound %.2fs",
		took[:6], took[6], rank, last, last.Seconds()/bound, bound)
	if last.Seconds() > 2.5*bound && !raceEnabled {
		t.Fatalf("the swarm took %.1f× the lower bound", last.Seconds()/bound)
	}
}
