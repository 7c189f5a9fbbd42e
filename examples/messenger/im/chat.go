package im

import (
	"context"
	"time"

	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// handleChat stores a chat message from an accepted contact, live (c != nil)
// or from the mailbox, acknowledges it and marks it read if its chat is open.
func (m *Messenger) handleChat(ctx context.Context, id peer.ID, c *pipes.MsgConn, f frame, fromMailbox bool) {
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
}
