package pipes

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"
)

func dataFrame(seq uint64, data []byte) []byte {
	f := make([]byte, 0, frameOverhead+len(data))
	f = append(f, fData)
	f = binary.AppendUvarint(f, seq)
	return append(f, data...)
}

func (c *MsgConn) ackLocked(n uint64) {
	if n <= c.acked {
		return
	}
	if n >= c.nextSeq {
		n = c.nextSeq - 1 // a hostile or confused peer cannot ack the future
	}
	c.acked = n
	i := 0
	for i < len(c.unacked) && c.unacked[i].seq <= n {
		c.ubytes -= len(c.unacked[i].data)
		i++
	}
	c.unacked = append(c.unacked[:0], c.unacked[i:]...)
	c.signalLocked()
}

// read runs one stream generation's reader.
func (c *MsgConn) read(gen int, str network.Stream, r msgio.ReadCloser) {
	defer c.wg.Done()
	for {
		b, err := r.ReadMsg()
		if err != nil {
			if errors.Is(err, msgio.ErrMsgTooLarge) {
				c.s.log.Debug("oversized frame; stream reset", "peer", c.remote, "pipe", c.id)
			}
			c.breakStream(gen, err)
			return
		}
		ok := c.frame(gen, str, b)
		r.ReleaseMsg(b)
		if !ok {
			return
		}
	}
}

// frame handles one frame; false stops the reader.
func (c *MsgConn) frame(gen int, str network.Stream, b []byte) bool {
	typ, n, data, err := parseFrame(b)
	if err != nil {
		c.breakStream(gen, fmt.Errorf("frame type %d: %w", typ, err))
		return false
	}
	switch typ {
	case fData:
		return c.deliver(gen, n, bytes.Clone(data))
	case fAck:
		c.mu.Lock()
		c.ackLocked(n)
		c.mu.Unlock()
		return true
	case fClose:
		c.mu.Lock()
		c.eof = true
		c.signalLocked()
		c.mu.Unlock()
		c.cancel()
		str.Close()
		c.forget()
		return false
	}
	c.breakStream(gen, fmt.Errorf("unknown frame type %d", b[0]))
	return false
}

// deliver queues one received message, in order and once.
func (c *MsgConn) deliver(gen int, seq uint64, data []byte) bool {
	c.mu.Lock()
	for len(c.inq) >= inboxMax || (len(c.inq) > 0 && c.inqBytes+len(data) > c.cfg.WindowBytes) {
		if c.gen != gen || c.closed || c.err != nil {
			c.mu.Unlock()
			return false
		}
		ch := c.changed
		c.mu.Unlock()
		<-ch
		c.mu.Lock()
	}
	if c.gen != gen || c.closed || c.err != nil {
		c.mu.Unlock()
		return false
	}
	if c.reliable {
		if seq != c.recvSeq+1 {
			// A duplicate from a resend: drop it, but ack so the sender
			// frees its buffer.
			c.owedAckLocked(gen, true)
			c.mu.Unlock()
			return true
		}
		c.recvSeq = seq
	}
	c.inq = append(c.inq, data)
	c.inqBytes += len(data)
	c.signalLocked()
	if c.reliable {
		c.owedAckLocked(gen, false)
	}
	c.mu.Unlock()
	return true
}

// Acks are cumulative and coalesced: one per ackEvery messages, or after
// ackDelay, whichever comes first.
const (
	ackEvery = 32
	ackDelay = 5 * time.Millisecond
)

func (c *MsgConn) owedAckLocked(gen int, now bool) {
	c.ackOwed++
	if now || c.ackOwed >= ackEvery {
		c.ackOwed = 0
		if !c.ackBusy { // at most one ack in flight; it sends the latest recvSeq
			c.ackBusy = true
			c.sendAckAsync(gen)
		}
		return
	}
	if c.ackTimer == nil {
		c.ackTimer = time.AfterFunc(ackDelay, func() {
			c.mu.Lock()
			c.ackTimer = nil
			owed, seq, g := c.ackOwed, c.recvSeq, c.gen
			c.ackOwed = 0
			c.mu.Unlock()
			if owed > 0 {
				c.sendAck(g, seq)
			}
		})
	}
}

func (c *MsgConn) sendAckAsync(gen int) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		c.mu.Lock()
		seq := c.recvSeq
		c.mu.Unlock()
		c.sendAck(gen, seq)
		c.mu.Lock()
		c.ackBusy = false
		c.mu.Unlock()
	}()
}

func (c *MsgConn) sendAck(gen int, seq uint64) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	w, cur, broken := c.w, c.gen, c.broken
	c.mu.Unlock()
	if w == nil || cur != gen || broken {
		return
	}
	if err := w.WriteMsg(binary.AppendUvarint([]byte{fAck}, seq)); err != nil {
		c.breakStream(gen, err)
	}
}
