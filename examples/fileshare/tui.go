package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

// engine is what the terminal UI uses of a node. *share.Node has it; the
// model's unit tests give a fake.
type engine interface {
	Status() share.Status
	Search(ctx context.Context, words string, update func([]share.Result)) ([]share.Result, error)
	Get(ctx context.Context, r share.Result) (string, error)
	LinkResult(link string) (share.Result, error)
	Share(ctx context.Context, dir, group string) error
}

var _ engine = (*share.Node)(nil)

const tuiHelp = `type words and Enter to search; Up/Down pick a result, Enter (with an empty box) downloads it
  /get LINK        download a share link
  /share DIR       share a folder
  /quit            (or Ctrl+C)`

// runTUI runs the terminal UI until the user quits or ctx ends. hint, if not
// empty, is shown first (the demo's suggestion).
func runTUI(ctx context.Context, e engine, hint string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := newTUIModel(ctx, e, hint)
	p := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx))
	_, err := p.Run()
	cancel()
	m.wg.Wait()
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil || errors.Is(err, tea.ErrInterrupted) {
		return nil
	}
	return err
}

type (
	// tickMsg refreshes the downloads and peers panes.
	tickMsg struct{}
	// resultsMsg carries a search's results so far; final marks the last.
	resultsMsg struct {
		seq   int
		rs    []share.Result
		final bool
		err   error
	}
	// noticeMsg sets the status line.
	noticeMsg struct {
		text  string
		isErr bool
	}
)

type tuiModel struct {
	ctx  context.Context
	e    engine
	wg   sync.WaitGroup // background searches
	hint string

	width, height int
	input         textinput.Model

	query     string
	seq       int             // of the current search
	updates   chan resultsMsg // of the current search
	searching bool
	results   []share.Result
	sel       int
	st        share.Status
	notice    string
	noticeErr bool
}

func newTUIModel(ctx context.Context, e engine, hint string) *tuiModel {
	in := textinput.New()
	in.Prompt = "search> "
	in.Placeholder = "words from a file's name or folder, then Enter"
	in.CharLimit = 256
	in.Focus()
	m := &tuiModel{ctx: ctx, e: e, input: in, hint: hint, width: 100, height: 30}
	m.st = e.Status()
	if hint != "" {
		m.notice = hint
	} else {
		m.notice = "type words and Enter to search; /help for more"
	}
	return m
}

func (m *tuiModel) Init() tea.Cmd {
	return tea.Batch(tea.SetWindowTitle("juxta fileshare"), textinput.Blink, tick())
}

func tick() tea.Cmd {
	return tea.Tick(250*time.Millisecond, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m *tuiModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.input.Width = max(msg.Width-len(m.input.Prompt)-2, 1)
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case tickMsg:
		m.st = m.e.Status()
		return m, tick()
	case resultsMsg:
		if msg.seq != m.seq {
			return m, nil // an older search
		}
		if msg.err != nil {
			m.setNotice(true, "search: %v", msg.err)
		}
		m.results = msg.rs
		m.sel = min(m.sel, max(len(m.results)-1, 0))
		if msg.final {
			m.searching = false
			if msg.err == nil {
				m.setNotice(false, "%d files for %q — Up/Down and Enter to download", len(m.results), m.query)
			}
			return m, nil
		}
		return m, m.waitResults()
	case noticeMsg:
		m.setNotice(msg.isErr, "%s", msg.text)
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *tuiModel) setNotice(isErr bool, format string, a ...any) {
	m.notice, m.noticeErr = share.Display(fmt.Sprintf(format, a...), 500), isErr
}

func (m *tuiModel) key(k tea.KeyMsg) tea.Cmd {
	switch k.String() {
	case "ctrl+c":
		return tea.Quit
	case "up":
		m.sel = max(m.sel-1, 0)
		return nil
	case "down":
		m.sel = min(m.sel+1, max(len(m.results)-1, 0))
		return nil
	case "esc":
		m.input.Reset()
		return nil
	case "enter":
		line := strings.TrimSpace(m.input.Value())
		m.input.Reset()
		if line == "" {
			return m.getSelected()
		}
		if strings.HasPrefix(line, "/") {
			return m.command(line)
		}
		return m.search(line)
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

// search starts a search whose results stream into the table.
func (m *tuiModel) search(words string) tea.Cmd {
	m.seq++
	m.query, m.results, m.sel, m.searching = words, nil, 0, true
	m.setNotice(false, "searching %q…", words)
	ch := make(chan resultsMsg, 64)
	m.updates = ch
	seq, ctx, e := m.seq, m.ctx, m.e
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		send := func(r resultsMsg) {
			select {
			case ch <- r:
			case <-ctx.Done():
			}
		}
		rs, err := e.Search(ctx, words, func(partial []share.Result) {
			select {
			case ch <- resultsMsg{seq: seq, rs: partial}:
			default: // the UI is behind: the next update carries these too
			}
		})
		send(resultsMsg{seq: seq, rs: rs, final: true, err: err})
	}()
	return m.waitResults()
}

func (m *tuiModel) waitResults() tea.Cmd {
	ch, ctx := m.updates, m.ctx
	return func() tea.Msg {
		select {
		case r := <-ch:
			return r
		case <-ctx.Done():
			return nil
		}
	}
}

func (m *tuiModel) getSelected() tea.Cmd {
	if m.sel < 0 || m.sel >= len(m.results) {
		m.setNotice(true, "no result selected: search first")
		return nil
	}
	return m.get(m.results[m.sel])
}

func (m *tuiModel) get(r share.Result) tea.Cmd {
	ctx, e := m.ctx, m.e
	m.setNotice(false, "getting %s from %d sources…", r.Name, len(r.Sources))
	return func() tea.Msg {
		if _, err := e.Get(ctx, r); err != nil {
			return noticeMsg{text: "get: " + err.Error(), isErr: true}
		}
		return noticeMsg{text: fmt.Sprintf("downloading %s from %d sources", r.Name, len(r.Sources))}
	}
}

func (m *tuiModel) command(line string) tea.Cmd {
	cmd, rest, _ := strings.Cut(line[1:], " ")
	rest = strings.TrimSpace(rest)
	switch cmd {
	case "quit", "q":
		return tea.Quit
	case "help":
		m.setNotice(false, "%s", strings.ReplaceAll(tuiHelp, "\n", " · "))
	case "get":
		r, err := m.e.LinkResult(rest)
		if err != nil {
			m.setNotice(true, "get: %v", err)
			return nil
		}
		return m.get(r)
	case "share":
		ctx, e := m.ctx, m.e
		return func() tea.Msg {
			if err := e.Share(ctx, rest, ""); err != nil {
				return noticeMsg{text: "share: " + err.Error(), isErr: true}
			}
			return noticeMsg{text: "sharing " + rest}
		}
	default:
		m.setNotice(true, "unknown command /%s — /help", cmd)
	}
	return nil
}
