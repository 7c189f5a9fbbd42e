package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/peer"
)

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
	last, seen := u.progress[t.Key()]
	say := !seen || last.state != t.State || pct/25 > last.pct/25 || (pct != last.pct && now.Sub(last.at) >= progressEvery)
	if say {
		u.progress[t.Key()] = progressMark{state: t.State, pct: pct, at: now}
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
