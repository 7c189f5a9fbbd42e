package main

import (
	"strings"
	"testing"
)

// Plain mode and the terminal UI share one command table: every command in
// it runs in both, is found by its name, and is in both helps.
func TestCommandTableSharedByBothModes(t *testing.T) {
	for _, tui := range []bool{false, true} {
		help := strings.Join(helpLines(tui), "\n")
		for i := range commands {
			c := &commands[i]
			if c.name == "" {
				continue
			}
			if c.plain == nil || c.tui == nil {
				t.Errorf("/%s lacks a runner for one of the modes", c.name)
			}
			line := "/" + c.name + " ROOM x"
			got, in, _, ok := findCommand(line, tui)
			if !ok || got != c {
				t.Errorf("findCommand(%q) = %v, %v", line, got, ok)
				continue
			}
			if !strings.HasPrefix(in.usage, "usage: /"+c.name) {
				t.Errorf("/%s: usage %q", c.name, in.usage)
			}
			if c.name != "help" && c.name != "room say" && !strings.Contains(help, c.usageOf(tui)) {
				t.Errorf("help (tui %v) lacks %q:\n%s", tui, c.usageOf(tui), help)
			}
		}
	}
	if !strings.Contains(strings.Join(helpLines(true), "\n"), "/path [NAME]") {
		t.Error("the terminal UI's help lacks /path [NAME]")
	}
	if strings.Contains(strings.Join(helpLines(false), "\n"), "//TEXT") {
		t.Error("plain mode's help lists the terminal UI's //TEXT")
	}
}

func TestFindCommand(t *testing.T) {
	for _, tc := range []struct {
		line, name, rest string
		ok               bool
	}{
		{"/add juxta1abc bob", "add", "juxta1abc bob", true},
		{"/exit", "quit", "", true},
		{"/room say club hello there", "room say", "club hello there", true},
		{"/room who", "room", "who", false},               // no room named
		{"/room dance club", "room dance", "club", false}, // no such subcommand
		{"/frobnicate now", "frobnicate", "now", false},
	} {
		c, in, name, ok := findCommand(tc.line, false)
		if ok != tc.ok || in.rest != tc.rest || (ok && c.name != tc.name) || (!ok && name != tc.name) {
			t.Errorf("findCommand(%q) = %v %q %q %v", tc.line, c, in.rest, name, ok)
		}
	}
	if got := unknownCommand("room dance"); got != roomUsage {
		t.Errorf("unknown room subcommand: %q", got)
	}
	if got := unknownCommand("frobnicate"); !strings.Contains(got, "unknown command /frobnicate") {
		t.Errorf("unknown command: %q", got)
	}
}
