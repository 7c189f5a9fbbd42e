package content

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

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
	hints := []peer.AddrInfo{seed.p.AddrInfo()}
	for _, l := range leechers {
		hints = append(hints, l.p.AddrInfo())
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
	if seed.s.Uploaded() >= 3*size {
		t.Fatalf("the seed sent %d bytes: leechers did not trade", seed.s.Uploaded())
	}
	if fromLeechers == 0 {
		t.Fatal("no leecher uploaded anything")
	}
}
