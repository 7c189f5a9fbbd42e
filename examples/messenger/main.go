// Command messenger is juxta's ICQ-style presence messenger: a buddy list with
// presence, 1:1 chat with delivery and read receipts, offline messages through a
// super-peer mailbox, group rooms, file transfer and searchable history.
//
//	messenger -demo                      try it alone: a bot contact answers
//	messenger -dir ~/.juxta/alice -name alice
//	messenger -superpeer INVITE ...      across NATs, through a super-peer
//	messenger superpeer -dir DIR -port 4001
//
// It runs a terminal UI, or with -plain a line mode that scripts and tests use.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/term"

	"github.com/juxta-p2p/juxta/examples/messenger/im"
	"github.com/juxta-p2p/juxta/peer"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "messenger: %v\n\n%s", err, ue.usage)
		stop()
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "messenger:", err)
	stop()
	os.Exit(1)
}

// usageError is a mistake on the command line: main prints it with the
// usage to stderr and exits 2. -h prints the usage to stdout and exits 0.
type usageError struct {
	err   error
	usage string
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// parseFlags parses args into fs and refuses arguments after the flags; -h
// prints the usage to out and returns flag.ErrHelp.
func parseFlags(fs *flag.FlagSet, args []string, out io.Writer) error {
	var buf, usage strings.Builder
	fs.SetOutput(&buf)
	err := fs.Parse(args)
	fs.SetOutput(&usage)
	fs.Usage()
	fs.SetOutput(out)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(out, usage.String())
		return err
	case err != nil:
		return &usageError{err: err, usage: usage.String()}
	case fs.NArg() > 0:
		return &usageError{err: fmt.Errorf("unexpected argument %q", fs.Arg(0)), usage: usage.String()}
	}
	return nil
}

func defaultDir(name string) string {
	base, err := os.UserConfigDir()
	if err != nil {
		base = "."
	}
	if name == "" {
		name = "default"
	}
	return filepath.Join(base, "juxta-messenger", name)
}

func run(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	if len(args) > 0 && args[0] == "superpeer" {
		return runSuperPeer(ctx, args[1:], out)
	}
	fs := flag.NewFlagSet("messenger", flag.ContinueOnError)
	var (
		dir      = fs.String("dir", "", "directory for identity, contacts and history (default: per-user config dir)")
		name     = fs.String("name", "", "your display name (kept after the first start)")
		plain    = fs.Bool("plain", false, "line mode instead of the terminal UI")
		demo     = fs.Bool("demo", false, "start with a bot contact on this machine, to try it alone")
		loopback = fs.Bool("loopback", false, "listen on 127.0.0.1 only, with mDNS off (two messengers on one machine)")
		noMDNS   = fs.Bool("no-mdns", false, "turn LAN discovery off")
		port     = fs.Int("port", 0, "fixed port to listen on")
		verbose  = fs.Bool("v", false, "log to stderr")
		sps      multi
	)
	fs.Var(&sps, "superpeer", "a super-peer's invite (repeatable): for NATs and offline messages")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	cfg := im.Config{Name: *name, SuperPeers: sps, Loopback: *loopback, NoMDNS: *noMDNS || *loopback, Port: *port}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var bot *im.Messenger
	if *demo {
		// Both peers on loopback: a demo sends nothing off this machine.
		cfg.Loopback, cfg.NoMDNS = true, true
		if cfg.Name == "" {
			cfg.Name = "you"
		}
		if *dir == "" {
			tmp, err := os.MkdirTemp("", "juxta-messenger-demo-*")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			*dir = filepath.Join(tmp, "you")
		}
	}
	cfg.Dir = *dir
	if cfg.Dir == "" {
		cfg.Dir = defaultDir(cfg.Name)
	}
	m, err := im.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	if *demo {
		bot, err = startBot(ctx, filepath.Join(filepath.Dir(cfg.Dir), "bot"), m)
		if err != nil {
			return fmt.Errorf("start the demo bot: %w", err)
		}
		defer bot.Close()
	}
	if !*plain && isTerminal(in, out) {
		return runTUI(ctx, m, *demo)
	}
	return runPlain(ctx, m, in, out)
}

func isTerminal(in io.Reader, out io.Writer) bool {
	fi, ok1 := in.(*os.File)
	fo, ok2 := out.(*os.File)
	return ok1 && ok2 && term.IsTerminal(int(fi.Fd())) && term.IsTerminal(int(fo.Fd()))
}

func runSuperPeer(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("superpeer", flag.ContinueOnError)
	dir := fs.String("dir", defaultDir("superpeer"), "directory for the super-peer's identity and mailbox")
	port := fs.Int("port", 4001, "port to listen on (TCP and UDP)")
	loopback := fs.Bool("loopback", false, "listen on 127.0.0.1 only")
	listen := fs.String("listen", "", "listen on this IP only (default: all interfaces); as juxta superpeer -listen")
	if err := parseFlags(fs, args, out); err != nil {
		return err
	}
	if *loopback && *listen != "" && *listen != "127.0.0.1" {
		return fmt.Errorf("superpeer: -loopback and -listen %s disagree; give one", *listen)
	}
	peer.LimitSuperPeerMemory() // the collector works before the heap doubles
	m, err := im.Open(ctx, im.Config{Dir: *dir, Name: "super-peer", SuperPeer: true, Port: *port, Loopback: *loopback, ListenIP: *listen, NoMDNS: true})
	if err != nil {
		return err
	}
	defer m.Close()
	fmt.Fprintf(out, "super-peer %s\ninvite: %s\n", m.ID(), m.Invite())
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
