package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mdp/qrterminal/v3"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

const plainHelp = `commands:
  /invite                      show your invite (text and QR code)
  /add INVITE [petname]        ask someone to be your contact
  /accept NAME                 accept a contact request
  /contacts                    the buddy list with presence
  /rename NAME PETNAME         give a contact a petname
  /remove NAME                 remove a contact
  /msg NAME TEXT               send a message (also: @NAME TEXT)
  /open NAME                   open a chat: show its history, mark it read
  /search TEXT                 search the history
  /path NAME                   how you are connected: direct or relayed
  /status STATE [TEXT]         online, away, busy, dnd, invisible
  /file NAME PATH              send a file
  /room create NAME [PASSWORD] a room: with a password, or invite-only
  /room join NAME PASSWORD     join a password room
  /room invite ROOM NAME       invite a contact to a room (sent to them)
  /room accept ROOM            join a room you were invited to (or paste a credential)
  /room who ROOM               the room's members
  #ROOM TEXT                   say something in a room
  /quit`

// plainUI is line mode: one command per input line, one event per output line.
type plainUI struct {
	m   *im.Messenger
	out io.Writer
	mu  sync.Mutex // serialises output lines; guards the maps below

	outgoing map[string]string       // outgoing message ID -> text, for status lines
	last     map[string]string       // what was last said about a contact or member
	progress map[string]progressMark // transfer ID -> its last progress line
	names    map[peer.ID]string      // labels of contacts seen in events
}

// say prints one line; control characters a peer put in a name or a message
// are stripped (see clean in tui_view.go).
func (u *plainUI) say(format string, a ...any) {
	line := clean(fmt.Sprintf(format, a...))
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintln(u.out, line)
}

func runPlain(ctx context.Context, m *im.Messenger, in io.Reader, out io.Writer) error {
	u := &plainUI{m: m, out: out, outgoing: map[string]string{}, last: map[string]string{},
		progress: map[string]progressMark{}, names: map[peer.ID]string{}}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := m.Subscribe(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range sub.C {
			u.event(ev)
		}
	}()
	defer wg.Wait()
	defer cancel()
	u.say("juxta messenger: you are %s (%s)", m.Name(), m.ID())
	u.say("invite: %s", m.Invite())
	u.say("type /help for commands")
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			m.Touch()
			if quit := u.command(ctx, strings.TrimSpace(line)); quit {
				return nil
			}
		}
	}
}

func (u *plainUI) event(ev im.Event) {
	switch e := ev.(type) {
	case im.ContactRequest:
		u.remember(e.Contact)
		u.say("request: %s wants to be your contact; /accept %s", e.Contact.Label(), u.ref(e.Contact))
	case im.ContactChanged:
		u.remember(e.Contact)
		if line := contactLine(e.Contact); line != "" && u.changed("contact "+string(e.Contact.ID), line) {
			u.say("%s", line)
		}
	case im.ContactRemoved:
		u.say("contact removed: %s", u.name(e.ID))
		u.forget("contact " + string(e.ID))
	case im.MessageAdded:
		if e.Message.Out {
			// The user typed it: no echo; its status lines follow.
			u.mu.Lock()
			if len(u.outgoing) >= maxOutgoing {
				clear(u.outgoing)
			}
			u.outgoing[e.Message.ID] = e.Message.Text
			u.mu.Unlock()
		} else {
			u.say("msg from %s: %s", u.label(e.Message), e.Message.Text)
		}
	case im.MessageStatus:
		u.mu.Lock()
		text, ok := u.outgoing[e.ID]
		if e.Status == im.Read {
			delete(u.outgoing, e.ID)
		}
		u.mu.Unlock()
		how := fmt.Sprintf("%s to %s", e.Status, u.name(e.Peer))
		if e.Status == im.Read {
			how = "read by " + u.name(e.Peer)
		}
		if ok {
			u.say("%s: %s", how, snippet(text))
		} else {
			u.say("%s", how)
		}
	case im.PresenceChanged:
		how := ""
		if e.Auto {
			how = " (idle)"
		}
		u.say("you are %s%s", e.State, how)
	case im.RoomMessage:
		u.say("#%s <%s> %s", e.Message.Room, e.Message.From, e.Message.Text)
	case im.RoomMember:
		if u.changed("room "+e.Room+" "+string(e.ID), e.State) {
			u.say("#%s: %s is %s", e.Room, cmpOr(e.Name, u.name(e.ID)), e.State)
		}
	case im.TransferProgress:
		if line, ok := u.transferLine(e.Transfer, time.Now()); ok {
			u.say("%s", line)
		}
	case im.RoomInvitation:
		u.say("invitation: %s invites you to #%s; /room accept %s", e.From.Label(), e.Room, e.Room)
	case im.Notice:
		u.say("notice: %s", e.Text)
	}
}

// maxOutgoing bounds the texts of outgoing messages kept for status lines.
const maxOutgoing = 4096

// progressEvery is how often plain mode may repeat a transfer's progress
// between its 25% steps.
const progressEvery = 5 * time.Second

// contactLine is what plain mode says about a contact; "" when there is
// nothing new to say (an accepted contact whose presence is not known yet
// would otherwise flash offline before it shows online).
func contactLine(c im.Contact) string {
	if c.State != im.Accepted {
		return fmt.Sprintf("contact: %s (%s)", c.Label(), c.State)
	}
	if c.Presence == "" {
		return ""
	}
	if c.StatusText != "" {
		return fmt.Sprintf("contact: %s is %s: %s", c.Label(), c.Presence, c.StatusText)
	}
	return fmt.Sprintf("contact: %s is %s", c.Label(), c.Presence)
}

// changed records line as the latest said about key, reporting whether it
// differs from what was said before: the same line twice is said once.
func (u *plainUI) changed(key, line string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.last[key] == line {
		return false
	}
	if len(u.last) >= maxOutgoing {
		clear(u.last)
	}
	u.last[key] = line
	return true
}

func (u *plainUI) forget(key string) {
	u.mu.Lock()
	delete(u.last, key)
	u.mu.Unlock()
}

// transferLine is a transfer's progress line, or false when saying it now
// would be noise: a line when the state changes, at each 25% step, and at
// most every progressEvery in between.
func (u *plainUI) transferLine(t im.Transfer, now time.Time) (string, bool) {
	pct := 100
	if t.Size > 0 {
		pct = int(t.Done * 100 / t.Size)
	}
	u.mu.Lock()
	last, seen := u.progress[t.ID]
	say := !seen || last.state != t.State || pct/25 > last.pct/25 || (pct != last.pct && now.Sub(last.at) >= progressEvery)
	if say {
		u.progress[t.ID] = progressMark{state: t.State, pct: pct, at: now}
	}
	if t.State == "done" || t.State == "failed" {
		delete(u.progress, t.ID)
	}
	u.mu.Unlock()
	if !say {
		return "", false
	}
	dir := "to"
	if !t.Out {
		dir = "from"
	}
	line := fmt.Sprintf("file %s %s %s: %s %s %d%%", t.Name, dir, u.name(t.Peer), t.State, progressBar(pct, 20), pct)
	switch {
	case t.State == "done" && !t.Out && t.Path != "":
		line += ", saved as " + t.Path
	case t.Err != "" && t.State != "done":
		line += " (" + t.Err + ")"
	}
	return line, true
}

type progressMark struct {
	state string
	pct   int
	at    time.Time
}

// remember keeps a contact's label, so that lines about it carry its name.
func (u *plainUI) remember(c im.Contact) {
	u.mu.Lock()
	if len(u.names) >= maxOutgoing {
		clear(u.names)
	}
	u.names[c.ID] = c.Label()
	u.mu.Unlock()
}

// name is what a person reads for a peer: the contact's petname or name.
func (u *plainUI) name(id peer.ID) string {
	if c, err := u.m.Contact(id.String()); err == nil {
		return c.Label()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if n, ok := u.names[id]; ok {
		return n
	}
	return id.ShortString()
}

// ref is how to name c in a command: its label when that finds c, else the
// end of its peer ID.
func (u *plainUI) ref(c im.Contact) string {
	if got, err := u.m.Contact(c.Label()); err == nil && got.ID == c.ID && !strings.ContainsAny(c.Label(), " \t") {
		return c.Label()
	}
	id := c.ID.String()
	return id[max(0, len(id)-8):]
}

// snippet shortens a message for a status line.
func snippet(text string) string {
	const max = 48
	text = strings.Join(strings.Fields(text), " ")
	if r := []rune(text); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return text
}

func progressBar(pct, width int) string {
	n := pct * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (u *plainUI) label(msg im.Message) string { return u.name(msg.Peer) }

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
	cmd, rest, _ := strings.Cut(line[1:], " ")
	rest = strings.TrimSpace(rest)
	args := strings.Fields(rest)
	m := u.m
	fail := func(err error) { u.say("error: %v", err) }
	contact := func(ref string) (im.Contact, bool) {
		c, err := m.Contact(ref)
		if err != nil {
			fail(err)
			return c, false
		}
		return c, true
	}
	switch cmd {
	case "help":
		u.say("%s", plainHelp)
	case "quit", "exit":
		return true
	case "invite":
		u.say("invite: %s", m.Invite())
		u.mu.Lock()
		qrterminal.GenerateWithConfig(m.Invite(), qrterminal.Config{Level: qrterminal.L, Writer: u.out, HalfBlocks: true,
			BlackChar: qrterminal.BLACK_BLACK, WhiteBlackChar: qrterminal.WHITE_BLACK, WhiteChar: qrterminal.WHITE_WHITE, BlackWhiteChar: qrterminal.BLACK_WHITE, QuietZone: 1})
		u.mu.Unlock()
	case "add":
		if len(args) < 1 {
			u.say("usage: /add INVITE [petname]")
			break
		}
		pet := ""
		if len(args) > 1 {
			pet = args[1]
		}
		c, err := m.AddContact(ctx, args[0], pet)
		if err != nil {
			fail(err)
			break
		}
		u.say("asked %s to be your contact", c.Label())
	case "accept":
		if c, ok := contact(rest); ok {
			if err := m.Accept(ctx, c.ID); err != nil {
				fail(err)
			}
		}
	case "contacts":
		for _, c := range m.Contacts() {
			line := fmt.Sprintf("  %-20s %-10s %s", c.Label(), c.Presence, c.State)
			if c.StatusText != "" {
				line += "  " + c.StatusText
			}
			u.say("%s", line)
		}
	case "rename":
		if len(args) != 2 {
			u.say("usage: /rename NAME PETNAME")
		} else if c, ok := contact(args[0]); ok {
			if err := m.Rename(c.ID, args[1]); err != nil {
				fail(err)
			}
		}
	case "remove":
		if c, ok := contact(rest); ok {
			if err := m.Remove(c.ID); err != nil {
				fail(err)
			}
		}
	case "msg":
		name, text, _ := strings.Cut(rest, " ")
		if name == "" || strings.TrimSpace(text) == "" {
			u.say("usage: /msg NAME TEXT")
		} else if c, ok := contact(name); ok {
			if _, err := m.Send(ctx, c.ID, text); err != nil {
				fail(err)
			}
		}
	case "open":
		if c, ok := contact(rest); ok {
			for _, msg := range m.History(c.ID, 50) {
				who := c.Label()
				if msg.Out {
					who = "you"
				}
				u.say("  %s %s: %s (%s)", msg.Time.Format("15:04"), who, msg.Text, msg.Status)
			}
			m.OpenChat(ctx, c.ID)
		}
	case "path":
		if c, ok := contact(rest); ok {
			u.say("path to %s: %s", c.Label(), m.Peer().PathTo(c.ID))
		}
	case "search":
		if rest == "" {
			u.say("usage: /search TEXT")
			break
		}
		hits := m.Search(rest)
		if len(hits) == 0 {
			u.say("no message matches %q", rest)
		}
		for _, msg := range hits {
			who := u.label(msg)
			if msg.Out {
				who = "you to " + who
			}
			u.say("  %s %s: %s", msg.Time.Format("2006-01-02 15:04"), who, msg.Text)
		}
	case "status":
		st, text, _ := strings.Cut(rest, " ")
		if err := m.SetPresence(groups.State(st), text); err != nil {
			fail(err)
		}
	case "file":
		if len(args) != 2 {
			u.say("usage: /file NAME PATH")
		} else if c, ok := contact(args[0]); ok {
			if _, err := m.SendFile(ctx, c.ID, args[1]); err != nil {
				fail(err)
			}
		}
	case "room":
		u.room(ctx, args, rest)
	default:
		u.say("error: unknown command /%s (try /help)", cmd)
	}
	return false
}

func (u *plainUI) room(ctx context.Context, args []string, rest string) {
	m := u.m
	if len(args) < 2 {
		u.say("usage: /room create|join|invite|accept|who|say ...")
		return
	}
	var err error
	switch args[0] {
	case "create":
		pw := ""
		if len(args) > 2 {
			pw = args[2]
		}
		if err = m.CreateRoom(ctx, args[1], pw); err == nil {
			u.say("created room #%s", args[1])
		}
	case "join":
		if len(args) < 3 {
			u.say("usage: /room join NAME PASSWORD")
			return
		}
		if err = m.JoinRoom(ctx, args[1], args[2]); err == nil {
			u.say("joined room #%s", args[1])
		}
	case "invite":
		if len(args) < 3 {
			u.say("usage: /room invite ROOM NAME")
			return
		}
		c, cerr := m.Contact(args[2])
		if cerr != nil {
			err = cerr
			break
		}
		// Over the chat pipe (or the mailbox): nothing to copy by hand.
		if err = m.InviteToRoom(ctx, args[1], c.ID); err == nil {
			u.say("invited %s to #%s", c.Label(), args[1])
		}
	case "accept":
		// A room a contact invited you to, or a credential pasted by hand.
		if err = m.AcceptRoomInvitation(ctx, args[1]); err == nil {
			u.say("joined room #%s", args[1])
		} else if strings.HasPrefix(args[1], "juxtagroup") {
			if err = m.JoinRoomInvite(ctx, args[1]); err == nil {
				u.say("joined an invite room")
			}
		}
	case "who":
		if !slices.Contains(m.Rooms(), args[1]) {
			err = fmt.Errorf("you are not in room %q (your rooms: %s)", args[1], cmpOr(strings.Join(m.Rooms(), ", "), "none"))
			break
		}
		for _, mem := range m.RoomMembers(args[1]) {
			u.say("  %-20s %s %s", cmpOr(mem.Name, u.name(mem.ID)), mem.State, mem.Text)
		}
	case "say":
		_, text, _ := strings.Cut(strings.TrimPrefix(rest, "say "), " ")
		err = m.SayRoom(ctx, args[1], text)
	default:
		u.say("usage: /room create|join|invite|accept|who|say ...")
	}
	if err != nil {
		u.say("error: %v", err)
	}
}
