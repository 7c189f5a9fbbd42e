// Command hello is juxta's two-peer demo: two nodes start on this machine,
// one dials the other's pipe by its invite alone, and they talk over it. It
// sends nothing off the machine: both nodes listen on 127.0.0.1 only, with
// mDNS and port mapping off.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta"
)

func main() {
	juxta.ParseFlags("hello", 0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	alice, err := juxta.New(ctx, juxta.Config{Name: "alice", Loopback: true})
	if err != nil {
		return err
	}
	defer alice.Close()
	l, err := alice.Listen(ctx, "hello")
	if err != nil {
		return err
	}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewScanner(c)
				for r.Scan() {
					fmt.Fprintf(c, "alice heard %q\n", r.Text())
				}
			}()
		}
	}()
	bob, err := juxta.New(ctx, juxta.Config{Name: "bob", Loopback: true})
	if err != nil {
		return err
	}
	defer bob.Close()

	invite := alice.Invite("hello")
	fmt.Fprintf(out, "alice is %s\nalice's invite (naming her pipe): %s\n\n", alice.ID(), invite)
	c, err := bob.Dial(ctx, invite, "")
	if err != nil {
		return fmt.Errorf("bob dials alice: %w", err)
	}
	defer c.Close()
	fmt.Fprintf(out, "bob dialled alice's pipe by invite alone, path: %s\n", bob.Peer().PathTo(alice.ID()))

	replies := bufio.NewScanner(c)
	for _, line := range []string{"hi alice", "this is bob, found by key not by DNS"} {
		fmt.Fprintf(out, "bob   > %s\n", line)
		if _, err := fmt.Fprintln(c, line); err != nil {
			return err
		}
		if !replies.Scan() {
			return fmt.Errorf("no reply from alice: %v", replies.Err())
		}
		fmt.Fprintf(out, "alice < %s\n", replies.Text())
	}
	var conns []string
	for _, cs := range bob.Peer().Status().Conns {
		conns = append(conns, fmt.Sprintf("%s via %s (%s)", cs.Peer, cs.Addr, cs.Path))
	}
	fmt.Fprintf(out, "\nbob's connections: %s\n", strings.Join(conns, "; "))
	return nil
}
