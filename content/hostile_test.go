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

// TestHostileHellosDuringTreeWait: a download that does not know its tree yet
// holds hellos for its ID until it does (so peers starting together do not
// give up on each other). A squatter opening more such streams than
// MaxUploads is refused as busy at once, and the held streams are answered
// "not found" as soon as the download ends, not after helloTimeout.
func TestHostileHellosDuringTreeWait(t *testing.T) {
	ctx := testCtx(t)
	const slots = 3
	a := newNode(t, func(c *Config) { c.MaxUploads = slots })
	// A provider that takes the stream and never answers: a's download
	// never learns the tree.
	mute := rawHost(t)
	mute.SetStreamHandler(protocol.ID(ProtocolID), func(s network.Stream) {
		io.Copy(io.Discard, s)
	})
	var id ID
	copy(id[:], randBytes(32, 3))
	fctx, cancel := context.WithCancel(ctx)
	fetched := make(chan error, 1)
	go func() {
		_, err := a.s.Fetch(fctx, id, filepath.Join(t.TempDir(), "x"), WithProviders(jAddr(mute)), OnlyProviders())
		fetched <- err
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		a.s.mu.Lock()
		started := a.s.downloads[id] != nil
		a.s.mu.Unlock()
		if started {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the download did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	h := rawHost(t)
	hello := frameBytes(fHello, id[:], []byte{helloWantTree})
	var held []network.Stream
	for range slots {
		s := rawStream(t, h, a)
		s.Write(hello)
		held = append(held, s)
	}
	// Held, not answered: nothing to read for a while.
	held[0].SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := held[0].Read(make([]byte, 1)); n > 0 || !errors.Is(err, errDeadline) && !isTimeout(err) {
		t.Fatalf("a hello during the tree wait was answered at once: %d bytes, %v", n, err)
	}
	// Past MaxUploads: refused as busy, at once.
	extra := make([]network.Stream, 0, 2)
	for range 2 {
		s := rawStream(t, h, a)
		s.Write(hello)
		extra = append(extra, s)
	}
	start := time.Now()
	busy := 0
	for _, s := range extra {
		if b := expectEnd(t, s); len(b) > frameHeader && b[0] == fError && b[frameHeader] == codeBusy {
			busy++
		}
	}
	if busy != len(extra) || time.Since(start) > helloTimeout/2 {
		t.Fatalf("%d of %d streams past MaxUploads refused as busy, in %v", busy, len(extra), time.Since(start))
	}
	// The download ends: the held streams are answered now.
	cancel()
	<-fetched
	start = time.Now()
	for _, s := range held {
		b := expectEnd(t, s)
		if len(b) <= frameHeader || b[0] != fError || b[frameHeader] != codeNotFound {
			t.Fatalf("a held stream got %q after the download ended", b)
		}
	}
	if waited := time.Since(start); waited > helloTimeout/2 {
		t.Fatalf("held streams answered %v after the download ended", waited)
	}
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
