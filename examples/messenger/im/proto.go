package im

import (
	"context"
	"slices"
	"time"

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
		m.handleHello(ctx, id, c, f, contact, known)
	case "presence":
		if known && contact.State == Accepted {
			m.setPresence(id, f.State, f.Text)
		}
	case "room-invite":
		if known && contact.State == Accepted {
			m.handleRoomInvite(contact, f)
		}
	case "msg":
		if known && contact.State == Accepted { // nothing happens before authorization
			m.handleChat(ctx, id, c, f, fromMailbox)
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

// handleHello processes a hello frame from id: it updates a known contact's
// name, box key and invite, records a contact request, and answers.
func (m *Messenger) handleHello(ctx context.Context, id peer.ID, c *pipes.MsgConn, f frame, contact Contact, known bool) {
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
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
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
