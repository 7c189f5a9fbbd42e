package im

import (
	"context"
	"fmt"
	"strings"

	"github.com/juxta-p2p/juxta/peer"
)

// Room invitations between contacts travel in the chat protocol (a
// "room-invite" frame: Text the room's name, Invite the credential), live or
// through the mailbox, instead of a credential of about 1,000 characters
// copied by hand.

// maxRoomInvitations bounds the invitations waiting for an answer.
const maxRoomInvitations = 32

// RoomInvitation: a contact invites this user to an invite room; accept with
// AcceptRoomInvitation(Room).
type RoomInvitation struct {
	From Contact
	Room string
}

func (RoomInvitation) isEvent() {}

type roomInvitation struct {
	from peer.ID
	cred string
}

// InviteToRoom makes a credential for contact to join room and sends it to
// them: at once when connected, else through their mailbox.
func (m *Messenger) InviteToRoom(ctx context.Context, room string, contact peer.ID) error {
	c, ok := m.st.contact(contact)
	if !ok || c.State != Accepted {
		return fmt.Errorf("messenger: %s is not an accepted contact", contact.ShortString())
	}
	cred, err := m.RoomInvite(room, contact)
	if err != nil {
		return err
	}
	f := frame{T: "room-invite", ID: newID(), Text: room, Invite: cred}
	if conn := m.conn(contact); conn != nil && m.sendFrame(ctx, conn, f) == nil {
		return nil
	}
	if m.depositFrames(ctx, contact, []frame{f}) {
		return nil
	}
	return fmt.Errorf("messenger: %s is offline and no mailbox took the invitation; send the credential yourself: %s", c.Label(), cred)
}

// handleRoomInvite keeps an invitation from an accepted contact until the user
// answers.
func (m *Messenger) handleRoomInvite(from Contact, f frame) {
	room := strings.TrimSpace(trim(f.Text, maxNameLen))
	if room == "" || f.Invite == "" || len(f.Invite) > 32<<10 {
		return
	}
	m.mu.Lock()
	if m.invitations == nil {
		m.invitations = map[string]roomInvitation{}
	}
	if _, ok := m.invitations[room]; !ok && len(m.invitations) >= maxRoomInvitations {
		for k := range m.invitations { // full: forget one
			delete(m.invitations, k)
			break
		}
	}
	m.invitations[room] = roomInvitation{from: from.ID, cred: f.Invite}
	m.mu.Unlock()
	m.emit(RoomInvitation{From: from, Room: room})
}

// AcceptRoomInvitation joins the room a contact invited this user to.
func (m *Messenger) AcceptRoomInvitation(ctx context.Context, room string) error {
	m.mu.Lock()
	inv, ok := m.invitations[room]
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("messenger: no invitation to room %q", room)
	}
	if err := m.JoinRoomInvite(ctx, inv.cred); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.invitations, room)
	m.mu.Unlock()
	return nil
}
