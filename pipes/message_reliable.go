package pipes

import (
	"errors"
	"fmt"
	"time"

	pool "github.com/libp2p/go-buffer-pool"
	"github.com/libp2p/go-libp2p/core/network"
)

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
		c.ubytes -= c.unacked[i].size()
		c.freed = append(c.freed, c.unacked[i].buf)
		c.unacked[i] = outMsg{}
		i++
	}
	// Drop the front without moving the rest: append reallocates once the
	// array's end is reached, copying only what is still unacknowledged.
	// With everything acknowledged, as between the messages of a
	// request-response exchange, the array is reused from its start.
	if i == len(c.unacked) {
		c.unacked = c.unacked[:0]
	} else {
		c.unacked = c.unacked[i:]
	}
	// A frame may still be in a write (a Send's, or a resend's, both under
	// wmu; a hostile peer can ack what is not written yet): the buffers go
	// back to the pool only under wmu, here if it is free, else at the next
	// Send.
	if len(c.freed) > 0 && c.wmu.TryLock() {
		c.releaseFreedLocked()
		c.wmu.Unlock()
	}
	c.signalLocked()
}

// releaseFreedLocked returns the buffers of acknowledged messages to the
// pool. Called with wmu and mu held: no write is using them.
func (c *MsgConn) releaseFreedLocked() {
	for i, b := range c.freed {
		pool.Put(b)
		c.freed[i] = nil
	}
	c.freed = c.freed[:0]
}

// read runs one stream generation's reader.
func (c *MsgConn) read(gen int, str network.Stream, r *frameReader) {
	defer c.wg.Done()
	for {
		typ, n, data, err := r.nextFrame()
		if err != nil {
			switch {
			case errors.Is(err, errFrameTooLarge):
				c.s.log.Debug("oversized frame; stream reset", "peer", c.remote, "pipe", c.id)
			case errors.Is(err, errBadFrame):
				err = fmt.Errorf("frame type %d: %w", typ, err)
			}
			c.breakStream(gen, err)
			return
		}
		if !c.frame(gen, str, typ, n, data) {
			return
		}
	}
}

// frame handles one frame; false stops the reader.
func (c *MsgConn) frame(gen int, str network.Stream, typ byte, n uint64, data []byte) bool {
	switch typ {
	case fData:
		return c.deliver(gen, n, data) // data is ours: Recv hands it out as is
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
	c.breakStream(gen, fmt.Errorf("unknown frame type %d", typ))
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
		ch := c.waitChLocked()
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
			c.owedAckLocked(true, 0)
			c.mu.Unlock()
			pool.Put(data)
			return true
		}
		c.recvSeq = seq
	}
	c.inq = append(c.inq, data)
	c.inqBytes += len(data)
	c.signalLocked()
	if c.reliable {
		c.owedAckLocked(false, len(data))
	}
	c.mu.Unlock()
	return true
}

// Acks are cumulative and coalesced: one per ackEvery messages, or after
// ackDelay, whichever comes first; sooner when the sender told a window
// smaller than that (half of it, in messages or in bytes), so that a
// sender with a small window is not left waiting for the timer. One goroutine per reliable connection
// (ackLoop) writes them, always the latest count, so that the reader never
// blocks on a write (two peers whose readers each waited to write an ack to
// the other, while neither read, would deadlock) and no ack waits for a
// goroutine to start.
const (
	ackEvery = 32
	ackDelay = 5 * time.Millisecond
)

func (c *MsgConn) owedAckLocked(now bool, size int) {
	c.ackOwed++
	c.ackBytes += size
	if now || c.ackDueLocked() {
		c.ackOwed, c.ackBytes = 0, 0
		c.kickAck()
		return
	}
	if c.ackArmed {
		return
	}
	c.ackArmed = true
	if c.ackTimer == nil {
		c.ackTimer = time.AfterFunc(c.ackDelay(), c.ackTimeout)
	} else {
		c.ackTimer.Reset(c.ackDelay())
	}
}

func (c *MsgConn) ackDelay() time.Duration {
	if d := c.s.ackDelay; d > 0 {
		return d
	}
	return ackDelay
}

// ackDueLocked: enough is owed to ack now.
func (c *MsgConn) ackDueLocked() bool {
	every := ackEvery
	if w := c.peerWin.msgs; w > 0 {
		every = min(every, max(1, w/2))
	}
	if c.ackOwed >= every {
		return true
	}
	return c.peerWin.bytes > 0 && c.ackBytes >= max(1, c.peerWin.bytes/2)
}

func (c *MsgConn) ackTimeout() {
	c.mu.Lock()
	c.ackArmed = false
	owed := c.ackOwed
	c.ackOwed, c.ackBytes = 0, 0
	c.mu.Unlock()
	if owed > 0 {
		c.kickAck()
	}
}

// kickAck asks ackLoop for an ack; it never blocks.
func (c *MsgConn) kickAck() {
	select {
	case c.ackKick <- struct{}{}:
	default: // one is pending; it will carry the latest count
	}
}

// ackLoop writes the acks of a reliable connection until it ends.
func (c *MsgConn) ackLoop() {
	defer c.wg.Done()
	var sent uint64 // acked on stream generation sentGen
	sentGen := -1
	for {
		select {
		case <-c.ackKick:
		case <-c.ctx.Done():
			return
		}
		c.mu.Lock()
		seq, gen := c.recvSeq, c.gen
		c.mu.Unlock()
		if seq == 0 || (seq == sent && gen == sentGen) {
			continue
		}
		if c.sendAck(gen, seq) {
			sent, sentGen = seq, gen
		}
	}
}

// sendAck writes an ack of seq on stream generation gen, if it is still the
// current one, and reports whether it did.
func (c *MsgConn) sendAck(gen int, seq uint64) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	str, cur, broken := c.str, c.gen, c.broken
	c.mu.Unlock()
	if str == nil || cur != gen || broken {
		return false
	}
	if _, err := str.Write(smallFrame(fAck, seq, true)); err != nil {
		c.breakStream(gen, err)
		return false
	}
	return true
}
