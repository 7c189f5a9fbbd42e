package main

import (
	"context"
	"testing"

	tea "github.com/charmbracelet/bubbletea"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/peer"
)

// inviteFake adds what the newcomer's commands need to the model's fake.
type inviteFake struct {
	tuiFake
	invited  []string
	accepted []string
}

func (f *inviteFake) InviteToRoom(_ context.Context, room string, id peer.ID) error {
	f.invited = append(f.invited, room+" "+string(id))
	return nil
}

func (f *inviteFake) AcceptRoomInvitation(_ context.Context, room string) error {
	f.accepted = append(f.accepted, room)
	f.rooms = append(f.rooms, room)
	return nil
}

func (f *inviteFake) PathTo(peer.ID) peer.Path { return peer.PathDirect }

// Issue 11 in the terminal UI: room invitations travel over the pipe and are
// announced; /path exists and is in the help.
func TestTUIRoomInvitationAndPath(t *testing.T) {
	bob := peer.ID("bob-peer-id")
	f := &inviteFake{tuiFake: tuiFake{state: [2]string{"online", ""}, history: map[peer.ID][]im.Message{}, rooms: []string{"club"}}}
	f.contacts = []im.Contact{{ID: bob, Name: "bob", State: im.Accepted, Presence: "online"}}
	m := newTUIModel(context.Background(), f, false)
	tuiUpdate(t, m, tea.WindowSizeMsg{Width: 120, Height: 40})

	tuiType(t, m, "/room invite club bob")
	if len(f.invited) != 1 || f.invited[0] != "club "+string(bob) {
		t.Fatalf("invited %v", f.invited)
	}
	tuiWant(t, m, "invited bob to #club")

	tuiUpdate(t, m, eventMsg{im.RoomInvitation{From: f.contacts[0], Room: "chess"}})
	tuiWant(t, m, "bob invites you to #chess — /room accept chess")
	tuiType(t, m, "/room accept chess")
	if len(f.accepted) != 1 || f.accepted[0] != "chess" {
		t.Fatalf("accepted %v", f.accepted)
	}

	tuiType(t, m, "/path bob")
	tuiWant(t, m, "bob: direct")
	tuiType(t, m, "/help")
	tuiWant(t, m, "/path [NAME]")
}
