package share

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/peer"
)

// download is one file being fetched.
type download struct {
	r            Result
	cancel       context.CancelFunc
	start        time.Time
	info         DownloadInfo        // guarded by Node.mu
	bytes        map[peer.ID]float64 // guarded by Node.mu; delivered per source
	peerRate     map[peer.ID]*window // guarded by Node.mu
	rate         window              // guarded by Node.mu
	relayedBytes map[peer.ID]int64   // guarded by Node.mu; of bytes, those that came over a relay
}

// pendingFile lists unfinished downloads, resumed at the next start.
const pendingFile = "downloads.json"

// maxPending bounds the downloads resumed at start.
const maxPending = 256

// Get starts downloading a search result (or a share link's, see LinkResult)
// from all its sources at once, verified piece by piece, into a partial file
// that survives restarts; the finished file lands in the downloads folder
// under a safe name, never overwriting, and is shared onward unless
// Config.NoShareDownloads. It returns at once; Status shows the progress and
// a DownloadEnded event the end.
func (n *Node) Get(ctx context.Context, r Result) (string, error) {
	if err := n.edge(); err != nil {
		return "", err
	}
	id, err := content.ParseID(r.ID)
	if err != nil {
		return "", err
	}
	if r.Group != "" {
		if _, ok := n.group(r.Group); !ok {
			return "", fmt.Errorf("%w: %q", ErrNoGroup, r.Group)
		}
	}
	r.Name = SafeName(r.Name)
	n.mu.Lock()
	if d, ok := n.downloads[r.ID]; ok && d.info.State == Running {
		n.mu.Unlock()
		return r.ID, nil
	}
	dctx, cancel := context.WithCancel(n.ctx)
	d := &download{r: r, cancel: cancel, start: time.Now(), bytes: map[peer.ID]float64{}, peerRate: map[peer.ID]*window{},
		relayedBytes: map[peer.ID]int64{},
		info:         DownloadInfo{ID: r.ID, Name: r.Name, Size: r.Size, State: Running, Group: r.Group}}
	n.downloads[r.ID] = d
	n.mu.Unlock()
	n.savePending()
	n.wg.Add(1)
	go n.fetch(dctx, id, d)
	return r.ID, nil
}

// Wait blocks until the download of id ends, and returns its final state.
func (n *Node) Wait(ctx context.Context, id string) (DownloadInfo, error) {
	sub := n.bus.SubscribeFunc(ctx, 16, func(ev Event) bool {
		e, ok := ev.(DownloadEnded)
		return ok && e.Info.ID == id
	})
	defer sub.Cancel()
	n.mu.Lock()
	d, ok := n.downloads[id]
	var info DownloadInfo
	if ok {
		info = d.info
	}
	n.mu.Unlock()
	if !ok {
		return DownloadInfo{}, fmt.Errorf("share: no download of %s", id)
	}
	if info.State != Running {
		return info, nil
	}
	select {
	case ev, ok := <-sub.C:
		if !ok {
			return DownloadInfo{}, fmt.Errorf("share: wait: %w", context.Cause(ctx))
		}
		return ev.(DownloadEnded).Info, nil
	case <-ctx.Done():
		return DownloadInfo{}, ctx.Err()
	}
}

func (n *Node) downloading(id string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	d, ok := n.downloads[id]
	return ok && d.info.State == Running
}

// providers are the result's sources with the addresses this peer knows.
func (n *Node) providers(r Result) []peer.Addr {
	var out []peer.Addr
	if l, err := content.ParseLink(r.Link); err == nil {
		out = append(out, l.Providers...)
	}
	for _, id := range r.Sources {
		if id == n.ID() || slices.ContainsFunc(out, func(ai peer.Addr) bool { return ai.ID == id }) {
			continue
		}
		out = append(out, peer.Addr{ID: id}) // the peerstore's addresses are used too
	}
	return slices.DeleteFunc(out, func(ai peer.Addr) bool { return ai.ID == n.ID() })
}

func (n *Node) partialDir() string { return filepath.Join(n.cfg.Dir, "partial") }

// fetch runs one download to its end.
func (n *Node) fetch(ctx context.Context, id content.ID, d *download) {
	defer n.wg.Done()
	defer d.cancel()
	path, err := n.fetchContent(ctx, id, d)
	if ctx.Err() != nil && n.ctx.Err() != nil {
		return // closing: resumed at the next start
	}
	n.mu.Lock()
	info := d.info
	if err != nil {
		info.State, info.Err = Failed, err.Error()
	} else {
		info.State, info.Path, info.Have, info.ETA = Done, path, info.Size, 0
	}
	info.Peers = peerList(d.bytes, d.relayedBytes)
	d.info = info
	n.mu.Unlock()
	n.savePending()
	n.emit(DownloadEnded{Info: info})
}

// fetchContent fetches into the partial folder and places the finished file.
func (n *Node) fetchContent(ctx context.Context, id content.ID, d *download) (string, error) {
	if err := os.MkdirAll(n.partialDir(), 0o700); err != nil {
		return "", fmt.Errorf("share: %w", err)
	}
	partial := filepath.Join(n.partialDir(), id.Hex())
	_, err := n.fetchInto(ctx, id, partial, d.r)
	if err != nil {
		return "", err
	}
	dir := n.cfg.Downloads
	if d.r.Group != "" {
		dir = filepath.Join(dir, SafeName(d.r.Group))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return "", fmt.Errorf("share: %w", err)
		}
	}
	// The content service recorded the partial path; the file moves, so the
	// record goes, and the watcher adds it again where it lands.
	if err := n.cs.Remove(ctx, id); err != nil && !errors.Is(err, content.ErrNotFound) {
		n.log.Debug("forget partial", "id", id, "err", err)
	}
	return Place(partial, dir, d.r.Name)
}

func peerList(m map[peer.ID]float64, relayed map[peer.ID]int64) []PeerBytes {
	var out []PeerBytes
	for id, b := range m {
		out = append(out, PeerBytes{Peer: id, Bytes: int64(b), Relayed: relayed[id]})
	}
	slices.SortFunc(out, func(a, b PeerBytes) int {
		if a.Bytes != b.Bytes {
			return int(b.Bytes - a.Bytes)
		}
		return cmpID(a.Peer, b.Peer)
	})
	return out
}

func cmpID(a, b peer.ID) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// pendingRecord is a download to resume.
type pendingRecord struct {
	ID, Name, Link, Group string
	Size                  int64
	Sources               []string
}

// savePending writes the unfinished downloads to Dir.
func (n *Node) savePending() {
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.mu.Lock()
	var recs []pendingRecord
	for _, d := range n.downloads {
		if d.info.State != Running {
			continue
		}
		r := d.r
		rec := pendingRecord{ID: r.ID, Name: r.Name, Link: r.Link, Group: r.Group, Size: r.Size}
		for _, s := range r.Sources {
			rec.Sources = append(rec.Sources, s.String())
		}
		recs = append(recs, rec)
	}
	// Keep the downloads of groups not joined (yet) in this run.
	for _, rec := range n.readPending() {
		if _, joined := n.groups[rec.Group]; rec.Group != "" && !joined && n.downloads[rec.ID] == nil {
			recs = append(recs, rec)
		}
	}
	n.mu.Unlock()
	slices.SortFunc(recs, func(a, b pendingRecord) int { return cmpID(peer.ID(a.ID), peer.ID(b.ID)) })
	b, err := json.Marshal(recs)
	if err != nil {
		return
	}
	tmp := filepath.Join(n.cfg.Dir, pendingFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err == nil {
		os.Rename(tmp, filepath.Join(n.cfg.Dir, pendingFile))
	}
}

// readPending reads the unfinished downloads saved by savePending.
func (n *Node) readPending() []pendingRecord {
	b, err := os.ReadFile(filepath.Join(n.cfg.Dir, pendingFile))
	if err != nil || len(b) > 4<<20 {
		return nil
	}
	var recs []pendingRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		n.emit(Notice{Text: fmt.Sprintf("unfinished downloads list unreadable: %v", err)})
		return nil
	}
	return recs
}

// resumeDownloads restarts the downloads left unfinished in group ("" for
// the net group's, at start; a group's when it is joined again).
func (n *Node) resumeDownloads(group string) {
	for i, rec := range n.readPending() {
		if i >= maxPending || rec.Group != group {
			continue
		}
		r := Result{ID: rec.ID, Name: SafeName(rec.Name), Link: rec.Link, Size: rec.Size, Kind: KindOf(rec.Name), Group: group}
		for _, s := range rec.Sources {
			if id, err := peer.ParseID(s); err == nil {
				r.Sources = append(r.Sources, id)
			}
		}
		if _, err := n.Get(n.ctx, r); err != nil {
			n.emit(Notice{Text: fmt.Sprintf("resume %s: %v", r.Name, err)})
		}
	}
}
