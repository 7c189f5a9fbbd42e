package main

import (
	"testing"

	"github.com/juxta-p2p/juxta/internal/clitest"
)

// fileshare's command line: -h prints the usage and exits 0; an unknown
// command, a bad flag or a wrong number of arguments prints what is wrong
// and the usage to stderr, nothing to stdout, and exits 2.
func TestCommandLine(t *testing.T) {
	clitest.Run(t, binary, "usage", []clitest.Case{
		{Args: []string{"-h"}, Code: 0, Want: "commands:"},
		{Args: []string{"get", "-h"}, Code: 0, Want: "usage: fileshare get [flags] N|LINK"},
		{Args: []string{"frobnicate"}, Code: 2, Want: `unknown command "frobnicate"`},
		{Args: []string{"status", "-nosuch"}, Code: 2, Want: "flag provided but not defined: -nosuch"},
		{Args: []string{"status", "extra"}, Code: 2, Want: `unexpected argument "extra"`},
		{Args: []string{"get"}, Code: 2, Want: "get: want N|LINK"},
		{Args: []string{"get", "1", "2"}, Code: 2, Want: `unexpected argument "2"`},
		{Args: []string{"search"}, Code: 2, Want: "search: want WORDS"},
		{Args: []string{"superpeer", "-loopback", "extra"}, Code: 2, Want: `unexpected argument "extra"`},
	})
}
