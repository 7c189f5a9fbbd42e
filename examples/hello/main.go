// Command hello is juxta's two-peer demo: two peers start on this machine, one
// connects to the other by its invite alone, and they talk over a stream. It
// sends nothing off the machine: both peers listen on 127.0.0.1 only, with mDNS
// and port mapping off.
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

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/peer"
)

const proto = "/juxta-hello/chat/1"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()

	alice, err := newPeer(ctx, "alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	alice.Libp2p().Host.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		r := bufio.NewScanner(s)
		for r.Scan() {
			fmt.Fprintf(s, "alice heard %q\n", r.Text())
		}
	})
	bob, err := newPeer(ctx, "bob")
	if err != nil {
		return err
	}
	defer bob.Close()

	invite := alice.Invite()
	fmt.Fprintf(out, "alice is %s\nalice's invite: %s\n\n", alice.ID(), invite)
	to, err := peer.ParseAddr(invite)
	if err != nil {
		return err
	}
	path, err := bob.Connect(ctx, to)
	if err != nil {
		return fmt.Errorf("bob connects to alice: %w", err)
	}
	fmt.Fprintf(out, "bob connected to alice by invite alone, path: %s\n", path)

	s, err := bob.Libp2p().Host.NewStream(ctx, lpeer.ID(to.ID), proto)
	if err != nil {
		return err
	}
	defer s.Close()
	replies := bufio.NewScanner(s)
	for _, line := range []string{"hi alice", "this is bob, found by key not by DNS"} {
		fmt.Fprintf(out, "bob   > %s\n", line)
		if _, err := fmt.Fprintln(s, line); err != nil {
			return err
		}
		if !replies.Scan() {
			return fmt.Errorf("no reply from alice: %v", replies.Err())
		}
		fmt.Fprintf(out, "alice < %s\n", replies.Text())
	}
	st := bob.Status()
	var conns []string
	for _, c := range st.Conns {
		conns = append(conns, fmt.Sprintf("%s via %s (%s)", c.Peer, c.Addr, c.Path))
	}
	fmt.Fprintf(out, "\nbob's connections: %s\n", strings.Join(conns, "; "))
	return nil
}

func newPeer(ctx context.Context, name string) (*peer.Peer, error) {
	cfg := peer.TestConfig() // loopback only, no mDNS, no port mapping
	cfg.Name = name
	return peer.New(ctx, cfg)
}
