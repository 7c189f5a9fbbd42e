package share

import (
	"context"
	"path/filepath"

	"github.com/juxta-p2p/juxta/content"
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
		Logger: n.log,
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
