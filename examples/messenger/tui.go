package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

// engine is what the terminal UI uses of the messenger. *im.Messenger has it;
// the model's unit tests give a fake.
type engine interface {
	Name() string
	Invite() string
	Contacts() []im.Contact
	Contact(ref string) (im.Contact, error)
	AddContact(ctx context.Context, invite, petname string) (im.Contact, error)
	Accept(ctx context.Context, id peer.ID) error
	Rename(id peer.ID, petname string) error
	Remove(id peer.ID) error
	Send(ctx context.Context, id peer.ID, text string) (im.Message, error)
	History(id peer.ID, limit int) []im.Message
	Search(text string) []im.Message
	OpenChat(ctx context.Context, id peer.ID)
	SetPresence(state groups.State, text string) error
	Presence() (string, string)
	Touch()
	SendFile(ctx context.Context, id peer.ID, path string) (im.Transfer, error)
	Transfers() []im.Transfer
	CreateRoom(ctx context.Context, name, password string) error
	JoinRoom(ctx context.Context, name, password string) error
	RoomPassword(ctx context.Context, name, password string) error
	RoomInvite(name string, contact peer.ID) (string, error)
	InviteToRoom(ctx context.Context, room string, contact peer.ID) error
	AcceptRoomInvitation(ctx context.Context, room string) error
	JoinRoomInvite(ctx context.Context, credential string) error
	PathTo(id peer.ID) peer.Path
	Rooms() []string
	RoomMembers(name string) []groups.Member
	SayRoom(ctx context.Context, name, text string) error
	RoomHistory(name string, limit int) []im.Message
}

var _ engine = (*im.Messenger)(nil)

const demoHint = "demo: 'bot' is a second juxta peer on this machine — say hello"

// tuiHelpHead and tuiKeys frame the command list in the terminal UI's help.
const (
	tuiHelpHead = "Text goes to the selected contact or room; commands start with /."
	tuiKeys     = `keys:
  Tab, Shift-Tab               next, previous buddy (also Up, Down)
  Enter                        send
  PgUp, PgDn                   scroll the chat
  Esc                          close this pane`
)

// historyLimit is how much of a chat the pane loads.
const historyLimit = 500

// runTUI runs the terminal UI until the user quits or ctx ends.
func runTUI(ctx context.Context, m *im.Messenger, demo bool) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := m.Subscribe(ctx)
	p := tea.NewProgram(newTUIModel(ctx, m, demo), tea.WithAltScreen(), tea.WithContext(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range sub.C {
			p.Send(eventMsg{ev}) // a no-op once the program has ended
		}
	}()
	_, err := p.Run()
	cancel()
	wg.Wait()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil || errors.Is(err, tea.ErrInterrupted) {
		return nil // ctx ended (a signal): the terminal is restored; not an error
	}
	return err
}

type (
	// eventMsg carries a messenger event into the program.
	eventMsg struct{ ev im.Event }
	// tickMsg resynchronises the buddy list now and then, for events a slow
	// UI may have missed (the event bus drops rather than blocks).
	tickMsg struct{}
	// resultMsg is what a command that ran in the background reports.
	resultMsg struct {
		notice string
		err    error
		info   *infoPane // a pane to show
		sel    string    // a buddy key to select
	}
)

// infoPane is text shown in place of the chat: help, the invite, search
// results. Esc closes it.
type infoPane struct {
	title string
	lines []string
}

// buddy is one entry of the buddy list: a contact or a room.
type buddy struct {
	key     string // contactKey or roomKey
	contact im.Contact
	room    string
}

func contactKey(id peer.ID) string { return "c:" + string(id) }
func roomKey(name string) string   { return "#" + name }

type tuiModel struct {
	ctx  context.Context
	e    engine
	demo bool

	width, height int
	input         textinput.Model

	buddies []buddy
	sel     string         // key of the selected buddy
	unread  map[string]int // by buddy key

	chat    []im.Message // history of the selected chat
	members int          // the selected room's member count
	scroll  int          // chat: lines up from the bottom; info: lines down from the top
	info    *infoPane

	presence, presenceText string
	idle                   bool
	transfers              map[string]im.Transfer
	notice                 string
	noticeErr              bool
}

func newTUIModel(ctx context.Context, e engine, demo bool) *tuiModel {
	in := textinput.New()
	in.Prompt = "> "
	in.Placeholder = "type a message, or /help"
	in.CharLimit = 16 << 10
	in.Focus()
	m := &tuiModel{ctx: ctx, e: e, demo: demo, input: in, unread: map[string]int{}, transfers: map[string]im.Transfer{}}
	m.presence, m.presenceText = e.Presence()
	m.refreshBuddies()
	for _, b := range m.buddies {
		if b.room != "" {
			continue
		}
		for _, msg := range e.History(b.contact.ID, historyLimit) {
			if !msg.Out && msg.Status == im.Received {
				m.unread[b.key]++
			}
		}
	}
	for _, t := range e.Transfers() {
		m.transfers[t.Key()] = t
	}
	m.setNotice(false, "you are %s — /invite shows your invite, /help the commands", e.Name())
	return m
}

func (m *tuiModel) Init() tea.Cmd {
	cmds := []tea.Cmd{tea.SetWindowTitle("juxta messenger: " + cleanLine(m.e.Name())), textinput.Blink, tick()}
	if m.sel != "" {
		cmds = append(cmds, m.selectKey(m.sel)) // tell the messenger the chat is open
	}
	return tea.Batch(cmds...)
}

func tick() tea.Cmd {
	return tea.Tick(2*time.Second, func(time.Time) tea.Msg { return tickMsg{} })
}

// setNotice sets the status line's notice; it may quote what peers sent, so
// control characters are taken out.
func (m *tuiModel) setNotice(isErr bool, format string, a ...any) {
	m.notice, m.noticeErr = cleanLine(fmt.Sprintf(format, a...)), isErr
}

func (m *tuiModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.Width = max(msg.Width-len(m.input.Prompt)-1, 1)
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case eventMsg:
		return m, m.event(msg.ev)
	case tickMsg:
		return m, tea.Batch(m.refreshBuddies(), tick())
	case resultMsg:
		if msg.err != nil {
			m.setNotice(true, "error: %v", msg.err)
		} else if msg.notice != "" {
			m.setNotice(false, "%s", msg.notice)
		}
		var cmd tea.Cmd
		if msg.sel != "" {
			cmd = m.refreshBuddies()
			if m.find(msg.sel) >= 0 {
				cmd = m.selectKey(msg.sel)
			}
		}
		if msg.info != nil {
			m.info, m.scroll = msg.info, 0
		}
		return m, cmd
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

// key handles a keypress. Every keypress is user activity: it ends auto-away.
func (m *tuiModel) key(k tea.KeyMsg) tea.Cmd {
	touch := func() tea.Msg { m.e.Touch(); return nil }
	var cmd tea.Cmd
	empty := m.input.Value() == ""
	switch k.String() {
	case "ctrl+c":
		return tea.Quit
	case "tab":
		cmd = m.move(1)
	case "shift+tab":
		cmd = m.move(-1)
	case "down":
		if !empty {
			return touch
		}
		cmd = m.move(1)
	case "up":
		if !empty {
			return touch
		}
		cmd = m.move(-1)
	case "pgup":
		m.scroll = min(m.scroll+max(m.chatHeight()/2, 1), m.maxScroll())
	case "pgdown":
		m.scroll = max(m.scroll-max(m.chatHeight()/2, 1), 0)
	case "esc":
		if m.info != nil {
			m.info, m.scroll = nil, 0
		} else {
			m.input.Reset()
		}
	case "enter":
		line := strings.TrimSpace(m.input.Value())
		m.input.Reset()
		cmd = m.submit(line)
	default:
		m.input, cmd = m.input.Update(k)
	}
	return tea.Batch(touch, cmd)
}

// move selects the next (+1) or previous (-1) buddy.
func (m *tuiModel) move(d int) tea.Cmd {
	if len(m.buddies) == 0 {
		return nil
	}
	i := m.find(m.sel)
	if i < 0 {
		i = 0
	} else {
		i = (i + d + len(m.buddies)) % len(m.buddies)
	}
	return m.selectKey(m.buddies[i].key)
}

func (m *tuiModel) find(key string) int {
	return slices.IndexFunc(m.buddies, func(b buddy) bool { return b.key == key })
}

func (m *tuiModel) selected() (buddy, bool) {
	if i := m.find(m.sel); i >= 0 {
		return m.buddies[i], true
	}
	return buddy{}, false
}

// selectKey shows the chat with a buddy; for a contact it tells the messenger,
// which marks the chat read.
func (m *tuiModel) selectKey(key string) tea.Cmd {
	m.sel, m.scroll, m.info = key, 0, nil
	delete(m.unread, key)
	b, ok := m.selected()
	if !ok {
		m.chat = nil
		return nil
	}
	if b.room != "" {
		m.chat = m.e.RoomHistory(b.room, historyLimit)
		m.members = len(m.e.RoomMembers(b.room))
		return nil
	}
	m.chat = m.e.History(b.contact.ID, historyLimit)
	ctx, e, id := m.ctx, m.e, b.contact.ID
	return func() tea.Msg { e.OpenChat(ctx, id); return nil }
}

// refreshBuddies rebuilds the buddy list from the messenger: accepted contacts
// who are on first, then those who are off, then requests; rooms last. With
// nothing selected, it selects the first entry.
func (m *tuiModel) refreshBuddies() tea.Cmd {
	cs := m.e.Contacts()
	rank := func(c im.Contact) int {
		switch {
		case c.State == im.Pending:
			return 2
		case c.State != im.Accepted:
			return 3
		case c.Presence == "" || c.Presence == string(groups.Offline) || c.Presence == string(groups.Invisible):
			return 1
		}
		return 0
	}
	slices.SortStableFunc(cs, func(a, b im.Contact) int {
		if d := rank(a) - rank(b); d != 0 {
			return d
		}
		return strings.Compare(strings.ToLower(a.Label()), strings.ToLower(b.Label()))
	})
	old := m.buddies
	m.buddies = m.buddies[:0:0]
	for _, c := range cs {
		m.buddies = append(m.buddies, buddy{key: contactKey(c.ID), contact: c})
	}
	for _, r := range m.e.Rooms() {
		m.buddies = append(m.buddies, buddy{key: roomKey(r), room: r})
	}
	// A request that was accepted, by them or by this user: say so.
	for _, b := range m.buddies {
		i := slices.IndexFunc(old, func(o buddy) bool { return o.key == b.key })
		if i < 0 || b.room != "" || b.contact.State != im.Accepted {
			continue
		}
		switch old[i].contact.State {
		case im.Requested:
			m.setNotice(false, "%s accepted you as a contact", b.contact.Label())
		case im.Pending:
			m.setNotice(false, "%s is now your contact", b.contact.Label())
		}
	}
	if m.find(m.sel) < 0 && len(m.buddies) > 0 {
		return m.selectKey(m.buddies[0].key)
	}
	return nil
}

// event applies a messenger event.
func (m *tuiModel) event(ev im.Event) tea.Cmd {
	switch e := ev.(type) {
	case im.ContactRequest:
		ref := e.Contact.Name
		if ref == "" || strings.ContainsAny(ref, " \t") {
			id := e.Contact.ID.String()
			ref = id[max(0, len(id)-8):] // a unique end of the ID finds it too
		}
		m.setNotice(false, "request: %s wants to be your contact — /accept %s", e.Contact.Label(), ref)
		return m.refreshBuddies()
	case im.ContactChanged:
		return m.refreshBuddies()
	case im.ContactRemoved:
		key := contactKey(e.ID)
		label := e.ID.ShortString()
		if i := m.find(key); i >= 0 {
			label = m.buddies[i].contact.Label()
		}
		m.setNotice(false, "contact removed: %s", label)
		delete(m.unread, key)
		return m.refreshBuddies()
	case im.MessageAdded:
		m.message(contactKey(e.Message.Peer), e.Message)
	case im.RoomMessage:
		m.message(roomKey(e.Message.Room), e.Message)
	case im.MessageStatus:
		if m.sel != contactKey(e.Peer) {
			break
		}
		for i := range m.chat {
			if m.chat[i].ID == e.ID && statusRank(e.Status) > statusRank(m.chat[i].Status) {
				m.chat[i].Status = e.Status
			}
		}
	case im.PresenceChanged:
		m.presence, m.presenceText = m.e.Presence()
		m.idle = e.Auto
	case im.RoomMember:
		if m.sel == roomKey(e.Room) {
			m.members = len(m.e.RoomMembers(e.Room))
		}
		if e.Joined && e.State != string(groups.Offline) {
			m.setNotice(false, "#%s: %s joined", e.Room, cmpOr(e.Name, e.ID.ShortString()))
		}
	case im.TransferProgress:
		t := e.Transfer
		m.transfers[t.Key()] = t
		switch t.State {
		case "done":
			if t.Out {
				m.setNotice(false, "file %s sent to %s", t.Name, m.peerLabel(t.Peer))
			} else {
				m.setNotice(false, "file %s from %s saved to %s", t.Name, m.peerLabel(t.Peer), t.Path)
			}
		case "failed":
			toFrom := "to"
			if !t.Out {
				toFrom = "from"
			}
			m.setNotice(true, "file %s %s %s failed: %s", t.Name, toFrom, m.peerLabel(t.Peer), t.Err)
		}
	case im.RoomInvitation:
		m.setNotice(false, "%s invites you to #%s — /room accept %s", e.From.Label(), e.Room, e.Room)
	case im.Notice:
		m.setNotice(false, "%s", e.Text)
	}
	return nil
}

// message adds a message to the chat when it is the selected one, and
// counts it unread otherwise.
func (m *tuiModel) message(key string, msg im.Message) {
	if key == m.sel {
		if i := slices.IndexFunc(m.chat, func(c im.Message) bool { return c.ID == msg.ID }); i >= 0 {
			if statusRank(msg.Status) > statusRank(m.chat[i].Status) {
				m.chat[i].Status = msg.Status
			}
			return
		}
		m.chat = append(m.chat, msg)
		if m.scroll > 0 {
			m.scroll++ // keep the view where the user scrolled to
		}
		return
	}
	if msg.Out {
		return
	}
	m.unread[key]++
	m.setNotice(false, "message from %s: %s", m.searchLabel(msg), msg.Text)
}

func statusRank(s im.Status) int {
	return slices.Index([]im.Status{im.Sending, im.Sent, im.Delivered, im.Read}, s)
}

func (m *tuiModel) peerLabel(id peer.ID) string {
	if i := m.find(contactKey(id)); i >= 0 {
		return m.buddies[i].contact.Label()
	}
	return id.ShortString()
}
