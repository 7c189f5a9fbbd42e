package juxta_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/peer"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

func testNode(t *testing.T, cfg juxta.Config) *juxta.Node {
	t.Helper()
	cfg.Loopback = true
	n, err := juxta.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestDialByInviteThroughASuperPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sp := testNode(t, juxta.Config{SuperPeer: true})
	// Empty strings are skipped: an unset flag passes through as it is.
	a := testNode(t, juxta.Config{SuperPeers: []string{"", sp.Invite("")}})
	b := testNode(t, juxta.Config{SuperPeers: []string{sp.Invite(""), ""}})
	l, err := a.Listen(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			fmt.Fprintf(c, "a heard %s", line)
			c.Close()
		}
	}()
	// The invite names the pipe: no pipe argument needed.
	c, err := b.Dial(ctx, a.Invite("chat"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintln(c, "hello")
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || got != "a heard hello\n" {
		t.Fatalf("reply %q, %v", got, err)
	}
	// By ID alone, the DHT on the super-peer finds a.
	if err := a.Peer().Ready(ctx); err != nil {
		t.Fatal(err)
	}
	c2 := testNode(t, juxta.Config{SuperPeers: []string{sp.Invite("")}})
	if err := c2.Peer().Ready(ctx); err != nil {
		t.Fatal(err)
	}
	c3, err := c2.Dial(ctx, a.ID().String(), "chat")
	if err != nil {
		t.Fatalf("dial by ID: %v", err)
	}
	defer c3.Close()
	fmt.Fprintln(c3, "by id")
	if got, err := bufio.NewReader(c3).ReadString('\n'); err != nil || got != "a heard by id\n" {
		t.Fatalf("reply by ID %q, %v", got, err)
	}
}

func TestDialErrors(t *testing.T) {
	ctx := context.Background()
	a := testNode(t, juxta.Config{})
	b := testNode(t, juxta.Config{})
	if _, err := b.Dial(ctx, "juxta1garbage", "chat"); !errors.Is(err, peer.ErrInviteChecksum) && !errors.Is(err, peer.ErrInviteEncoding) && !errors.Is(err, peer.ErrInviteTruncated) {
		t.Fatalf("bad invite: %v", err)
	}
	if _, err := b.Dial(ctx, a.Invite(""), ""); !errors.Is(err, juxta.ErrNoPipe) {
		t.Fatalf("no pipe: %v", err)
	}
}

func TestCloseTwice(t *testing.T) {
	n, err := juxta.New(context.Background(), juxta.Config{Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
}

// Two nodes on one machine: one listens on a pipe and hands out an invite
// naming it; the other dials the invite.
func Example() {
	ctx := context.Background()
	alice, err := juxta.New(ctx, juxta.Config{Loopback: true})
	if err != nil {
		log.Fatal(err)
	}
	defer alice.Close()
	l, err := alice.Listen(ctx, "greet")
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		c, err := l.Accept()
		if err == nil {
			fmt.Fprintln(c, "hello from alice")
			c.Close()
		}
	}()

	bob, err := juxta.New(ctx, juxta.Config{Loopback: true})
	if err != nil {
		log.Fatal(err)
	}
	defer bob.Close()
	c, err := bob.Dial(ctx, alice.Invite("greet"), "")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Print(line)
	// Output: hello from alice
}
