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
// (JUXTA_LONG_TESTS=1); by default the window is 6 s with a looser bound.
func TestUploadCap(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	window, tol := 6*time.Second, 0.10
	if os.Getenv("JUXTA_LONG_TESTS") != "" {
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
