package im

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/groups"
)

// Rooms: a password room found by name, messages to all members, their
// presence, a wrong password refused; an invite room joined with a credential.
func TestRooms(t *testing.T) {
	sp := open(t, "sp", func(c *Config) { c.SuperPeer = true })
	withSP := func(c *Config) { c.SuperPeers = []string{sp.Invite()} }
	a, b, c := open(t, "alice", withSP), open(t, "bob", withSP), open(t, "carol", withSP)
	ctx := context.Background()
	for _, m := range []*Messenger{a, b, c} {
		if err := m.Peer().Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.CreateRoom(ctx, "lobby", "open sesame"); err != nil {
		t.Fatal(err)
	}
	if err := c.JoinRoom(ctx, "lobby", "wrong"); err == nil {
		t.Fatal("joined a password room with the wrong password")
	}
	if err := b.JoinRoom(ctx, "lobby", "open sesame"); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("a->b path %s, a peers %d, b peers %d, a members %v, b members %v", a.Peer().PathTo(b.ID()),
				len(a.Peer().Libp2p().Host.Network().Peers()), len(b.Peer().Libp2p().Host.Network().Peers()), a.RoomMembers("lobby"), b.RoomMembers("lobby"))
		}
	}()
	eventually(t, patience, "bob in alice's member list", func() bool {
		for _, mem := range a.RoomMembers("lobby") {
			if mem.ID == b.ID() && mem.State == groups.Online {
				return true
			}
		}
		return false
	})
	sub := b.Subscribe(ctx)
	defer sub.Cancel()
	// The chat pipe is a GossipSub topic of its own: until alice knows bob
	// subscribes, what she says reaches no one. Say it again now and then.
	deadline := time.After(patience)
	again := time.NewTicker(2 * time.Second)
	defer again.Stop()
	if err := a.SayRoom(ctx, "lobby", "welcome to the lobby"); err != nil {
		t.Fatal(err)
	}
	for got := false; !got; {
		select {
		case ev := <-sub.C:
			if rm, ok := ev.(RoomMessage); ok && rm.Message.Text == "welcome to the lobby" && rm.Message.From == "alice" {
				got = true
			}
		case <-again.C:
			a.SayRoom(ctx, "lobby", "welcome to the lobby")
		case <-deadline:
			t.Fatal("bob did not get the room message")
		}
	}
	if h := b.RoomHistory("lobby", 10); len(h) == 0 || h[len(h)-1].Text != "welcome to the lobby" {
		t.Fatalf("room history %+v", h)
	}

	// Invite room.
	if err := a.CreateRoom(ctx, "secret", ""); err != nil {
		t.Fatal(err)
	}
	friends(t, a, c)
	cred, err := a.RoomInvite("secret", c.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.JoinRoomInvite(ctx, cred); err == nil {
		t.Fatal("bob joined with carol's credential")
	}
	if err := c.JoinRoomInvite(ctx, cred); err != nil {
		t.Fatal(err)
	}
	if rooms := c.Rooms(); len(rooms) != 1 || rooms[0] != "secret" {
		t.Fatalf("carol's rooms %v", rooms)
	}
}

func TestAutoAway(t *testing.T) {
	m := open(t, "idle", func(c *Config) { c.AutoAway = 300 * time.Millisecond; c.Heartbeat = 100 * time.Millisecond })
	eventually(t, patience, "auto-away", func() bool { st, _ := m.Presence(); return st == string(groups.Away) })
	m.Touch()
	if st, _ := m.Presence(); st != string(groups.Online) {
		t.Fatalf("after activity: %s", st)
	}
	// A state the user chose is not overridden by idling.
	m.SetPresence(groups.Busy, "focus")
	time.Sleep(600 * time.Millisecond)
	if st, _ := m.Presence(); st != string(groups.Busy) {
		t.Fatalf("idle overrode busy: %s", st)
	}
}

// A password room moves to a new password: its creator first, then a member
// told it, who keeps receiving; neither password is saved; a member who
// tries before the creator is told why.
func TestRoomPassword(t *testing.T) {
	sp := open(t, "sp", func(c *Config) { c.SuperPeer = true })
	withSP := func(c *Config) { c.SuperPeers = []string{sp.Invite()} }
	a, b := open(t, "alice", withSP), open(t, "bob", withSP)
	ctx := context.Background()
	for _, m := range []*Messenger{a, b} {
		if err := m.Peer().Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const oldPW, newPW = "first-room-password", "second-room-password"
	if err := a.CreateRoom(ctx, "den", oldPW); err != nil {
		t.Fatal(err)
	}
	if err := b.JoinRoom(ctx, "den", oldPW); err != nil {
		t.Fatal(err)
	}
	if err := a.RoomPassword(ctx, "nowhere", newPW); err == nil || !strings.Contains(err.Error(), `not in room "nowhere"`) {
		t.Fatalf("a room we are not in: %v", err)
	}
	if err := b.RoomPassword(ctx, "den", newPW); !errors.Is(err, groups.ErrNotRotated) || !strings.Contains(err.Error(), "creator changes it first") {
		t.Fatalf("member before the creator: %v", err)
	}
	notices := b.Subscribe(ctx)
	defer notices.Cancel()
	if err := a.RoomPassword(ctx, "den", newPW); err != nil {
		t.Fatal(err)
	}
	// Bob is told the room moved on, with the command to follow.
	waitNotice(t, notices.C, "room den has a new password", "/room password den NEWPASSWORD")
	eventually(t, patience, "bob to follow", func() bool {
		err := b.RoomPassword(ctx, "den", newPW)
		if err != nil && !errors.Is(err, groups.ErrNotRotated) {
			t.Fatal(err)
		}
		return err == nil
	})
	for _, m := range []*Messenger{a, b} {
		saved := m.st.rooms()
		if len(saved) != 1 || len(saved[0].State) == 0 || bytes.Contains(saved[0].State, []byte(newPW)) {
			t.Fatalf("%s's saved room: %+v", m.Name(), saved)
		}
		if info, err := groups.ParseInfo(saved[0].GroupAd); err != nil || info.Epoch != 1 {
			t.Fatalf("%s's saved advertisement: epoch %d, %v", m.Name(), info.Epoch, err)
		}
	}
	sub := notices
	deadline := time.After(patience)
	again := time.NewTicker(2 * time.Second)
	defer again.Stop()
	a.SayRoom(ctx, "den", "under the new password")
	for got := false; !got; {
		select {
		case ev := <-sub.C:
			rm, ok := ev.(RoomMessage)
			got = ok && rm.Message.Text == "under the new password"
		case <-again.C:
			a.SayRoom(ctx, "den", "under the new password")
		case <-deadline:
			t.Fatal("bob did not get the message sent under the new password")
		}
	}
}
