package share

import (
	"slices"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/peer"
)

// State of a download.
type State string

const (
	Running State = "running"
	Done    State = "done"
	Failed  State = "failed"
)

// PeerBytes is what one source delivered to a download.
type PeerBytes struct {
	Peer  peer.ID
	Bytes int64
	Rate  float64 // bytes per second, recent
	// Relayed is how many of Bytes came through a relay.
	Relayed int64
}

// DownloadInfo is a snapshot of one download.
type DownloadInfo struct {
	ID    string
	Name  string // safe name
	Size  int64
	Have  int64 // verified bytes
	Rate  float64
	ETA   time.Duration // 0 when unknown or done
	Peers []PeerBytes   // sources that delivered, most bytes first
	State State
	Path  string // where the finished file is
	Err   string // why it failed
	Group string
}

// ShareInfo is a snapshot of one shared folder.
type ShareInfo struct {
	Folder  string
	Group   string // "" for the net group
	Files   int    // advertised
	Bytes   int64
	Pending int // waiting to be hashed or published (all shares together, on the first)
}

// PeerInfo is a connected peer with its transfer rates.
type PeerInfo struct {
	ID        peer.ID
	Name      string
	Relayed   bool
	Down      float64 // what it sends us, bytes per second (recent)
	SuperPeer bool
}

// peerRate is a peer's download rate, measured at a time.
type peerRate struct {
	rate float64
	at   time.Time
}

// rateWindow is the span over which rates are measured.
const rateWindow = 2 * time.Second

// sample is a byte count at a time.
type sample struct {
	t time.Time
	n int64
}

// window measures a rate over the last rateWindow.
type window struct{ s []sample }

func (w *window) add(t time.Time, n int64) float64 {
	w.s = append(w.s, sample{t, n})
	for len(w.s) > 2 && t.Sub(w.s[1].t) >= rateWindow {
		w.s = w.s[1:]
	}
	first := w.s[0]
	dt := t.Sub(first.t).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(n-first.n) / dt
}

// progressLoop follows the content service's progress events: download
// progress, bytes per source, and rates per peer.
func (n *Node) progressLoop() {
	defer n.wg.Done()
	sub := n.cs.Subscribe(n.ctx, 256)
	defer sub.Cancel()
	for ev := range sub.C {
		p, ok := ev.(content.Progress)
		if !ok {
			continue
		}
		if p.Op == content.OpHash {
			n.mu.Lock()
			n.hashing = p
			if p.Done {
				n.hashing = content.Progress{}
			}
			n.mu.Unlock()
			continue
		}
		n.progress(p, time.Now())
	}
}

func (n *Node) progress(p content.Progress, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	d := n.downloads[p.ID.String()]
	if d == nil || d.info.State != Running {
		return
	}
	for _, pr := range p.Peers {
		// Bytes is what the peer delivered in this run of the fetch; what
		// came over a relay is counted apart.
		if delta := pr.Bytes - int64(d.bytes[pr.Peer]); delta > 0 && pr.Relayed {
			d.relayedBytes[pr.Peer] += delta
		}
		d.bytes[pr.Peer] = float64(pr.Bytes)
		w := d.peerRate[pr.Peer]
		if w == nil {
			w = &window{}
			d.peerRate[pr.Peer] = w
		}
		n.rates[pr.Peer] = peerRate{rate: w.add(now, int64(d.bytes[pr.Peer])), at: now}
	}
	d.info.Have = p.Bytes
	d.info.Rate = d.rate.add(now, p.Bytes)
	if p.Total > 0 {
		d.info.Size = p.Total
	}
	d.info.ETA = 0
	if d.info.Rate > 0 && d.info.Size > d.info.Have {
		d.info.ETA = time.Duration(float64(d.info.Size-d.info.Have) / d.info.Rate * float64(time.Second))
	}
	d.info.Peers = peerList(d.bytes, d.relayedBytes)
}

// Status is a snapshot of the node, for the status command and the UI.
type Status struct {
	ID        peer.ID
	Name      string
	Invite    string
	Shares    []ShareInfo
	Downloads []DownloadInfo
	Peers     []PeerInfo
	Caps      Caps
	Shared    bool   // downloads are shared onward
	Folder    string // the downloads folder
	// Hashing is the file being hashed now, if any, with Hashed of HashSize
	// bytes done.
	Hashing          string
	Hashed, HashSize int64
}

// Status is a snapshot of the node: shares, downloads, peers and caps.
func (n *Node) Status() Status {
	st := Status{ID: n.ID(), Name: n.p.Name(), Invite: n.Invite(), Caps: n.cfg.Caps, Shared: !n.cfg.NoShareDownloads, Folder: n.cfg.Downloads}
	n.mu.Lock()
	byFolder := map[string]*ShareInfo{}
	for f, g := range n.folders {
		byFolder[f] = &ShareInfo{Folder: f, Group: g}
	}
	for _, f := range n.files {
		if s := byFolder[f.root]; s != nil {
			s.Files++
			s.Bytes += f.size
		}
	}
	for _, s := range byFolder {
		st.Shares = append(st.Shares, *s)
	}
	if len(st.Shares) > 0 {
		st.Shares[0].Pending = max(n.pending, n.unpublished)
	}
	for _, d := range n.downloads {
		st.Downloads = append(st.Downloads, d.info)
	}
	if h := n.hashing; h.Name != "" {
		st.Hashing, st.Hashed, st.HashSize = SafeName(h.Name), h.Bytes, h.Total
	}
	rates := map[peer.ID]float64{}
	for id, r := range n.rates {
		if time.Since(r.at) < rateWindow {
			rates[id] = r.rate
		} else {
			delete(n.rates, id)
		}
	}
	n.mu.Unlock()
	slices.SortFunc(st.Shares, func(a, b ShareInfo) int { return strings.Compare(a.Folder, b.Folder) })
	slices.SortFunc(st.Downloads, func(a, b DownloadInfo) int { return strings.Compare(a.Name, b.Name) })
	sps := n.p.ConnectedSuperPeers()
	for _, lid := range n.p.Libp2p().Host.Network().Peers() {
		id := peer.ID(lid)
		pi := PeerInfo{ID: id, Relayed: n.p.PathTo(id) == peer.PathRelayed, Down: rates[id], SuperPeer: slices.Contains(sps, id)}
		st.Peers = append(st.Peers, pi)
	}
	return st
}
