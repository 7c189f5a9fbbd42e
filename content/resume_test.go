package content

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// The resume test runs the downloader in a child process (this test binary
// with helperEnv set) and kills it with SIGKILL half way.
const helperEnv = "JUXTA_CONTENT_HELPER"

func helperMain() int {
	if err := runHelper(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// runHelper is a content peer in a child process. JXC_MODE=seed adds
// JXC_SRC, prints "invite: <invite>" and serves until stdin closes;
// otherwise it fetches JXC_ID into JXC_DST from the providers whose invites
// JXC_PROVIDER holds (space-separated) and prints "done <seconds>". With
// JXC_MODE=swarm it prints its invite first, reads the providers' invites
// from a line of stdin, and after "done" serves until stdin closes.
// JXC_LISTEN, if set, is its listen address (in a netlab namespace).
func runHelper(ctx context.Context) error {
	pc := peer.TestConfig()
	if l := os.Getenv("JXC_LISTEN"); l != "" {
		pc.ListenAddrs = []string{l}
	}
	p, err := peer.New(ctx, pc)
	if err != nil {
		return err
	}
	defer p.Close()
	s, err := New(ctx, Config{Peer: p, Dir: os.Getenv("JXC_DIR"), NoAnnounce: true})
	if err != nil {
		return err
	}
	defer s.Close()
	if os.Getenv("JXC_MODE") == "seed" {
		if _, err := s.Add(ctx, os.Getenv("JXC_SRC")); err != nil {
			return err
		}
		fmt.Println("invite:", p.Invite())
		if os.Getenv("JXC_VERBOSE") != "" {
			stop := make(chan struct{})
			defer close(stop)
			go func() {
				for t0 := time.Now(); ; {
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
						fmt.Fprintf(os.Stderr, "%.0fs seed uploaded %.1f MB%s\n", time.Since(t0).Seconds(), float64(s.Uploaded())/1e6, superState(s))
					}
				}
			}()
		}
		io.Copy(io.Discard, os.Stdin)
		return nil
	}
	swarm := os.Getenv("JXC_MODE") == "swarm"
	in := bufio.NewReader(os.Stdin)
	list := os.Getenv("JXC_PROVIDER")
	if swarm {
		fmt.Println("invite:", p.Invite())
		if list, err = in.ReadString('\n'); err != nil {
			return err
		}
	}
	var provs []peer.Addr
	for _, f := range strings.Fields(list) {
		inv, err := peer.ParseInvite(f)
		if err != nil {
			return err
		}
		provs = append(provs, inv.Peer)
	}
	id, err := ParseID(os.Getenv("JXC_ID"))
	if err != nil {
		return err
	}
	start := time.Now()
	if os.Getenv("JXC_VERBOSE") != "" {
		sub := s.Subscribe(ctx, 256)
		defer sub.Cancel()
		go func() {
			for ev := range sub.C {
				if p, ok := ev.(Progress); ok {
					line := fmt.Sprintf("%.2fs %d/%d pieces %.1f MB/s up %.1f MB peers", time.Since(start).Seconds(), p.Pieces, p.TotalPieces, p.Rate/1e6, float64(s.Uploaded())/1e6)
					for _, pr := range p.Peers {
						line += fmt.Sprintf(" %.1f", pr.Down/1e6)
					}
					fmt.Fprintln(os.Stderr, line)
				}
			}
		}()
	}
	if _, err := s.Fetch(ctx, id, os.Getenv("JXC_DST"), WithProviders(provs...), OnlyProviders()); err != nil {
		return err
	}
	fmt.Println("done", time.Since(start).Seconds())
	if swarm {
		io.Copy(io.Discard, in)
	}
	return nil
}

// superState says how far super-seeding got in s's swarms.
func superState(s *Service) string {
	s.mu.Lock()
	sws := make([]*swarm, 0, len(s.swarms))
	for _, sw := range s.swarms {
		sws = append(sws, sw)
	}
	s.mu.Unlock()
	out := ""
	for _, sw := range sws {
		sw.mu.Lock()
		if sw.super != nil {
			out += fmt.Sprintf(", super-seeding: %d pieces never sent", sw.super.unsent)
		}
		sw.mu.Unlock()
	}
	return out
}

// piecesDone counts the pieces a state file marks as written.
func piecesDone(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < stateHeader {
		return 0
	}
	return bytes.Count(b[stateHeader:], []byte{1})
}

func TestResumeAfterKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := testCtx(t)
	const size = 48 << 20
	// The provider uploads at 8 MiB/s, so the download takes about 6 s and
	// can be killed half way.
	a := newNode(t, func(c *Config) { c.UploadRate = 8 << 20 })
	src := writeRandom(t, t.TempDir(), "src", size, 21)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	dir, out := t.TempDir(), t.TempDir()
	dst := filepath.Join(out, "copy")
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1", "JXC_DIR="+dir, "JXC_DST="+dst,
		"JXC_ID="+info.ID.String(), "JXC_PROVIDER="+a.p.Invite())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := numPieces(size)
	var done int
	for done = piecesDone(dst + stateSuffix); done < n/2; done = piecesDone(dst + stateSuffix) {
		if ctx.Err() != nil {
			cmd.Process.Kill()
			t.Fatalf("the helper did not reach half way: %d of %d pieces; %s", done, n, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	before := a.s.Uploaded()
	done = piecesDone(dst + stateSuffix)
	t.Logf("killed at %d of %d pieces; the provider had sent %d bytes", done, n, before)
	if done == n {
		t.Fatal("the helper finished before it was killed")
	}

	// Restart: a new peer on the same directory fetches into the same file.
	b := newNode(t, func(c *Config) { c.Dir = dir })
	if _, err := b.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	total := a.s.Uploaded()
	refetched := total - size
	limit := int64(b.s.cfg.Pipeline) * PieceSize
	t.Logf("sent %d bytes in all for %d: re-fetched %d bytes (%.1f pieces), limit %d (pieces in flight × piece size)",
		total, size, refetched, float64(refetched)/PieceSize, limit)
	if refetched > limit {
		t.Fatalf("re-fetched %d bytes, more than the %d in flight", refetched, limit)
	}
}
