package im

import (
	"context"
	"crypto/rand"
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
