package content

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"lukechampine.com/blake3"

	"github.com/juxta-p2p/juxta/peer"
)

// BenchmarkTransfer compares, in one run on loopback, a single-provider Fetch
// with Go's net/http file server and a raw libp2p stream moving the same file
// between the same two peers, all writing to a file on the same disk:
//
//	go test -run XXX -bench Transfer -benchtime 5x ./content/
func BenchmarkTransfer(b *testing.B) {
	for _, tr := range []string{"tcp", "quic"} {
		b.Run(tr, func(b *testing.B) { benchTransfer(b, tr) })
	}
}

func benchTransfer(b *testing.B, transport string) {
	const size = 64 << 20
	ctx := context.Background()
	a, c := newTransportNode(b, transport), newTransportNode(b, transport)
	src := writeRandom(b, b.TempDir(), "src", size, 11)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		b.Fatal(err)
	}
	out := b.TempDir()

	b.Run("content-fetch", func(b *testing.B) {
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			dst := filepath.Join(out, "fetch")
			if _, err := c.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			c.s.Remove(ctx, info.ID)
			os.Remove(dst)
			b.StartTimer()
		}
	})
	b.Run("net-http", func(b *testing.B) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.ServeFile(w, r, src)
		}))
		defer srv.Close()
		cl := &http.Client{Transport: &http.Transport{}}
		defer cl.CloseIdleConnections()
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			resp, err := cl.Get(srv.URL)
			if err != nil {
				b.Fatal(err)
			}
			copyToFile(b, filepath.Join(out, "http"), resp.Body, size)
			resp.Body.Close()
		}
	})
	b.Run("raw-stream", func(b *testing.B) {
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
		b.SetBytes(size)
		for i := 0; i < b.N; i++ {
			s, err := c.p.Libp2p().Host.NewStream(ctx, lp(a.p.ID()), "/bench/raw")
			if err != nil {
				b.Fatal(err)
			}
			copyToFile(b, filepath.Join(out, "raw"), s, size)
			s.Close()
		}
	})
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
// with the raw BLAKE3 of the same bytes:
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
			h := blake3.New(32, nil)
			h.Write(data)
			h.Sum(nil)
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
