package im

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/internal/attack"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// rawChat opens the chat pipe from a raw host, speaking the message-pipe
// framing by hand (hello, then data frames), and sends f; it holds the
// stream open until handled returns true.
func rawChat(ctx context.Context, h host.Host, to peer.ID, f frame, handled func() bool) error {
	str, err := h.NewStream(ctx, lpeer.ID(to), protocol.ID("/juxta/pipe/1/message/-/"+chatPipe))
	if err != nil {
		return err
	}
	defer str.Close()
	defer func() {
		for deadline := time.Now().Add(patience); !handled() && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_ = str.SetDeadline(time.Now().Add(patience))
	w, r := msgio.NewVarintWriter(str), msgio.NewVarintReaderSize(str, 1<<20)
	hello := append([]byte{1, 0}, make([]byte, 16)...) // fHello, unreliable, sid
	hello = binary.AppendUvarint(hello, 0)
	if err := w.WriteMsg(hello); err != nil {
		return err
	}
	if _, err := r.ReadMsg(); err != nil { // fHelloAck
		return err
	}
	b, err := enc.Marshal(f)
	if err != nil {
		return err
	}
	data := binary.AppendUvarint([]byte{3}, 1) // fData, seq 1
	if err := w.WriteMsg(append(data, b...)); err != nil {
		return err
	}
	_, _ = r.ReadMsg() // the victim's hello back: the frame was read
	return nil
}

// TestHostileContactRequests: raw hosts send contact requests with invites
// that point at a listener of the test's (issue 12 item 9). At most
// MaxPendingRequests are kept (the oldest go), huge invites are not stored,
// the victim never dials the addresses, and an honest friend is still added.
func TestHostileContactRequests(t *testing.T) {
	victim := open(t, "victim")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// The address the attackers want the victim to dial.
	bait, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bait.Close()
	var dialled atomic.Int32
	go func() {
		for {
			c, err := bait.Accept()
			if err != nil {
				return
			}
			dialled.Add(1)
			c.Close()
		}
	}()
	baitAddr, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/" + fmt.Sprint(bait.Addr().(*net.TCPAddr).Port))
	dbBefore := fileSize(t, filepath.Join(victim.cfg.Dir, "messenger.db"))
	const strangers = 100
	for i := range strangers {
		h := attack.Host(t)
		if err := attack.Connect(ctx, h, victim.Peer().Libp2p().Host); err != nil {
			t.Fatal(err)
		}
		inv := peer.Invite{Peer: peer.Addr{ID: peer.ID(h.ID()), Addrs: []string{baitAddr.String()}}}.String()
		if i%2 == 1 {
			inv = strings.Repeat("x", 40<<10) // as long as the chat frame allows
		}
		box := make([]byte, 32)
		_, _ = rand.Read(box)
		handled := func() bool { _, err := victim.Contact(h.ID().String()); return err == nil }
		if err := rawChat(ctx, h, victim.ID(), frame{T: "hello", Want: true, Name: strings.Repeat("n", 8000), BoxKey: box, Invite: inv}, handled); err != nil {
			t.Fatalf("stranger %d: %v", i, err)
		}
		h.Close()
	}
	time.Sleep(3 * victim.cfg.Heartbeat) // connectLoop has had its chances to dial
	if n := victim.pendingRequests(); n > MaxPendingRequests {
		t.Fatalf("%d pending requests, bound %d", n, MaxPendingRequests)
	}
	for _, c := range victim.st.contacts() {
		if len(c.Invite) > peer.MaxInviteLen || len(c.Name) > maxNameLen {
			t.Fatalf("stored a %d-byte invite, a %d-byte name", len(c.Invite), len(c.Name))
		}
	}
	if n := dialled.Load(); n != 0 {
		t.Fatalf("the victim dialled the strangers' addresses %d times", n)
	}
	grown := fileSize(t, filepath.Join(victim.cfg.Dir, "messenger.db")) - dbBefore
	t.Logf("%d requests: %d pending, messenger.db grew %d bytes, 0 dials", strangers, victim.pendingRequests(), grown)
	if grown > 1<<20 {
		t.Fatalf("messenger.db grew by %d bytes", grown)
	}
	// The user can still add a friend.
	friend := open(t, "friend")
	start := time.Now()
	friends(t, friend, victim)
	t.Logf("honest contact added in %v under the flood", time.Since(start))
}

func fileSize(t *testing.T, p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// offer opens the file pipe from a to b and sends hdr; it returns the reply
// and the open connection.
func offer(t *testing.T, a, b *Messenger, hdr fileHeader) (fileReply, net.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := a.ps.Dial(ctx, filePipe, pipes.ToPeer(b.ID()))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := enc.Marshal(hdr)
	if err := msgio.NewVarintWriter(c).WriteMsg(raw); err != nil {
		t.Fatal(err)
	}
	var r fileReply
	_ = c.SetReadDeadline(time.Now().Add(time.Minute))
	if err := readMsg(msgio.NewVarintReaderSize(c, 4096), &r); err != nil {
		t.Fatal(err)
	}
	return r, c
}

// TestHostileFileOffers: a contact offers files with hostile names and sizes
// (issue 12 items 7, 8, 18; the attacker is an accepted contact, as the file
// pipe serves only contacts). Bad names are refused for good without a spin,
// '..' lands inside Downloads, a file larger than the free space is refused,
// unfinished files are bounded and cleaned.
func TestHostileFileOffers(t *testing.T) {
	a, b := open(t, "mallory"), open(t, "bob")
	friends(t, a, b)
	sum := make([]byte, 32)
	goroutines := attack.Goroutines()
	for _, name := range []string{"a\x00b.txt", strings.Repeat("n", 256)} {
		r, c := offer(t, a, b, fileHeader{ID: newID(), Name: name, Size: 10, SHA256: sum})
		c.Close()
		if r.Err == "" || !r.Final {
			t.Fatalf("name %q: reply %+v, want a final refusal", name[:min(len(name), 20)], r)
		}
	}
	// No receive loop spins on: goroutines come back.
	eventually(t, time.Minute, "receivers to end", func() bool { return attack.Goroutines() <= goroutines+5 })

	// '..' and path tricks stay inside Downloads.
	for _, name := range []string{"..", "../../escape.txt", `..\..\win.txt`, "/etc/passwd"} {
		content := []byte("payload " + name)
		h := sha256.Sum256(content)
		id := newID()
		r, c := offer(t, a, b, fileHeader{ID: id, Name: name, Size: int64(len(content)), SHA256: h[:]})
		if r.Err != "" {
			t.Fatalf("%q refused: %s", name, r.Err)
		}
		c.Write(content)
		c.(*pipes.Conn).CloseWrite()
		_ = readMsg(msgio.NewVarintReaderSize(c, 4096), &r)
		c.Close()
		if !r.Done {
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
		r, c := offer(t, a, b, fileHeader{ID: newID(), Name: "huge.bin", Size: free, SHA256: sum})
		c.Close()
		if !r.Final || !strings.Contains(r.Err, "free") {
			t.Fatalf("a %d-byte offer with %d free: %+v", free, free, r)
		}
	}

	// Unfinished files: a few bytes each, then the sender vanishes.
	for i := range MaxPartialFiles {
		r, c := offer(t, a, b, fileHeader{ID: fmt.Sprintf("p%d", i), Name: "part.bin", Size: 1 << 20, SHA256: sum})
		if r.Err != "" {
			t.Fatalf("partial %d refused: %s", i, r.Err)
		}
		c.Write(bytes.Repeat([]byte{1}, 1000))
		c.Close()
	}
	// Each receiver creates its file before the bytes arrive: wait for the
	// bytes too, or a late write would renew a file's time after Chtimes
	// below aged it (seen under .ci/stress).
	eventually(t, time.Minute, "the partial files and their bytes", func() bool {
		parts, _ := filepath.Glob(filepath.Join(b.Downloads(), ".*.part"))
		if len(parts) != MaxPartialFiles {
			return false
		}
		for _, p := range parts {
			if fi, err := os.Stat(p); err != nil || fi.Size() != 1000 {
				return false
			}
		}
		return true
	})
	r, c := offer(t, a, b, fileHeader{ID: "one-too-many", Name: "part.bin", Size: 1 << 20, SHA256: sum})
	c.Close()
	if r.Err == "" {
		t.Fatal("an offer past MaxPartialFiles unfinished files was taken")
	}
	// After PartialTTL they are cleaned and offers are taken again.
	old := time.Now().Add(-PartialTTL - time.Hour)
	parts, _ := filepath.Glob(filepath.Join(b.Downloads(), ".*.part"))
	for _, p := range parts {
		os.Chtimes(p, old, old)
	}
	r, c = offer(t, a, b, fileHeader{ID: "after", Name: "part.bin", Size: 1 << 20, SHA256: sum})
	c.Close()
	if r.Err != "" {
		t.Fatalf("offer after the partial files expired: %s", r.Err)
	}
	if n := countPartials(b.Downloads()); n > 1 {
		t.Fatalf("%d partial files after expiry", n)
	}
}

func countPartials(dir string) int {
	parts, _ := filepath.Glob(filepath.Join(dir, ".*.part"))
	return len(parts)
}

// TestHostileTimestamps: a contact dates messages in 1970 and in the future
// (issue 12 item 15; the attacker is an accepted contact). The receiver keeps
// the arrival time instead.
func TestHostileTimestamps(t *testing.T) {
	a, b := open(t, "mallory"), open(t, "bob")
	friends(t, a, b)
	ctx := context.Background()
	for i, sent := range []int64{1000, time.Now().Add(time.Hour).UnixMilli()} {
		before := time.Now()
		id := fmt.Sprintf("ts%d", i)
		if err := a.sendFrame(ctx, a.conn(b.ID()), frame{T: "msg", ID: id, Text: "when?", Time: sent, Seq: uint64(100 + i)}); err != nil {
			t.Fatal(err)
		}
		var msg Message
		eventually(t, time.Minute, "the message", func() bool {
			var ok bool
			msg, ok = b.st.message(id)
			return ok
		})
		if msg.Time.Before(before.Add(-time.Second)) || msg.Time.After(time.Now().Add(time.Second)) {
			t.Fatalf("message sent as %v stored as %v", time.UnixMilli(sent), msg.Time)
		}
	}
	if got := clampTime(time.Now().Add(-time.Minute).UnixMilli(), time.Now()); time.Since(time.UnixMilli(got)) < 50*time.Second {
		t.Fatal("an honest minute-old time was not kept")
	}
}

// TestHostileRoomName: an attacker advertises a password room under the
// name of an honest one (issue 12 item 12; the attacker runs juxta, since a
// room is a signed group advertisement). JoinRoom with the honest password
// joins the honest room.
func TestHostileRoomName(t *testing.T) {
	sp := open(t, "sp", func(c *Config) { c.SuperPeer = true })
	withSP := func(c *Config) { c.SuperPeers = []string{sp.Invite()} }
	mallory, alice, bob := open(t, "mallory", withSP), open(t, "alice", withSP), open(t, "bob", withSP)
	ctx := context.Background()
	for _, m := range []*Messenger{mallory, alice, bob} {
		if err := m.Peer().Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := mallory.CreateRoom(ctx, "lobby", "mallory's"); err != nil {
		t.Fatal(err)
	}
	if err := alice.CreateRoom(ctx, "lobby", "open sesame"); err != nil {
		t.Fatal(err)
	}
	var err error
	eventually(t, time.Minute, "bob in the honest lobby", func() bool {
		err = bob.JoinRoom(ctx, "lobby", "open sesame")
		return err == nil
	})
	if got, want := bob.room("lobby").g.ID(), alice.room("lobby").g.ID(); got != want {
		t.Fatalf("bob joined %s, the honest room is %s", got, want)
	}
	// A password neither room takes: a clear error, no room joined.
	carol := open(t, "carol", withSP)
	if err := carol.Peer().Ready(ctx); err != nil {
		t.Fatal(err)
	}
	err = carol.JoinRoom(ctx, "lobby", "nobody's")
	if !errors.Is(err, groups.ErrWrongPassword) && !strings.Contains(err.Error(), "no password room") {
		t.Fatalf("join with a password no room takes: %v", err)
	}
	if carol.room("lobby") != nil {
		t.Fatal("carol is in a room")
	}
}
