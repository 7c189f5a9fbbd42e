package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/peer"
)

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // the test binary as the juxta command (cli_test.go)
		return
	}
	leaktest.VerifyTestMain(m)
}

// syncBuf is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// superpeer runs `juxta superpeer` on loopback until the test ends.
func superpeer(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuf{}
	done := make(chan error, 1)
	go func() {
		// -loopback, as the messenger's super-peer takes it (issue 11: the two
		// commands took different flags).
		done <- run(ctx, []string{"superpeer", "-dir", t.TempDir(), "-port", "0", "-loopback"}, out)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("superpeer: %v", err)
		}
	})
	rx := regexp.MustCompile(`invite: (juxta1\S+)`)
	deadline := time.Now().Add(4 * time.Minute) // generous: the machine may be busy
	for time.Now().Before(deadline) {
		if m := rx.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no invite from the super-peer:\n%s", out.String())
	return ""
}

func TestDoctorOnLoopback(t *testing.T) {
	sp1, sp2 := superpeer(t), superpeer(t)
	// A peer to test the path to.
	target, err := peer.New(context.Background(), peer.TestConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()

	var out bytes.Buffer
	err = run(context.Background(), []string{"doctor", "-json", "-listen", "127.0.0.1", "-wait", "2s",
		"-superpeer", sp1, "-superpeer", sp2, "-peer", target.Invite()}, &out)
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out.String())
	}
	if len(rep.Observed) != 2 {
		t.Fatalf("observations: %+v (problems %v)", rep.Observed, rep.Problems)
	}
	// Super-peers on loopback tell nothing about the internet (issue 11: it
	// said "public ... you can serve as a super-peer" and "NAT mapping none").
	if rep.Reachability != "local" || !strings.HasPrefix(rep.Mapping, "unknown") {
		t.Fatalf("reachability %q mapping %q", rep.Reachability, rep.Mapping)
	}
	if rep.Path == nil || rep.Path.FinalPath != "direct" || rep.Path.DirectRTTMs <= 0 {
		t.Fatalf("path %+v", rep.Path)
	}
	if !strings.Contains(rep.Verdict, "this machine") || strings.Contains(rep.Verdict, "serve as a super-peer") {
		t.Fatalf("verdict %q", rep.Verdict)
	}

	out.Reset()
	if err := run(context.Background(), []string{"doctor", "-listen", "127.0.0.1", "-wait", "1s", "-superpeer", sp1}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"reachability   local", "NAT mapping    unknown", "verdict:"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("human report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestDoctorErrors(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"doctor"}, &out); err == nil || !strings.Contains(err.Error(), "superpeer") {
		t.Fatalf("no super-peer: %v", err)
	}
	if err := run(context.Background(), []string{"doctor", "-listen", "127.0.0.1", "-superpeer", "juxta1broken"}, &out); err == nil {
		t.Fatal("a broken invite was accepted")
	}
	if err := run(context.Background(), []string{"nonsense"}, &out); err == nil {
		t.Fatal("unknown command accepted")
	}
}

func TestIDKeepsIdentity(t *testing.T) {
	dir := t.TempDir()
	var a, b bytes.Buffer
	if err := run(context.Background(), []string{"id", "-dir", dir, "-no-qr"}, &a); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"id", "-dir", dir}, &b); err != nil {
		t.Fatal(err)
	}
	rx := regexp.MustCompile(`id: (\S+)`)
	if rx.FindStringSubmatch(a.String())[1] != rx.FindStringSubmatch(b.String())[1] {
		t.Fatal("id changed between runs on one directory")
	}
	if !strings.Contains(b.String(), "█") && !strings.Contains(b.String(), "▀") {
		t.Fatalf("no QR code:\n%s", b.String())
	}
}

func TestExitCodes(t *testing.T) {
	var out strings.Builder
	if c := exitCode(run(context.Background(), []string{"doctor", "-h"}, &out)); c != 0 {
		t.Fatalf("doctor -h: exit %d", c)
	}
	if c := exitCode(run(context.Background(), []string{"doctor", "-nosuch"}, &out)); c != 2 {
		t.Fatalf("doctor -nosuch: exit %d", c)
	}
	if c := exitCode(doctorFailed(&Report{Problems: []string{"super-peer x: unreachable"}})); c != 1 {
		t.Fatalf("failed doctor: exit %d", c)
	}
	if err := doctorFailed(&Report{}); err != nil {
		t.Fatalf("clean report: %v", err)
	}
}
