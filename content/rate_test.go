package content

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestUploadCap measures a provider's upload over a window while a
// downloader pulls as fast as it can. The acceptance run is 30 s
// (JUXTA_LONG=1); by default the window is 6 s with a looser bound.
func TestUploadCap(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	window, tol := 6*time.Second, 0.10
	if os.Getenv("JUXTA_LONG") != "" {
		window, tol = 30*time.Second, 0.05
	}
	const capRate = 2 << 20
	ctx := testCtx(t)
	a := newNode(t, func(c *Config) { c.UploadRate = capRate })
	b := newNode(t, nil)
	size := int(capRate*(window.Seconds()+4)) / PieceSize * PieceSize
	src := writeRandom(t, t.TempDir(), "src", size, 31)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := b.s.Fetch(ctx, info.ID, filepath.Join(t.TempDir(), "out"), WithProviders(a.p.Addr()), OnlyProviders())
		errc <- err
	}()
	for a.s.Uploaded() < capRate { // past the start and the first burst
		time.Sleep(10 * time.Millisecond)
	}
	n0, t0 := a.s.Uploaded(), time.Now()
	time.Sleep(window)
	n1, t1 := a.s.Uploaded(), time.Now()
	rate := float64(n1-n0) / t1.Sub(t0).Seconds()
	dev := rate/capRate - 1
	t.Logf("upload %.0f B/s over %v against a cap of %d B/s: %+.2f%%", rate, t1.Sub(t0).Round(time.Millisecond), capRate, 100*dev)
	if math.Abs(dev) > tol {
		t.Fatalf("upload rate %.0f B/s is %+.1f%% off the cap", rate, 100*dev)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// TestPeerAndDownloadCaps: a per-peer upload cap holds for each of two
// downloaders at once, and a download cap holds on the downloader. Caps make
// transfers slower, so the test asserts lower bounds on their time only.
func TestPeerAndDownloadCaps(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := testCtx(t)
	const rate, size = 1 << 20, 3 << 20
	a := newNode(t, func(c *Config) { c.PeerUploadRate = rate })
	src := writeRandom(t, t.TempDir(), "src", size, 81)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	// Two downloaders at once: each gets about rate, so both take about
	// size/rate, and together they get twice the per-peer cap.
	b, c := newNode(t, nil), newNode(t, nil)
	start := time.Now()
	errc := make(chan error, 2)
	for _, n := range []*node{b, c} {
		go func() {
			_, err := n.s.Fetch(ctx, info.ID, filepath.Join(t.TempDir(), "out"), WithProviders(a.p.Addr()), OnlyProviders())
			errc <- err
		}()
	}
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	took := time.Since(start)
	min := time.Duration(float64(size-PieceSize) / rate * float64(time.Second))
	t.Logf("two downloads of %d bytes at a per-peer cap of %d B/s took %v (at least %v)", size, rate, took, min)
	if took < min {
		t.Fatalf("per-peer cap broken: %v < %v", took, min)
	}
	if took > 3*min && !raceEnabled {
		t.Logf("note: slower than the cap allows (%v); the machine is loaded", took)
	}

	// A download cap on the downloader, from an uncapped provider.
	d := newNode(t, func(c *Config) { c.DownloadRate = rate })
	e := newNode(t, nil)
	info2, err := e.s.AddBytes(ctx, "x", randBytes(size, 82))
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if _, err := d.s.Fetch(ctx, info2.ID, "", WithProviders(e.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	took = time.Since(start)
	t.Logf("a download capped at %d B/s took %v for %d bytes (at least %v)", rate, took, size, min)
	if took < min {
		t.Fatalf("download cap broken: %v < %v", took, min)
	}
}
