package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/mdp/qrterminal/v3"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
)

// command runs one input line; it reports whether to quit.
func (u *plainUI) command(ctx context.Context, line string) bool {
	if line == "" {
		return false
	}
	if strings.HasPrefix(line, "@") {
		name, text, _ := strings.Cut(line[1:], " ")
		line = "/msg " + name + " " + text
	}
	if strings.HasPrefix(line, "#") {
		name, text, _ := strings.Cut(line[1:], " ")
		line = "/room say " + name + " " + text
	}
	if !strings.HasPrefix(line, "/") {
		u.say("error: commands start with / (try /help)")
		return false
	}
	c, in, name, ok := findCommand(line, false)
	switch {
	case !ok && (name == "room" || strings.HasPrefix(name, "room ")):
		u.say("%s", roomUsage)
	case !ok:
		u.say("error: %s", unknownCommand(name))
	case c.name == "quit":
		return true
	default:
		c.plain(u, ctx, in)
	}
	return false
}

// fail says that a command failed, and why.
func (u *plainUI) fail(err error) { u.say("error: %v", err) }

// contact resolves a command's contact argument, or says why it cannot.
func (u *plainUI) contact(ref string) (im.Contact, bool) {
	c, err := u.m.Contact(ref)
	if err != nil {
		u.fail(err)
		return c, false
	}
	return c, true
}

func (u *plainUI) cmdHelp(context.Context, cmdInput) {
	u.say("%s", strings.Join(append([]string{"commands:"}, helpLines(false)...), "\n"))
}

func (u *plainUI) cmdInvite(context.Context, cmdInput) {
	m := u.m
	u.say("invite: %s", m.Invite())
	u.mu.Lock()
	qrterminal.GenerateWithConfig(m.Invite(), qrterminal.Config{Level: qrterminal.L, Writer: u.out, HalfBlocks: true,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK, WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 1})
	u.mu.Unlock()
}

func (u *plainUI) cmdAdd(ctx context.Context, in cmdInput) {
	if len(in.args) < 1 {
		u.say("%s", in.usage)
		return
	}
	pet := ""
	if len(in.args) > 1 {
		pet = in.args[1]
	}
	c, err := u.m.AddContact(ctx, in.args[0], pet)
	if err != nil {
		u.fail(err)
		return
	}
	u.say("asked %s to be your contact", c.Label())
}

func (u *plainUI) cmdAccept(ctx context.Context, in cmdInput) {
	if c, ok := u.contact(in.rest); ok {
		if err := u.m.Accept(ctx, c.ID); err != nil {
			u.fail(err)
		}
	}
}

func (u *plainUI) cmdContacts(context.Context, cmdInput) {
	for _, c := range u.m.Contacts() {
		line := fmt.Sprintf("  %-20s %-10s %s", c.Label(), c.Presence, c.State)
		if c.StatusText != "" {
			line += "  " + c.StatusText
		}
		u.say("%s", line)
	}
}

func (u *plainUI) cmdRename(_ context.Context, in cmdInput) {
	if len(in.args) != 2 {
		u.say("%s", in.usage)
	} else if c, ok := u.contact(in.args[0]); ok {
		if err := u.m.Rename(c.ID, in.args[1]); err != nil {
			u.fail(err)
		}
	}
}

func (u *plainUI) cmdRemove(_ context.Context, in cmdInput) {
	if c, ok := u.contact(in.rest); ok {
		if err := u.m.Remove(c.ID); err != nil {
			u.fail(err)
		}
	}
}

func (u *plainUI) cmdMsg(ctx context.Context, in cmdInput) {
	name, text, _ := strings.Cut(in.rest, " ")
	if name == "" || strings.TrimSpace(text) == "" {
		u.say("%s", in.usage)
	} else if c, ok := u.contact(name); ok {
		if _, err := u.m.Send(ctx, c.ID, text); err != nil {
			u.fail(err)
		}
	}
}

func (u *plainUI) cmdOpen(ctx context.Context, in cmdInput) {
	if c, ok := u.contact(in.rest); ok {
		for _, msg := range u.m.History(c.ID, 50) {
			who := c.Label()
			if msg.Out {
				who = "you"
			}
			u.say("  %s %s: %s (%s)", msg.Time.Format("15:04"), who, msg.Text, msg.Status)
		}
		u.m.OpenChat(ctx, c.ID)
	}
}

func (u *plainUI) cmdPath(_ context.Context, in cmdInput) {
	if c, ok := u.contact(in.rest); ok {
		u.say("path to %s: %s", c.Label(), u.m.Peer().PathTo(c.ID))
	}
}

func (u *plainUI) cmdSearch(_ context.Context, in cmdInput) {
	if in.rest == "" {
		u.say("%s", in.usage)
		return
	}
	hits := u.m.Search(in.rest)
	if len(hits) == 0 {
		u.say("no message matches %q", in.rest)
	}
	for _, msg := range hits {
		who := u.label(msg)
		if msg.Out {
			who = "you to " + who
		}
		u.say("  %s %s: %s", msg.Time.Format("2006-01-02 15:04"), who, msg.Text)
	}
}

func (u *plainUI) cmdStatus(_ context.Context, in cmdInput) {
	st, text, _ := strings.Cut(in.rest, " ")
	if err := u.m.SetPresence(groups.State(st), text); err != nil {
		u.fail(err)
	}
}

func (u *plainUI) cmdFile(ctx context.Context, in cmdInput) {
	if len(in.args) != 2 {
		u.say("%s", in.usage)
	} else if c, ok := u.contact(in.args[0]); ok {
		if _, err := u.m.SendFile(ctx, c.ID, in.args[1]); err != nil {
			u.fail(err)
		}
	}
}

func (u *plainUI) cmdRoomCreate(ctx context.Context, in cmdInput) {
	pw := ""
	if len(in.args) > 1 {
		pw = in.args[1]
	}
	if err := u.m.CreateRoom(ctx, in.args[0], pw); err != nil {
		u.fail(err)
		return
	}
	u.say("created room #%s", in.args[0])
}

func (u *plainUI) cmdRoomJoin(ctx context.Context, in cmdInput) {
	if len(in.args) < 2 {
		u.say("%s", in.usage)
		return
	}
	if err := u.m.JoinRoom(ctx, in.args[0], in.args[1]); err != nil {
		u.fail(err)
		return
	}
	u.say("joined room #%s", in.args[0])
}

func (u *plainUI) cmdRoomPassword(ctx context.Context, in cmdInput) {
	if len(in.args) < 2 {
		u.say("%s", in.usage)
		return
	}
	if err := u.m.RoomPassword(ctx, in.args[0], in.args[1]); err != nil {
		u.fail(err)
		return
	}
	u.say("room #%s has its new password; members who do not have it are shut out", in.args[0])
}

func (u *plainUI) cmdRoomInvite(ctx context.Context, in cmdInput) {
	if len(in.args) < 2 {
		u.say("%s", in.usage)
		return
	}
	c, ok := u.contact(in.args[1])
	if !ok {
		return
	}
	// Over the chat pipe (or the mailbox): nothing to copy by hand.
	if err := u.m.InviteToRoom(ctx, in.args[0], c.ID); err != nil {
		u.fail(err)
		return
	}
	u.say("invited %s to #%s", c.Label(), in.args[0])
}

// cmdRoomAccept joins a room a contact invited you to, or one whose
// credential was pasted by hand.
func (u *plainUI) cmdRoomAccept(ctx context.Context, in cmdInput) {
	name := in.args[0]
	err := u.m.AcceptRoomInvitation(ctx, name)
	if err == nil {
		u.say("joined room #%s", name)
		return
	}
	if strings.HasPrefix(name, "juxtagroup") {
		if err = u.m.JoinRoomInvite(ctx, name); err == nil {
			u.say("joined an invite room")
			return
		}
	}
	u.fail(err)
}

func (u *plainUI) cmdRoomWho(_ context.Context, in cmdInput) {
	m, name := u.m, in.args[0]
	if !slices.Contains(m.Rooms(), name) {
		u.fail(fmt.Errorf("you are not in room %q (your rooms: %s)", name, cmpOr(strings.Join(m.Rooms(), ", "), "none")))
		return
	}
	for _, mem := range m.RoomMembers(name) {
		u.say("  %-20s %s %s", cmpOr(mem.Name, u.name(mem.ID)), mem.State, mem.Text)
	}
}

func (u *plainUI) cmdRoomSay(ctx context.Context, in cmdInput) {
	_, text, _ := strings.Cut(in.rest, " ")
	if err := u.m.SayRoom(ctx, in.args[0], text); err != nil {
		u.fail(err)
	}
}
