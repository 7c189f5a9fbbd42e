package im

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// Issue 11: what arrives before the UI subscribes (a message fetched at start)
// was stored but never shown. The first subscriber now gets it.
func TestEventsBeforeSubscribeAreReplayed(t *testing.T) {
	a, b := open(t, "alice"), open(t, "bob")
	friends(t, a, b)
	ctx := context.Background()
	if _, err := a.Send(ctx, b.ID(), "are you there?"); err != nil {
		t.Fatal(err)
	}
	eventually(t, patience, "bob to store the message", func() bool {
		h := b.History(a.ID(), 10)
		return len(h) > 0 && h[len(h)-1].Text == "are you there?"
	})
	sub := b.Subscribe(ctx)
	defer sub.Cancel()
	for {
		select {
		case ev := <-sub.C:
			if e, ok := ev.(MessageAdded); ok && e.Message.Text == "are you there?" {
				return
			}
		case <-time.After(patience):
			t.Fatal("the message that arrived before Subscribe was not delivered to the first subscriber")
		}
	}
}

// Issue 11: an invite room vanished for its creator after a restart, and for
// a member who restarted while the creator was offline. Both now come back,
// each alone, in either order.
func TestInviteRoomSurvivesRestarts(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	at := func(name string) *Messenger {
		t.Helper()
		m, err := Open(ctx, Config{Dir: filepath.Join(base, name), Name: name, Loopback: true, NoMDNS: true, AutoAway: -1, Heartbeat: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	a, b := at("alice"), at("bob")
	friends(t, a, b)
	if err := a.CreateRoom(ctx, "secret", ""); err != nil {
		t.Fatal(err)
	}
	cred, err := a.RoomInvite("secret", b.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.JoinRoomInvite(ctx, cred); err != nil {
		t.Fatal(err)
	}
	a.Close()
	b.Close()

	inRoom := func(m *Messenger) {
		t.Helper()
		sub := m.Subscribe(ctx)
		defer sub.Cancel()
		if rooms := m.Rooms(); len(rooms) != 1 || rooms[0] != "secret" {
			for {
				select {
				case ev := <-sub.C:
					if n, ok := ev.(Notice); ok {
						t.Fatalf("%s lost the room: %s", m.Name(), n.Text)
					}
				default:
					t.Fatalf("%s's rooms after a restart: %v", m.Name(), rooms)
				}
			}
		}
	}
	b = at("bob") // alice is away
	inRoom(b)
	a = at("alice")
	inRoom(a)
}
