package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

// lastSearch keeps the results of the last one-shot search in -dir, for get N.
const lastSearch = "last-search.json"

// openOneShot opens a node for one command and waits for its super-peers.
func openOneShot(ctx context.Context, f *flags) (*share.Node, share.Config, error) {
	cfg, err := f.config()
	if err != nil {
		return nil, cfg, err
	}
	n, err := share.Open(ctx, cfg)
	if err != nil {
		return nil, cfg, err
	}
	if len(cfg.SuperPeers) > 0 {
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := n.Peer().Ready(rctx)
		cancel()
		if err != nil {
			n.Close()
			return nil, cfg, fmt.Errorf("no super-peer answered: %w", err)
		}
	}
	return n, cfg, nil
}

func runSearch(ctx context.Context, args []string, out io.Writer) error {
	f := newFlags("search", out)
	if err := f.parse(args, out, 1, -1, "WORDS"); err != nil {
		return err
	}
	words := strings.Join(f.fs.Args(), " ")
	if words == "" {
		return fmt.Errorf("usage: fileshare search [flags] WORDS")
	}
	n, cfg, err := openOneShot(ctx, f)
	if err != nil {
		return err
	}
	defer n.Close()
	u := &plainUI{n: n, out: out}
	seen := map[string]int{}
	rs, err := n.Search(ctx, words, func(partial []share.Result) {
		for _, r := range partial {
			if len(r.Sources) > seen[r.ID] {
				seen[r.ID] = len(r.Sources)
				u.say("found %s sources=%d", r.Name, len(r.Sources))
			}
		}
	})
	if err != nil {
		return err
	}
	u.printResults(rs)
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(cfg.Dir, lastSearch), b, 0o600)
}

func runGet(ctx context.Context, args []string, out io.Writer) error {
	f := newFlags("get", out)
	if err := f.parse(args, out, 1, 1, "N|LINK"); err != nil {
		return err
	}
	arg := f.fs.Arg(0)
	n, cfg, err := openOneShot(ctx, f)
	if err != nil {
		return err
	}
	defer n.Close()
	var r share.Result
	if i, err := strconv.Atoi(arg); err == nil {
		b, err := os.ReadFile(filepath.Join(cfg.Dir, lastSearch))
		if err != nil {
			return fmt.Errorf("get %d: no saved search in %s; run fileshare search first", i, cfg.Dir)
		}
		var rs []share.Result
		if err := json.Unmarshal(b, &rs); err != nil {
			return fmt.Errorf("get %d: the saved search is unreadable: %v", i, err)
		}
		if i < 1 || i > len(rs) {
			return fmt.Errorf("get %d: the last search found %d files", i, len(rs))
		}
		r = rs[i-1]
	} else if r, err = n.LinkResult(arg); err != nil {
		return fmt.Errorf("get takes a result number or a share link: %w", err)
	}
	u := &plainUI{n: n, out: out}
	if _, err := n.Get(ctx, r); err != nil {
		return err
	}
	u.say("getting %s (%s) from %d sources", r.Name, share.FormatBytes(r.Size), len(r.Sources))
	pctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); u.progress(pctx) }()
	info, err := n.Wait(ctx, r.ID)
	cancel()
	<-done
	if err != nil {
		return err
	}
	if info.State != share.Done {
		return fmt.Errorf("get %s: %s", info.Name, info.Err)
	}
	u.say("done %s size=%d path=%s from=%s", info.Name, info.Size, info.Path, peerBytes(info.Peers))
	return nil
}

func runStatus(ctx context.Context, args []string, out io.Writer) error {
	f := newFlags("status", out)
	if err := f.parse(args, out, 0, 0, ""); err != nil {
		return err
	}
	n, _, err := openOneShot(ctx, f)
	if err != nil {
		return err
	}
	defer n.Close()
	(&plainUI{n: n, out: out}).status()
	return nil
}
