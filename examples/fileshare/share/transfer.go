package share

import (
	"context"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/peer"
)

// openContent starts the content service that serves the shared files and
// runs the downloads, with the rate caps. It announces nothing by itself:
// file advertisements name the providers, and a group's files must not be
// announced outside the group.
func (n *Node) openContent(ctx context.Context) error {
	c := n.cfg.Caps
	cs, err := content.New(ctx, content.Config{
		Peer: n.p, Dir: filepath.Join(n.cfg.Dir, "content"), NoAnnounce: true,
		UploadRate: float64(c.Up), DownloadRate: float64(c.Down), PeerUploadRate: float64(c.PeerUp), PeerDownloadRate: float64(c.PeerDown),
		Logger: n.log, AllowContent: n.allowContent,
	})
	if err != nil {
		return err
	}
	n.cs = cs
	return nil
}

// maxConnect bounds the sources connected to at once before a fetch.
const maxConnect = 8

// fetchInto fetches r's content into dst from its sources. It first connects
// to them by peer ID (the addresses in an advertisement's link may be stale,
// and a peer behind a NAT is reached through its relay and a hole punch), so
// that the content service finds live connections.
func (n *Node) fetchInto(ctx context.Context, id content.ID, dst string, r Result) (content.Info, error) {
	provs := n.providers(r)
	cctx, cancel := context.WithTimeout(ctx, connectTimeout)
	var wg sync.WaitGroup
	for i, ai := range provs {
		if i >= maxConnect {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := n.p.Connect(cctx, ai); err != nil {
				n.log.Debug("connect to a source", "peer", ai.ID, "err", err)
			}
		}()
	}
	wg.Wait()
	cancel()
	n.awaitDirect(ctx, provs)
	opts := []content.FetchOption{content.WithProviders(provs...)}
	if r.Group != "" {
		opts = append(opts, content.OnlyProviders())
	}
	return n.cs.Fetch(ctx, id, dst, opts...)
}

// scopesOf lists the groups ("" for the net group) in which this node shares
// content id: shared files, pinned copies and downloads in progress (which
// serve the pieces they have).
func (n *Node) scopesOf(id string) []string {
	var out []string
	add := func(g string) {
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	n.mu.Lock()
	for k := range n.refs {
		if k.id == id {
			add(k.group)
		}
	}
	if d := n.downloads[id]; d != nil && d.info.State == Running {
		add(d.r.Group)
	}
	n.mu.Unlock()
	if g, ok := n.pins.groupOf(id); ok {
		add(g)
	}
	return out
}

// connectTimeout bounds connecting to the sources before a fetch.
const connectTimeout = 30 * time.Second

// authorizeTimeout bounds a membership check made before serving a peer.
const authorizeTimeout = 10 * time.Second

// allowContent decides whether remote may fetch content id from this node:
// anyone when the content is shared in the net group; otherwise only the
// members of a group it is shared in, who must prove membership.
func (n *Node) allowContent(remote peer.ID, id content.ID) bool {
	scopes := n.scopesOf(id.String())
	if len(scopes) == 0 || slices.Contains(scopes, "") {
		return true
	}
	ctx, cancel := context.WithTimeout(n.ctx, authorizeTimeout)
	defer cancel()
	for _, name := range scopes {
		if g, ok := n.group(name); ok && g.g.Authorize(ctx, remote) == nil {
			return true
		}
	}
	n.log.Debug("refused group content to a non-member", "peer", remote, "id", id)
	return false
}

// punchWait is how long a fetch waits for a hole punch when every source is
// reachable only through a relay: bulk data should take the direct path.
const punchWait = 10 * time.Second

// awaitDirect waits, up to punchWait, until at least one source is connected
// directly when all of them are relayed.
func (n *Node) awaitDirect(ctx context.Context, provs []peer.Addr) {
	deadline := time.Now().Add(punchWait)
	for {
		relayed := 0
		for _, ai := range provs {
			switch n.p.PathTo(ai.ID) {
			case peer.PathRelayed:
				relayed++
			case peer.PathNone:
			default:
				return // a direct source
			}
		}
		if relayed == 0 || time.Now().After(deadline) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}
