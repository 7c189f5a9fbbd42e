package main

import (
	"bytes"
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// The messenger's command line: -h prints the usage and exits 0; a bad flag
// or an extra argument prints what is wrong and the usage to stderr, nothing
// to stdout, and exits 2.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // on stdout for 0, on stderr for 2
	}{
		{[]string{"-h"}, 0, "-superpeer"},
		{[]string{"superpeer", "--help"}, 0, "-loopback"},
		{[]string{"-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{[]string{"-plain", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"superpeer", "-port", "0", "extra"}, 2, `unexpected argument "extra"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, binary, tc.args...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		cancel()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", tc.args, code, tc.code, stdout.String(), stderr.String())
			continue
		}
		got, other := stdout.String(), stderr.String()
		if tc.code != 0 {
			got, other = other, got
		}
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "Usage") || other != "" {
			t.Errorf("%v: want %q and the usage on one stream only\nstdout:\n%s\nstderr:\n%s", tc.args, tc.want, stdout.String(), stderr.String())
		}
	}
}
