package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/mdp/qrterminal/v3"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
)

// background runs f off the UI goroutine and reports its result.
func background(f func() (string, error)) tea.Cmd {
	return func() tea.Msg {
		notice, err := f()
		return resultMsg{notice: notice, err: err}
	}
}

func failed(format string, a ...any) tea.Cmd {
	err := fmt.Errorf(format, a...)
	return func() tea.Msg { return resultMsg{err: err} }
}

func showInfo(title string, lines ...string) tea.Cmd {
	return func() tea.Msg { return resultMsg{info: &infoPane{title: title, lines: lines}} }
}

// submit acts on an input line: a command, or a message to the selected chat.
func (m *tuiModel) submit(line string) tea.Cmd {
	if line == "" {
		return nil
	}
	// @NAME TEXT and #ROOM TEXT address a contact or room directly, as in
	// plain mode, when there is one by that name.
	if name, text, ok := strings.Cut(line[1:], " "); ok && strings.TrimSpace(text) != "" {
		switch {
		case line[0] == '@':
			if _, err := m.e.Contact(name); err == nil {
				return m.command("/msg " + name + " " + text)
			}
		case line[0] == '#' && slices.Contains(m.e.Rooms(), name):
			return m.command("/room say " + name + " " + text)
		}
	}
	if strings.HasPrefix(line, "/") && !strings.HasPrefix(line, "//") {
		return m.command(line)
	}
	line = strings.TrimPrefix(line, "/") // "//text" sends "/text"
	b, ok := m.selected()
	if !ok {
		return failed("no chat selected: add a contact first (/invite, /add INVITE)")
	}
	ctx, e := m.ctx, m.e
	m.scroll, m.info = 0, nil
	if b.room != "" {
		return background(func() (string, error) { return "", e.SayRoom(ctx, b.room, line) })
	}
	return background(func() (string, error) {
		_, err := e.Send(ctx, b.contact.ID, line)
		return "", err
	})
}

// contact resolves a command's contact argument; empty means the selected one.
func (m *tuiModel) contact(ref string) (im.Contact, error) {
	if ref == "" {
		if b, ok := m.selected(); ok && b.room == "" {
			return b.contact, nil
		}
		return im.Contact{}, errors.New("name a contact, or select one")
	}
	return m.e.Contact(ref)
}

// command runs a /command from the shared table; engine calls that may touch
// the network run in the background.
func (m *tuiModel) command(line string) tea.Cmd {
	c, in, name, ok := findCommand(line, true)
	if !ok {
		return failed("%s", unknownCommand(name))
	}
	return c.tui(m, in)
}

func (m *tuiModel) cmdHelp(cmdInput) tea.Cmd {
	return showInfo("help", append(append([]string{tuiHelpHead}, helpLines(true)...), strings.Split(tuiKeys, "\n")...)...)
}

func (m *tuiModel) cmdInvite(cmdInput) tea.Cmd {
	return showInfo("your invite", inviteLines(m.e.Invite())...)
}

func (m *tuiModel) cmdAdd(in cmdInput) tea.Cmd {
	args, ctx, e := in.args, m.ctx, m.e
	if len(args) < 1 {
		return failed("%s", in.usage)
	}
	pet := ""
	if len(args) > 1 {
		pet = args[1]
	}
	return func() tea.Msg {
		c, err := e.AddContact(ctx, args[0], pet)
		if err != nil {
			return resultMsg{err: err}
		}
		return resultMsg{notice: fmt.Sprintf("asked %s to be your contact", c.Label()), sel: contactKey(c.ID)}
	}
}

func (m *tuiModel) cmdAccept(in cmdInput) tea.Cmd {
	ctx, e := m.ctx, m.e
	c, err := m.contact(in.rest)
	if err != nil {
		return failed("%v", err)
	}
	return background(func() (string, error) {
		return fmt.Sprintf("%s is now your contact", c.Label()), e.Accept(ctx, c.ID)
	})
}

func (m *tuiModel) cmdContacts(cmdInput) tea.Cmd {
	var lines []string
	for _, c := range m.e.Contacts() {
		line := fmt.Sprintf("%s %-20s %-10s %s", presenceMark(c), cleanLine(c.Label()), cleanLine(cmpOr(c.Presence, "offline")), c.State)
		if c.StatusText != "" {
			line += "  " + cleanLine(c.StatusText)
		}
		lines = append(lines, line)
	}
	return showInfo("contacts", lines...)
}

func (m *tuiModel) cmdRename(in cmdInput) tea.Cmd {
	args, e := in.args, m.e
	var c im.Contact
	var err error
	var pet string
	switch len(args) {
	case 1:
		c, err = m.contact("")
		pet = args[0]
	case 2:
		c, err = m.contact(args[0])
		pet = args[1]
	default:
		return failed("%s", in.usage)
	}
	if err != nil {
		return failed("%v", err)
	}
	return background(func() (string, error) {
		return fmt.Sprintf("%s is now %s", c.Label(), pet), e.Rename(c.ID, pet)
	})
}

func (m *tuiModel) cmdRemove(in cmdInput) tea.Cmd {
	e := m.e
	c, err := m.contact(in.rest)
	if err != nil {
		return failed("%v", err)
	}
	return background(func() (string, error) { return "", e.Remove(c.ID) })
}

func (m *tuiModel) cmdMsg(in cmdInput) tea.Cmd {
	ctx, e := m.ctx, m.e
	name, text, _ := strings.Cut(in.rest, " ")
	if name == "" || strings.TrimSpace(text) == "" {
		return failed("%s", in.usage)
	}
	c, err := m.contact(name)
	if err != nil {
		return failed("%v", err)
	}
	return tea.Batch(m.selectKey(contactKey(c.ID)), background(func() (string, error) {
		_, err := e.Send(ctx, c.ID, text)
		return "", err
	}))
}

func (m *tuiModel) cmdOpen(in cmdInput) tea.Cmd {
	rest := in.rest
	if strings.HasPrefix(rest, "#") && m.find(roomKey(rest[1:])) >= 0 {
		return m.selectKey(roomKey(rest[1:]))
	}
	c, err := m.contact(rest)
	if err != nil {
		return failed("%v", err)
	}
	return m.selectKey(contactKey(c.ID))
}

func (m *tuiModel) cmdSearch(in cmdInput) tea.Cmd {
	if in.rest == "" {
		return failed("%s", in.usage)
	}
	found := m.e.Search(in.rest)
	var lines []string
	for _, msg := range found {
		lines = append(lines, fmt.Sprintf("%s %s: %s", msg.Time.Format("2006-01-02 15:04"), m.searchLabel(msg), clean(msg.Text)))
	}
	if len(lines) == 0 {
		lines = []string{"nothing found"}
	}
	return showInfo(fmt.Sprintf("search %q: %d found", in.rest, len(found)), lines...)
}

func (m *tuiModel) cmdPath(in cmdInput) tea.Cmd {
	c, err := m.contact(in.rest)
	if err != nil {
		return failed("%s (%v)", in.usage, err)
	}
	return showInfo("path to "+c.Label(), fmt.Sprintf("%s: %s", c.Label(), m.e.PathTo(c.ID)))
}

func (m *tuiModel) cmdStatus(in cmdInput) tea.Cmd {
	e := m.e
	st, text, _ := strings.Cut(in.rest, " ")
	if st == "" {
		return failed("%s", in.usage)
	}
	return background(func() (string, error) { return "", e.SetPresence(groups.State(st), text) })
}

func (m *tuiModel) cmdFile(in cmdInput) tea.Cmd {
	ctx, e, args := m.ctx, m.e, in.args
	var c im.Contact
	var err error
	path := in.rest
	if len(args) >= 2 {
		if c, err = e.Contact(args[0]); err == nil {
			path = strings.TrimSpace(strings.TrimPrefix(in.rest, args[0]))
		}
	}
	if c.ID == "" {
		if c, err = m.contact(""); err != nil {
			return failed("%s (%v)", in.usage, err)
		}
	}
	if path == "" {
		return failed("%s", in.usage)
	}
	if home, herr := os.UserHomeDir(); herr == nil && strings.HasPrefix(path, "~/") {
		path = filepath.Join(home, path[2:])
	}
	return background(func() (string, error) {
		t, err := e.SendFile(ctx, c.ID, path)
		return fmt.Sprintf("sending %s (%d bytes) to %s", t.Name, t.Size, c.Label()), err
	})
}

func (m *tuiModel) searchLabel(msg im.Message) string {
	if msg.Room != "" {
		return "#" + msg.Room + " " + cleanLine(cmpOr(msg.From, "?"))
	}
	if msg.Out {
		return "you → " + cleanLine(m.peerLabel(msg.Peer))
	}
	return cleanLine(m.peerLabel(msg.Peer))
}

// joined is the result of joining room name: it selects the room.
func joined(name string, err error, notice string) tea.Msg {
	if err != nil {
		return resultMsg{err: err}
	}
	return resultMsg{notice: notice, sel: roomKey(name)}
}

func (m *tuiModel) cmdRoomCreate(in cmdInput) tea.Cmd {
	ctx, e, name := m.ctx, m.e, in.args[0]
	pw := ""
	if len(in.args) > 1 {
		pw = in.args[1]
	}
	return func() tea.Msg {
		return joined(name, e.CreateRoom(ctx, name, pw), fmt.Sprintf("created room #%s", name))
	}
}

func (m *tuiModel) cmdRoomJoin(in cmdInput) tea.Cmd {
	ctx, e, name := m.ctx, m.e, in.args[0]
	if len(in.args) < 2 {
		return failed("%s", in.usage)
	}
	return func() tea.Msg {
		return joined(name, e.JoinRoom(ctx, name, in.args[1]), fmt.Sprintf("joined room #%s", name))
	}
}

func (m *tuiModel) cmdRoomPassword(in cmdInput) tea.Cmd {
	ctx, e, name := m.ctx, m.e, in.args[0]
	if len(in.args) < 2 {
		return failed("%s", in.usage)
	}
	return background(func() (string, error) {
		return fmt.Sprintf("room #%s has its new password; members who do not have it are shut out", name), e.RoomPassword(ctx, name, in.args[1])
	})
}

func (m *tuiModel) cmdRoomInvite(in cmdInput) tea.Cmd {
	ctx, e, name := m.ctx, m.e, in.args[0]
	if len(in.args) < 2 {
		return failed("%s", in.usage)
	}
	c, err := e.Contact(in.args[1])
	if err != nil {
		return failed("%v", err)
	}
	// Over the chat pipe (or the mailbox): nothing to copy by hand.
	return background(func() (string, error) {
		return fmt.Sprintf("invited %s to #%s", c.Label(), name), e.InviteToRoom(ctx, name, c.ID)
	})
}

func (m *tuiModel) cmdRoomAccept(in cmdInput) tea.Cmd {
	ctx, e, name := m.ctx, m.e, in.args[0]
	before := e.Rooms()
	return func() tea.Msg {
		if err := e.AcceptRoomInvitation(ctx, name); err == nil {
			return resultMsg{notice: "joined room #" + name, sel: roomKey(name)}
		} else if !strings.HasPrefix(name, "juxtagroup") {
			return resultMsg{err: err}
		}
		if err := e.JoinRoomInvite(ctx, name); err != nil {
			return resultMsg{err: err}
		}
		for _, r := range e.Rooms() {
			if !slices.Contains(before, r) {
				return resultMsg{notice: "joined room #" + r, sel: roomKey(r)}
			}
		}
		return resultMsg{notice: "joined an invite room"}
	}
}

func (m *tuiModel) cmdRoomWho(in cmdInput) tea.Cmd {
	name := in.args[0]
	var lines []string
	for _, mem := range m.e.RoomMembers(name) {
		lines = append(lines, fmt.Sprintf("%s %-20s %-10s %s", stateMark(string(mem.State)),
			cleanLine(cmpOr(mem.Name, mem.ID.ShortString())), cleanLine(string(mem.State)), cleanLine(mem.Text)))
	}
	if len(lines) == 0 {
		lines = []string{"not in room #" + name + ", or nobody there"}
	}
	return showInfo("#"+name+" members", lines...)
}

func (m *tuiModel) cmdRoomSay(in cmdInput) tea.Cmd {
	ctx, e, name := m.ctx, m.e, in.args[0]
	_, text, _ := strings.Cut(in.rest, " ")
	if strings.TrimSpace(text) == "" {
		return failed("%s", in.usage)
	}
	return background(func() (string, error) { return "", e.SayRoom(ctx, name, text) })
}

// inviteLines is the invite pane: the invite as text and as a QR code.
func inviteLines(invite string) []string {
	var qr strings.Builder
	qrterminal.GenerateWithConfig(invite, qrterminal.Config{Level: qrterminal.L, Writer: &qr, HalfBlocks: true,
		BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK, WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 1})
	lines := []string{"A friend adds you with /add and this invite, or by scanning the code:", "", invite, ""}
	return append(lines, strings.Split(strings.TrimRight(qr.String(), "\n"), "\n")...)
}
