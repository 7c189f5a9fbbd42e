package main

import (
	"context"
	"fmt"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
)

// A command is one /command of the messenger. Plain mode and the terminal UI
// share one table of them: both look commands up there and generate their
// help from it.
type command struct {
	name  string // "add", or "room create" for a room subcommand; "" for a help-only row
	alias string // another name, e.g. "exit" for "quit"
	usage string // the arguments, for help and usage errors
	about string // one line for the help
	// tuiUsage and tuiAbout replace usage and about in the terminal UI,
	// where a missing NAME means the selected contact.
	tuiUsage, tuiAbout string
	tuiOnly            bool // a help row that only the terminal UI has

	plain func(u *plainUI, ctx context.Context, in cmdInput)
	tui   func(m *tuiModel, in cmdInput) tea.Cmd
}

// cmdInput is what follows a command's name on the input line.
type cmdInput struct {
	rest  string   // the text after the name, trimmed
	args  []string // rest split into fields
	usage string   // "usage: /name ARGS", for a usage error
}

// roomUsage is the usage error for /room without a known subcommand.
const roomUsage = "usage: /room create|join|password|invite|accept|who|say ..."

// commands is the table; set in init, as the help command reads it.
var commands []command

func init() {
	commands = []command{
		{name: "invite", about: "show your invite (text and QR code)", plain: (*plainUI).cmdInvite, tui: (*tuiModel).cmdInvite},
		{name: "add", usage: "INVITE [petname]", about: "ask someone to be your contact", plain: (*plainUI).cmdAdd, tui: (*tuiModel).cmdAdd},
		{name: "accept", usage: "NAME", tuiUsage: "[NAME]", about: "accept a contact request", plain: (*plainUI).cmdAccept, tui: (*tuiModel).cmdAccept},
		{name: "contacts", about: "the buddy list with presence", plain: (*plainUI).cmdContacts, tui: (*tuiModel).cmdContacts},
		{name: "rename", usage: "NAME PETNAME", tuiUsage: "[NAME] PETNAME", about: "give a contact a petname", plain: (*plainUI).cmdRename, tui: (*tuiModel).cmdRename},
		{name: "remove", usage: "NAME", tuiUsage: "[NAME]", about: "remove a contact", plain: (*plainUI).cmdRemove, tui: (*tuiModel).cmdRemove},
		{name: "msg", usage: "NAME TEXT", about: "send a message (also: @NAME TEXT)", plain: (*plainUI).cmdMsg, tui: (*tuiModel).cmdMsg},
		{name: "open", usage: "NAME", about: "open a chat: show its history, mark it read", tuiAbout: "open a chat (also #ROOM)", plain: (*plainUI).cmdOpen, tui: (*tuiModel).cmdOpen},
		{name: "search", usage: "TEXT", about: "search the history", plain: (*plainUI).cmdSearch, tui: (*tuiModel).cmdSearch},
		{name: "path", usage: "NAME", tuiUsage: "[NAME]", about: "how you are connected: direct or relayed", plain: (*plainUI).cmdPath, tui: (*tuiModel).cmdPath},
		{name: "status", usage: "STATE [TEXT]", about: "online, away, busy, dnd, invisible", plain: (*plainUI).cmdStatus, tui: (*tuiModel).cmdStatus},
		{name: "file", usage: "NAME PATH", tuiUsage: "[NAME] PATH", about: "send a file", plain: (*plainUI).cmdFile, tui: (*tuiModel).cmdFile},
		{name: "room create", usage: "NAME [PASSWORD]", about: "a room: with a password, or invite-only", plain: (*plainUI).cmdRoomCreate, tui: (*tuiModel).cmdRoomCreate},
		{name: "room join", usage: "NAME PASSWORD", about: "join a password room", plain: (*plainUI).cmdRoomJoin, tui: (*tuiModel).cmdRoomJoin},
		{name: "room password", usage: "ROOM NEWPASSWORD", about: "change a password room's password (its creator first, then each member)", plain: (*plainUI).cmdRoomPassword, tui: (*tuiModel).cmdRoomPassword},
		{name: "room invite", usage: "ROOM NAME", about: "invite a contact to a room (sent to them)", plain: (*plainUI).cmdRoomInvite, tui: (*tuiModel).cmdRoomInvite},
		{name: "room accept", usage: "ROOM", about: "join a room you were invited to (or paste a credential)", plain: (*plainUI).cmdRoomAccept, tui: (*tuiModel).cmdRoomAccept},
		{name: "room who", usage: "ROOM", about: "the room's members", plain: (*plainUI).cmdRoomWho, tui: (*tuiModel).cmdRoomWho},
		{name: "room say", usage: "ROOM TEXT", plain: (*plainUI).cmdRoomSay, tui: (*tuiModel).cmdRoomSay},
		{usage: "#ROOM TEXT", about: "say something in a room"},
		{usage: "//TEXT", about: "send TEXT starting with /", tuiOnly: true},
		{name: "help", about: "this list", plain: (*plainUI).cmdHelp, tui: (*tuiModel).cmdHelp},
		{name: "quit", alias: "exit", tuiAbout: "(or Ctrl+C)", plain: func(*plainUI, context.Context, cmdInput) {}, tui: func(*tuiModel, cmdInput) tea.Cmd { return tea.Quit }},
	}
}

// findCommand looks up the command on an input line that starts with '/'.
// For /room it finds the subcommand; ok is false for an unknown command,
// and room reports a /room line without a known subcommand.
func findCommand(line string, tui bool) (c *command, in cmdInput, name string, ok bool) {
	name, rest, _ := strings.Cut(line[1:], " ")
	rest = strings.TrimSpace(rest)
	in = cmdInput{rest: rest, args: strings.Fields(rest)}
	if name == "room" {
		if len(in.args) < 2 {
			return nil, in, name, false
		}
		sub := in.args[0]
		name = "room " + sub
		rest = strings.TrimSpace(strings.TrimPrefix(rest, sub))
		in = cmdInput{rest: rest, args: strings.Fields(rest)}
	}
	for i := range commands {
		if c := &commands[i]; c.name != "" && (c.name == name || c.alias == name) {
			in.usage = "usage: " + c.usageOf(tui)
			return c, in, name, true
		}
	}
	return nil, in, name, false
}

// unknownCommand is the error for a command findCommand did not find.
func unknownCommand(name string) string {
	if name == "room" || strings.HasPrefix(name, "room ") {
		return roomUsage
	}
	return fmt.Sprintf("unknown command /%s (try /help)", name)
}

// usageOf is a command's usage line in plain mode or the terminal UI.
func (c *command) usageOf(tui bool) string {
	u := c.usage
	if tui && c.tuiUsage != "" {
		u = c.tuiUsage
	}
	if c.name == "" {
		return u
	}
	return strings.TrimSpace("/" + c.name + " " + u)
}

// helpLines is the command list, one line a command, for plain mode or the
// terminal UI.
func helpLines(tui bool) []string {
	var out []string
	for i := range commands {
		c := &commands[i]
		if c.tuiOnly && !tui || c.name == "help" {
			continue
		}
		about := c.about
		if tui && c.tuiAbout != "" {
			about = c.tuiAbout
		}
		if c.name == "room say" {
			continue // shown as #ROOM TEXT
		}
		out = append(out, strings.TrimRight(fmt.Sprintf("  %-28s %s", c.usageOf(tui), about), " "))
	}
	return out
}
