package im

import (
	"context"
	"errors"

	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// ackMessages confirms storage of messages to their sender: on the live pipe,
// or through the sender's mailbox.
func (m *Messenger) ackMessages(ctx context.Context, id peer.ID, c *pipes.MsgConn, ids []string) {
	if c != nil && m.sendFrame(ctx, c, frame{T: "ack", IDs: ids}) == nil {
		return
	}
	m.depositFrames(ctx, id, []frame{{T: "ack", IDs: ids, ID: newID()}})
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
