package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/examples/fileshare/share"
)

const plainHelp = `commands:
  search WORDS                 search the LAN and the super-peers; results stream in
  get N|LINK                   download result N of the last search, or a share link
  link N                       the share link of result N
  share DIR [GROUP]            share a folder (with a group only, if named)
  group create NAME PASSWORD   a password group for private shares
  group join NAME PASSWORD     join one
  volunteer GROUP SIZE         offer disk space (e.g. 500M) to keep a group's pinned files alive
  pin N K GROUP                keep result N on at least K online members of GROUP
  status                       shares, downloads, peers and rate caps
  invite                       your invite, for others' -superpeer or to connect
  connect INVITE               connect to a peer
  quit`

// plainUI is line mode: one command per input line, one event per output line.
type plainUI struct {
	n   *share.Node
	out io.Writer

	mu      sync.Mutex     // serialises output lines; guards results
	results []share.Result // of the last search
}

// say prints one line with terminal control characters taken out (names come
// from strangers).
func (u *plainUI) say(format string, a ...any) {
	line := share.Display(fmt.Sprintf(format, a...), 1<<16)
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintln(u.out, line)
}

func runPlain(ctx context.Context, n *share.Node, in io.Reader, out io.Writer) error {
	u := &plainUI{n: n, out: out}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub := n.Subscribe(ctx)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for ev := range sub.C {
			u.event(ev)
		}
	}()
	go func() {
		defer wg.Done()
		u.progress(ctx)
	}()
	defer wg.Wait()
	defer cancel()
	st := n.Status()
	u.say("juxta fileshare: you are %s (%s)", st.Name, st.ID)
	u.say("invite: %s", st.Invite)
	u.say("downloads go to %s", st.Folder)
	u.say("type help for commands")
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 64<<10)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				return nil
			}
			if quit := u.command(ctx, strings.TrimSpace(line)); quit {
				return nil
			}
		}
	}
}

func (u *plainUI) event(ev share.Event) {
	switch e := ev.(type) {
	case share.Indexed:
		// A bar per 5% (and the last), not a line per file.
		step := max(e.Total/20, 1)
		if e.Done == e.Total || e.Done%step == 0 {
			u.say("indexed %s %d/%d", bar(e.Done*100/max(e.Total, 1), 20), e.Done, e.Total)
		}
	case share.Published:
		u.say("published %s id=%s%s", e.Rel, e.ID, inGroup(e.Group))
	case share.Withdrawn:
		u.say("withdrawn %s id=%s%s", e.Rel, e.ID, inGroup(e.Group))
	case share.DownloadEnded:
		d := e.Info
		if d.State == share.Done {
			u.say("done %s size=%d path=%s from=%s", d.Name, d.Size, d.Path, peerBytes(d.Peers))
		} else {
			u.say("failed %s: %s", d.Name, d.Err)
		}
	case share.Pinned:
		if e.Dropped {
			u.say("unpinned %s id=%s%s", e.Name, e.ID, inGroup(e.Group))
		} else {
			u.say("pinned %s id=%s%s", e.Name, e.ID, inGroup(e.Group))
		}
	case share.Notice:
		u.say("notice: %s", e.Text)
	}
}

func inGroup(g string) string {
	if g == "" {
		return ""
	}
	return " group=" + g
}

// peerBytes lists what each source delivered and over which path:
// "12D3…abc:1048576:direct,12D3…def:524288:relayed"; "relayed-N" when N of
// the bytes came through a relay and the rest directly.
func peerBytes(ps []share.PeerBytes) string {
	var parts []string
	for _, p := range ps {
		path := "direct"
		switch {
		case p.Relayed >= p.Bytes && p.Bytes > 0:
			path = "relayed"
		case p.Relayed > 0:
			path = fmt.Sprintf("relayed-%d", p.Relayed)
		}
		parts = append(parts, fmt.Sprintf("%s:%d:%s", p.Peer, p.Bytes, path))
	}
	return strings.Join(parts, ",")
}

// progress prints a line per running download every second.
func (u *plainUI) progress(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, d := range u.n.Status().Downloads {
			if d.State == share.Running {
				u.say("progress %s", progressLine(d))
			}
		}
	}
}

func progressLine(d share.DownloadInfo) string {
	pct := 100
	if d.Size > 0 {
		pct = int(d.Have * 100 / d.Size)
	}
	eta := "?"
	if d.ETA > 0 {
		eta = d.ETA.Round(time.Second).String()
	}
	return fmt.Sprintf("%s %s %3d%% %s/%s %s peers=%d eta=%s", d.Name, bar(pct, 20), pct,
		share.FormatBytes(d.Have), share.FormatBytes(d.Size), share.FormatBytes(int64(d.Rate))+"/s", len(d.Peers), eta)
}

func bar(pct, width int) string {
	n := min(max(pct, 0), 100) * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

func (u *plainUI) printResults(rs []share.Result) {
	for i, r := range rs {
		u.say("result %d %s size=%d kind=%s sources=%d id=%s%s", i+1, r.Name, r.Size, r.Kind, len(r.Sources), r.ID, inGroup(r.Group))
	}
	u.say("search done: %d files", len(rs))
}

// result returns result n (1-based) of the last search.
func (u *plainUI) result(arg string) (share.Result, error) {
	i, err := strconv.Atoi(arg)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil || i < 1 || i > len(u.results) {
		return share.Result{}, fmt.Errorf("no result %q (the last search found %d)", arg, len(u.results))
	}
	return u.results[i-1], nil
}

// command runs one input line; it reports whether to quit.
func (u *plainUI) command(ctx context.Context, line string) bool {
	cmd, rest, _ := strings.Cut(line, " ")
	rest = strings.TrimSpace(rest)
	args := strings.Fields(rest)
	n := u.n
	var err error
	switch strings.TrimPrefix(cmd, "/") {
	case "":
	case "help":
		u.say("%s", plainHelp)
	case "quit", "exit":
		return true
	case "search":
		u.say("searching %q", rest)
		seen := map[string]int{}
		var rs []share.Result
		rs, err = n.Search(ctx, rest, func(partial []share.Result) {
			for _, r := range partial {
				if len(r.Sources) > seen[r.ID] {
					seen[r.ID] = len(r.Sources)
					u.say("found %s sources=%d", r.Name, len(r.Sources))
				}
			}
		})
		if err == nil {
			u.mu.Lock()
			u.results = rs
			u.mu.Unlock()
			u.printResults(rs)
		}
	case "get":
		err = u.get(ctx, rest)
	case "link":
		var r share.Result
		if r, err = u.result(rest); err == nil {
			u.say("link %s", r.Link)
		}
	case "share":
		if len(args) < 1 || len(args) > 2 {
			err = fmt.Errorf("usage: share DIR [GROUP]")
			break
		}
		group := ""
		if len(args) == 2 {
			group = args[1]
		}
		err = n.Share(ctx, args[0], group)
	case "group":
		if len(args) != 3 || (args[0] != "create" && args[0] != "join") {
			err = fmt.Errorf("usage: group create|join NAME PASSWORD")
			break
		}
		if args[0] == "create" {
			err = n.CreateGroup(ctx, args[1], args[2])
		} else {
			err = n.JoinGroup(ctx, args[1], args[2])
		}
		if err == nil {
			u.say("group %s ready", args[1])
		}
	case "volunteer":
		var size int64
		if len(args) != 2 {
			err = fmt.Errorf("usage: volunteer GROUP SIZE")
		} else if size, err = share.ParseRate(args[1]); err == nil {
			if err = n.Volunteer(ctx, args[0], size); err == nil {
				u.say("volunteering %s in %s", share.FormatBytes(size), args[0])
			}
		}
	case "pin":
		err = u.pin(ctx, args)
	case "status":
		u.status()
	case "invite":
		u.say("invite: %s", n.Invite())
	case "connect":
		err = n.Connect(ctx, rest)
		if err == nil {
			u.say("connected")
		}
	default:
		err = fmt.Errorf("unknown command %q (try help)", cmd)
	}
	if err != nil {
		u.say("error: %v", err)
	}
	return false
}

func (u *plainUI) get(ctx context.Context, arg string) error {
	r, err := u.result(arg)
	if err != nil {
		if r, err = u.n.LinkResult(arg); err != nil {
			return fmt.Errorf("get takes a result number or a share link: %w", err)
		}
	}
	if _, err := u.n.Get(ctx, r); err != nil {
		return err
	}
	u.say("getting %s (%s) from %d sources", r.Name, share.FormatBytes(r.Size), len(r.Sources))
	return nil
}

func (u *plainUI) pin(ctx context.Context, args []string) error {
	if len(args) != 3 {
		return fmt.Errorf("usage: pin N K GROUP")
	}
	r, err := u.result(args[0])
	if err != nil {
		return err
	}
	k, err := strconv.Atoi(args[1])
	if err != nil || k < 1 {
		return fmt.Errorf("K must be a number of members, at least 1")
	}
	if err := u.n.Pin(ctx, args[2], r, k); err != nil {
		return err
	}
	u.say("pin %s K=%d in %s", r.Name, k, args[2])
	return nil
}

func (u *plainUI) status() {
	st := u.n.Status()
	u.say("you are %s (%s)", st.Name, st.ID)
	u.say("caps up=%s down=%s peer-up=%s peer-down=%s share-downloads=%v", share.FormatRate(st.Caps.Up),
		share.FormatRate(st.Caps.Down), share.FormatRate(st.Caps.PeerUp), share.FormatRate(st.Caps.PeerDown), st.Shared)
	for _, s := range st.Shares {
		u.say("share %s files=%d bytes=%d pending=%d%s", s.Folder, s.Files, s.Bytes, s.Pending, inGroup(s.Group))
	}
	if st.Hashing != "" {
		u.say("hashing %s %d/%d", st.Hashing, st.Hashed, st.HashSize)
	}
	for _, d := range st.Downloads {
		u.say("download %s %s %s", d.State, progressLine(d), peerBytes(d.Peers))
	}
	sort.Slice(st.Peers, func(i, j int) bool { return st.Peers[i].ID < st.Peers[j].ID })
	for _, p := range st.Peers {
		path := "direct"
		if p.Relayed {
			path = "relayed"
		}
		u.say("peer %s %s down=%s/s", p.ID, path, share.FormatBytes(int64(p.Down)))
	}
	u.say("status done")
}
