package main

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/groups"
)

var (
	borderStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("240"))
	titleStyle    = lipgloss.NewStyle().Bold(true)
	dimStyle      = lipgloss.NewStyle().Foreground(lipgloss.Color("244"))
	hintStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("11")).Bold(true)
	selStyle      = lipgloss.NewStyle().Reverse(true).Bold(true)
	unreadStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("13")).Bold(true)
	youStyle      = lipgloss.NewStyle().Foreground(lipgloss.Color("14")).Bold(true)
	themStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("10")).Bold(true)
	readStyle     = lipgloss.NewStyle().Foreground(lipgloss.Color("12")).Bold(true)
	errorStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("9")).Bold(true)
	requestStyle  = lipgloss.NewStyle().Foreground(lipgloss.Color("13")).Bold(true)
	progressStyle = lipgloss.NewStyle().Foreground(lipgloss.Color("10"))
)

// presence marks: a glyph per state, so a screen without colour tells them
// apart too.
var stateMarks = map[string]struct {
	glyph string
	color lipgloss.Color
}{
	string(groups.Online):       {"●", "10"},
	string(groups.Away):         {"◐", "11"},
	string(groups.Busy):         {"◉", "208"},
	string(groups.DoNotDisturb): {"⊘", "9"},
	string(groups.Invisible):    {"◌", "244"},
	string(groups.Offline):      {"○", "244"},
}

func stateMark(state string) string {
	s, ok := stateMarks[state]
	if !ok {
		s = stateMarks[string(groups.Offline)]
	}
	return lipgloss.NewStyle().Foreground(s.color).Render(s.glyph)
}

// presenceMark is a buddy's mark: its presence, or where the contact request is.
func presenceMark(c im.Contact) string {
	switch c.State {
	case im.Pending:
		return requestStyle.Render("?")
	case im.Requested:
		return dimStyle.Render("…")
	}
	return stateMark(cmpOr(c.Presence, string(groups.Offline)))
}

// statusMark shows how far an outgoing message got.
func statusMark(s im.Status) string {
	switch s {
	case im.Sending:
		return dimStyle.Render("…")
	case im.Sent:
		return dimStyle.Render("✓")
	case im.Delivered:
		return "✓✓"
	case im.Read:
		return readStyle.Render("✓✓ read")
	}
	return ""
}

// clean takes control characters (terminal escapes among them) out of text
// that peers sent; newlines stay.
func clean(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return r != '\n' && unicode.IsControl(r) }) {
		return s
	}
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n':
			return r
		case r == '\t':
			return ' '
		case unicode.IsControl(r):
			return -1
		}
		return r
	}, s)
}

// cleanLine is clean for one line.
func cleanLine(s string) string { return strings.ReplaceAll(clean(s), "\n", " ") }

// fit truncates or pads s (which may hold styles) to exactly w cells.
func fit(s string, w int) string {
	if w <= 0 {
		return ""
	}
	s = ansi.Truncate(s, w, "…")
	if n := ansi.StringWidth(s); n < w {
		s += strings.Repeat(" ", w-n)
	}
	return s
}

// box draws a rounded frame of w×h cells with title in its top edge.
func box(title string, lines []string, w, h int) string {
	inner := max(w-2, 0)
	title = ansi.Truncate(title, max(inner-4, 0), "…")
	fill := max(w-5-ansi.StringWidth(title), 0)
	var b strings.Builder
	b.WriteString(borderStyle.Render("╭─") + " " + titleStyle.Render(title) + " " + borderStyle.Render(strings.Repeat("─", fill)+"╮"))
	for i := range max(h-2, 0) {
		line := ""
		if i < len(lines) {
			line = lines[i]
		}
		b.WriteString("\n" + borderStyle.Render("│") + fit(line, inner) + borderStyle.Render("│"))
	}
	b.WriteString("\n" + borderStyle.Render("╰"+strings.Repeat("─", inner)+"╯"))
	return b.String()
}

// wrap breaks s into lines of at most w cells.
func wrap(s string, w int) []string {
	if w <= 0 {
		return nil
	}
	return strings.Split(ansi.Wrap(s, w, ""), "\n")
}

func (m *tuiModel) leftWidth() int { return min(max(m.width/4, 18), 30) }

// paneHeight is the height of the buddy and chat panes, frames included.
func (m *tuiModel) paneHeight() int {
	h := m.height - 2 // input and status lines
	if m.demo {
		h--
	}
	return max(h, 3)
}

// chatHeight is how many lines the chat pane shows.
func (m *tuiModel) chatHeight() int { return m.paneHeight() - 2 }

func (m *tuiModel) View() string {
	if m.width == 0 {
		return "starting juxta messenger…"
	}
	var rows []string
	if m.demo {
		rows = append(rows, hintStyle.Render(ansi.Truncate(demoHint, m.width, "…")))
	}
	lw, h := m.leftWidth(), m.paneHeight()
	rows = append(rows, lipgloss.JoinHorizontal(lipgloss.Top, m.buddyPane(lw, h), m.chatPane(m.width-lw, h)))
	rows = append(rows, ansi.Truncate(m.input.View(), m.width, ""))
	rows = append(rows, m.statusLine())
	return strings.Join(rows, "\n")
}

// buddyPane is the buddy list: contacts with presence, requests, then rooms.
func (m *tuiModel) buddyPane(w, h int) string {
	inner := w - 2
	var lines []string
	selLine := 0
	for i, b := range m.buddies {
		if b.room != "" && (i == 0 || m.buddies[i-1].room == "") {
			if i > 0 {
				lines = append(lines, "")
			}
			lines = append(lines, dimStyle.Render("rooms"))
		}
		var mark, label, extra string
		if b.room != "" {
			mark, label = dimStyle.Render("#"), b.room
		} else {
			c := b.contact
			mark, label = presenceMark(c), cleanLine(c.Label())
			switch {
			case c.State == im.Pending:
				extra = "wants to add you"
			case c.State == im.Requested:
				extra = "asked"
			case c.StatusText != "":
				extra = cleanLine(c.StatusText)
			}
		}
		if n := m.unread[b.key]; n > 0 {
			label += fmt.Sprintf(" (%d)", n)
		}
		if b.key == m.sel {
			selLine = len(lines)
			text := label
			if extra != "" {
				text += " " + extra
			}
			lines = append(lines, mark+selStyle.Render(fit(" "+text, inner-1)))
			continue
		}
		text := label
		if m.unread[b.key] > 0 {
			text = unreadStyle.Render(label)
		}
		if extra != "" {
			text += " " + dimStyle.Render(extra)
		}
		lines = append(lines, mark+" "+text)
	}
	if len(lines) == 0 {
		lines = []string{dimStyle.Render("no contacts yet")}
	}
	// Keep the selection in view.
	if rows := h - 2; selLine >= rows {
		lines = lines[selLine-rows+1:]
	}
	return box("buddies", lines, w, h)
}

// maxScroll is how far the chat pane scrolls.
func (m *tuiModel) maxScroll() int {
	_, lines, _ := m.paneContent(m.width - m.leftWidth() - 2)
	return max(len(lines)-m.chatHeight(), 0)
}

// chatPane is the selected chat, or an info pane over it.
func (m *tuiModel) chatPane(w, h int) string {
	title, lines, fromTop := m.paneContent(w - 2)
	rows := h - 2
	scroll := min(m.scroll, max(len(lines)-rows, 0))
	if fromTop {
		lines = lines[scroll:]
	} else {
		end := len(lines) - scroll
		lines = lines[max(end-rows, 0):end]
	}
	return box(title, lines, w, h)
}

// paneContent is the chat pane's title and wrapped lines; fromTop says the
// pane is read from the top (info) rather than kept at the newest line (chat).
func (m *tuiModel) paneContent(w int) (title string, lines []string, fromTop bool) {
	if m.info != nil {
		for _, l := range m.info.lines {
			if ansi.StringWidth(l) <= w {
				lines = append(lines, l)
			} else {
				lines = append(lines, wrap(l, w)...)
			}
		}
		return cleanLine(m.info.title) + " · Esc closes", lines, true
	}
	b, ok := m.selected()
	if !ok {
		return "juxta messenger", wrap("No contacts yet. /invite shows your invite for a friend; /add INVITE adds theirs. /help lists the commands.", w), false
	}
	if b.room != "" {
		title = fmt.Sprintf("#%s · %d members", b.room, m.members)
	} else {
		c := b.contact
		title = cleanLine(c.Label())
		switch c.State {
		case im.Pending:
			title += " · wants to be your contact"
		case im.Requested:
			title += " · waiting for them to accept"
		default:
			title += " · " + cmpOr(cleanLine(c.Presence), string(groups.Offline))
			if c.StatusText != "" {
				title += ": " + cleanLine(c.StatusText)
			}
		}
	}
	for _, msg := range m.chat {
		lines = append(lines, wrap(m.chatLine(b, msg), w)...)
	}
	if len(lines) == 0 {
		var hint string
		switch {
		case b.room != "":
			hint = fmt.Sprintf("Nothing said in #%s yet. /room who %s lists the members.", b.room, b.room)
		case b.contact.State == im.Pending:
			hint = fmt.Sprintf("%s wants to be your contact: /accept accepts, /remove refuses.", cleanLine(b.contact.Label()))
		case b.contact.State == im.Requested:
			hint = fmt.Sprintf("Waiting for %s to accept your request; nothing is sent before that.", cleanLine(b.contact.Label()))
		default:
			hint = "No messages yet: type one and press Enter."
		}
		lines = wrap(dimStyle.Render(hint), w)
	}
	return title, lines, false
}

// chatLine is one message: time, sender, text and, for outgoing messages,
// how far it got.
func (m *tuiModel) chatLine(b buddy, msg im.Message) string {
	who := themStyle.Render(cleanLine(b.contact.Label()))
	switch {
	case msg.Out:
		who = youStyle.Render("you")
	case b.room != "":
		who = themStyle.Render(cleanLine(cmpOr(msg.From, "?")))
	}
	line := dimStyle.Render(msg.Time.Format("15:04")) + " " + who + ": " + clean(msg.Text)
	if msg.Out && msg.Room == "" {
		line += " " + statusMark(msg.Status)
	}
	return line
}

// statusLine shows own presence, file transfers under way and the latest notice.
func (m *tuiModel) statusLine() string {
	me := stateMark(m.presence) + " " + m.presence
	if m.idle {
		me += " (idle)"
	}
	if m.presenceText != "" {
		me += ": " + cleanLine(m.presenceText)
	}
	parts := []string{me}
	var ts []im.Transfer
	for _, t := range m.transfers {
		if t.State != "done" && t.State != "failed" {
			ts = append(ts, t)
		}
	}
	slices.SortFunc(ts, func(a, b im.Transfer) int { return strings.Compare(a.ID, b.ID) })
	for _, t := range ts {
		pct := 100
		if t.Size > 0 {
			pct = int(t.Done * 100 / t.Size)
		}
		dir, toFrom := "↑", "to"
		if !t.Out {
			dir, toFrom = "↓", "from"
		}
		part := fmt.Sprintf("%s %s %s %s %s %d%% %s", dir, cleanLine(t.Name), toFrom, cleanLine(m.peerLabel(t.Peer)), bar(pct, 12), pct, t.State)
		if t.Err != "" {
			part += ": " + cleanLine(t.Err)
		}
		parts = append(parts, part)
	}
	if m.notice != "" {
		n := m.notice
		if m.noticeErr {
			n = errorStyle.Render(n)
		}
		parts = append(parts, n)
	}
	return ansi.Truncate(strings.Join(parts, dimStyle.Render(" │ ")), m.width, "…")
}

// bar is a progress bar of w cells.
func bar(pct, w int) string {
	n := min(max(pct*w/100, 0), w)
	return progressStyle.Render(strings.Repeat("█", n)) + dimStyle.Render(strings.Repeat("░", w-n))
}
