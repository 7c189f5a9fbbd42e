package share

import (
	"context"
	"path/filepath"
	"slices"
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

// fetchInto fetches r's content into dst from its sources.
func (n *Node) fetchInto(ctx context.Context, id content.ID, dst string, r Result) (content.Info, error) {
	opts := []content.FetchOption{content.WithProviders(n.providers(r)...)}
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
