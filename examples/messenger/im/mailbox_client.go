package im

import (
	"context"
	"crypto/rand"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/juxta-p2p/juxta/peer"
)

// sealedItem is what the mailbox stores: a NaCl box from sender to recipient.
type sealedItem struct {
	Nonce []byte `cbor:"1,keyasint"`
	Box   []byte `cbor:"2,keyasint"`
}

// depositFrames seals frames for contact id and leaves them in the mailbox of
// every connected super-peer. It reports whether one accepted them.
func (m *Messenger) depositFrames(ctx context.Context, id peer.ID, frames []frame) bool {
	contact, ok := m.st.contact(id)
	if !ok || len(contact.BoxKey) != 32 {
		return false
	}
	var their [32]byte
	copy(their[:], contact.BoxKey)
	var items []mbItem
	for _, f := range frames {
		b, err := enc.Marshal(f)
		if err != nil {
			continue
		}
		var nonce [24]byte
		_, _ = rand.Read(nonce[:])
		sealed := box.Seal(nil, b, &nonce, &their, m.boxKey)
		blob, _ := enc.Marshal(sealedItem{Nonce: nonce[:], Box: sealed})
		itemID := f.ID
		if itemID == "" {
			itemID = newID()
		}
		items = append(items, mbItem{ID: itemID, Blob: blob})
	}
	stored := false
	for _, sp := range m.p.ConnectedSuperPeers() {
		ok := true
		for _, batch := range depositBatches(items) {
			if _, err := mailboxCall(ctx, m.p.Libp2p().Host, sp, mbReq{Op: mbDeposit, To: []byte(id), Items: batch}); err != nil {
				m.log.Debug("mailbox deposit failed", "super-peer", sp, "err", err)
				ok = false
				break
			}
		}
		stored = stored || ok
	}
	return stored
}

// depositBatches splits items into requests well under the server's frame
// bound.
func depositBatches(items []mbItem) [][]mbItem {
	var out [][]mbItem
	var cur []mbItem
	size := 0
	for _, it := range items {
		n := len(it.Blob) + len(it.ID) + 16
		if len(cur) > 0 && size+n > mailboxMaxRequest/2 {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, it)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// fetchMailbox collects what waits in the super-peers' mailboxes, handles it in
// the senders' order, and acknowledges it, which deletes it there. Items from
// peers who are not contacts, or whose request this user has not accepted,
// are dropped and acknowledged too, so a stranger cannot fill the mailbox;
// only items from peers this user asked (Requested) wait, as they may be an
// acceptance that arrived while this user was away.
func (m *Messenger) fetchMailbox(ctx context.Context) {
	for _, sp := range m.p.ConnectedSuperPeers() {
		for range 64 { // a fetch answers at most ~1 MiB; a few rounds drain it
			more, progress := m.fetchMailboxOnce(ctx, sp)
			if !more || !progress {
				break
			}
		}
	}
}

type openedItem struct {
	from    peer.ID
	f       frame
	arrival time.Time // at the super-peer
}

// fetchMailboxOnce runs one fetch and ack round against sp; it reports
// whether more items wait and whether this round acknowledged any.
func (m *Messenger) fetchMailboxOnce(ctx context.Context, sp peer.ID) (more, progress bool) {
	resp, err := mailboxCall(ctx, m.p.Libp2p().Host, sp, mbReq{Op: mbFetch})
	if err != nil {
		m.log.Debug("mailbox fetch failed", "super-peer", sp, "err", err)
		return false, false
	}
	var got []openedItem
	var ids []string // acknowledged, hence deleted at the super-peer
	for _, it := range resp.Items {
		o, keep := m.openItem(it)
		if keep {
			continue
		}
		ids = append(ids, it.ID)
		if o != nil {
			got = append(got, *o)
		}
	}
	// Each sender's frames in that sender's order.
	slices.SortStableFunc(got, func(a, b openedItem) int {
		if c := strings.Compare(string(a.from), string(b.from)); c != 0 {
			return c
		}
		switch {
		case a.f.Seq < b.f.Seq:
			return -1
		case a.f.Seq > b.f.Seq:
			return 1
		}
		return 0
	})
	for _, o := range got {
		o.f.Time = clampTime(o.f.Time, o.arrival)
		m.handle(ctx, o.from, m.conn(o.from), o.f, true)
	}
	if len(ids) > 0 {
		if _, err := mailboxCall(ctx, m.p.Libp2p().Host, sp, mbReq{Op: mbAck, IDs: ids}); err != nil {
			m.log.Debug("mailbox ack failed", "super-peer", sp, "err", err)
			return false, false
		}
	}
	return resp.More, len(ids) > 0
}

// openItem opens one mailbox item. It returns the frame (nil when the item is
// to be dropped) and whether the item must stay at the super-peer unopened.
func (m *Messenger) openItem(it mbItem) (*openedItem, bool) {
	from, err := peer.IDFromBytes(it.From)
	if err != nil {
		return nil, false // unusable: drop it
	}
	contact, ok := m.st.contact(from)
	switch {
	case ok && contact.State == Requested:
		// They may have accepted us while we were away: keep it until
		// their hello says so, or until it expires.
		return nil, true
	case !ok || contact.State != Accepted || len(contact.BoxKey) != 32:
		return nil, false // a stranger, or a request not accepted: drop
	}
	var s sealedItem
	if dec.Unmarshal(it.Blob, &s) != nil || len(s.Nonce) != 24 {
		return nil, false
	}
	var their [32]byte
	var nonce [24]byte
	copy(their[:], contact.BoxKey)
	copy(nonce[:], s.Nonce)
	plain, ok := box.Open(nil, s.Box, &nonce, &their, m.boxKey)
	if !ok {
		return nil, false // not sealed by them for us
	}
	var f frame
	if dec.Unmarshal(plain, &f) != nil {
		return nil, false
	}
	arrival := time.Now()
	if it.Time > 0 && it.Time < arrival.UnixMilli() {
		arrival = time.UnixMilli(it.Time)
	}
	return &openedItem{from, f, arrival}, false
}

// maxClockSkew is how far a sender's clock may run behind the arrival of its
// message before the arrival time is shown instead.
const maxClockSkew = 2 * time.Minute

// clampTime turns a sender-chosen timestamp (unix ms) into one that lies in
// [arrival-maxClockSkew, arrival]: a sender cannot date a message in the
// future, nor backdate history.
func clampTime(sent int64, arrival time.Time) int64 {
	a := arrival.UnixMilli()
	if sent > a || sent < a-maxClockSkew.Milliseconds() {
		return a
	}
	return sent
}
