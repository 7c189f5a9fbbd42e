package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
	"github.com/juxta-p2p/juxta/peer"
)

// tuiFake is the node as the model's unit test wants it.
type tuiFake struct {
	results []share.Result
	st      share.Status
	got     []share.Result
}

func (f *tuiFake) Status() share.Status { return f.st }
func (f *tuiFake) Search(_ context.Context, _ string, update func([]share.Result)) ([]share.Result, error) {
	update(f.results[:1])
	return f.results, nil
}
func (f *tuiFake) Get(_ context.Context, r share.Result) (string, error) {
	f.got = append(f.got, r)
	return r.ID, nil
}
func (f *tuiFake) LinkResult(string) (share.Result, error) {
	return share.Result{}, errors.New("bad link")
}
func (f *tuiFake) Share(context.Context, string, string) error { return nil }

// drive runs cmd's messages through the model, as the program would.
func drive(m *tuiModel, cmd tea.Cmd) {
	for i := 0; cmd != nil && i < 100; i++ {
		msg := cmd()
		if msg == nil {
			return
		}
		if b, ok := msg.(tea.BatchMsg); ok {
			for _, c := range b {
				drive(m, c)
			}
			return
		}
		_, cmd = m.Update(msg)
	}
}

// TestTUIHostileNames: names from strangers never garble the screen: every
// line of the view is one line of at most the terminal's width, with no
// control or format character once colours are stripped.
func TestTUIHostileNames(t *testing.T) {
	hostile := []string{"a\x1b[2J\x1b[Hcleared", "new\nline\rreturn", "\u202eexe.txt", strings.Repeat("宽", 5000),
		"tab\there", "bell\a", "../../etc/passwd", "\x00nul"}
	f := &tuiFake{}
	for i, h := range hostile {
		f.results = append(f.results, share.Result{ID: strconv.Itoa(i), Name: h, Kind: "\x1b]0;title\a", Size: int64(i), Sources: make([]peer.ID, i)})
		f.st.Downloads = append(f.st.Downloads, share.DownloadInfo{ID: strconv.Itoa(i), Name: h, Size: 100, Have: int64(i * 10), State: share.Running, Err: h})
	}
	f.st.Downloads = append(f.st.Downloads, share.DownloadInfo{Name: "x", State: share.Failed, Err: hostile[0]})
	f.st.Name = hostile[1]
	m := newTUIModel(context.Background(), f, "")
	m.Update(tea.WindowSizeMsg{Width: 100, Height: 30})
	for _, r := range "cleared" {
		m.Update(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}})
	}
	_, cmd := m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	drive(m, cmd)
	if len(m.results) != len(hostile) || m.searching {
		t.Fatalf("%d results, searching %v", len(m.results), m.searching)
	}
	m.Update(tickMsg{})
	view := m.View()
	lines := strings.Split(view, "\n")
	if len(lines) != 30 {
		t.Errorf("the view has %d lines, want 30", len(lines))
	}
	for i, l := range lines {
		plain := ansi.Strip(l)
		if w := ansi.StringWidth(l); w > 100 {
			t.Errorf("line %d is %d cells wide: %q", i, w, plain)
		}
		if strings.ContainsFunc(plain, func(r rune) bool { return unicode.IsControl(r) || unicode.Is(unicode.Cf, r) }) {
			t.Errorf("line %d holds a control character: %q", i, plain)
		}
	}
	// Down twice, then Enter with an empty box downloads the third result.
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	m.Update(tea.KeyMsg{Type: tea.KeyDown})
	_, cmd = m.Update(tea.KeyMsg{Type: tea.KeyEnter})
	drive(m, cmd)
	if len(f.got) != 1 || f.got[0].ID != "2" {
		t.Fatalf("got %+v, want result 3", f.got)
	}
	if !strings.Contains(m.notice, "downloading") {
		t.Errorf("notice %q", m.notice)
	}
}

// TestTUITmux is acceptance 7: the demo's terminal UI in a real terminal
// (tmux): a search, its results with their sources, and a download whose
// progress bar moves.
func TestTUITmux(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo in tmux: not in -short")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not on PATH: install tmux to test the terminal UI")
	}
	dir := t.TempDir()
	// A tmux server of its own, so the test neither sees nor disturbs others.
	sock := filepath.Join(dir, "tmux.sock")
	const session = "fileshare"
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
	// Slow sharers, so that the bar is seen moving.
	script := fmt.Sprintf("%s demo -sharer-cap 256K 2>%s; echo exit=$? >%s", q(binary), q(stderr), q(status))
	if out, err := tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", script); err != nil {
		t.Fatalf("tmux new-session: %v\n%s", err, out)
	}
	var screen string
	waitFor := func(what string, ok func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for {
			if out, err := tmux("capture-pane", "-p", "-t", session); err == nil {
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
	keys := func(s string) {
		tmux("send-keys", "-t", session, "-l", s)
		tmux("send-keys", "-t", session, "Enter")
	}

	waitFor("demo hint", has(regexp.QuoteMeta(demoHint)))
	keys("sintel")
	waitFor("the result from three sharers", has(`  1 Sintel \(2010\) 1080p\.mkv +\d+\.\d MiB video +3`))
	waitFor("search finished", has(`1 files for "sintel"`))
	keys("")
	pct := regexp.MustCompile(`Sintel \(2010\) 1080p\.mkv *[█░]+ +(\d+)% `)
	var seen []int
	waitFor("the bar moving", func(s string) bool {
		if m := pct.FindStringSubmatch(s); m != nil {
			p, _ := strconv.Atoi(m[1])
			if len(seen) == 0 || seen[len(seen)-1] != p {
				seen = append(seen, p)
			}
		}
		return len(seen) >= 3
	})
	waitFor("the download done from three peers", has(`Sintel \(2010\) 1080p\.mkv *█+ done, from 3 peers`))
	t.Logf("progress seen: %v%%; screen:\n%s", seen, screen)
	for i := 1; i < len(seen); i++ {
		if seen[i] < seen[i-1] {
			t.Errorf("the bar went back: %v", seen)
		}
	}

	keys("/quit")
	deadline := time.Now().Add(time.Minute)
	for {
		if _, err := tmux("has-session", "-t", session); err != nil {
			break
		}
		if time.Now().After(deadline) {
			out, _ := tmux("capture-pane", "-p", "-t", session)
			t.Fatalf("the demo did not quit:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	got, err := os.ReadFile(status)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(got)) != "exit=0" {
		errs, _ := os.ReadFile(stderr)
		t.Fatalf("the demo ended with %q, want exit=0; stderr: %s", got, errs)
	}
}

// TestTUIHashingBar: while the node hashes, the title shows how far.
func TestTUIHashingBar(t *testing.T) {
	f := &tuiFake{st: share.Status{Name: "me", Hashing: "big.iso", Hashed: 30, HashSize: 100,
		Shares: []share.ShareInfo{{Folder: "/x", Files: 10, Pending: 5}}}}
	m := newTUIModel(context.Background(), f, "")
	m.Update(tea.WindowSizeMsg{Width: 140, Height: 20})
	title := ansi.Strip(strings.Split(m.View(), "\n")[0])
	for _, want := range []string{"sharing 10 files", "5 to go", "big.iso", "30%"} {
		if !strings.Contains(title, want) {
			t.Errorf("title %q lacks %q", title, want)
		}
	}
}
