package content

import (
	"bufio"
	"bytes"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// superClient is a raw downloader of a super-seeding seed: it reads the
// info frame and then counts the pieces it is shown.
type superClient struct {
	t     *testing.T
	s     network.Stream
	br    *bufio.Reader
	shown bitfield
	n     int // pieces shown
	dups  int // haves of pieces already shown
}

func newSuperClient(t *testing.T, s network.Stream, id ID, pieces int) *superClient {
	t.Helper()
	s.Write(frameBytes(fHello, id[:], []byte{0}))
	c := &superClient{t: t, s: s, br: bufio.NewReader(s)}
	s.SetReadDeadline(time.Now().Add(time.Minute))
	typ, p, err := readFrame(c.br, nil, maxFrame)
	if err != nil || typ != fInfo {
		t.Fatalf("info: %d %v", typ, err)
	}
	c.shown = bitfield(append([]byte(nil), p[8:]...))
	if !c.shown.valid(pieces) {
		t.Fatalf("bitfield of %d bytes for %d pieces", len(c.shown), pieces)
	}
	for i := range pieces {
		if c.shown.has(i) {
			c.n++
		}
	}
	return c
}

func (c *superClient) have(i int) {
	if c.shown.has(i) {
		c.dups++
		return
	}
	c.shown.set(i)
	c.n++
}

// until reads frames until n pieces have been shown (or a minute passes),
// then reads on briefly, so that a piece shown too many, or twice, counts
// too. It waits for the event, not for a fixed time that a loaded machine
// may need more than.
func (c *superClient) until(n int) {
	c.t.Helper()
	c.s.SetReadDeadline(time.Now().Add(time.Minute))
	for c.n < n {
		typ, p, err := readFrame(c.br, nil, maxFrame)
		if err != nil {
			return
		}
		if typ == fHave {
			c.have(int(getU32(p)))
		}
	}
	c.next(300 * time.Millisecond)
}

// next reads frames until a piece arrives (returning its index and data) or
// the read deadline passes (returning -1), counting haves on the way.
func (c *superClient) next(wait time.Duration) (int, []byte) {
	c.t.Helper()
	c.s.SetReadDeadline(time.Now().Add(wait))
	for {
		typ, p, err := readFrame(c.br, nil, maxFrame)
		if err != nil {
			return -1, nil
		}
		switch typ {
		case fHave:
			c.have(int(getU32(p)))
		case fPiece:
			return int(getU32(p)), append([]byte(nil), p[4:]...)
		}
	}
}

// TestSuperSeedShowsFewPiecesAndIsBounded drives a super-seeding seed with
// raw downloaders: the first one alone sees every piece; a second one sees
// superSeedAhead pieces, none of them the first one's, and one more with
// each piece it is sent; one that asks for a piece it was not shown is
// served it; and one that flips its interest thousands of times is shown
// each piece at most once, and nothing after it was shown them all.
func TestSuperSeedShowsFewPiecesAndIsBounded(t *testing.T) {
	ctx := testCtx(t)
	const pieces = 32
	a := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "f", pieces*PieceSize, 3)
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	h1, h2, h3 := rawHost(t), rawHost(t), rawHost(t)
	first := newSuperClient(t, rawStream(t, h1, a), info.ID, pieces)
	if first.n != pieces {
		t.Fatalf("a lone downloader was shown %d of %d pieces", first.n, pieces)
	}
	// The first downloader takes two pieces: they are sent, so the second
	// downloader is shown others.
	var taken []int
	for i := range pieces {
		if len(taken) < 2 {
			first.s.Write(frameBytes(fRequest, u32(uint32(i))))
			if got, _ := first.next(time.Minute); got != i {
				t.Fatalf("asked for piece %d, got %d", i, got)
			}
			taken = append(taken, i)
		}
	}

	second := newSuperClient(t, rawStream(t, h2, a), info.ID, pieces)
	if second.n != superSeedAhead {
		t.Fatalf("a second downloader was shown %d pieces, want %d", second.n, superSeedAhead)
	}
	for _, i := range taken {
		if second.shown.has(i) {
			t.Fatalf("shown piece %d, which the seed sent already while others were never sent", i)
		}
	}
	// Each piece sent shows one more.
	var ask int
	for i := range pieces {
		if second.shown.has(i) {
			ask = i
			break
		}
	}
	second.s.Write(frameBytes(fRequest, u32(uint32(ask))))
	got, p := second.next(time.Minute)
	if got != ask || !bytes.Equal(p, data[ask*PieceSize:(ask+1)*PieceSize]) {
		t.Fatalf("asked for shown piece %d, got %d", ask, got)
	}
	if second.until(superSeedAhead + 1); second.n != superSeedAhead+1 {
		t.Fatalf("after a piece sent, shown %d pieces, want %d", second.n, superSeedAhead+1)
	}
	// A piece not shown is served all the same: super-seeding hides, it
	// does not refuse.
	hidden := -1
	for i := range pieces {
		if !second.shown.has(i) {
			hidden = i
			break
		}
	}
	second.s.Write(frameBytes(fRequest, u32(uint32(hidden))))
	if got, p := second.next(time.Minute); got != hidden || !bytes.Equal(p, data[hidden*PieceSize:(hidden+1)*PieceSize]) {
		t.Fatalf("asked for hidden piece %d, got %d", hidden, got)
	}

	// A third downloader flips its interest and cancels at random, without
	// taking anything: it is shown each piece once at most, in all.
	third := newSuperClient(t, rawStream(t, h3, a), info.ID, pieces)
	w := bufio.NewWriter(third.s)
	for k := range 5000 {
		writeFrame(w, fInterested)
		writeFrame(w, fNotInterested)
		writeFrame(w, fCancel, u32(uint32(k%pieces)))
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	third.until(pieces)
	if third.n != pieces || third.dups != 0 {
		t.Fatalf("a flipping downloader was shown %d of %d pieces, %d twice", third.n, pieces, third.dups)
	}
	// Sending every piece once ends super-seeding: the second downloader
	// is shown the rest.
	for i := range pieces {
		first.s.Write(frameBytes(fRequest, u32(uint32(i))))
		if got, _ := first.next(time.Minute); got != i {
			t.Fatalf("asked for piece %d, got %d", i, got)
		}
	}
	second.until(pieces)
	if second.n != pieces || second.dups != 0 {
		t.Fatalf("after every piece was sent, the second downloader was shown %d of %d pieces, %d twice", second.n, pieces, second.dups)
	}
}

// TestSuperSeedLoneDownloaderSeesAll: a super-seeded downloader whose
// fellow downloaders leave is shown every piece, as a lone downloader is.
func TestSuperSeedLoneDownloaderSeesAll(t *testing.T) {
	ctx := testCtx(t)
	const pieces = 32
	a := newNode(t, nil)
	info, err := a.s.Add(ctx, writeRandom(t, t.TempDir(), "f", pieces*PieceSize, 4))
	if err != nil {
		t.Fatal(err)
	}
	first := newSuperClient(t, rawStream(t, rawHost(t), a), info.ID, pieces)
	second := newSuperClient(t, rawStream(t, rawHost(t), a), info.ID, pieces)
	if first.n != pieces || second.n != superSeedAhead {
		t.Fatalf("shown %d and %d pieces, want %d and %d", first.n, second.n, pieces, superSeedAhead)
	}
	first.s.Reset()
	deadline := time.Now().Add(time.Minute)
	for second.n < pieces && time.Now().Before(deadline) {
		second.next(time.Second)
	}
	if second.n != pieces || second.dups != 0 {
		t.Fatalf("left alone, the downloader was shown %d of %d pieces, %d twice", second.n, pieces, second.dups)
	}
}
