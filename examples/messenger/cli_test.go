package main

import (
	"testing"

	"github.com/juxta-p2p/juxta/internal/clitest"
)

// The messenger's command line: -h prints the usage and exits 0; a bad flag
// or an extra argument prints what is wrong and the usage to stderr, nothing
// to stdout, and exits 2.
func TestCommandLine(t *testing.T) {
	clitest.Run(t, binary, "Usage", []clitest.Case{
		{Args: []string{"-h"}, Code: 0, Want: "-superpeer"},
		{Args: []string{"superpeer", "--help"}, Code: 0, Want: "-loopback"},
		{Args: []string{"-nosuch"}, Code: 2, Want: "flag provided but not defined: -nosuch"},
		{Args: []string{"-plain", "extra"}, Code: 2, Want: `unexpected argument "extra"`},
		{Args: []string{"superpeer", "-port", "0", "extra"}, Code: 2, Want: `unexpected argument "extra"`},
	})
}
