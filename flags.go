package juxta

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// ParseFlags gives a command the flags every juxta program shares and
// parses the command line by juxta's conventions: -h or --help prints usage
// and exits 0; a usage error (an unknown flag, more than maxArgs arguments)
// prints to stderr and exits 2. usage is the synopsis after "usage: ", for
// example "chat [flags] [invite]". It returns the Config the flags describe
// and the arguments left.
//
// The flags: -superpeer (a super-peer's invite; repeat it for more), -dir
// (state directory; default in memory), -name (display name), -loopback
// (stay on 127.0.0.1 with mDNS off, for two programs on one machine).
func ParseFlags(usage string, maxArgs int) (Config, []string) {
	var cfg Config
	fs := flag.CommandLine
	fs.Var((*listFlag)(&cfg.SuperPeers), "superpeer", "a super-peer's invite, for NAT traversal (repeat for more)")
	fs.StringVar(&cfg.Dir, "dir", "", "state directory (default: in memory, a new identity each run)")
	fs.StringVar(&cfg.Name, "name", "", "display name")
	fs.BoolVar(&cfg.Loopback, "loopback", false, "stay on 127.0.0.1 with mDNS off (two programs on one machine)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: %s\n", usage)
		fs.PrintDefaults()
	}
	_ = fs.Parse(os.Args[1:]) // ExitOnError: -h exits 0, a bad flag 2
	if fs.NArg() > maxArgs {
		fmt.Fprintf(fs.Output(), "%s: too many arguments: %s\n", fs.Name(), strings.Join(fs.Args()[maxArgs:], " "))
		fs.Usage()
		os.Exit(2)
	}
	return cfg, fs.Args()
}

// listFlag is a string flag that may be repeated.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }
