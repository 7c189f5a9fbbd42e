package im

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// A room is group chat backed by a juxta group: password rooms admit whoever
// knows the password, invite rooms whoever holds a credential from the
// creator. Messages ride the group's propagate pipe, encrypted with the group
// key; the member list is the group's presence.
type room struct {
	name   string
	g      *groups.Group
	topic  *pipes.Topic
	cancel context.CancelFunc
}

const roomPipe = "room"

// maxRoomCandidates bounds the rooms of one name JoinRoom tries.
const maxRoomCandidates = 8

type roomFrame struct {
	ID   string `cbor:"1,keyasint"`
	Text string `cbor:"2,keyasint"`
	Name string `cbor:"3,keyasint"`
	Time int64  `cbor:"4,keyasint"`
}

// CreateRoom creates a room: with a password, anyone who knows it may join
// (JoinRoom); without, it is an invite room (RoomInvite).
func (m *Messenger) CreateRoom(ctx context.Context, name, password string) error {
	spec := groups.Spec{Name: name, Policy: groups.PolicyInvite}
	if password != "" {
		spec.Policy, spec.Password = groups.PolicyPassword, password
	}
	g, err := m.gs.Create(ctx, spec)
	if err != nil {
		return err
	}
	info := g.Info()
	saved := savedRoom{Name: name, GroupID: g.ID(), GroupAd: info.Raw()}
	if password == "" {
		if saved.Cred, err = g.Invite(m.ID(), 0); err != nil {
			return err
		}
	}
	// The password itself is not kept: the state holds the key derived
	// from it.
	if saved.State, err = g.State(); err != nil {
		return err
	}
	if err := m.st.putRoom(saved); err != nil {
		return err
	}
	return m.openRoom(name, g)
}

// JoinRoom joins a password room found by name.
func (m *Messenger) JoinRoom(ctx context.Context, name, password string) error {
	found, err := m.gs.Find(ctx, name)
	if err != nil {
		return err
	}
	// Anyone can advertise a room of any name: try each password room of
	// that name (a few at most, as each costs a key derivation) and take the
	// first whose verifier the password matches. A room someone else made
	// under the name fails the check, since they do not know the password.
	tried := 0
	var lastErr error
	for _, info := range found {
		if info.Name != name || info.Policy != groups.PolicyPassword {
			continue
		}
		if tried++; tried > maxRoomCandidates {
			break
		}
		g, err := m.gs.Join(ctx, groups.Password(info, password))
		if errors.Is(err, groups.ErrWrongPassword) || errors.Is(err, groups.ErrBadGroup) {
			lastErr = err
			continue
		}
		if err != nil {
			return err
		}
		state, err := g.State()
		if err != nil {
			return err
		}
		if err := m.st.putRoom(savedRoom{Name: name, GroupID: info.ID, GroupAd: info.Raw(), State: state}); err != nil {
			return err
		}
		return m.openRoom(name, g)
	}
	if lastErr != nil {
		return fmt.Errorf("messenger: no room named %q takes that password: %w", name, lastErr)
	}
	return fmt.Errorf("messenger: no password room named %q found", name)
}

// RoomPassword moves password room name to a new password. The room's
// creator does it first; each member told the new password then does the
// same, and keeps talking. Whoever knows only the old password is shut out
// once the members have moved (see groups.Group.Rotate). The room's saved
// state is replaced by the new key: neither password is kept.
func (m *Messenger) RoomPassword(ctx context.Context, name, password string) error {
	r := m.room(name)
	if r == nil {
		return fmt.Errorf("messenger: not in room %q", name)
	}
	if err := r.g.Rotate(ctx, password); err != nil {
		if errors.Is(err, groups.ErrNotRotated) {
			return fmt.Errorf("messenger: room %q has no new password yet: its creator changes it first (%w)", name, err)
		}
		return err
	}
	state, err := r.g.State()
	if err != nil {
		return err
	}
	info := r.g.Info()
	return m.st.putRoom(savedRoom{Name: name, GroupID: info.ID, GroupAd: info.Raw(), State: state})
}

// RoomInvite issues a credential for contact to join invite room name; send it
// to them (for example in a chat message).
func (m *Messenger) RoomInvite(name string, contact peer.ID) (string, error) {
	r := m.room(name)
	if r == nil {
		return "", fmt.Errorf("messenger: not in room %q", name)
	}
	return r.g.Invite(contact, 0)
}

// JoinRoomInvite joins an invite room with a credential.
func (m *Messenger) JoinRoomInvite(ctx context.Context, credential string) error {
	g, err := m.gs.Join(ctx, groups.Invited(credential))
	if err != nil {
		return err
	}
	info := g.Info()
	state, err := g.State()
	if err != nil {
		return err
	}
	if err := m.st.putRoom(savedRoom{Name: info.Name, GroupID: info.ID, Cred: credential, GroupAd: info.Raw(), State: state}); err != nil {
		return err
	}
	return m.openRoom(info.Name, g)
}

// saveRoomStates keeps each invite room's current key (it changes when a
// member is revoked) for the next start.
func (m *Messenger) saveRoomStates() {
	for _, saved := range m.st.rooms() {
		r := m.room(saved.Name)
		if r == nil || saved.State == nil {
			continue
		}
		if state, err := r.g.State(); err == nil {
			saved.State = state
			if err := m.st.putRoom(saved); err != nil {
				m.log.Debug("saving room state failed", "room", saved.Name, "err", err)
			}
		}
	}
}

func (m *Messenger) rejoinRooms(ctx context.Context) {
	for _, r := range m.st.rooms() {
		var g *groups.Group
		var err error
		switch {
		case len(r.State) > 0:
			// Needs nobody online: the key is in the saved state (a
			// password room's: the key derived from its password).
			g, err = m.gs.Restore(ctx, r.State)
		case r.Cred != "":
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			g, err = m.gs.Join(ctx, groups.Invited(r.Cred))
			cancel()
		default:
			err = errors.New("nothing to rejoin with")
		}
		if err != nil {
			hint := "ask a member for a new invitation"
			if r.Cred == "" {
				hint = "join it again with /room join " + r.Name + " PASSWORD"
			}
			m.emit(Notice{Text: fmt.Sprintf("could not rejoin room %s: %v; %s", r.Name, err, hint)})
			continue
		}
		m.openRoom(r.Name, g)
	}
}

func (m *Messenger) openRoom(name string, g *groups.Group) error {
	topic, err := g.Pipes().Join(m.ctx, roomPipe)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(m.ctx)
	r := &room{name: name, g: g, topic: topic, cancel: cancel}
	m.mu.Lock()
	if old := m.rooms[name]; old != nil {
		m.mu.Unlock()
		cancel()
		topic.Close()
		return nil
	}
	m.rooms[name] = r
	st, text := m.state, m.text
	m.mu.Unlock()
	g.SetPresence(groups.State(st), text)
	m.wg.Add(2)
	go m.roomReader(ctx, r)
	go m.roomMembers(ctx, r)
	return nil
}

func (m *Messenger) room(name string) *room {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rooms[name]
}

func (m *Messenger) roomList() []*room {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*room
	for _, r := range m.rooms {
		out = append(out, r)
	}
	return out
}

// Rooms lists the rooms this user is in.
func (m *Messenger) Rooms() []string {
	var out []string
	for _, r := range m.roomList() {
		out = append(out, r.name)
	}
	slices.Sort(out)
	return out
}

// RoomMembers lists a room's members with their presence.
func (m *Messenger) RoomMembers(name string) []groups.Member {
	r := m.room(name)
	if r == nil {
		return nil
	}
	return r.g.Members()
}

// SayRoom sends text to a room.
func (m *Messenger) SayRoom(ctx context.Context, name, text string) error {
	r := m.room(name)
	if r == nil {
		return fmt.Errorf("messenger: not in room %q", name)
	}
	f := roomFrame{ID: newID(), Text: text, Name: m.Name(), Time: time.Now().UnixMilli()}
	b, err := enc.Marshal(f)
	if err != nil {
		return err
	}
	return r.topic.Publish(ctx, b)
}

// RoomHistory returns a room's last limit messages.
func (m *Messenger) RoomHistory(name string, limit int) []Message {
	return m.st.history("#"+name, limit)
}

func (m *Messenger) roomReader(ctx context.Context, r *room) {
	defer m.wg.Done()
	defer r.topic.Close()
	for {
		msg, err := r.topic.Next(ctx)
		if err != nil {
			return
		}
		var f roomFrame
		if dec.Unmarshal(msg.Data, &f) != nil || f.ID == "" || len(f.ID) > 64 {
			continue
		}
		// The sender's clock is not trusted: a room message is dated no
		// later than its arrival and no earlier than maxClockSkew before.
		stored := Message{ID: f.ID, Room: r.name, Out: msg.From == m.ID(), Text: trim(f.Text, 16<<10),
			From: strings.TrimSpace(trim(f.Name, maxNameLen)), Time: time.UnixMilli(clampTime(f.Time, time.Now())), Status: Received}
		if isNew, err := m.st.putMessage(&stored); err == nil && isNew {
			m.emit(RoomMessage{Message: stored})
		}
	}
}

// roomMembers relays the room's member changes, and tells the user when a
// password room moved to a new password without them.
func (m *Messenger) roomMembers(ctx context.Context, r *room) {
	defer m.wg.Done()
	members, rotations := r.g.SubscribeMembers(ctx, 0), r.g.SubscribeRotations(ctx, 0)
	defer rotations.Cancel()
	for {
		select {
		case ev, ok := <-members.C:
			if !ok {
				return
			}
			m.emit(RoomMember{Room: r.name, ID: ev.Member.ID, Name: ev.Member.Name, State: string(ev.Member.State), Text: ev.Member.Text, Joined: ev.Previous == ""})
		case _, ok := <-rotations.C:
			if !ok {
				return
			}
			m.emit(Notice{Text: fmt.Sprintf("room %s has a new password: you no longer read it; ask a member for the password, then /room password %s NEWPASSWORD", r.name, r.name)})
		}
	}
}
