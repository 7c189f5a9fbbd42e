// Command taskfarm is a P2P grid over juxta: a scheduler, providers on
// volunteers' machines and clients that submit jobs (seed 004). It is a thin
// shell over the engine in ./farm.
//
//	taskfarm scheduler -dir DIR -password PW      start a farm; prints its invite
//	taskfarm provider  -dir DIR -invite INVITE    give this machine's CPU to a farm
//	taskfarm submit    -dir DIR -invite INVITE    render the Mandelbrot set on a farm
//	taskfarm demo                                 all of it on this machine
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/juxta-p2p/juxta/examples/taskfarm/farm"
	"github.com/juxta-p2p/juxta/examples/taskfarm/mandel"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

// started is when this process started, for the scheduler's first-dispatch line.
var started = time.Now()

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Args[1] {
	case "scheduler":
		err = runScheduler(ctx, os.Args[2:])
	case "provider":
		err = runProvider(ctx, os.Args[2:])
	case "submit":
		err = runSubmit(ctx, os.Args[2:])
	case "demo":
		err = runDemo(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Println(usageLine)
		return
	default:
		usage()
	}
	if err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "taskfarm:", err)
		os.Exit(1)
	}
}

const usageLine = "usage: taskfarm scheduler|provider|submit|demo [flags]  (-h for a command's flags)"

// usage is the answer to a missing or unknown command: on stderr, exit 2.
func usage() {
	fmt.Fprintln(os.Stderr, usageLine)
	os.Exit(2)
}

// parse parses a command's flags (flag.ExitOnError: -h exits 0, a bad flag
// 2, both with the usage) and refuses arguments after them: exit 2, with
// the usage on stderr.
func parse(fs *flag.FlagSet, args []string) {
	fs.Parse(args)
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "taskfarm %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		os.Exit(2)
	}
}

// netFlags are the network settings every role shares.
type netFlags struct {
	dir, name      string
	port           int
	loopback, mdns bool
	superPeers     string
	verbose        bool
	heartbeat      time.Duration
}

func (n *netFlags) add(fs *flag.FlagSet, role string) {
	fs.StringVar(&n.dir, "dir", "", "directory for identity and state (required)")
	fs.StringVar(&n.name, "name", role, "display name in the farm")
	fs.IntVar(&n.port, "port", 0, "fixed port for TCP and QUIC (0: any)")
	fs.BoolVar(&n.loopback, "loopback", false, "listen on 127.0.0.1 only (one machine)")
	fs.BoolVar(&n.mdns, "mdns", false, "find peers on the LAN with mDNS")
	fs.StringVar(&n.superPeers, "superpeer", "", "a super-peer invite, for NAT traversal")
	fs.BoolVar(&n.verbose, "v", false, "log to stderr")
	fs.DurationVar(&n.heartbeat, "heartbeat", 0, "presence heartbeat (default 5s; offline after 3)")
}

func (n *netFlags) config() farm.NodeConfig {
	pc := peer.Config{Port: n.port, NoMDNS: !n.mdns}
	if n.loopback {
		pc.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", n.port), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", n.port)}
	}
	if n.superPeers != "" {
		pc.SuperPeers = []string{n.superPeers}
	}
	cfg := farm.NodeConfig{Dir: n.dir, Name: n.name, Peer: pc}
	if n.heartbeat > 0 {
		cfg.Groups = groups.Config{Heartbeat: n.heartbeat, OfflineAfter: 3 * n.heartbeat}
	}
	if n.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return cfg
}

func runScheduler(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("scheduler", flag.ExitOnError)
	var nf netFlags
	nf.add(fs, "scheduler")
	name := fs.String("farm", "taskfarm", "farm name (first start)")
	pw := fs.String("password", "", "farm password (first start; kept in -dir)")
	every := fs.Duration("stats", 5*time.Second, "print stats this often (0: never)")
	parse(fs, args)
	if nf.dir == "" {
		return fmt.Errorf("-dir is required")
	}
	srv, err := farm.StartServer(ctx, farm.ServerConfig{Node: nf.config(), Farm: *name, Password: *pw})
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Println("invite:", srv.Invite())
	fmt.Println("scheduler ready")
	go func() { // how soon work flows again after a (re)start
		for ctx.Err() == nil {
			if srv.Scheduler().Stats().Issued > 0 {
				fmt.Printf("first dispatch %d ms after start\n", time.Since(started).Milliseconds())
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var tick <-chan time.Time
	if *every > 0 {
		t := time.NewTicker(*every)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
			st := srv.Scheduler().Stats()
			fmt.Printf("stats: %s; %d providers\n", unitCounts(st.Units), len(st.Providers))
		}
	}
}

// natives are the native tasks a provider started with -native offers. They
// run outside the sandbox: offer them only to farms you trust.
var natives = map[string]farm.NativeFunc{
	"mandel": mandel.RenderUnit,
	"square": func(_ context.Context, in []byte) ([]byte, error) {
		if len(in) != 8 {
			return nil, fmt.Errorf("square: want 8 bytes, got %d", len(in))
		}
		v := binary.BigEndian.Uint64(in)
		return binary.BigEndian.AppendUint64(nil, v*v), nil
	},
	// sleep waits the input's milliseconds (uint32) and echoes the input.
	"sleep": func(ctx context.Context, in []byte) ([]byte, error) {
		if len(in) < 4 {
			return nil, fmt.Errorf("sleep: want 4 bytes")
		}
		select {
		case <-time.After(time.Duration(binary.BigEndian.Uint32(in)) * time.Millisecond):
			return in, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	},
}

func runProvider(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("provider", flag.ExitOnError)
	var nf netFlags
	nf.add(fs, "provider")
	invite := fs.String("invite", "", "the farm invite (required)")
	slots := fs.Int("slots", 0, "units run at once (default: CPUs)")
	native := fs.Bool("native", false, "also run native Go tasks (trusted farms only)")
	parse(fs, args)
	if nf.dir == "" || *invite == "" {
		return fmt.Errorf("-dir and -invite are required")
	}
	cfg := farm.ProviderConfig{Node: nf.config(), Invite: *invite, Slots: *slots}
	if *native {
		cfg.Natives = natives
	}
	jctx, cancel := context.WithTimeout(ctx, time.Minute)
	pr, err := farm.JoinProvider(jctx, cfg)
	cancel()
	if err != nil {
		return err
	}
	defer pr.Close()
	p := pr.Profile()
	fmt.Printf("provider %s: %s, %d cores at %.0f MHz, %s/%s, %d MiB, %d GiB free, %s, score %.1f, %d slots\n",
		pr.ID(), p.CPU, p.Cores, p.MHz, p.OS, p.Arch, p.Memory>>20, p.DiskFree>>30, p.Network, p.Score, p.Slots)
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	connected := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if c := pr.Connected(); c != connected {
			connected = c
			fmt.Println("connected:", c)
		}
		n, busy := pr.Ran()
		fmt.Printf("ran: %d units, %v busy\n", n, busy.Round(time.Millisecond))
	}
}

func unitCounts(m map[farm.State]int) string {
	s := ""
	for st := farm.Queued; st <= farm.Failed; st++ {
		s += fmt.Sprintf("%s %d ", st, m[st])
	}
	return s[:len(s)-1]
}
