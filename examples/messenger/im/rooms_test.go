package im

import (
	"context"
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
