package main

import (
	"testing"

	"github.com/juxta-p2p/juxta/internal/clitest"
)

// taskfarm's command line: -h prints the usage and exits 0; a missing or
// unknown command, a bad flag or an extra argument prints the usage to
// stderr, nothing to stdout, and exits 2.
func TestCommandLine(t *testing.T) {
	clitest.Run(t, bin, "", []clitest.Case{
		{Args: []string{"-h"}, Code: 0, Want: "usage: taskfarm scheduler|provider|submit|demo"},
		{Args: nil, Code: 2, Want: "usage: taskfarm scheduler|provider|submit|demo"},
		{Args: []string{"frobnicate"}, Code: 2, Want: "usage: taskfarm scheduler|provider|submit|demo"},
		{Args: []string{"provider", "-nosuch"}, Code: 2, Want: "flag provided but not defined: -nosuch"},
		{Args: []string{"provider", "-dir", "x", "extra"}, Code: 2, Want: `taskfarm provider: unexpected argument "extra"`},
		{Args: []string{"submit", "extra"}, Code: 2, Want: `unexpected argument "extra"`},
	})
}
