package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/mdp/qrterminal/v3"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
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
  /room invite ROOM NAME       make a credential for a contact
  /room accept CREDENTIAL      join an invite room
  /room who ROOM               the room's members
  #ROOM TEXT                   say something in a room
  /quit`

// plainUI is line mode: one command per input line, one event per output line.
type plainUI struct {
	m   *im.Messenger
	out io.Writer
	mu  sync.Mutex // serialises output lines
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
	u := &plainUI{m: m, out: out}
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
		u.say("request: %s wants to be your contact; /accept %s", e.Contact.Label(), e.Contact.ID)
	case im.ContactChanged:
		c := e.Contact
		switch c.State {
		case im.Accepted:
			st := c.Presence
			if st == "" {
				st = string(groups.Offline)
			}
			if c.StatusText != "" {
				u.say("contact: %s is %s: %s", c.Label(), st, c.StatusText)
			} else {
				u.say("contact: %s is %s", c.Label(), st)
			}
		default:
			u.say("contact: %s (%s)", c.Label(), c.State)
		}
	case im.ContactRemoved:
		u.say("contact removed: %s", e.ID)
	case im.MessageAdded:
		if e.Message.Out {
			u.say("queued %s to %s", e.Message.ID, u.label(e.Message))
		} else {
			u.say("msg from %s: %s", u.label(e.Message), e.Message.Text)
		}
	case im.MessageStatus:
		u.say("%s %s", e.Status, e.ID)
	case im.PresenceChanged:
		how := ""
		if e.Auto {
			how = " (idle)"
		}
		u.say("you are %s%s", e.State, how)
	case im.RoomMessage:
		u.say("#%s <%s> %s", e.Message.Room, e.Message.From, e.Message.Text)
	case im.RoomMember:
		u.say("#%s: %s is %s", e.Room, cmpOr(e.Name, e.ID.ShortString()), e.State)
	case im.TransferProgress:
		t := e.Transfer
		pct := 100
		if t.Size > 0 {
			pct = int(t.Done * 100 / t.Size)
		}
		dir := "to"
		if !t.Out {
			dir = "from"
		}
		line := fmt.Sprintf("file %s %s %s: %s %s %d%%", t.Name, dir, t.Peer.ShortString(), t.State, progressBar(pct, 20), pct)
		if t.Err != "" && t.State != "done" {
			line += " (" + t.Err + ")"
		}
		u.say("%s", line)
	case im.Notice:
		u.say("notice: %s", e.Text)
	}
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

func (u *plainUI) label(msg im.Message) string {
	if c, err := u.m.Contact(msg.Peer.String()); err == nil {
		return c.Label()
	}
	return msg.Peer.ShortString()
}

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
		for _, msg := range m.Search(rest) {
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
		var cred string
		if cred, err = m.RoomInvite(args[1], c.ID); err == nil {
			u.say("credential for %s: %s", c.Label(), cred)
		}
	case "accept":
		if err = m.JoinRoomInvite(ctx, args[1]); err == nil {
			u.say("joined an invite room")
		}
	case "who":
		for _, mem := range m.RoomMembers(args[1]) {
			u.say("  %-20s %s %s", cmpOr(mem.Name, mem.ID.ShortString()), mem.State, mem.Text)
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
