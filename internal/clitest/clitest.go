package clitest

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Case is one run of the program: its arguments, the exit code expected (0
// or 2), and a text expected on stdout for 0, on stderr for 2.
type Case struct {
	Args []string
	Code int
	Want string
}

// Run runs bin once per case and checks the exit code, that Want and usage
// (when not empty: the usage's marker, such as "Usage") appear on the
// expected stream, and that the other stream stays empty.
func Run(t *testing.T, bin, usage string, cases []Case) {
	t.Helper()
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, tc.Args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", tc.Args, err)
		}
		if code != tc.Code {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.Args, code, tc.Code, stdout.String(), stderr.String())
			continue
		}
		got, other := stdout.String(), stderr.String()
		if tc.Code != 0 {
			got, other = other, got
		}
		if !strings.Contains(got, tc.Want) || !strings.Contains(got, usage) || other != "" {
			t.Errorf("%v: want %q and the usage (%q) on one stream only\nstdout:\n%s\nstderr:\n%s", tc.Args, tc.Want, usage, stdout.String(), stderr.String())
		}
	}
}
