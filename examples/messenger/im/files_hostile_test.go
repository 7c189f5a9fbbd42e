package im

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/internal/attack"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// fileSHA256 is the SHA-256 of the file at path.
func fileSHA256(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// share puts data in a's content service as a file a sends to b (a may
// serve it to b), as SendFile does but without a's send loop, so that a test
// speaks for a on the file pipe.
func share(t *testing.T, a, b *Messenger, data []byte) content.ID {
	t.Helper()
	info, err := a.cs.AddBytes(context.Background(), "", data)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.st.putSending(sendingFile{ID: newID(), Peer: b.ID(), Path: info.Path, Size: info.Size, Content: info.ID[:]}); err != nil {
		t.Fatal(err)
	}
	return info.ID
}

func randomID() []byte {
	b := make([]byte, 32)
	rand.Read(b)
	return b
}

// offer opens the file pipe from a to b and sends hdr; it returns the first
// reply and the open connection.
func offer(t *testing.T, a, b *Messenger, hdr fileHeader) (fileReply, net.Conn) {
	t.Helper()
	r, c, err := tryOffer(a, b, hdr)
	if err != nil {
		t.Fatal(err)
	}
	return r, c
}

// tryOffer is offer for goroutines other than the test's.
func tryOffer(a, b *Messenger, hdr fileHeader) (fileReply, net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := a.ps.Dial(ctx, filePipe, pipes.ToPeer(b.ID()))
	if err != nil {
		return fileReply{}, nil, err
	}
	raw, _ := enc.Marshal(hdr)
	var r fileReply
	if err = msgio.NewVarintWriter(c).WriteMsg(raw); err == nil {
		_ = c.SetReadDeadline(time.Now().Add(patience))
		err = readMsg(msgio.NewVarintReaderSize(c, 4096), &r)
	}
	if err != nil {
		c.Close()
		return fileReply{}, nil, err
	}
	return r, c, nil
}

// outcome reads the receiver's replies on c until it says Done or refuses.
func outcome(t *testing.T, c net.Conn) fileReply {
	t.Helper()
	defer c.Close()
	r := msgio.NewVarintReaderSize(c, 4096)
	for {
		var rep fileReply
		_ = c.SetReadDeadline(time.Now().Add(patience))
		if err := readMsg(r, &rep); err != nil {
			t.Fatalf("waiting for the receiver's answer: %v", err)
		}
		if rep.Done || rep.Err != "" {
			return rep
		}
	}
}

// hidden lists the hidden files (partial files, their state) in dir.
func hidden(dir string) []string {
	var out []string
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

func countPartials(dir string) int {
	parts, _ := filepath.Glob(filepath.Join(dir, ".*.part"))
	return len(parts)
}

func transferState(m *Messenger, id string) string {
	for _, x := range m.Transfers() {
		if x.ID == id {
			return x.State
		}
	}
	return ""
}

// TestHostileFileOffers: a contact offers files with hostile names, sizes
// and content IDs (issue 12 items 7, 8, 18, issue 13; the attacker is an
// accepted contact, as the file pipe serves only contacts). Bad names are
// refused for good without a spin, '..' lands inside Downloads, a file larger
// than the free space is refused, a size that lies and content the sender
// cannot serve are refused for good and leave nothing behind.
func TestHostileFileOffers(t *testing.T) {
	a, b := open(t, "mallory"), open(t, "bob")
	friends(t, a, b)
	goroutines := attack.Goroutines()
	for _, name := range []string{"a\x00b.txt", strings.Repeat("n", 256)} {
		r, c := offer(t, a, b, fileHeader{ID: newID(), Name: name, Size: 10, Content: randomID()})
		c.Close()
		if r.Err == "" || !r.Final {
			t.Fatalf("name %q: reply %+v, want a final refusal", name[:min(len(name), 20)], r)
		}
	}
	r, c := offer(t, a, b, fileHeader{ID: newID(), Name: "zero.bin", Size: 10, Content: make([]byte, 32)})
	c.Close()
	if !r.Final {
		t.Fatalf("a zero content ID: %+v, want a final refusal", r)
	}
	// No receive loop spins on: goroutines come back.
	eventually(t, time.Minute, "receivers to end", func() bool { return attack.Goroutines() <= goroutines+5 })

	// '..' and path tricks stay inside Downloads.
	for _, name := range []string{"..", "../../escape.txt", `..\..\win.txt`, "/etc/passwd"} {
		id := share(t, a, b, []byte("payload "+name))
		r, c := offer(t, a, b, fileHeader{ID: newID(), Name: name, Size: int64(len("payload " + name)), Content: id[:]})
		if r.Err != "" {
			t.Fatalf("%q refused: %s", name, r.Err)
		}
		if r := outcome(t, c); !r.Done {
			t.Fatalf("%q: %+v", name, r)
		}
	}
	entries, _ := os.ReadDir(filepath.Dir(b.Downloads()))
	for _, e := range entries {
		if e.Name() != "downloads" && (strings.Contains(e.Name(), "escape") || strings.Contains(e.Name(), "win") || strings.Contains(e.Name(), "payload")) {
			t.Fatalf("%s written outside Downloads", e.Name())
		}
	}
	got, _ := os.ReadDir(b.Downloads())
	if len(got) != 4 {
		t.Fatalf("downloads hold %v", got)
	}

	// More than the disk has free (leaving the reserve): refused for good.
	if free, ok := freeSpace(b.Downloads()); ok && free < MaxFileSize {
		r, c := offer(t, a, b, fileHeader{ID: newID(), Name: "huge.bin", Size: free, Content: randomID()})
		c.Close()
		if !r.Final || !strings.Contains(r.Err, "free") {
			t.Fatalf("a %d-byte offer with %d free: %+v", free, free, r)
		}
	}

	// A size that lies (to pass the disk check), and content the sender
	// cannot serve: refused for good once the fetch finds out, and nothing
	// stays in Downloads.
	big := make([]byte, 3*content.PieceSize+5)
	rand.Read(big)
	lies := share(t, a, b, big)
	ghost := randomID() // offered to bob, but mallory does not have it
	if err := a.st.putSending(sendingFile{ID: newID(), Peer: b.ID(), Path: "/nonexistent", Size: 1000, Content: ghost}); err != nil {
		t.Fatal(err)
	}
	for _, h := range []fileHeader{
		{ID: newID(), Name: "small.txt", Size: 1000, Content: lies[:]},
		{ID: newID(), Name: "unshared.txt", Size: 1000, Content: randomID()},
		{ID: newID(), Name: "ghost.txt", Size: 1000, Content: ghost},
	} {
		r, c := offer(t, a, b, h)
		if r.Err != "" {
			t.Fatalf("%s refused before the fetch: %s", h.Name, r.Err)
		}
		r = outcome(t, c)
		if !r.Final || r.Err == "" {
			t.Fatalf("%s: %+v, want a final refusal", h.Name, r)
		}
		t.Logf("%s: %s", h.Name, r.Err)
		if st := transferState(b, h.ID); st != "failed" {
			t.Fatalf("%s: receiver's transfer is %q", h.Name, st)
		}
	}
	if left := hidden(b.Downloads()); len(left) != 0 {
		t.Fatalf("refused offers left %v", left)
	}
	if got, _ := os.ReadDir(b.Downloads()); len(got) != 4 {
		t.Fatalf("downloads hold %v", got)
	}
}

// TestHostileFileFlood: a contact floods offers, and leaves unfinished
// files behind. At most MaxReceivesPerContact are fetched at once, the rest
// refused without leaving anything; unfinished files are bounded
// (MaxPartialFiles) and cleaned after PartialTTL.
func TestHostileFileFlood(t *testing.T) {
	// mallory serves the tree of what it offers but never a piece, until
	// the test ends: each accepted offer leaves a partial file.
	hold := make(chan struct{})
	var holding atomic.Bool
	a := open(t, "mallory", func(c *Config) {
		c.corrupt = func(int, []byte) {
			if holding.Load() {
				<-hold
			}
		}
	})
	t.Cleanup(func() { close(hold) }) // before mallory closes
	holding.Store(true)
	b := open(t, "bob")
	friends(t, a, b)
	mk := func() fileHeader {
		data := make([]byte, content.PieceSize+1)
		rand.Read(data)
		id := share(t, a, b, data)
		return fileHeader{ID: newID(), Name: "part.bin", Size: int64(len(data)), Content: id[:]}
	}
	const flood = 3 * MaxReceivesPerContact
	hdrs := make([]fileHeader, flood)
	for i := range hdrs {
		hdrs[i] = mk()
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		accepted []net.Conn
		ids      []string
		refused  []string
		failed   []error
	)
	for _, h := range hdrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, c, err := tryOffer(a, b, h)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed = append(failed, err)
				return
			}
			if r.Err != "" {
				c.Close()
				refused = append(refused, r.Err)
				return
			}
			accepted, ids = append(accepted, c), append(ids, h.ID)
		}()
	}
	wg.Wait()
	if len(failed) > 0 {
		t.Fatalf("offers failed: %v", failed)
	}
	if len(accepted) != MaxReceivesPerContact || len(refused) != flood-MaxReceivesPerContact {
		t.Fatalf("%d offers at once: %d taken, refused %q; want %d taken", flood, len(accepted), refused, MaxReceivesPerContact)
	}
	t.Logf("flood of %d offers: %d taken, the rest refused: %s", flood, len(accepted), refused[0])
	// The taken ones wait on mallory with their partial files; ended by
	// the sender, they pause and keep them.
	eventually(t, patience, "the taken offers' partial files", func() bool { return countPartials(b.Downloads()) == MaxReceivesPerContact })
	for _, c := range accepted {
		c.Close()
	}
	paused := func(ids ...string) {
		t.Helper()
		eventually(t, patience, "the receives to pause", func() bool {
			for _, id := range ids {
				if transferState(b, id) != "paused" {
					return false
				}
			}
			return true
		})
	}
	paused(ids...)
	for i := MaxReceivesPerContact; i < MaxPartialFiles; i++ {
		h := mk()
		r, c := offer(t, a, b, h)
		if r.Err != "" {
			t.Fatalf("partial %d refused: %s", i, r.Err)
		}
		eventually(t, patience, "the partial file", func() bool { return countPartials(b.Downloads()) == i+1 })
		c.Close()
		paused(h.ID)
	}
	r, c := offer(t, a, b, mk())
	c.Close()
	if r.Err == "" || !strings.Contains(r.Err, "unfinished") {
		t.Fatalf("an offer past MaxPartialFiles unfinished files: %+v", r)
	}
	// After PartialTTL they are cleaned, with their piece bitmaps, and
	// offers are taken again.
	old := time.Now().Add(-PartialTTL - time.Hour)
	for _, p := range hidden(b.Downloads()) {
		os.Chtimes(filepath.Join(b.Downloads(), p), old, old)
	}
	h := mk()
	r, c = offer(t, a, b, h)
	if r.Err != "" {
		t.Fatalf("offer after the partial files expired: %s", r.Err)
	}
	c.Close()
	paused(h.ID)
	if left := hidden(b.Downloads()); len(left) > 2 {
		t.Fatalf("after expiry: %v", left)
	}
}

// TestFileContentScope: what a messenger shares is fetched only by the
// contact it was sent to; a stranger and another contact are refused.
func TestFileContentScope(t *testing.T) {
	a, b, c := open(t, "alice"), open(t, "bob"), open(t, "carol")
	friends(t, a, b)
	friends(t, a, c)
	eve := open(t, "eve")
	data := []byte("for bob's eyes only")
	id := share(t, a, b, data)
	from := []content.FetchOption{content.WithProviders(a.Peer().Addr()), content.OnlyProviders()}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	// A stranger running a plain content service, and carol, a contact
	// alice sent nothing to.
	p, err := peer.New(ctx, peer.TestConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	stranger, err := content.New(ctx, content.Config{Peer: p, NoAnnounce: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stranger.Close() })
	for who, s := range map[string]*content.Service{"a stranger": stranger, "carol": c.cs} {
		_, err := s.Fetch(ctx, id, filepath.Join(t.TempDir(), "x"), from...)
		if !errors.Is(err, content.ErrDenied) {
			t.Fatalf("%s fetched what alice sends bob: %v", who, err)
		}
		t.Logf("%s: %v", who, err)
	}
	info, err := b.cs.Fetch(ctx, id, filepath.Join(t.TempDir(), "x"), from...)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("bob's fetch: %v", err)
	}
	// A stranger's offer is refused before anything is fetched: the pipe
	// is reset, or the answer says so.
	if _, err := eve.Peer().Connect(ctx, b.Peer().Addr()); err != nil {
		t.Fatal(err)
	}
	conn, err := eve.ps.Dial(ctx, filePipe, pipes.ToPeer(b.ID()))
	if err == nil {
		defer conn.Close()
		raw, _ := enc.Marshal(fileHeader{ID: newID(), Name: "x", Size: 1, Content: randomID()})
		var r fileReply
		_ = conn.SetReadDeadline(time.Now().Add(patience))
		if err = msgio.NewVarintWriter(conn).WriteMsg(raw); err == nil {
			err = readMsg(msgio.NewVarintReaderSize(conn, 4096), &r)
		}
		if err == nil && r.Err != "not a contact" {
			t.Fatalf("a stranger's offer: %+v", r)
		}
	}
	t.Logf("a stranger's offer: %v", err)
	if len(b.Transfers()) != 0 {
		t.Fatalf("bob's transfers: %+v", b.Transfers())
	}
}

// TestHostileTransferIDReuse: a contact offers a file under the ID of one
// this peer sent it (the sender chooses transfer IDs). The offer is a
// transfer of its own, and the one sent keeps its entry: before transfers
// were keyed by direction and peer, the offer took the sent file's place.
func TestHostileTransferIDReuse(t *testing.T) {
	a, b := open(t, "mallory"), open(t, "bob")
	friends(t, a, b)
	path := filepath.Join(t.TempDir(), "report.txt")
	if err := os.WriteFile(path, []byte("bob's report"), 0o600); err != nil {
		t.Fatal(err)
	}
	sub := b.Subscribe(context.Background())
	defer sub.Cancel()
	out, err := b.SendFile(context.Background(), a.ID(), path)
	if err != nil {
		t.Fatal(err)
	}
	follow(t, sub.C, out.ID, nil)
	payload := []byte("mallory's file")
	id := share(t, a, b, payload)
	r, c := offer(t, a, b, fileHeader{ID: out.ID, Name: "evil.txt", Size: int64(len(payload)), Content: id[:]})
	if r.Err != "" {
		t.Fatalf("offer refused: %s", r.Err)
	}
	if r := outcome(t, c); !r.Done {
		t.Fatalf("offer: %+v", r)
	}
	var sent, got []Transfer
	for _, x := range b.Transfers() {
		switch {
		case x.ID != out.ID:
		case x.Out:
			sent = append(sent, x)
		default:
			got = append(got, x)
		}
	}
	if len(sent) != 1 || sent[0].Name != "report.txt" || sent[0].State != "done" || sent[0].Path != path || sent[0].Peer != a.ID() {
		t.Fatalf("the file bob sent is now %+v", sent)
	}
	if len(got) != 1 || got[0].Name != "evil.txt" || got[0].State != "done" {
		t.Fatalf("the offer under the same ID is %+v", got)
	}
}
