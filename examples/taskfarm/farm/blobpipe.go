package farm

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// pipeBlobs is the farm's Blobs until the content package lands: blobs on
// disk, served to members over a group stream pipe, one request per stream
// (a 32-byte reference in, an 8-byte length and the bytes out, length 0 when
// it is not here), verified against the reference on arrival.
type pipeBlobs struct {
	*diskBlobs
	n   *Node
	l   *pipes.Listener
	sem chan struct{} // bounds concurrent uploads
}

// maxBlobServes bounds the uploads a member serves at once.
const maxBlobServes = 8

func newPipeBlobs(dir string) (*pipeBlobs, error) {
	d, err := newDiskBlobs(dir)
	if err != nil {
		return nil, err
	}
	return &pipeBlobs{diskBlobs: d, sem: make(chan struct{}, maxBlobServes)}, nil
}

func (b *pipeBlobs) serve(n *Node, g *groups.Group) error {
	l, err := g.Pipes().Listen(n.ctx, blobPipe)
	if err != nil {
		return err
	}
	b.n, b.l = n, l
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case b.sem <- struct{}{}:
			default:
				c.Close() // busy: the fetcher tries another member
				continue
			}
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				defer func() { <-b.sem }()
				b.answer(c)
			}()
		}
	}()
	return nil
}

func (b *pipeBlobs) close() {
	if b.l != nil {
		b.l.Close()
	}
}

func (b *pipeBlobs) answer(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	var r Ref
	if _, err := io.ReadFull(c, r[:]); err != nil {
		return
	}
	data, err := b.get(r, MaxModule)
	if err != nil {
		c.Write(make([]byte, 8))
		return
	}
	c.Write(binary.BigEndian.AppendUint64(nil, uint64(len(data))))
	c.Write(data)
}

// Put stores data and serves it to members.
func (b *pipeBlobs) Put(_ context.Context, data []byte) (Ref, error) { return b.put(data) }

// Get returns a local blob, or fetches it from the hinted members and keeps it.
func (b *pipeBlobs) Get(ctx context.Context, r Ref, max int64, hints []string) ([]byte, error) {
	if data, err := b.get(r, max); err == nil {
		return data, nil
	} else if !errors.Is(err, ErrNoBlob) {
		return nil, err
	}
	var errs []error
	for _, h := range hints {
		id, err := peer.ParseID(h)
		if err != nil || b.n == nil || id == b.n.p.ID() {
			continue
		}
		data, err := b.fetch(ctx, id, r, max)
		if err == nil {
			if _, err := b.put(data); err != nil {
				return nil, err
			}
			return data, nil
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("%w: %s: %w", ErrNoBlob, r, errors.Join(errs...))
}

func (b *pipeBlobs) fetch(ctx context.Context, from peer.ID, r Ref, max int64) ([]byte, error) {
	c, err := b.n.g.Pipes().Dial(ctx, blobPipe, pipes.ToPeer(from))
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write(r[:]); err != nil {
		return nil, err
	}
	var hdr [8]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	size := binary.BigEndian.Uint64(hdr[:])
	switch {
	case size == 0:
		return nil, fmt.Errorf("%w at %s", ErrNoBlob, from.ShortString())
	case size > uint64(max):
		return nil, fmt.Errorf("%w: %s offers %d bytes (at most %d)", ErrTooLarge, from.ShortString(), size, max)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(c, data); err != nil {
		return nil, err
	}
	if RefOf(data) != r {
		return nil, fmt.Errorf("farm: %s sent a blob that does not match %s", from.ShortString(), r)
	}
	return data, nil
}
