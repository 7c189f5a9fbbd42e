package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

// demoSharers is how many peers share the sample library in the demo.
const demoSharers = 3

const demoHint = "demo: 3 peers on this machine share a sample library — try 서른, radiohead, sintel, 제주도"

// runDemo starts, on loopback with mDNS off, a super-peer and demoSharers
// peers sharing a generated sample library (every file on at least two of
// them, the large ones on all), and opens the UI of one more peer, ready to
// search. The sharers' uploads are capped so that a download visibly comes
// from several peers at once. Everything lives in a temporary directory,
// removed at the end unless -dir is given.
func runDemo(ctx context.Context, args []string, in io.Reader, out io.Writer) error {
	f := newFlags("demo", out)
	plain := f.fs.Bool("plain", false, "line mode instead of the terminal UI")
	peerUp := f.fs.String("sharer-cap", "768K", "each sharer's upload cap per peer, so downloads take a visible while")
	if err := f.parse(args, out, 0, 0, ""); err != nil {
		return err
	}
	capRate, err := share.ParseRate(*peerUp)
	if err != nil {
		return err
	}
	root := *f.dir
	if root == "" {
		if root, err = os.MkdirTemp("", "juxta-fileshare-demo-*"); err != nil {
			return err
		}
		defer os.RemoveAll(root)
	}
	fmt.Fprintf(out, "demo: starting a super-peer and %d sharers on 127.0.0.1 (files in %s)\n", demoSharers, root)
	sp, err := share.Open(ctx, share.Config{Dir: filepath.Join(root, "superpeer"), SuperPeer: true, Loopback: true, NoMDNS: true})
	if err != nil {
		return err
	}
	defer sp.Close()
	sps := []string{sp.Invite()}
	lib := share.SampleLibrary(1)
	var nodes []*share.Node
	want := 0
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for k := range demoSharers {
		var mine []share.SampleFile
		for i, sf := range lib {
			if sf.Size >= 1<<20 || (i+k)%demoSharers != 0 {
				mine = append(mine, sf)
			}
		}
		dir := filepath.Join(root, fmt.Sprintf("sharer%d", k+1))
		libDir := filepath.Join(dir, "library")
		if err := share.WriteSample(libDir, mine); err != nil {
			return err
		}
		n, err := share.Open(ctx, share.Config{Dir: dir, Name: fmt.Sprintf("sharer%d", k+1), SuperPeers: sps, Loopback: true, NoMDNS: true,
			NoShareDownloads: true, Caps: share.Caps{PeerUp: capRate}})
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		want += len(mine)
		if err := n.Share(ctx, libDir, ""); err != nil {
			return err
		}
	}
	if err := waitIndexed(ctx, nodes, want, out); err != nil {
		return err
	}
	cfg, err := f.config()
	if err != nil {
		return err
	}
	cfg.Dir, cfg.SuperPeers, cfg.Loopback, cfg.NoMDNS = filepath.Join(root, "you"), sps, true, true
	if cfg.Name == "" {
		cfg.Name = "you"
	}
	you, err := share.Open(ctx, cfg)
	if err != nil {
		return err
	}
	nodes = append(nodes, you)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = you.Peer().Ready(rctx)
	cancel()
	if err != nil {
		return fmt.Errorf("demo: the super-peer did not answer: %w", err)
	}
	fmt.Fprintf(out, "demo: ready; your downloads go to %s\n", you.Status().Folder)
	if !*plain && isTerminal(in, out) {
		return runTUI(ctx, you, demoHint)
	}
	fmt.Fprintln(out, demoHint)
	return runPlain(ctx, you, in, out)
}

// waitIndexed waits until every sharer has hashed and published its library.
func waitIndexed(ctx context.Context, nodes []*share.Node, want int, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := -1
	for {
		files, pending := 0, 0
		for _, n := range nodes {
			for _, s := range n.Status().Shares {
				files += s.Files
				pending += s.Pending
			}
		}
		if files != last {
			fmt.Fprintf(out, "demo: %d files hashed and published\n", files)
			last = files
		}
		if files >= want && pending == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("demo: the sample library was not ready in time: %w", ctx.Err())
		case <-t.C:
		}
	}
}
