package share

import (
	"context"
	"errors"
	"fmt"
	"path"
	"path/filepath"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/discovery"
)

// Share shares a folder and everything under it, in the net group ("") or
// only with a joined group: its files are hashed (Indexed events report the
// progress) and advertised, and it is watched, so added, changed and removed
// files are re-published or withdrawn within seconds.
func (n *Node) Share(ctx context.Context, dir, group string) error {
	if err := n.edge(); err != nil {
		return err
	}
	if group != "" {
		if _, ok := n.group(group); !ok {
			return fmt.Errorf("%w: %q (create or join it first)", ErrNoGroup, group)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("share: %w", err)
	}
	n.mu.Lock()
	if g, ok := n.folders[abs]; ok && g != group {
		n.mu.Unlock()
		return fmt.Errorf("share: %s is already shared with %q", dir, g)
	}
	n.folders[abs] = group
	n.mu.Unlock()
	if err := n.w.Add(abs); err != nil {
		n.mu.Lock()
		delete(n.folders, abs)
		n.mu.Unlock()
		return err
	}
	return nil
}

// refKey counts the shared paths holding one content ID in one scope.
type refKey struct{ group, id string }

func (n *Node) indexLoop() {
	defer n.wg.Done()
	for {
		cs, err := n.w.Next(n.ctx)
		if err != nil {
			if n.ctx.Err() == nil && !errors.Is(err, context.Canceled) {
				n.emit(Notice{Text: fmt.Sprintf("watching the shared folders stopped: %v", err)})
			}
			return
		}
		n.apply(cs)
	}
}

// apply hashes what changed, then publishes and withdraws advertisements, in
// one batch per scope.
func (n *Node) apply(cs []Change) {
	refs := n.refs // written by this goroutine only, under mu
	ups := 0
	for _, c := range cs {
		if c.Op == Upsert {
			ups++
		}
	}
	n.mu.Lock()
	n.pending += ups
	n.unpublished += ups
	n.mu.Unlock()
	publish := map[string][]discovery.Advertisement{}
	var withdraw []*sharedFile
	drop := func(f *sharedFile) {
		k := refKey{f.group, f.id}
		n.mu.Lock()
		if refs[k]--; refs[k] <= 0 {
			delete(refs, k)
			withdraw = append(withdraw, f)
		}
		n.mu.Unlock()
	}
	defer func() {
		if n.ctx.Err() != nil {
			n.mu.Lock()
			n.unpublished = 0
			n.mu.Unlock()
		}
	}()
	for _, c := range cs {
		if n.ctx.Err() != nil {
			return
		}
		n.mu.Lock()
		group, shared := n.folders[c.Root]
		old := n.files[c.Path]
		delete(n.files, c.Path)
		n.mu.Unlock()
		if old != nil {
			drop(old)
		}
		if c.Op != Upsert || !shared {
			continue
		}
		f, err := n.hashFile(c, group)
		n.mu.Lock()
		n.pending--
		n.hashed++
		done, total := n.hashed, n.hashed+n.pending
		if n.pending == 0 {
			n.hashed = 0
		}
		if err == nil {
			n.files[c.Path] = f
		}
		n.mu.Unlock()
		n.emit(Indexed{Done: done, Total: total})
		if err != nil {
			n.log.Debug("not shared", "path", c.Path, "err", err)
			continue
		}
		k := refKey{group, f.id}
		n.mu.Lock()
		refs[k]++
		first := refs[k] == 1
		n.mu.Unlock()
		if first {
			ad, err := n.fileAd(group, File{Name: path.Base(f.rel), Rel: f.rel, Size: f.size, ID: f.id, Link: n.link(f.id)})
			if err != nil {
				n.log.Warn("advertisement", "path", c.Path, "err", err)
				continue
			}
			publish[group] = append(publish[group], ad)
			n.emit(Published{Name: path.Base(f.rel), Rel: f.rel, ID: f.id, Group: group})
		}
	}
	// Withdraw first: a file renamed within the batch keeps its content ID,
	// hence its advertisement, which is published again with the new name.
	for _, f := range withdraw {
		n.mu.Lock()
		gone := refs[refKey{f.group, f.id}] == 0
		n.mu.Unlock()
		if gone {
			n.withdraw(f)
		}
	}
	for group, ads := range publish {
		n.publish(group, ads)
	}
	n.mu.Lock()
	n.unpublished -= ups
	n.mu.Unlock()
}

// fileAd is a file's advertisement: in clear in the net group, private in a
// group (see private.go).
func (n *Node) fileAd(group string, f File) (discovery.Advertisement, error) {
	if group == "" {
		return f.Advertisement(""), nil
	}
	g, ok := n.group(group)
	if !ok {
		return discovery.Advertisement{}, fmt.Errorf("%w: %q", ErrNoGroup, group)
	}
	return g.keys.privateAd(f)
}

// adID is the advertisement ID of content id in a group.
func (n *Node) adID(group, id string) string {
	if g, ok := n.group(group); ok && group != "" {
		return g.keys.blindID(id)
	}
	return id
}

// hashFile adds the file to the content service.
func (n *Node) hashFile(c Change, group string) (*sharedFile, error) {
	info, err := n.cs.Add(n.ctx, c.Path)
	if err != nil {
		return nil, err
	}
	rel := path.Join(filepath.Base(c.Root), c.Rel())
	return &sharedFile{root: c.Root, rel: rel, group: group, id: info.ID.String(), size: info.Size}, nil
}

// link is a share link naming this node as the provider.
func (n *Node) link(id string) string {
	cid, err := content.ParseID(id)
	if err != nil {
		return ""
	}
	l, err := n.cs.Link(cid)
	if err != nil {
		return ""
	}
	return l.String()
}

func (n *Node) publish(group string, ads []discovery.Advertisement) {
	d, err := n.disc(group)
	if err != nil {
		n.log.Warn("publish", "group", group, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, publishTimeout)
	defer cancel()
	if _, err := d.PublishBatch(ctx, ads); err != nil {
		n.emit(Notice{Text: fmt.Sprintf("publishing %d files: %v", len(ads), err)})
	}
}

// withdraw flushes a file's advertisement and, when no shared path holds its
// content any more, stops serving it.
func (n *Node) withdraw(f *sharedFile) {
	n.emit(Withdrawn{Name: path.Base(f.rel), Rel: f.rel, ID: f.id, Group: f.group})
	if d, err := n.disc(f.group); err == nil {
		ctx, cancel := context.WithTimeout(n.ctx, publishTimeout)
		if err := d.Flush(ctx, AdType, n.adID(f.group, f.id)); err != nil {
			n.log.Debug("flush", "id", f.id, "err", err)
		}
		cancel()
	}
	if len(n.scopesOf(f.id)) > 0 {
		return // still shared in another scope
	}
	if n.pins.holds(f.id) || n.downloading(f.id) {
		return
	}
	if id, err := content.ParseID(f.id); err == nil {
		n.cs.Remove(n.ctx, id)
	}
}
