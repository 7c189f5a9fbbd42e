package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// runMainEnv makes the test binary run main, as the juxta command.
const runMainEnv = "JUXTA_TEST_RUN_MAIN"

// juxta runs the juxta command (this test binary running main) with args and
// returns its stdout, stderr and exit status.
func juxta(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute) // generous: the machine may be busy
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("juxta %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// -h and --help print the usage on stdout and exit 0, for the command and
// every subcommand, juxta lab's included.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"--help"}, {"help"},
		{"superpeer", "-h"}, {"id", "--help"}, {"doctor", "-h"},
		{"lab", "-h"}, {"lab", "--help"}, {"lab", "matrix", "-h"}, {"lab", "run", "-h"}, {"lab", "types", "-h"}, {"lab", "peer", "-h"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), args, &out)
		if c := exitCode(err); c != 0 {
			t.Errorf("juxta %v: exit %d (%v)", args, c, err)
		}
		if !strings.Contains(strings.ToLower(out.String()), "usage") {
			t.Errorf("juxta %v printed no usage:\n%s", args, out.String())
		}
	}
	stdout, stderr, code := juxta(t, "lab", "-h")
	if code != 0 || !strings.Contains(stdout, "juxta lab matrix") || stderr != "" {
		t.Fatalf("juxta lab -h: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// A usage error (a bad flag, an extra argument, a missing or unknown command)
// prints what is wrong and the usage on stderr, nothing on stdout, and
// exits 2.
func TestUsageErrorsExitTwo(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // in the message
	}{
		{nil, "no command"},
		{[]string{"nonsense"}, `unknown command "nonsense"`},
		{[]string{"doctor", "-nosuch"}, "flag provided but not defined: -nosuch"},
		{[]string{"doctor"}, "at least one -superpeer"},
		{[]string{"doctor", "-superpeer", "juxta1x", "extra"}, `unexpected argument "extra"`},
		{[]string{"id", "extra"}, `unexpected argument "extra"`},
		{[]string{"superpeer", "-port", "0", "extra"}, `unexpected argument "extra"`},
		{[]string{"superpeer", "-loopback", "-listen", "10.9.9.9"}, "disagree"},
		{[]string{"lab"}, "no subcommand"},
		{[]string{"lab", "bogus"}, `unknown subcommand "bogus"`},
		{[]string{"lab", "types", "extra"}, `unexpected argument "extra"`},
		{[]string{"lab", "matrix", "extra"}, `unexpected argument "extra"`},
		{[]string{"lab", "matrix", "-types", "nosuch"}, `unknown NAT type "nosuch"`},
		{[]string{"lab", "peer", "extra"}, `unexpected argument "extra"`},
		{[]string{"lab", "run", "a"}, "want HOST -- COMMAND"},
		{[]string{"lab", "run", "-change", "nonsense", "a", "--", "true"}, "change"},
	} {
		var out, stderr bytes.Buffer
		err := run(context.Background(), tc.args, &out)
		report(&stderr, err)
		if c := exitCode(err); c != 2 {
			t.Errorf("juxta %v: exit %d (%v)", tc.args, c, err)
			continue
		}
		if !strings.Contains(stderr.String(), tc.want) || !strings.Contains(strings.ToLower(stderr.String()), "usage") {
			t.Errorf("juxta %v: stderr lacks %q or the usage:\n%s", tc.args, tc.want, stderr.String())
		}
		if out.Len() != 0 {
			t.Errorf("juxta %v wrote to stdout:\n%s", tc.args, out.String())
		}
	}
	stdout, stderr, code := juxta(t, "id", "extra")
	if code != 2 || stdout != "" || !strings.Contains(stderr, `unexpected argument "extra"`) || !strings.Contains(stderr, "-no-qr") {
		t.Fatalf("juxta id extra: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
}

// juxta doctor exits non-zero when a check fails, in text and -json alike;
// the failure names the super-peer as the rest of the report does and says
// what to do, not to "give two super-peers".
func TestDoctorFailsWhenASuperPeerIsDown(t *testing.T) {
	// Two super-peers that are gone: their invites name ports nobody serves.
	var invites []string
	var ids []peer.ID
	for range 2 {
		gone, err := peer.New(context.Background(), peer.TestConfig())
		if err != nil {
			t.Fatal(err)
		}
		invites, ids = append(invites, gone.Invite()), append(ids, gone.ID())
		gone.Close()
	}
	for _, asJSON := range []bool{false, true} {
		args := []string{"doctor", "-listen", "127.0.0.1", "-wait", "1s", "-superpeer", invites[0], "-superpeer", invites[1]}
		if asJSON {
			args = append(args, "-json")
		}
		stdout, stderr, code := juxta(t, args...)
		if code != 1 {
			t.Fatalf("json %v: exit %d\nstdout:\n%s\nstderr:\n%s", asJSON, code, stdout, stderr)
		}
		for _, want := range []string{"super-peer " + shortID(ids[0].String()), "check that it is running", "No super-peer answered"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("json %v: report lacks %q:\n%s", asJSON, want, stdout)
			}
		}
		if !strings.Contains(stderr, "doctor: a check failed") {
			t.Errorf("json %v: stderr:\n%s", asJSON, stderr)
		}
		for _, bad := range []string{"<peer.ID", ids[0].String(), "two super-peers with", "second super-peer"} {
			if strings.Contains(stdout+stderr, bad) {
				t.Errorf("json %v: output says %q:\n%s\n%s", asJSON, bad, stdout, stderr)
			}
		}
	}
}

func TestMatrixProgress(t *testing.T) {
	t0 := time.Unix(1000, 0)
	p := &matrixProgress{total: 4, start: t0}
	if got := p.line(natPublic, natSymmetric, 1, Trial{FinalPath: "direct"}, t0.Add(10*time.Second)); !strings.HasPrefix(got, "[1/4, ETA 30s] public") || !strings.HasSuffix(got, "try 1: direct") {
		t.Errorf("first line: %q", got)
	}
	if got := p.line(natSymmetric, natSymmetric, 1, Trial{Err: "no invite"}, t0.Add(40*time.Second)); !strings.HasPrefix(got, "[2/4, ETA 40s] symmetric") || !strings.HasSuffix(got, "try 1: – (no invite)") {
		t.Errorf("second line: %q", got)
	}
}
