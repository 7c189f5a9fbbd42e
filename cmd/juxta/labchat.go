package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// labChatPipe is the reliable message pipe of `juxta lab chat`.
const labChatPipe = "lab-chat"

// runLabChat is the chat the recovery scenarios run inside the lab: a
// listener prints every message it receives, a dialer streams numbered
// messages over a reliable message pipe, on commands from stdin. Each line
// carries a wall-clock time in nanoseconds, which the scenario (a process on
// the same machine) compares with its own:
//
//	listener:  invite: I            recv SEQ NANOS
//	dialer:    path PATH NANOS      sent SEQ NANOS      delivered N
//
// The dialer's commands: "run" streams a message every -every, "pause"
// stops, "quit" waits until all are delivered, prints "delivered N" and
// exits.
func runLabChat(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta lab chat", flag.ContinueOnError)
	fs.SetOutput(out)
	dial := fs.String("dial", "", "the listener's invite; empty: listen")
	every := fs.Duration("every", 100*time.Millisecond, "time between messages while running")
	keepalive := fs.Duration("keepalive", 0, "peer keepalive interval (0: the default, negative: off)")
	verbose := fs.Bool("v", false, "log the peer's recovery to stderr")
	var sps multi
	fs.Var(&sps, "superpeer", "a super-peer's invite (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := peer.Config{SuperPeers: sps, NoMDNS: true, Keepalive: *keepalive}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	p, err := peer.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	if err := p.Ready(ctx); err != nil {
		return err
	}
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true})
	if err != nil {
		return err
	}
	defer d.Close()
	ps, err := pipes.New(ctx, p, d)
	if err != nil {
		return err
	}
	defer ps.Close()
	var mu sync.Mutex // one line at a time
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", a...)
	}
	mcfg := pipes.MessageConfig{Reliable: true, ResumeTimeout: 10 * time.Minute}
	if *dial == "" {
		return labChatListen(ctx, p, ps, mcfg, say)
	}
	return labChatDial(ctx, p, ps, mcfg, *dial, *every, say)
}

func labChatListen(ctx context.Context, p *peer.Peer, ps *pipes.Service, cfg pipes.MessageConfig, say func(string, ...any)) error {
	l, err := ps.ListenMessages(ctx, labChatPipe, cfg)
	if err != nil {
		return err
	}
	defer l.Close()
	// Reachable once a relay holds a reservation (the invite then names it).
	deadline := time.Now().Add(20 * time.Second)
	for len(p.Status().Relays) == 0 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	say("invite: %s", p.Invite())
	c, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	for {
		m, err := c.Recv(ctx)
		if err != nil {
			return nil // the dialer closed, or we are killed
		}
		say("recv %s %d", m, time.Now().UnixNano())
	}
}

func labChatDial(ctx context.Context, p *peer.Peer, ps *pipes.Service, cfg pipes.MessageConfig, invite string, every time.Duration, say func(string, ...any)) error {
	to, err := peer.ParseAddr(invite)
	if err != nil {
		return err
	}
	sub := p.Subscribe(ctx, 1024)
	go func() {
		for ev := range sub.C {
			switch e := ev.(type) {
			case peer.PeerConnected:
				if e.Peer == to.ID {
					say("path %s %d", e.Path, time.Now().UnixNano())
				}
			case peer.PathChanged:
				if e.Peer == to.ID {
					say("path %s %d", e.To, time.Now().UnixNano())
				}
			case peer.PeerDisconnected:
				if e.Peer == to.ID {
					say("path none %d", time.Now().UnixNano())
				}
			}
		}
	}()
	if _, err := p.Connect(ctx, to); err != nil {
		return err
	}
	c, err := ps.DialMessages(ctx, labChatPipe, cfg, pipes.ToPeer(to.ID))
	if err != nil {
		return err
	}
	defer c.Close()
	say("dialled %d", time.Now().UnixNano())
	cmds := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			cmds <- sc.Text()
		}
		close(cmds)
	}()
	var tick <-chan time.Time
	t := time.NewTicker(every)
	defer t.Stop()
	var seq, last uint64
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case cmd, ok := <-cmds:
			switch {
			case cmd == "run":
				tick = t.C
			case cmd == "pause":
				tick = nil
			case cmd == "quit" || !ok:
				if err := c.WaitDelivered(ctx, last); err != nil {
					return err
				}
				say("delivered %d", seq)
				return nil
			}
		case <-tick:
			seq++
			at := time.Now().UnixNano()
			n, err := c.Send(ctx, []byte(strconv.FormatUint(seq, 10)))
			if err != nil {
				return err
			}
			last = n
			say("sent %d %d", seq, at)
		}
	}
}
