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

// fileshare's command line: -h prints the usage and exits 0; an unknown
// command, a bad flag or a wrong number of arguments prints what is wrong
// and the usage to stderr, nothing to stdout, and exits 2.
func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string // on stdout for 0, on stderr for 2
	}{
		{[]string{"-h"}, 0, "commands:"},
		{[]string{"get", "-h"}, 0, "usage: fileshare get [flags] N|LINK"},
		{[]string{"frobnicate"}, 2, `unknown command "frobnicate"`},
		{[]string{"status", "-nosuch"}, 2, "flag provided but not defined: -nosuch"},
		{[]string{"status", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"get"}, 2, "get: want N|LINK"},
		{[]string{"get", "1", "2"}, 2, `unexpected argument "2"`},
		{[]string{"search"}, 2, "search: want WORDS"},
		{[]string{"superpeer", "-loopback", "extra"}, 2, `unexpected argument "extra"`},
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
		if !strings.Contains(got, tc.want) || !strings.Contains(got, "usage") || other != "" {
			t.Errorf("%v: want %q and the usage on one stream only\nstdout:\n%s\nstderr:\n%s", tc.args, tc.want, stdout.String(), stderr.String())
		}
	}
}
