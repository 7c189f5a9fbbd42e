package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

var (
	borderStyle = lipgloss.NewStyle().Foreground(lipgloss.Color("240"))
	titleStyle  = lipgloss.NewStyle().Bold(true)
	dimStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("244"))
	selStyle    = lipgloss.NewStyle().Reverse(true).Bold(true)
	errorStyle  = lipgloss.NewStyle().Foreground(lipgloss.Color("9")).Bold(true)
	barStyle    = lipgloss.NewStyle().Foreground(lipgloss.Color("10"))
	hintStyle   = lipgloss.NewStyle().Foreground(lipgloss.Color("11")).Bold(true)
)

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

// View draws, top to bottom: a title line, the search box, the results
// table, the downloads with their bars, the peers, and the status line.
// Every name shown comes from a stranger and passes share.Display.
func (m *tuiModel) View() string {
	w := max(m.width, 40)
	files, pending, peers := 0, 0, len(m.st.Peers)
	for _, s := range m.st.Shares {
		files += s.Files
		pending += s.Pending
	}
	title := fmt.Sprintf("juxta fileshare · %s · sharing %d files · %d peers", share.Display(m.st.Name, 30), files, peers)
	if pending > 0 {
		title += fmt.Sprintf(" · hashing %s %d to go", progressBar(int64(files), int64(files+pending), 10), pending)
	}
	if m.st.Hashing != "" && m.st.HashSize > 0 {
		title += fmt.Sprintf(" · %s %s %d%%", share.Display(m.st.Hashing, 24), progressBar(m.st.Hashed, m.st.HashSize, 10), m.st.Hashed*100/m.st.HashSize)
	}
	downs := m.downloadLines(w - 2)
	peerLines := m.peerLines(w - 2)
	dh := min(len(downs), 6) + 2
	ph := min(max(len(peerLines), 1), 4) + 2
	rh := max(m.height-2-dh-ph-1, 4)
	rows := []string{titleStyle.Render(fit(title, w)), m.input.View()}
	label := "results"
	if m.query != "" {
		label = fmt.Sprintf("results for %q", share.Display(m.query, 40))
		if m.searching {
			label += " (searching…)"
		}
	}
	rows = append(rows, box(label, m.resultLines(w-2, rh-2), w, rh))
	rows = append(rows, box("downloads", downs, w, dh))
	rows = append(rows, box("peers", peerLines, w, ph))
	status := m.notice
	if m.noticeErr {
		status = errorStyle.Render(fit(status, w))
	} else if m.hint != "" && status == m.hint {
		status = hintStyle.Render(fit(status, w))
	}
	rows = append(rows, fit(status, w))
	return strings.Join(rows, "\n")
}

// resultLines is the results table: number, name, size, kind, sources.
func (m *tuiModel) resultLines(w, h int) []string {
	nameW := max(w-4-10-9-8-4, 10)
	head := dimStyle.Render(fit(fmt.Sprintf("%3s %-*s %9s %-8s %7s", "#", nameW, "name", "size", "type", "sources"), w))
	if len(m.results) == 0 {
		if m.searching {
			return []string{head, dimStyle.Render("searching the LAN and the super-peers…")}
		}
		return []string{head}
	}
	lines := []string{head}
	first := 0
	if m.sel >= h-1 {
		first = m.sel - (h - 2)
	}
	for i := first; i < len(m.results) && len(lines) < h; i++ {
		r := m.results[i]
		name := fit(share.Display(r.Name, nameW), nameW)
		if r.Group != "" {
			name = fit(share.Display("["+r.Group+"] "+r.Name, nameW), nameW)
		}
		line := fmt.Sprintf("%3d %s %9s %-8s %7d", i+1, name, share.FormatBytes(r.Size), r.Kind, len(r.Sources))
		if i == m.sel {
			line = selStyle.Render(fit(line, w))
		}
		lines = append(lines, line)
	}
	return lines
}

// progressBar draws a bar of width cells for have of size bytes.
func progressBar(have, size int64, width int) string {
	frac := 1.0
	if size > 0 {
		frac = min(max(float64(have)/float64(size), 0), 1)
	}
	n := int(frac * float64(width))
	return barStyle.Render(strings.Repeat("█", n)) + dimStyle.Render(strings.Repeat("░", width-n))
}

func (m *tuiModel) downloadLines(w int) []string {
	var lines []string
	for _, d := range m.st.Downloads {
		pct := 100
		if d.Size > 0 {
			pct = int(d.Have * 100 / d.Size)
		}
		var tail string
		switch d.State {
		case share.Running:
			eta := "?"
			if d.ETA > 0 {
				eta = d.ETA.Round(time.Second).String()
			}
			tail = fmt.Sprintf("%3d%% %s/s %d peers ETA %s", pct, share.FormatBytes(int64(d.Rate)), len(d.Peers), eta)
		case share.Done:
			tail = fmt.Sprintf("done, from %d peers", len(d.Peers))
		default:
			tail = errorStyle.Render("failed: " + share.Display(d.Err, 60))
		}
		nameW := min(max(w/3, 10), 40)
		barW := max(w-nameW-ansi.StringWidth(tail)-3, 5)
		lines = append(lines, fit(share.Display(d.Name, nameW), nameW)+" "+progressBar(d.Have, d.Size, barW)+" "+tail)
	}
	if len(lines) == 0 {
		lines = append(lines, dimStyle.Render("nothing yet: pick a result and press Enter"))
	}
	return lines
}

func (m *tuiModel) peerLines(w int) []string {
	var lines []string
	for _, p := range m.st.Peers {
		path := "direct"
		if p.Relayed {
			path = "relayed"
		}
		role := ""
		if p.SuperPeer {
			role = " super-peer"
		}
		rate := "idle"
		if p.Down > 0 {
			rate = share.FormatBytes(int64(p.Down)) + "/s"
		}
		name := p.ID.String()
		if len(name) > 16 {
			name = name[:8] + "…" + name[len(name)-6:]
		}
		lines = append(lines, fit(fmt.Sprintf("%s %s%s  ↓ %s", name, path, role, rate), w))
	}
	return lines
}
