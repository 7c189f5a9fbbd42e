package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/peer"
)

// findN runs q on n and returns how many results came; an error fails t.
func findN(t *testing.T, ctx context.Context, n *node, q Query) int {
	t.Helper()
	got := 0
	for _, err := range n.d.Find(ctx, q) {
		if err != nil {
			t.Fatal(err)
		}
		got++
	}
	return got
}

// publisherAndSeeker starts a peer that publishes a file and a peer
// connected to it, which keeps its streams as long as the test's patience (a
// loaded machine may take seconds between queries), and the seeker's query
// for the file, which asks the publisher as a LAN neighbour.
func publisherAndSeeker(t *testing.T, ctx context.Context) (pub, seeker *node, q Query) {
	t.Helper()
	pub = edge(t, Config{NoPeerAdvertisement: true, NoDHT: true})
	seeker = edge(t, Config{NoPeerAdvertisement: true, NoDHT: true})
	seeker.d.keep.ttl = patience
	if _, err := pub.d.Publish(ctx, fileAd("iso", "debian-13.iso")); err != nil {
		t.Fatal(err)
	}
	if _, err := seeker.p.Connect(ctx, pub.p.Addr()); err != nil {
		t.Fatal(err)
	}
	return pub, seeker, Query{Type: "fileshare.file", Attr: "name", Value: "debian-13.iso", Sources: SourceLAN}
}

// A peer's queries to the same peer share one stream: the second and third
// open none, and the stream is kept for the next.
func TestQueriesShareAStream(t *testing.T) {
	ctx := testCtx(t)
	pub, seeker, q := publisherAndSeeker(t, ctx)
	for i := range 3 {
		if got := findN(t, ctx, seeker, q); got != 1 {
			t.Fatalf("query %d: %d results, want 1", i, got)
		}
	}
	if o := seeker.d.opened.Load(); o != 1 {
		t.Errorf("3 queries opened %d streams, want 1", o)
	}
	if n := seeker.d.keep.len(); n != 1 {
		t.Errorf("%d streams kept, want 1", n)
	}
	if s := pub.d.Stats().QueriesServed; s != 3 {
		t.Errorf("the publisher served %d queries, want 3", s)
	}
	// A stream idle for its keep time is closed, and the next query opens one.
	seeker.d.keep.sweep(time.Now().Add(patience))
	if n := seeker.d.keep.len(); n != 0 {
		t.Errorf("%d streams kept past keepIdle, want 0", n)
	}
	if got := findN(t, ctx, seeker, q); got != 1 {
		t.Fatalf("after the sweep: %d results, want 1", got)
	}
	if o := seeker.d.opened.Load(); o != 2 {
		t.Errorf("%d streams opened, want 2", o)
	}
	// A publish is not a query: its stream is its own, and not kept.
	sp := superPeer(t)
	if _, err := seeker.p.Connect(ctx, sp.p.Addr()); err != nil {
		t.Fatal(err)
	}
	before := seeker.d.opened.Load()
	for range 2 {
		err := seeker.d.call(ctx, sp.p.ID(), request{Op: opFlush, Type: "fileshare.file", ID: "nothing"}, func(*response) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	if o := seeker.d.opened.Load() - before; o != 2 {
		t.Errorf("2 flushes opened %d streams, want 2", o)
	}
	if n := seeker.d.keep.len(); n != 1 {
		t.Errorf("%d streams kept after the flushes, want 1", n)
	}
}

// The peer asked restarts its discovery service, which resets the stream
// kept to it: the next query finds the kept stream dead before any answer,
// and goes again on a new one, without an error. That stream is not kept:
// the peer might be one that closes every stream after its answer.
func TestKeptStreamOfARestartedPeer(t *testing.T) {
	ctx := testCtx(t)
	pub, seeker, q := publisherAndSeeker(t, ctx)
	if got := findN(t, ctx, seeker, q); got != 1 {
		t.Fatalf("%d results, want 1", got)
	}
	if err := pub.d.Close(); err != nil {
		t.Fatal(err)
	}
	d2, err := New(ctx, pub.p, Config{NoPeerAdvertisement: true, NoDHT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d2.Close() })
	if _, err := d2.Publish(ctx, fileAd("iso", "debian-13.iso")); err != nil {
		t.Fatal(err)
	}
	if got := findN(t, ctx, seeker, q); got != 1 {
		t.Fatalf("after the restart: %d results, want 1", got)
	}
	if o := seeker.d.opened.Load(); o != 2 {
		t.Errorf("%d streams opened, want 2: the first, and one after the restart", o)
	}
	if got := findN(t, ctx, seeker, q); got != 1 {
		t.Fatalf("while cooling down: %d results, want 1", got)
	}
	if n := seeker.d.keep.len(); n != 0 {
		t.Errorf("%d streams kept while the peer cools down, want 0", n)
	}
	// Once it has cooled down, its streams are kept again.
	seeker.d.keep.sweep(time.Now().Add(keepCool + time.Second))
	for range 2 {
		if got := findN(t, ctx, seeker, q); got != 1 {
			t.Fatalf("after cooling down: %d results, want 1", got)
		}
	}
	if o := seeker.d.opened.Load(); o != 4 {
		t.Errorf("%d streams opened, want 4: one more while cooling down, and one kept after", o)
	}
	if n := seeker.d.keep.len(); n != 1 {
		t.Errorf("%d streams kept after cooling down, want 1", n)
	}
}

// A query ID is new once, however many copies arrive at once: a flooded
// query reaches a peer along several links, and each copy that passed as new
// would be forwarded again. Nor is a copy from the peer that sent it first
// new: call sends a query again when its stream died, and a flood must not
// go round again behind it.
func TestQueryIDIsNewOnce(t *testing.T) {
	n := edge(t, Config{NoPeerAdvertisement: true, NoDHT: true})
	const ids, copies = 2000, 4
	var news [ids]atomic.Int32
	var wg sync.WaitGroup
	for range copies {
		wg.Go(func() {
			for i := range ids {
				if n.d.firstSeen(fmt.Appendf(nil, "%016d", i)) {
					news[i].Add(1)
				}
			}
		})
	}
	wg.Wait()
	for i := range news {
		if got := news[i].Load(); got != 1 {
			t.Fatalf("query ID %d was new %d times among %d copies, want once", i, got, copies)
		}
	}
}

// An asker that closes its side after its query (one query per stream, as
// before streams were kept) is no fault; garbage after an answer is.
func TestServedStreamAfterTheAnswer(t *testing.T) {
	ctx := testCtx(t)
	sp := newNode(t, peer.TestSuperPeerConfig(), Config{QueryRate: 1e6})
	h, _ := rawHost(t)
	rawConnect(t, h, sp)
	if _, err := rawCall(ctx, h, sp.p.ID(), request{Op: opQuery, Value: "x", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream closed", func() bool { return sp.d.idleCount() == 0 })
	if n := sp.d.Stats().Dropped[DropMalformed]; n != 0 {
		t.Errorf("%d frames counted malformed after a close", n)
	}
	s, err := h.NewStream(ctx, lpeer.ID(sp.p.ID()), ProtocolID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	cn := newConn(s, func() {})
	if err := cn.send(request{Op: opQuery, Value: "x", Limit: 1}); err != nil {
		t.Fatal(err)
	}
	var r response
	if err := cn.recv(&r); err != nil || !r.Done {
		t.Fatalf("answer: %+v, %v", r, err)
	}
	if _, err := s.Write([]byte{5, 0xff, 0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the garbage counted", func() bool { return sp.d.Stats().Dropped[DropMalformed] == 1 })
	if err := cn.recv(&r); err == nil {
		t.Errorf("the stream still answers after garbage: %+v", r)
	}
}

// Peers that hold query streams open without asking anything more cannot
// keep more than maxServedIdlePeer goroutines each, nor maxServedIdle in all,
// waiting: the streams past that are answered and closed. Close closes the
// held ones, and waits for the goroutines that wait on them.
func TestServedIdleStreamsAreBounded(t *testing.T) {
	ctx := testCtx(t)
	sp := newNode(t, peer.TestSuperPeerConfig(), Config{QueryRate: 1e6})
	// Host 0 asks on two streams more than its bound; then hosts ask on
	// their bound each, until four streams more than the total bound.
	hosts := maxServedIdle/maxServedIdlePeer + 2
	held, refused := 0, 0
	for i := range hosts {
		h, _ := rawHost(t)
		rawConnect(t, h, sp)
		streams := maxServedIdlePeer
		if i == 0 {
			streams += 2
		}
		for j := range streams {
			s, err := h.NewStream(ctx, lpeer.ID(sp.p.ID()), ProtocolID)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Reset() })
			cn := newConn(s, func() {})
			if err := cn.send(request{Op: opQuery, Value: "x", Limit: 1}); err != nil {
				t.Fatal(err)
			}
			var r response
			if err := cn.recv(&r); err != nil || !r.Done {
				t.Fatalf("answer: %+v, %v", r, err)
			}
			if j < maxServedIdlePeer && held < maxServedIdle {
				held++ // held open, never written to again
				for deadline := time.Now().Add(patience); sp.d.idleCount() != held; {
					if time.Now().After(deadline) {
						t.Fatalf("host %d, stream %d: %d streams held idle, want %d", i, j, sp.d.idleCount(), held)
					}
					time.Sleep(time.Millisecond)
				}
				continue
			}
			// Past a bound: closed after the answer (its FIN came before
			// the read begins), not held until serveIdle runs out.
			refused++
			_ = s.SetReadDeadline(time.Now().Add(serveIdle / 2))
			var b [1]byte
			if _, err := s.Read(b[:]); !errors.Is(err, io.EOF) {
				t.Errorf("host %d, stream %d, past the bound: read %v, want EOF", i, j, err)
			}
		}
	}
	if want := hosts*maxServedIdlePeer + 2 - maxServedIdle; held != maxServedIdle || refused != want {
		t.Errorf("held %d, refused %d; want %d and %d", held, refused, maxServedIdle, want)
	}
	if n := sp.d.idleCount(); n != maxServedIdle {
		t.Errorf("%d streams held idle, want the bound, %d", n, maxServedIdle)
	}
	if err := sp.d.Close(); err != nil {
		t.Fatal(err)
	}
	if n := sp.d.idleCount(); n != 0 {
		t.Errorf("%d streams still held idle after Close", n)
	}
}
