package labrecover

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// Main runs role (RoleChat or RoleSuperPeer) with args, as a program that
// Options.Program starts does: until ctx ends, or, for the chat, its
// commands say so.
func Main(ctx context.Context, role string, args []string, out io.Writer) error {
	switch role {
	case RoleChat:
		return Chat(ctx, args, out)
	case RoleSuperPeer:
		return SuperPeer(ctx, args, out)
	}
	return fmt.Errorf("lab recover: unknown role %q", role)
}

// SuperPeer is the lab's super-peer (RoleSuperPeer), as `juxta superpeer`
// runs one with its defaults: a peer.SuperPeerConfig with discovery. It
// prints "invite: I" once it listens, and runs until ctx ends.
func SuperPeer(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("lab super-peer", flag.ContinueOnError)
	fs.SetOutput(out)
	dir := fs.String("dir", "", "directory for the identity and the discovery index (required)")
	port := fs.Int("port", 4001, "port for TCP and QUIC")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" || fs.NArg() > 0 {
		return fmt.Errorf("lab super-peer: want -dir DIR [-port N], got %q", args)
	}
	p, err := peer.New(ctx, peer.SuperPeerConfig(*dir, *port))
	if err != nil {
		return err
	}
	defer p.Close()
	d, err := discovery.New(ctx, p, discovery.Config{})
	if err != nil {
		return err
	}
	defer d.Close()
	fmt.Fprintf(out, "invite: %s\n", p.Invite())
	<-ctx.Done()
	return nil
}

// chatPipe is the reliable message pipe of `juxta lab chat`.
const chatPipe = "lab-chat"

// Chat is the program the recovery scenarios run in the lab's homes (RoleChat): a
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
func Chat(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta lab chat", flag.ContinueOnError)
	fs.SetOutput(out)
	dial := fs.String("dial", "", "the listener's invite; empty: listen")
	every := fs.Duration("every", 100*time.Millisecond, "time between messages while running")
	keepalive := fs.Duration("keepalive", 0, "peer keepalive interval (0: the default, negative: off)")
	verbose := fs.Bool("v", false, "log the peer's recovery to stderr")
	var sps multi
	fs.Var(&sps, "superpeer", "a super-peer's invite (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: juxta lab chat [-dial INVITE] [-superpeer INVITE]... [-every D] [-keepalive D] [-v]")
		fs.PrintDefaults()
	}
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
		return chatListen(ctx, p, ps, mcfg, say)
	}
	return chatDial(ctx, p, ps, mcfg, *dial, *every, say)
}

func chatListen(ctx context.Context, p *peer.Peer, ps *pipes.Service, cfg pipes.MessageConfig, say func(string, ...any)) error {
	l, err := ps.ListenMessages(ctx, chatPipe, cfg)
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

func chatDial(ctx context.Context, p *peer.Peer, ps *pipes.Service, cfg pipes.MessageConfig, invite string, every time.Duration, say func(string, ...any)) error {
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
	c, err := ps.DialMessages(ctx, chatPipe, cfg, pipes.ToPeer(to.ID))
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
