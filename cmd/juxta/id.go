package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/juxta-p2p/juxta/peer"
)

func runID(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("juxta id", flag.ContinueOnError)
	dir := fs.String("dir", defaultDir("identity"), "directory holding identity.key (created if missing)")
	port := fs.Int("port", 0, "the port this identity will listen on, for the invite's addresses")
	noQR := fs.Bool("no-qr", false, "do not print the QR code")
	var sps multi
	fs.Var(&sps, "superpeer", "a super-peer's invite to include (repeatable)")
	if err := parseFlags(fs, args, out, 0); err != nil {
		return err
	}
	p, err := peer.New(ctx, peer.Config{Dir: *dir, Port: *port, SuperPeers: sps, NoMDNS: true})
	if err != nil {
		return err
	}
	defer p.Close()
	fmt.Fprintf(out, "id: %s\nkey: %s\n", p.ID(), *dir+"/"+peer.KeyFile)
	if *port == 0 {
		fmt.Fprintln(out, "note: without -port, the invite's addresses hold only while a peer runs on them; the ID and super-peers stay valid")
	}
	inv := p.Invite()
	fmt.Fprintf(out, "invite: %s\n", inv)
	if !*noQR {
		printQR(out, inv)
	}
	return nil
}
