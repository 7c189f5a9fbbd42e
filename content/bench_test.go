package content

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"lukechampine.com/blake3"

	"github.com/juxta-p2p/juxta/internal/stats"
	"github.com/juxta-p2p/juxta/peer"
)

// BenchmarkTransfer compares, in one run on loopback, a single-provider Fetch
// with Go's net/http file server (plain, and over TLS: content's streams are
// encrypted too) and a raw libp2p stream moving the same file between the
// same two peers, every receiver writing to a file on the same disk:
//
//	go test -run XXX -bench Transfer -benchtime 5x ./content/
//
// CONTENT_BENCH_ROWS=content-fetch,raw-stream runs only the rows named, to
// profile them (-cpuprofile).
//
// Each iteration moves the file once by every way, in an order rotated per
// iteration, so that a machine whose load changes during the run slows every
// row alike. Reported per row: the median throughput (MB/s) and the process's
// CPU time per MB moved (both ends are in this process), the ratios
// fetch/http, fetch/https and fetch/raw of the median throughputs, and
// raw/http and raw/https: how close the libp2p stream itself comes. On a
// machine whose cores are busy with other work, throughput follows CPU cost:
// the cpu-ms/MB columns say where it goes.
func BenchmarkTransfer(b *testing.B) {
	for _, tr := range []string{"tcp", "quic"} {
		b.Run(tr, func(b *testing.B) { benchTransfer(b, tr) })
	}
}

// transferRow is one way of moving the file in BenchmarkTransfer. reset,
// outside the clock, removes what the previous move left, so that every
// move writes a new file.
type transferRow struct {
	name  string
	move  func(b *testing.B)
	reset func()
	mbps  []float64
	cpu   time.Duration
}

func benchTransfer(b *testing.B, transport string) {
	const size = 64 << 20
	ctx := context.Background()
	a, c := newTransportNode(b, transport), newTransportNode(b, transport)
	if _, err := c.p.Connect(ctx, a.p.Addr()); err != nil {
		b.Fatal(err)
	}
	src := writeRandom(b, b.TempDir(), "src", size, 11)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()
	serveFile := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, src) })
	plain, tls := httptest.NewServer(serveFile), httptest.NewTLSServer(serveFile)
	defer plain.Close()
	defer tls.Close()
	plainCl, tlsCl := &http.Client{Transport: &http.Transport{}}, tls.Client()
	defer plainCl.CloseIdleConnections()
	defer tlsCl.CloseIdleConnections()
	httpGet := func(cl *http.Client, url, name string) func(b *testing.B) {
		return func(b *testing.B) {
			resp, err := cl.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			copyToFile(b, filepath.Join(out, name), resp.Body, size)
		}
	}
	removeOut := func(name string) func() { return func() { os.Remove(filepath.Join(out, name)) } }
	a.p.Libp2p().Host.SetStreamHandler("/bench/raw", func(s network.Stream) {
		defer s.Close()
		f, err := os.Open(src)
		if err != nil {
			s.Reset()
			return
		}
		defer f.Close()
		io.Copy(s, f)
	})
	defer a.p.Libp2p().Host.RemoveStreamHandler("/bench/raw")
	rows := []*transferRow{
		{name: "content-fetch", move: func(b *testing.B) {
			if _, err := c.s.Fetch(ctx, info.ID, filepath.Join(out, "fetch"), WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
				b.Fatal(err)
			}
		}, reset: func() {
			c.s.Remove(ctx, info.ID) // forget it, to fetch it again
			os.Remove(filepath.Join(out, "fetch"))
		}},
		{name: "net-http", move: httpGet(plainCl, plain.URL, "http"), reset: removeOut("http")},
		{name: "net-https", move: httpGet(tlsCl, tls.URL, "https"), reset: removeOut("https")},
		{name: "raw-stream", move: func(b *testing.B) {
			s, err := c.p.Libp2p().Host.NewStream(ctx, lp(a.p.ID()), "/bench/raw")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			copyToFile(b, filepath.Join(out, "raw"), s, size)
		}, reset: removeOut("raw")},
	}
	if only := os.Getenv("CONTENT_BENCH_ROWS"); only != "" { // to profile some rows
		rows = slices.DeleteFunc(rows, func(r *transferRow) bool {
			return !slices.Contains(strings.Split(only, ","), r.name)
		})
	}
	b.SetBytes(size * int64(len(rows)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for k := range rows {
			r := rows[(i+k)%len(rows)]
			b.StopTimer()
			r.reset()
			b.StartTimer()
			c0, t0 := cpuTime(), time.Now()
			r.move(b)
			dt := time.Since(t0)
			r.cpu += cpuTime() - c0
			r.mbps = append(r.mbps, size/dt.Seconds()/1e6)
		}
	}
	b.StopTimer()
	med := map[string]float64{}
	for _, r := range rows {
		med[r.name] = stats.Median(r.mbps)
		b.ReportMetric(med[r.name], r.name+"-MB/s")
		b.ReportMetric(float64(r.cpu.Milliseconds())/float64(b.N)/(size/1e6), r.name+"-cpu-ms/MB")
	}
	ratio := func(a, base, unit string) {
		if med[a] != 0 && med[base] != 0 { // both run
			b.ReportMetric(med[a]/med[base], unit)
		}
	}
	for _, base := range []string{"net-http", "net-https", "raw-stream"} {
		ratio("content-fetch", base, "fetch/"+base)
	}
	// How close libp2p's encrypted stream itself comes to net/http.
	ratio("raw-stream", "net-http", "raw/net-http")
	ratio("raw-stream", "net-https", "raw/net-https")
}

// cpuTime is the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newTransportNode(t testing.TB, transport string) *node {
	addr := "/ip4/127.0.0.1/tcp/0"
	if transport == "quic" {
		addr = "/ip4/127.0.0.1/udp/0/quic-v1"
	}
	return newNodeWith(t, func(pc *peer.Config) { pc.ListenAddrs = []string{addr} }, nil)
}

func copyToFile(b *testing.B, path string, r io.Reader, want int64) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.Copy(f, r)
	f.Close()
	if err != nil || n != want {
		b.Fatalf("copied %d of %d: %v", n, want, err)
	}
}

// BenchmarkHash compares hashing for Add (BLAKE3 with the Bao outboard tree)
// and verifying pieces on arrival with the raw BLAKE3 of the same bytes:
//
//	go test -run XXX -bench Hash ./content/
func BenchmarkHash(b *testing.B) {
	data := randBytes(32<<20, 5)
	b.Run("bao-outboard", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			if _, _, err := hashContent(context.Background(), bytes.NewReader(data), int64(len(data)), nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("blake3-raw", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			blake3.Sum256(data)
		}
	})
	b.Run("verify-pieces", func(b *testing.B) {
		_, t, _ := hashContent(context.Background(), bytes.NewReader(data), int64(len(data)), nil)
		b.SetBytes(int64(len(data)))
		for i := 0; i < b.N; i++ {
			for p := range t.pieces() {
				if !t.verify(p, data[p*PieceSize:(p+1)*PieceSize]) {
					b.Fatal("rejected")
				}
			}
		}
	})
}
