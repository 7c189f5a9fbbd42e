package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

// tuiFake is the messenger as the model's unit test wants it. Methods the
// test does not expect are left to the nil embedded engine: calling one
// panics.
type tuiFake struct {
	engine
	contacts  []im.Contact
	history   map[peer.ID][]im.Message
	rooms     []string
	found     []im.Message
	state     [2]string
	sent      []string
	opened    []peer.ID
	presences []string
	touches   int
}

func (f *tuiFake) Name() string               { return "alice" }
func (f *tuiFake) Invite() string             { return "juxta1testinvite" }
func (f *tuiFake) Contacts() []im.Contact     { return append([]im.Contact(nil), f.contacts...) }
func (f *tuiFake) Presence() (string, string) { return f.state[0], f.state[1] }
func (f *tuiFake) Touch()                     { f.touches++ }
func (f *tuiFake) Transfers() []im.Transfer   { return nil }
func (f *tuiFake) Rooms() []string            { return f.rooms }
func (f *tuiFake) Search(string) []im.Message { return f.found }
func (f *tuiFake) History(id peer.ID, _ int) []im.Message {
	return append([]im.Message(nil), f.history[id]...)
}
func (f *tuiFake) RoomHistory(string, int) []im.Message { return nil }
func (f *tuiFake) RoomMembers(string) []groups.Member   { return make([]groups.Member, 2) }
func (f *tuiFake) OpenChat(_ context.Context, id peer.ID) {
	f.opened = append(f.opened, id)
}

func (f *tuiFake) Contact(ref string) (im.Contact, error) {
	for _, c := range f.contacts {
		if c.Label() == ref || string(c.ID) == ref {
			return c, nil
		}
	}
	return im.Contact{}, fmt.Errorf("no contact %q", ref)
}

func (f *tuiFake) Send(_ context.Context, id peer.ID, text string) (im.Message, error) {
	f.sent = append(f.sent, string(id)+": "+text)
	return im.Message{}, nil
}

func (f *tuiFake) SetPresence(st groups.State, text string) error {
	f.presences = append(f.presences, string(st)+" "+text)
	return nil
}

// tuiRun runs what Update returned, as the bubbletea program would, feeding
// the messages back; it reports whether the program was told to quit.
func tuiRun(t *testing.T, m *tuiModel, cmd tea.Cmd) (quit bool) {
	t.Helper()
	if cmd == nil {
		return false
	}
	got := make(chan tea.Msg, 1)
	go func() { got <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-got:
	case <-time.After(patience):
		t.Fatal("a command blocked")
	}
	switch msg := msg.(type) {
	case nil:
	case tea.QuitMsg:
		return true
	case tea.BatchMsg:
		for _, c := range msg {
			quit = tuiRun(t, m, c) || quit
		}
	default:
		_, next := m.Update(msg)
		quit = tuiRun(t, m, next)
	}
	return quit
}

func tuiUpdate(t *testing.T, m *tuiModel, msg tea.Msg) bool {
	t.Helper()
	_, cmd := m.Update(msg)
	return tuiRun(t, m, cmd)
}

func tuiType(t *testing.T, m *tuiModel, line string) bool {
	t.Helper()
	m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune(line)})
	return tuiUpdate(t, m, tea.KeyMsg{Type: tea.KeyEnter})
}

// tuiScreen is the model's view as text, without styles.
func tuiScreen(m *tuiModel) string { return ansi.Strip(m.View()) }

// tuiLine is the chat line holding text, trimmed of the frame.
func tuiLine(m *tuiModel, text string) string {
	for _, l := range strings.Split(tuiScreen(m), "\n") {
		if i := strings.Index(l, text); i >= 0 {
			return strings.TrimRight(strings.TrimSuffix(strings.TrimRight(l[i:], " "), "│"), " ")
		}
	}
	return ""
}

func tuiWant(t *testing.T, m *tuiModel, what ...string) {
	t.Helper()
	screen := tuiScreen(m)
	for _, w := range what {
		if !strings.Contains(screen, w) {
			t.Fatalf("screen lacks %q:\n%s", w, screen)
		}
	}
}

// TestTUIModel drives the model with synthetic events and keys, without a
// terminal, and checks what it shows and what it asks of the messenger.
func TestTUIModel(t *testing.T) {
	bob, carol := peer.ID("bob-peer-id"), peer.ID("carol-peer-id")
	f := &tuiFake{state: [2]string{"online", ""}, history: map[peer.ID][]im.Message{}}
	m := newTUIModel(context.Background(), f, true)
	if m.Init() == nil {
		t.Fatal("Init starts nothing")
	}
	tuiUpdate(t, m, tea.WindowSizeMsg{Width: 100, Height: 30})
	tuiWant(t, m, demoHint, "buddies", "no contacts yet", "● online")
	if lines := strings.Split(m.View(), "\n"); len(lines) != 30 {
		t.Fatalf("view has %d lines, want 30", len(lines))
	}

	// A contact request: marked in the buddy list, selected, opened.
	f.contacts = []im.Contact{{ID: bob, Name: "bob", State: im.Pending}}
	tuiUpdate(t, m, eventMsg{im.ContactRequest{Contact: f.contacts[0]}})
	tuiWant(t, m, "? bob wants to add you", "bob · wants to be your contact", "request: bob wants to be your contact — /accept bob")
	if len(f.opened) != 1 || f.opened[0] != bob {
		t.Fatalf("opened %v, want bob", f.opened)
	}

	// Accepted and online: the presence shows live.
	f.contacts[0].State, f.contacts[0].Presence, f.contacts[0].StatusText = im.Accepted, "online", "ready"
	tuiUpdate(t, m, eventMsg{im.ContactChanged{Contact: f.contacts[0]}})
	tuiWant(t, m, "● bob ready", "bob · online: ready", "bob is now your contact")
	f.contacts[0].Presence = "busy"
	tuiUpdate(t, m, eventMsg{im.ContactChanged{Contact: f.contacts[0]}})
	tuiWant(t, m, "◉ bob ready", "bob · busy: ready")

	// A received message shows in the chat; one with escapes is defused.
	now := time.Date(2026, 1, 2, 15, 4, 0, 0, time.Local)
	tuiUpdate(t, m, eventMsg{im.MessageAdded{Message: im.Message{ID: "m1", Peer: bob, Text: "hi alice", Time: now, Status: im.Received}}})
	tuiUpdate(t, m, eventMsg{im.MessageAdded{Message: im.Message{ID: "m0", Peer: bob, Text: "x\x1b]0;pwned\x07y", Time: now, Status: im.Received}}})
	tuiWant(t, m, "15:04 bob: hi alice", "bob: x]0;pwnedy")
	if strings.Contains(m.View(), "\x1b]0;pwned") {
		t.Fatal("a peer's terminal escape reached the screen")
	}

	// Typing sends to the selected chat; each key is activity.
	touches := f.touches
	tuiType(t, m, "hello bob")
	if len(f.sent) != 1 || f.sent[0] != "bob-peer-id: hello bob" {
		t.Fatalf("sent %q", f.sent)
	}
	if f.touches <= touches {
		t.Fatal("a keypress did not touch the messenger")
	}
	out := im.Message{ID: "m2", Peer: bob, Out: true, Text: "hello bob", Time: now, Status: im.Sending}
	tuiUpdate(t, m, eventMsg{im.MessageAdded{Message: out}})
	tuiWant(t, m, "you: hello bob …")
	for _, step := range []struct {
		st   im.Status
		mark string
	}{{im.Sent, "you: hello bob ✓\n"}, {im.Delivered, "you: hello bob ✓✓\n"}, {im.Read, "you: hello bob ✓✓ read"}} {
		tuiUpdate(t, m, eventMsg{im.MessageStatus{ID: "m2", Peer: bob, Status: step.st}})
		tuiWant(t, m, strings.TrimSuffix(step.mark, "\n"))
		if line := tuiLine(m, "you: hello bob"); !strings.HasSuffix(line, strings.TrimSuffix(step.mark, "\n")) {
			t.Fatalf("%s: line %q", step.st, line)
		}
	}
	tuiUpdate(t, m, eventMsg{im.MessageStatus{ID: "m2", Peer: bob, Status: im.Delivered}}) // late: no step back
	tuiWant(t, m, "you: hello bob ✓✓ read")

	// A message in another chat: unread in the buddy list, and a notice.
	f.contacts = append(f.contacts, im.Contact{ID: carol, Name: "carol", State: im.Accepted, Presence: "away"})
	tuiUpdate(t, m, eventMsg{im.ContactChanged{Contact: f.contacts[1]}})
	f.history[carol] = []im.Message{{ID: "c1", Peer: carol, Text: "are you there?", Time: now, Status: im.Received}}
	tuiUpdate(t, m, eventMsg{im.MessageAdded{Message: f.history[carol][0]}})
	tuiWant(t, m, "◐ carol (1)", "message from carol: are you there?")

	// Tab moves to carol: her history, read.
	tuiUpdate(t, m, tea.KeyMsg{Type: tea.KeyTab})
	tuiWant(t, m, "carol · away", "carol: are you there?")
	if strings.Contains(tuiScreen(m), "carol (1)") || f.opened[len(f.opened)-1] != carol {
		t.Fatalf("carol's chat not opened (opened %v):\n%s", f.opened, tuiScreen(m))
	}
	// Up with an empty input goes back to bob.
	tuiUpdate(t, m, tea.KeyMsg{Type: tea.KeyUp})
	tuiWant(t, m, "bob · busy")

	// Rooms are listed below the contacts.
	f.rooms = []string{"lobby"}
	m.Update(tickMsg{}) // its command is the next tick, 2 s off: not run here
	tuiWant(t, m, "rooms", "# lobby")

	// Commands.
	tuiType(t, m, "/status away lunch")
	if len(f.presences) != 1 || f.presences[0] != "away lunch" {
		t.Fatalf("presence set to %q", f.presences)
	}
	f.state = [2]string{"away", "lunch"}
	tuiUpdate(t, m, eventMsg{im.PresenceChanged{State: "away", Text: "lunch"}})
	tuiWant(t, m, "◐ away: lunch")
	f.found = []im.Message{{ID: "m1", Peer: bob, Text: "hi alice", Time: now}}
	tuiType(t, m, "/search alice")
	tuiWant(t, m, `search "alice": 1 found · Esc closes`, "2026-01-02 15:04 bob: hi alice")
	tuiUpdate(t, m, tea.KeyMsg{Type: tea.KeyEsc})
	tuiWant(t, m, "bob · busy")
	tuiType(t, m, "/invite")
	tuiWant(t, m, "your invite", "juxta1testinvite", "█")
	tuiType(t, m, "/help")
	tuiWant(t, m, "/add INVITE [petname]", "/status STATE [TEXT]")
	tuiType(t, m, "/frobnicate")
	tuiWant(t, m, "error: unknown command /frobnicate")

	// File transfers show with a progress bar.
	tuiUpdate(t, m, eventMsg{im.TransferProgress{Transfer: im.Transfer{ID: "t1", Peer: bob, Name: "cat.jpg", Size: 200, Done: 100, State: "receiving"}}})
	tuiWant(t, m, "↓ cat.jpg from bob ██████░░░░░░ 50% receiving")
	tuiUpdate(t, m, eventMsg{im.TransferProgress{Transfer: im.Transfer{ID: "t1", Peer: bob, Name: "cat.jpg", Size: 200, Done: 200, State: "done", Path: "/dl/cat.jpg"}}})
	tuiWant(t, m, "file cat.jpg from bob saved to /dl/cat.jpg")
	tuiUpdate(t, m, eventMsg{im.TransferProgress{Transfer: im.Transfer{ID: "t2", Peer: bob, Out: true, Name: "big.iso", Size: 200, Done: 20, State: "failed", Err: "hash mismatch"}}})
	tuiWant(t, m, "file big.iso to bob failed: hash mismatch")

	// Removed: gone from the list.
	f.contacts = f.contacts[1:]
	tuiUpdate(t, m, eventMsg{im.ContactRemoved{ID: bob}})
	if strings.Contains(tuiScreen(m), "◉ bob") {
		t.Fatalf("bob still listed:\n%s", tuiScreen(m))
	}

	if !tuiType(t, m, "/quit") {
		t.Fatal("/quit did not quit")
	}
	if !tuiUpdate(t, m, tea.KeyMsg{Type: tea.KeyCtrlC}) {
		t.Fatal("Ctrl+C did not quit")
	}
}

// TestTUITmux runs the built messenger with -demo in a real terminal (tmux),
// says hello to the bot and waits for its answer.
func TestTUITmux(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two messengers in tmux: not in -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not on PATH: install tmux to test the terminal UI")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "messenger")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	// A tmux server of its own, so the test neither sees nor disturbs others;
	// its socket goes with the temporary directory.
	sock := filepath.Join(dir, "tmux.sock")
	const session = "messenger"
	tmux := func(args ...string) (string, error) {
		cmd := exec.Command("tmux", append([]string{"-S", sock}, args...)...)
		cmd.Env = os.Environ()
		if os.Getenv("TERM") == "" || os.Getenv("TERM") == "dumb" {
			cmd.Env = append(cmd.Env, "TERM=xterm-256color")
		}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		tmux("kill-session", "-t", session)
		tmux("kill-server")
	})
	stderr, status := filepath.Join(dir, "stderr"), filepath.Join(dir, "status")
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	script := fmt.Sprintf("%s -demo 2>%s; echo exit=$? >%s", q(bin), q(stderr), q(status))
	if out, err := tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", script); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	var screen string
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(patience)
		for {
			out, err := tmux("capture-pane", "-p", "-t", session)
			if err == nil {
				screen = out
				if ok(screen) {
					return
				}
			}
			if time.Now().After(deadline) {
				errs, _ := os.ReadFile(stderr)
				t.Fatalf("no %s on the screen:\n%s\nstderr: %s", what, screen, errs)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	has := func(re string) func(string) bool { return regexp.MustCompile(re).MatchString }

	waitFor("demo hint", has(regexp.QuoteMeta(demoHint)))
	waitFor("bot in the buddy list, on", has(`│[●◐◉⊘] bot\b`))
	waitFor("open chat with bot", has(`╭─ bot · (online|away|busy)`))
	tmux("send-keys", "-t", session, "-l", "hello")
	tmux("send-keys", "-t", session, "Enter")
	waitFor("bot's reply", has(`\d\d:\d\d bot: hello! I am a juxta peer`))
	waitFor("delivered mark on the sent message", has(`\d\d:\d\d you: hello ✓✓`))
	t.Logf("screen:\n%s", screen)

	tmux("send-keys", "-t", session, "-l", "/quit")
	tmux("send-keys", "-t", session, "Enter")
	deadline := time.Now().Add(patience)
	for {
		if _, err := tmux("has-session", "-t", session); err != nil {
			break // the messenger and the session ended
		}
		if time.Now().After(deadline) {
			out, _ := tmux("capture-pane", "-p", "-t", session)
			t.Fatalf("the messenger did not quit:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := os.ReadFile(status)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != "exit=0" {
		errs, _ := os.ReadFile(stderr)
		t.Fatalf("messenger ended with %q, want exit=0; stderr: %s", got, errs)
	}
}
