// Command fileshare is juxta's file-sharing example, Soribada on juxta: share
// folders, search everyone's files by keyword, and download from every peer
// that has a file at once, verified piece by piece.
//
//	fileshare demo                          try it alone: peers on this machine
//	fileshare share ~/Music ~/Books         share folders (terminal UI)
//	fileshare search WORDS                  search once and print the results
//	fileshare get N|LINK                    download a result of the last search, or a share link
//	fileshare status                        settings, shares and downloads
//	fileshare superpeer -port 4001          an index and relay for sharers across NATs
//
// Every command takes -dir, -superpeer INVITE (repeatable) and the rate caps
// -up, -down, -peer-up, -peer-down; a settings file DIR/fileshare.conf holds
// the same caps (flags win). share runs a terminal UI, or with -plain a line
// mode that scripts and tests use.
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
	"time"

	"golang.org/x/term"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

const usage = `usage: fileshare COMMAND [flags] [args]

commands:
  demo                  start several peers on this machine sharing a sample library, and search them
  share [DIR...]        share folders and stay online (terminal UI; -plain for line mode)
  search WORDS          search once and print the results
  get N|LINK            download result N of the last search, or a share link
  status                settings, shares and unfinished downloads
  superpeer             run an index and relay for sharers across NATs

run 'fileshare COMMAND -h' for a command's flags`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return
	case errors.As(err, &ue):
		fmt.Fprintf(os.Stderr, "fileshare: %v\n\n%s\n", err, ue.usage)
		stop()
		os.Exit(2)
	}
	fmt.Fprintln(os.Stderr, "fileshare:", err)
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

// parse parses args into the command's flags; -h prints the usage to out and
// returns flag.ErrHelp. A bad flag, or fewer than minArgs or more than
// maxArgs (< 0: any) arguments after the flags, is a *usageError; args
// names them for its message.
func (f *flags) parse(args []string, out io.Writer, minArgs, maxArgs int, argsName string) error {
	var buf, usage strings.Builder
	f.fs.SetOutput(&buf)
	err := f.fs.Parse(args)
	f.fs.SetOutput(&usage)
	fmt.Fprintf(&usage, "usage: fileshare %s [flags] %s\n", f.fs.Name(), argsName)
	f.fs.PrintDefaults()
	f.fs.SetOutput(out)
	n := f.fs.NArg()
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprint(out, usage.String())
		return err
	case err != nil:
		return &usageError{err: err, usage: usage.String()}
	case maxArgs >= 0 && n > maxArgs:
		return &usageError{err: fmt.Errorf("unexpected argument %q", f.fs.Arg(maxArgs)), usage: usage.String()}
	case n < minArgs:
		return &usageError{err: fmt.Errorf("%s: want %s", f.fs.Name(), argsName), usage: usage.String()}
	}
	return nil
}

func defaultDir() string {
	base, err := os.UserConfigDir()
	if err != nil {
		base = "."
	}
	return filepath.Join(base, "juxta-fileshare")
}

func run(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	if len(args) == 0 {
		args = []string{"share"}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "demo":
		return runDemo(ctx, args, in, out)
	case "share":
		return runShare(ctx, args, in, out)
	case "search":
		return runSearch(ctx, args, out)
	case "get":
		return runGet(ctx, args, out)
	case "status":
		return runStatus(ctx, args, out)
	case "superpeer":
		return runSuperPeer(ctx, args, out)
	case "help", "-h", "-help", "--help":
		fmt.Fprintln(out, usage)
		return nil
	}
	return &usageError{err: fmt.Errorf("unknown command %q", cmd), usage: usage}
}

// flags are the settings every command takes.
type flags struct {
	fs                         *flag.FlagSet
	dir, downloads, name       *string
	up, down, peerUp, peerDown *string
	loopback, noMDNS, verbose  *bool
	noShare, flood             *bool
	port                       *int
	sps                        multi
}

func newFlags(name string, out io.Writer) *flags {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	f := &flags{
		fs:        fs,
		dir:       fs.String("dir", "", "directory for identity, index and unfinished downloads (default: per-user config dir)"),
		downloads: fs.String("downloads", "", "folder for finished downloads (default DIR/downloads)"),
		name:      fs.String("name", "", "your display name"),
		up:        fs.String("up", "", "upload cap for all peers, e.g. 2M (bytes/s; 0 or off: none)"),
		down:      fs.String("down", "", "download cap for all peers"),
		peerUp:    fs.String("peer-up", "", "upload cap per peer"),
		peerDown:  fs.String("peer-down", "", "download cap per peer"),
		loopback:  fs.Bool("loopback", false, "listen on 127.0.0.1 only, with mDNS off (several peers on one machine)"),
		noMDNS:    fs.Bool("no-mdns", false, "turn LAN discovery off"),
		verbose:   fs.Bool("v", false, "log to stderr"),
		noShare:   fs.Bool("no-share-downloads", false, "do not share finished downloads onward"),
		flood:     fs.Bool("flood", false, "also flood searches among connected peers (Gnutella)"),
		port:      fs.Int("port", 0, "fixed port to listen on (TCP and UDP)"),
	}
	fs.Var(&f.sps, "superpeer", "a super-peer's invite (repeatable): search beyond the LAN, reach peers behind NATs")
	return f
}

// config builds the node's configuration: defaults, then the settings file,
// then the flags.
func (f *flags) config() (share.Config, error) {
	cfg := share.Config{Dir: *f.dir, Downloads: *f.downloads, Name: *f.name, SuperPeers: f.sps,
		Loopback: *f.loopback, NoMDNS: *f.noMDNS || *f.loopback, Port: *f.port, Flood: *f.flood}
	if cfg.Dir == "" {
		cfg.Dir = defaultDir()
	}
	if err := share.LoadSettings(filepath.Join(cfg.Dir, share.ConfigFile), &cfg); err != nil {
		return cfg, err
	}
	for key, v := range map[string]string{"up": *f.up, "down": *f.down, "peer-up": *f.peerUp, "peer-down": *f.peerDown} {
		if v != "" {
			if err := cfg.Set(key, v); err != nil {
				return cfg, err
			}
		}
	}
	if *f.noShare {
		cfg.NoShareDownloads = true
	}
	if *f.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return cfg, nil
}

func isTerminal(in io.Reader, out io.Writer) bool {
	fi, ok1 := in.(*os.File)
	fo, ok2 := out.(*os.File)
	return ok1 && ok2 && term.IsTerminal(int(fi.Fd())) && term.IsTerminal(int(fo.Fd()))
}

func runShare(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	f := newFlags("share", out)
	plain := f.fs.Bool("plain", false, "line mode instead of the terminal UI")
	group := f.fs.String("group", "", "share the folders only with this group (see -password)")
	password := f.fs.String("password", "", "the group's password: create the group, or join it")
	if err := f.parse(args, out, 0, -1, "[FOLDER...]"); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	n, err := share.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	if *group != "" {
		if len(cfg.SuperPeers) > 0 {
			// Find the group through the super-peers before creating it anew.
			rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			n.Peer().Ready(rctx)
			cancel()
		}
		if err := n.JoinOrCreate(ctx, *group, *password); err != nil {
			return err
		}
	}
	for _, dir := range f.fs.Args() {
		if err := n.Share(ctx, dir, *group); err != nil {
			return err
		}
	}
	if !*plain && isTerminal(in, out) {
		return runTUI(ctx, n, "")
	}
	return runPlain(ctx, n, in, out)
}

func runSuperPeer(ctx context.Context, args []string, out io.Writer) error {
	f := newFlags("superpeer", out)
	if err := f.parse(args, out, 0, 0, ""); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	if *f.dir == "" {
		cfg.Dir = filepath.Join(defaultDir(), "superpeer")
	}
	cfg.SuperPeer, cfg.NoMDNS = true, true
	if cfg.Port == 0 && !cfg.Loopback {
		cfg.Port = 4001
	}
	n, err := share.Open(ctx, cfg)
	if err != nil {
		return err
	}
	defer n.Close()
	fmt.Fprintf(out, "super-peer %s\ninvite: %s\n", n.ID(), n.Invite())
	<-ctx.Done()
	if errors.Is(ctx.Err(), context.Canceled) {
		return nil
	}
	return ctx.Err()
}
