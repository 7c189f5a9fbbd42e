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

// taskfarm's command line: -h prints the usage and exits 0; a missing or
// unknown command, a bad flag or an extra argument prints the usage to
// stderr, nothing to stdout, and exits 2.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // on stdout for 0, on stderr for 2
	}{
		{[]string{"-h"}, 0, "usage: taskfarm scheduler|provider|submit|demo"},
		{nil, 2, "usage: taskfarm scheduler|provider|submit|demo"},
		{[]string{"frobnicate"}, 2, "usage: taskfarm scheduler|provider|submit|demo"},
		{[]string{"provider", "-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{[]string{"provider", "-dir", "x", "extra"}, 2, `taskfarm provider: unexpected argument "extra"`},
		{[]string{"submit", "extra"}, 2, `unexpected argument "extra"`},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, tc.args...)
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
		if !strings.Contains(got, tc.want) || other != "" {
			t.Errorf("%v: want %q on one stream only\nstdout:\n%s\nstderr:\n%s", tc.args, tc.want, stdout.String(), stderr.String())
		}
	}
}
