package im

import (
	"context"
	"crypto/rand"
	"errors"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/crypto/nacl/box"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// frame is one message of the chat protocol, over a reliable message pipe or
// sealed in the mailbox.
type frame struct {
	T      string   `cbor:"1,keyasint"` // hello req accept msg ack read presence
	ID     string   `cbor:"2,keyasint,omitempty"`
	Text   string   `cbor:"3,keyasint,omitempty"`
	Name   string   `cbor:"4,keyasint,omitempty"`
	BoxKey []byte   `cbor:"5,keyasint,omitempty"`
	Time   int64    `cbor:"6,keyasint,omitempty"`
	Seq    uint64   `cbor:"7,keyasint,omitempty"`
	State  string   `cbor:"8,keyasint,omitempty"`
	Status string   `cbor:"9,keyasint,omitempty"`
	IDs    []string `cbor:"10,keyasint,omitempty"`
	Invite string   `cbor:"11,keyasint,omitempty"`
	Want   bool     `cbor:"12,keyasint,omitempty"` // hello: this side asks to be a contact
}

func (m *Messenger) conn(id peer.ID) *pipes.MsgConn {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conns[id]
}

func (m *Messenger) sendFrame(ctx context.Context, c *pipes.MsgConn, f frame) error {
	b, err := enc.Marshal(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err = c.Send(ctx, b)
	return err
}

// acceptLoop takes chat connections from anyone; what they may do depends on
// whether they are a contact.
func (m *Messenger) acceptLoop(l *pipes.MsgListener) {
	defer m.wg.Done()
	for {
		c, err := l.Accept(m.ctx)
		if err != nil {
			return
		}
		m.attach(c)
	}
}

// attach makes c the current connection to its peer and starts reading it.
func (m *Messenger) attach(c *pipes.MsgConn) {
	id := c.RemotePeer()
	m.mu.Lock()
	m.conns[id] = c
	m.mu.Unlock()
	m.wg.Add(1)
	go m.readLoop(c)
	m.sendHello(m.ctx, c, id)
}

// sendHello introduces this user on a new connection: its name, mailbox key,
// presence, and where it stands as a contact.
func (m *Messenger) sendHello(ctx context.Context, c *pipes.MsgConn, id peer.ID) {
	contact, known := m.st.contact(id)
	f := frame{T: "hello", Name: m.Name(), BoxKey: m.boxPub[:], Invite: m.Invite()}
	switch {
	case known && contact.State == Accepted:
		f.Status = string(Accepted)
		f.State, f.Text = m.visiblePresence()
	case known && contact.State == Requested:
		f.Want = true
	default:
		// Not a contact (or a request we have not accepted): say nothing more.
	}
	m.sendFrame(ctx, c, f)
}

func (m *Messenger) visiblePresence() (string, string) {
	st, text := m.Presence()
	if st == string(groups.Invisible) {
		return string(groups.Offline), ""
	}
	return st, text
}

func (m *Messenger) readLoop(c *pipes.MsgConn) {
	defer m.wg.Done()
	id := c.RemotePeer()
	for {
		b, err := c.Recv(m.ctx)
		if err != nil {
			m.mu.Lock()
			current := m.conns[id] == c
			if current {
				delete(m.conns, id)
				delete(m.presence, id)
				delete(m.lastHeard, id)
			}
			m.mu.Unlock()
			c.Close()
			if current {
				if ct, ok := m.st.contact(id); ok {
					m.emit(ContactChanged{Contact: ct})
				}
			}
			return
		}
		var f frame
		if dec.Unmarshal(b, &f) != nil {
			continue
		}
		m.mu.Lock()
		m.lastHeard[id] = time.Now()
		m.mu.Unlock()
		m.handle(m.ctx, id, c, f, false)
	}
}

// handle processes one frame from id, live (c != nil) or from the mailbox.
func (m *Messenger) handle(ctx context.Context, id peer.ID, c *pipes.MsgConn, f frame, fromMailbox bool) {
	contact, known := m.st.contact(id)
	switch f.T {
	case "hello":
		changed := false
		if known {
			if f.Name != "" && f.Name != contact.Name {
				contact.Name, changed = trim(f.Name, 64), true
			}
			if len(f.BoxKey) == 32 && !slices.Equal(f.BoxKey, contact.BoxKey) {
				contact.BoxKey, changed = slices.Clone(f.BoxKey), true
			}
			if inv := inviteOf(id, f.Invite); inv != "" && inv != contact.Invite {
				contact.Invite, changed = inv, true
			}
			// They accepted us (now, or while we were apart): tell them
			// we know, with our presence.
			if contact.State == Requested && f.Status == string(Accepted) {
				contact.State, changed = Accepted, true
				if c != nil {
					defer m.sendHello(ctx, c, id)
				}
			}
		}
		if f.Want && (!known || contact.State != Accepted) {
			if !known {
				if len(f.BoxKey) != 32 {
					return
				}
				m.makeRoomForRequest()
				contact = Contact{ID: id, Name: trim(f.Name, maxNameLen), BoxKey: slices.Clone(f.BoxKey), Invite: inviteOf(id, f.Invite), State: Pending, Since: time.Now().UnixMilli()}
				// Stored before anyone hears of it, so that an Accept
				// right after the event finds it.
				if err := m.st.putContact(contact); err != nil {
					return
				}
				m.emit(ContactRequest{Contact: contact})
				m.emit(ContactChanged{Contact: contact})
				known = true
			}
		} else if f.Want && contact.State == Accepted && c != nil {
			// They ask again; we accepted long ago: say so.
			m.sendHello(ctx, c, id)
		}
		if changed {
			m.st.putContact(contact)
			m.emit(ContactChanged{Contact: contact})
		}
		if contact.State == Accepted && f.Status == string(Accepted) {
			m.setPresence(id, f.State, f.Text)
			if c != nil {
				m.flushOutbox(ctx, id)
			}
		}
	case "presence":
		if known && contact.State == Accepted {
			m.setPresence(id, f.State, f.Text)
		}
	case "room-invite":
		if known && contact.State == Accepted {
			m.handleRoomInvite(contact, f)
		}
	case "msg":
		if !known || contact.State != Accepted {
			return // nothing happens before authorization
		}
		if !fromMailbox {
			f.Time = clampTime(f.Time, time.Now())
		}
		msg := Message{ID: f.ID, Peer: id, Text: trim(f.Text, 16<<10), Time: time.UnixMilli(f.Time), Seq: f.Seq, Status: Received}
		if msg.ID == "" || len(msg.ID) > 64 {
			return
		}
		isNew, err := m.st.putMessage(&msg)
		if err != nil {
			return // not stored: no ack, so the sender tries again
		}
		if isNew {
			m.emit(MessageAdded{Message: msg})
		}
		m.ackMessages(ctx, id, c, []string{f.ID})
		m.mu.Lock()
		open := m.openChat == id
		m.mu.Unlock()
		if open {
			m.markRead(ctx, id)
		}
	case "ack", "read":
		if !known {
			return
		}
		st := Delivered
		if f.T == "read" {
			st = Read
		}
		for _, mid := range f.IDs {
			msg, ok := m.st.message(mid)
			if !ok || !msg.Out || msg.Peer != id {
				continue
			}
			msg.Status = st
			if _, err := m.st.putMessage(&msg); err == nil {
				m.emit(MessageStatus{ID: mid, Peer: id, Status: msg.Status})
			}
		}
	}
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// ackMessages confirms storage of messages to their sender: on the live pipe,
// or through the sender's mailbox.
func (m *Messenger) ackMessages(ctx context.Context, id peer.ID, c *pipes.MsgConn, ids []string) {
	if c != nil && m.sendFrame(ctx, c, frame{T: "ack", IDs: ids}) == nil {
		return
	}
	m.depositFrames(ctx, id, []frame{{T: "ack", IDs: ids, ID: newID()}})
}

func (m *Messenger) setPresence(id peer.ID, state, text string) {
	if state == "" {
		state = string(groups.Online)
	}
	m.mu.Lock()
	old := m.presence[id]
	m.presence[id] = [2]string{state, trim(text, 256)}
	m.mu.Unlock()
	if old[0] != state || old[1] != text {
		if c, ok := m.st.contact(id); ok {
			c.Presence, c.StatusText = state, text
			m.emit(ContactChanged{Contact: c})
		}
	}
}

func (m *Messenger) broadcastPresence(state, text string) {
	if state == string(groups.Invisible) {
		state, text = string(groups.Offline), ""
	}
	m.mu.Lock()
	conns := make(map[peer.ID]*pipes.MsgConn, len(m.conns))
	for id, c := range m.conns {
		conns[id] = c
	}
	m.mu.Unlock()
	for id, c := range conns {
		if ct, ok := m.st.contact(id); ok && ct.State == Accepted {
			m.sendFrame(m.ctx, c, frame{T: "presence", State: state, Text: text})
		}
	}
}

// deliver hands messages to the live pipe when there is one, else to the
// contact's mailbox on the super-peers. Either way they stay undelivered (and
// are sent again on every reconnect) until the contact acknowledges them.
func (m *Messenger) deliver(ctx context.Context, id peer.ID, msgs []Message) {
	if len(msgs) == 0 {
		return
	}
	c := m.conn(id)
	var viaMailbox []Message
	for _, msg := range msgs {
		f := frame{T: "msg", ID: msg.ID, Text: msg.Text, Time: msg.Time.UnixMilli(), Seq: msg.Seq}
		if c != nil && m.sendFrame(ctx, c, f) == nil {
			m.advance(msg, Sent)
			continue
		}
		viaMailbox = append(viaMailbox, msg)
	}
	if len(viaMailbox) == 0 {
		return
	}
	var frames []frame
	for _, msg := range viaMailbox {
		frames = append(frames, frame{T: "msg", ID: msg.ID, Text: msg.Text, Time: msg.Time.UnixMilli(), Seq: msg.Seq})
	}
	if m.depositFrames(ctx, id, frames) {
		for _, msg := range viaMailbox {
			m.advance(msg, Sent)
		}
	}
	m.wake() // try a direct connection too
}

func (m *Messenger) advance(msg Message, st Status) {
	msg.Status = st
	if _, err := m.st.putMessage(&msg); err == nil && msg.Status == st {
		m.emit(MessageStatus{ID: msg.ID, Peer: msg.Peer, Status: st})
	}
}

func (m *Messenger) flushOutbox(ctx context.Context, id peer.ID) {
	m.deliver(ctx, id, m.st.undelivered(id))
}

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

// connectLoop keeps a chat connection to every contact that can be reached,
// checks the mailbox, sends heartbeats and handles auto-away. Dials run
// concurrently, so an unreachable contact never holds up the others.
func (m *Messenger) connectLoop() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.Heartbeat)
	defer t.Stop()
	type dialResult struct {
		id  peer.ID
		err error
	}
	results := make(chan dialResult)
	dialing := map[peer.ID]bool{}
	next := map[peer.ID]time.Time{}
	fails := map[peer.ID]int{}
	lastFetch := time.Time{}
	for {
		now := time.Now()
		if now.Sub(lastFetch) > 30*time.Second || lastFetch.IsZero() {
			m.fetchMailbox(m.ctx)
			lastFetch = time.Now()
		}
		for _, c := range m.st.contacts() {
			if !dialable(c) || dialing[c.ID] || m.conn(c.ID) != nil || now.Before(next[c.ID]) {
				continue
			}
			dialing[c.ID] = true
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				err := m.dial(c)
				select {
				case results <- dialResult{c.ID, err}:
				case <-m.ctx.Done():
				}
			}()
		}
		m.autoAwayCheck(now)
		select {
		case <-m.ctx.Done():
			return
		case r := <-results:
			delete(dialing, r.id)
			if r.err != nil {
				fails[r.id]++
				next[r.id] = time.Now().Add(min(time.Duration(1<<min(fails[r.id], 6))*time.Second, time.Minute))
			} else {
				fails[r.id] = 0
			}
		case <-t.C:
			st, text := m.visiblePresence()
			m.broadcastPresence(st, text)
			m.expirePresence()
		case <-m.kick:
			for id := range next {
				if fails[id] < 2 {
					delete(next, id)
				}
			}
		}
	}
}

func (m *Messenger) dial(c Contact) error {
	ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
	defer cancel()
	if c.Invite != "" {
		a, err := peer.ParseAddr(c.Invite)
		if err == nil {
			_, err = m.p.Connect(ctx, a)
		}
		if err != nil {
			if _, err := m.p.Connect(ctx, peer.Addr{ID: c.ID}); err != nil {
				return err
			}
		}
	}
	conn, err := m.ps.DialMessages(ctx, chatPipe, pipes.MessageConfig{Reliable: true, MaxMessage: 64 << 10}, pipes.ToPeer(c.ID))
	if err != nil {
		return err
	}
	m.attach(conn)
	return nil
}

// expirePresence shows contacts offline after three silent heartbeats.
func (m *Messenger) expirePresence() {
	limit := 3 * m.cfg.Heartbeat
	var gone []peer.ID
	m.mu.Lock()
	for id := range m.presence {
		if time.Since(m.lastHeard[id]) > limit {
			delete(m.presence, id)
			gone = append(gone, id)
		}
	}
	m.mu.Unlock()
	for _, id := range gone {
		if c, ok := m.st.contact(id); ok {
			c.Presence = string(groups.Offline)
			m.emit(ContactChanged{Contact: c})
		}
	}
}

func (m *Messenger) autoAwayCheck(now time.Time) {
	if m.cfg.AutoAway < 0 {
		return
	}
	m.mu.Lock()
	idle := now.Sub(m.active) > m.cfg.AutoAway && m.state == string(groups.Online)
	if idle {
		m.state, m.autoAway = string(groups.Away), true
	}
	text := m.text
	m.mu.Unlock()
	if idle {
		m.broadcastPresence(string(groups.Away), text)
		m.emit(PresenceChanged{State: string(groups.Away), Text: text, Auto: true})
	}
}

// watchPeers reacts to connections: a super-peer coming up means the mailbox
// can be checked; a contact coming up can be dialled at once.
func (m *Messenger) watchPeers() {
	defer m.wg.Done()
	sub := m.p.Subscribe(m.ctx, 0)
	for ev := range sub.C {
		if pc, ok := ev.(peer.PeerConnected); ok {
			if slices.ContainsFunc(m.p.SuperPeers(), func(a peer.Addr) bool { return a.ID == pc.Peer }) {
				m.fetchMailbox(m.ctx)
			}
			if _, ok := m.st.contact(pc.Peer); ok {
				m.wake()
			}
		}
	}
}

func (s *store) setIncomingStatus(id string, st Status) {
	_ = s.db.Update(func(tx *bolt.Tx) error {
		ids, msgs := tx.Bucket(bByID), tx.Bucket(bMessages)
		k := ids.Get([]byte(id))
		if k == nil {
			return errors.New("gone")
		}
		var msg Message
		if err := dec.Unmarshal(msgs.Get(k), &msg); err != nil {
			return err
		}
		msg.Status = st
		v, err := enc.Marshal(msg)
		if err != nil {
			return err
		}
		return msgs.Put(k, v)
	})
}
