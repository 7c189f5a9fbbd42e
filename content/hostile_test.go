package content

import (
	"bufio"
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

func rawHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func rawStream(t *testing.T, h host.Host, to *node) network.Stream {
	t.Helper()
	ctx := testCtx(t)
	if err := h.Connect(ctx, lpAddr(to.p.Addr())); err != nil {
		t.Fatal(err)
	}
	s, err := h.NewStream(ctx, lp(to.p.ID()), protocol.ID(ProtocolID))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// readAllLimited reads until the provider ends the stream; it fails the test
// if the provider keeps it open.
func expectEnd(t *testing.T, s network.Stream) []byte {
	t.Helper()
	s.SetReadDeadline(time.Now().Add(time.Minute))
	b, err := io.ReadAll(io.LimitReader(s, 1<<20))
	if err != nil && errors.Is(err, errDeadline) {
		t.Fatal("the provider kept a hostile stream open")
	}
	return b
}

var errDeadline = errors.New("i/o deadline reached")

func TestHostileDownloaders(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "f", 4*PieceSize, 1)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	h := rawHost(t)
	hello := frameBytes(fHello, info.ID[:], []byte{0})

	t.Run("garbage", func(t *testing.T) {
		s := rawStream(t, h, a)
		s.Write(randBytes(4096, 9))
		s.CloseWrite()
		expectEnd(t, s)
	})
	t.Run("oversized-frame", func(t *testing.T) {
		s := rawStream(t, h, a)
		s.Write(hello)
		s.Write([]byte{fRequest, 0x40, 0, 0, 0}) // 1 GiB announced
		b := expectEnd(t, s)
		if len(b) > 64<<10 {
			t.Fatalf("got %d bytes back", len(b))
		}
	})
	t.Run("endless-requests", func(t *testing.T) {
		s := rawStream(t, h, a)
		s.Write(hello)
		w := bufio.NewWriter(s)
		// Requests without reading: the queue bound ends the stream.
		go func() {
			for range 100_000 {
				if writeFrame(w, fRequest, u32(0)) != nil {
					return
				}
			}
			w.Flush()
		}()
		s.SetReadDeadline(time.Now().Add(time.Minute))
		n, _ := io.Copy(io.Discard, s)
		if n > (maxQueued+2)*PieceSize+1<<20 {
			t.Fatalf("served %d bytes to a peer that never stopped asking", n)
		}
	})
	t.Run("unknown-id", func(t *testing.T) {
		s := rawStream(t, h, a)
		s.Write(frameBytes(fHello, make([]byte, 32), []byte{0}))
		typ, p, err := readFrame(bufio.NewReader(s), nil, maxFrame)
		if err != nil || typ != fError || p[0] != codeNotFound {
			t.Fatalf("answer %d %q %v, want a not-found error", typ, p, err)
		}
	})
	t.Run("piece-out-of-range", func(t *testing.T) {
		s := rawStream(t, h, a)
		s.Write(hello)
		s.Write(frameBytes(fRequest, u32(1<<30)))
		expectEnd(t, s)
	})
	// The service still serves an honest peer.
	b := newNode(t, nil)
	if _, err := b.s.Fetch(ctx, info.ID, filepath.Join(t.TempDir(), "x"), WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
}

func TestMaxUploads(t *testing.T) {
	ctx := testCtx(t)
	a := newNode(t, func(c *Config) { c.MaxUploads = 2 })
	info, err := a.s.AddBytes(ctx, "x", randBytes(1000, 2))
	if err != nil {
		t.Fatal(err)
	}
	h := rawHost(t)
	for range 2 {
		s := rawStream(t, h, a)
		s.Write(frameBytes(fHello, info.ID[:], []byte{0}))
		if typ, _, err := readFrame(bufio.NewReader(s), nil, maxFrame); err != nil || typ != fInfo {
			t.Fatalf("upload refused early: %d %v", typ, err)
		}
	}
	s := rawStream(t, h, a)
	typ, p, err := readFrame(bufio.NewReader(s), nil, maxFrame)
	if err != nil || typ != fError || p[0] != codeBusy {
		t.Fatalf("third upload: %d %q %v, want busy", typ, p, err)
	}
}

// hostileProvider serves ProtocolID with a scripted answer.
func hostileProvider(t *testing.T, answer func(s network.Stream, id ID)) host.Host {
	h := rawHost(t)
	h.SetStreamHandler(protocol.ID(ProtocolID), func(s network.Stream) {
		defer s.Close()
		typ, p, err := readFrame(bufio.NewReader(s), nil, 64)
		if err != nil || typ != fHello {
			s.Reset()
			return
		}
		answer(s, ID(p[:32]))
	})
	return h
}

func TestHostileProviders(t *testing.T) {
	content := randBytes(3*PieceSize, 5)
	cases := map[string]func(s network.Stream, id ID){
		"garbage": func(s network.Stream, id ID) { s.Write(randBytes(10000, 3)) },
		"oversized": func(s network.Stream, id ID) {
			s.Write([]byte{fInfo, 0x7f, 0, 0, 0})
		},
		"wrong-tree": func(s network.Stream, id ID) {
			ob := make([]byte, outboardSize(int64(len(content))))
			ob[0] = byte(len(content))
			ob[1], ob[2] = byte(len(content)>>8), byte(len(content)>>16)
			s.Write(frameBytes(fInfo, be64(uint64(len(content))), []byte{0xe0}))
			s.Write(frameBytes(fTree, u32(0), ob))
		},
		"silent": func(s network.Stream, id ID) {
			// Claims every piece, sends the tree, then never answers.
			_, tr, _ := hashContent(context.Background(), bytesReader(content), int64(len(content)), nil)
			s.Write(frameBytes(fInfo, be64(uint64(len(content))), []byte{0xe0}))
			s.Write(frameBytes(fTree, u32(0), tr.outboard))
			io.Copy(io.Discard, s)
		},
	}
	for name, answer := range cases {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(testCtx(t), 2*time.Minute)
			defer cancel()
			h := hostileProvider(t, answer)
			b := newNode(t, nil)
			b.s.stallTimeout = time.Second
			id, _, _ := hashContent(ctx, bytesReader(content), int64(len(content)), nil)
			_, err := b.s.Fetch(ctx, id, filepath.Join(t.TempDir(), "x"),
				WithProviders(jAddr(h)), OnlyProviders())
			if err == nil || !errors.Is(err, ErrNoProviders) {
				t.Fatalf("fetch from a hostile provider: %v", err)
			}
			t.Logf("%s: %v", name, err)
		})
	}
}
