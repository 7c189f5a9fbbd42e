package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/juxta-p2p/juxta/internal/labrecover"
)

// Recovery scenarios: two homes chatting over a reliable message pipe while
// the network changes under one of them (issue 16). The scenarios live in
// internal/labrecover, shared with the bench rows; here they run this
// binary in the lab's hosts: `juxta lab chat` and `juxta superpeer`.

const labRecoverUsage = `usage: juxta lab recover [-keepalive D] [-idle D] SCENARIO...
scenarios:
  renumber  home a's router gets a new public address mid-chat
  reboot    home a's router reboots, its WAN down 10 s
  roam      laptop a moves to a symmetric NAT's LAN and back home
  idle      both routers keep idle UDP mappings 15 s; the chat idles -idle (5m)
`

// recoverOptions runs the scenarios with this binary.
func recoverOptions(keepalive, idle time.Duration, log io.Writer) labrecover.Options {
	return labrecover.Options{
		Program: func(role string) (string, []string, []string) {
			self, err := juxtaBinary()
			if err != nil {
				self = "juxta" // the lab's start reports it
			}
			if role == labrecover.RoleChat {
				return self, []string{"lab", "chat"}, nil
			}
			return self, []string{"superpeer"}, nil
		},
		Keepalive: keepalive,
		Idle:      idle,
		Log:       log,
	}
}

func runRecoverCmd(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta lab recover", flag.ContinueOnError)
	fs.SetOutput(out)
	keepalive := fs.Duration("keepalive", 0, "the peers' keepalive interval (0: the default)")
	idle := fs.Duration("idle", 5*time.Minute, "the idle scenario's silence")
	fs.Usage = func() { fmt.Fprint(fs.Output(), labRecoverUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("lab recover: no scenario")
	}
	var errs []error
	for _, s := range fs.Args() {
		fmt.Fprintf(out, "%s:\n", s)
		rec, err := labrecover.Run(ctx, s, recoverOptions(*keepalive, *idle, out))
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s, err))
			continue
		}
		fmt.Fprintln(out, rec)
	}
	return errors.Join(errs...)
}
