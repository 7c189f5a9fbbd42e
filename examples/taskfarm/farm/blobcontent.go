package farm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

// contentBlobs is the farm's Blobs over the content package: modules and
// large data are added as content (BLAKE3, verified piece by piece), served
// only to farm members, and fetched from the hinted members (the scheduler
// keeps a copy of every job's module, so providers fetch from it and from
// each other).
type contentBlobs struct {
	svc *content.Service
}

func newContentBlobs(ctx context.Context, p *peer.Peer, g *groups.Group, dir string) (*contentBlobs, error) {
	svc, err := content.New(ctx, content.Config{
		Peer: p, Dir: filepath.Join(dir, "content"), NoAnnounce: true,
		Allow: func(id peer.ID) bool { // members only
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return g.Authorize(ctx, id) == nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("farm: content: %w", err)
	}
	return &contentBlobs{svc: svc}, nil
}

func (b *contentBlobs) close() error { return b.svc.Close() }

// Put adds data as content and serves it to members.
func (b *contentBlobs) Put(ctx context.Context, data []byte) (Ref, error) {
	info, err := b.svc.AddBytes(ctx, "", data)
	if err != nil {
		return Ref{}, err
	}
	return Ref(info.ID), nil
}

// Get returns the blob from the local store or fetches it from the hinted
// members, at most max bytes.
func (b *contentBlobs) Get(ctx context.Context, r Ref, max int64, hints []string) ([]byte, error) {
	id := content.ID(r)
	if data, err := b.svc.Bytes(id, max); err == nil {
		return data, nil
	} else if !errors.Is(err, content.ErrNotFound) {
		return nil, err
	}
	var ais []peer.Addr
	for _, h := range hints {
		if pid, err := peer.ParseID(h); err == nil {
			ais = append(ais, peer.Addr{ID: pid})
		}
	}
	if len(ais) == 0 {
		return nil, fmt.Errorf("%w: %s: no member to fetch it from", ErrNoBlob, r)
	}
	if _, err := b.svc.Fetch(ctx, id, "", content.WithProviders(ais...), content.OnlyProviders()); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNoBlob, r, err)
	}
	return b.svc.Bytes(id, max)
}
