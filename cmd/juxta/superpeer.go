package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

func defaultDir(name string) string {
	base, err := os.UserConfigDir()
	if err != nil {
		base = "."
	}
	return filepath.Join(base, "juxta", name)
}

func runSuperPeer(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta superpeer", flag.ContinueOnError)
	dir := fs.String("dir", defaultDir("superpeer"), "directory for the identity and the discovery index")
	port := fs.Int("port", 4001, "port for TCP and QUIC (0: any)")
	listen := fs.String("listen", "", "listen on this IP only (default: all interfaces)")
	loopback := fs.Bool("loopback", false, "listen on 127.0.0.1 only (same as -listen 127.0.0.1, and as the messenger's super-peer)")
	verbose := fs.Bool("v", false, "log to stderr")
	var others multi
	fs.Var(&others, "superpeer", "another super-peer's invite (repeatable): forms the overlay")
	if err := parseFlags(fs, args, out, 0); err != nil {
		return err
	}
	cfg := peer.SuperPeerConfig(*dir, *port)
	cfg.SuperPeers = others
	if *loopback {
		if *listen != "" && *listen != "127.0.0.1" {
			return &usageError{msg: fmt.Sprintf("juxta superpeer: -loopback and -listen %s disagree; give one", *listen), usage: flagUsage(fs)}
		}
		*listen = "127.0.0.1"
	}
	if *listen != "" {
		cfg.ListenAddrs = listenOn(*listen, *port)
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// A super-peer process: the collector works before the heap doubles
	// (issue 12's 256 MiB bound under any single attack).
	memLimit := peer.LimitSuperPeerMemory()
	p, err := peer.New(ctx, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	d, err := discovery.New(ctx, p, discovery.Config{})
	if err != nil {
		return err
	}
	defer d.Close()
	l := peer.DefaultRelayLimits() // cfg.Relay is zero: the defaults apply
	fmt.Fprintf(out, "super-peer %s\n", p.ID())
	for _, a := range p.Addrs() {
		fmt.Fprintf(out, "  listening on %s\n", a)
	}
	fmt.Fprintf(out, "relay limits: %d reservations (%d per IP), %d circuits per peer, %s and %d KiB per relayed connection\n",
		l.MaxReservations, l.MaxReservationsPerIP, l.MaxCircuits, l.ConnDuration, l.ConnData>>10)
	fmt.Fprintf(out, "memory limit: %d MiB (soft; GOMEMLIMIT overrides)\n", memLimit>>20)
	fmt.Fprintf(out, "invite: %s\n", p.Invite())
	<-ctx.Done()
	fmt.Fprintln(out, "super-peer stopping")
	return nil
}
