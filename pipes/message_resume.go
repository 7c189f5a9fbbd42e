package pipes

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/juxta-p2p/juxta/peer"
)

// resendTimeout bounds the resend of the buffer on a new stream.
const resendTimeout = 10 * time.Second

// connect opens a stream and says hello; resume says this continues a session.
func (c *MsgConn) connect(ctx context.Context, resume bool) error {
	str, err := c.s.openStream(ctx, c.remote, c.s.protocolFor(KindMessage, c.id))
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(d)
	}
	// Cancelling ctx abandons the hello (resume starts over on a new path).
	unwatch := context.AfterFunc(ctx, func() { str.Reset() })
	flags := byte(0)
	if c.reliable {
		flags |= helloReliable
	}
	if resume {
		flags |= helloResume
	}
	c.mu.Lock()
	recv := c.recvSeq
	c.mu.Unlock()
	hello := append([]byte{flags}, c.sid[:]...)
	hello = binary.AppendUvarint(hello, recv)
	hello = appendWindow(hello, c.cfg.window())
	r := newFrameReader(str, c.cfg.MaxMessage+frameOverhead)
	if err := writeFrame(str, fHello, hello); err != nil {
		str.Reset()
		return err
	}
	b, err := r.next()
	if err != nil {
		str.Reset()
		return fmt.Errorf("hello: %w", err)
	}
	if len(b) >= 1 && b[0] == fRefuse {
		str.Reset()
		return fmt.Errorf("%w: the listener no longer knows this session", ErrSessionLost)
	}
	if len(b) < 2 || b[0] != fHelloAck {
		str.Reset()
		return fmt.Errorf("%w: bad hello answer", ErrSessionLost)
	}
	peerRecv, n := binary.Uvarint(b[1:])
	if n <= 0 {
		str.Reset()
		return fmt.Errorf("%w: bad hello answer", ErrSessionLost)
	}
	c.mu.Lock()
	c.peerWin = parseWindow(b[1+n:])
	c.mu.Unlock()
	if !unwatch() {
		return fmt.Errorf("hello: %w", ctx.Err()) // reset by the cancellation
	}
	_ = str.SetDeadline(time.Time{})
	c.attach(str, r, peerRecv, false)
	return nil
}

// attach makes str the connection's stream: it answers the hello (listener
// side), drops what the other side already has, resends the rest in order, and
// starts the reader.
func (c *MsgConn) attach(str network.Stream, r *frameReader, peerRecv uint64, answer bool) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.closed || c.err != nil {
		c.mu.Unlock()
		str.Reset()
		return
	}
	old := c.str
	c.gen++
	gen := c.gen
	c.str, c.broken = str, false
	c.ackLocked(peerRecv)
	resend := append([]outMsg(nil), c.unacked...)
	recv := c.recvSeq
	c.signalLocked()
	c.mu.Unlock()
	if old != nil {
		old.Reset()
	}
	// The resend must not hold the write lock forever on a peer that does
	// not read: past the deadline the stream breaks and resumes again,
	// within ResumeTimeout.
	_ = str.SetWriteDeadline(time.Now().Add(resendTimeout))
	var err error
	if answer {
		b := appendWindow(binary.AppendUvarint([]byte{fHelloAck}, recv), c.cfg.window())
		_, err = str.Write(append(binary.AppendUvarint(make([]byte, 0, maxHeader+len(b)), uint64(len(b))), b...))
	}
	for _, m := range resend {
		if err != nil {
			break
		}
		_, err = str.Write(m.frame()) // sealed with its sequence number on Send
	}
	_ = str.SetWriteDeadline(time.Time{})
	c.wg.Add(1)
	go c.read(gen, str, r)
	if err != nil {
		c.breakStream(gen, err)
	}
}

// breakStream handles the failure of stream generation gen. An unreliable
// pipe ends; a reliable dialer resumes on a new stream; a reliable listener
// waits for the dialer to resume.
func (c *MsgConn) breakStream(gen int, cause error) {
	c.mu.Lock()
	if c.gen != gen || c.broken || c.closed || c.err != nil {
		c.mu.Unlock()
		return
	}
	c.broken = true
	c.lostAt = time.Now()
	str := c.str
	c.signalLocked()
	c.mu.Unlock()
	if str != nil {
		str.Reset()
	}
	if !c.reliable {
		c.fail(c.opErr("read", cause))
		return
	}
	if c.dialer {
		c.wg.Add(1)
		go c.resume(cause)
		return
	}
	c.wg.Add(1)
	go c.awaitResume(gen, cause)
}

// resume dials the same peer again until the session continues, the pipe
// closes, or ResumeTimeout passes. A new path to the peer (it came back
// after its network changed, a relay or a hole punch found it) cuts the
// backoff short, and an attempt that has hung for staleAttempt, most likely
// on a path that died, is abandoned for one on the new path.
func (c *MsgConn) resume(cause error) {
	defer c.wg.Done()
	deadline := time.Now().Add(c.cfg.ResumeTimeout)
	backoff := 50 * time.Millisecond
	newPath, stop := c.watchNewPath()
	defer stop()
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		started := time.Now()
		attempt := make(chan error, 1)
		go func() { attempt <- c.connect(ctx, true) }()
		var err error
		// A new path that comes while the attempt is young makes the
		// attempt stale once it is staleAttempt old: the path it hangs on
		// may have died just after the new one came, and no further
		// event would come to cut it short.
		var stale <-chan time.Time
	wait:
		for {
			select {
			case err = <-attempt:
				break wait
			case <-newPath:
				if age := time.Since(started); age > staleAttempt {
					cancel()
				} else if stale == nil {
					stale = time.After(staleAttempt - age)
				}
			case <-stale:
				cancel()
			}
		}
		cancel()
		if err == nil {
			return
		}
		c.mu.Lock()
		done := c.closed || c.err != nil || !c.broken
		c.mu.Unlock()
		if done {
			return
		}
		if errors.Is(err, ErrSessionLost) || time.Now().After(deadline) {
			c.fail(fmt.Errorf("%w: %v (first break: %v)", ErrSessionLost, err, cause))
			return
		}
		select {
		case <-c.ctx.Done():
			c.fail(c.opErr("resume", net.ErrClosed))
			return
		case <-newPath:
			backoff = 50 * time.Millisecond
		case <-time.After(backoff):
			backoff = min(backoff*2, 2*time.Second)
		}
	}
}

// staleAttempt is how long a resume attempt may run before a new path to
// the peer makes it start over: a healthy one, over a relay, takes a few
// round trips.
const staleAttempt = 2 * time.Second

// watchNewPath signals, without blocking, every new connection or path
// change to the remote peer, until stop.
func (c *MsgConn) watchNewPath() (<-chan struct{}, func()) {
	ctx, cancel := context.WithCancel(c.ctx)
	sub := c.s.p.Subscribe(ctx, 0)
	ch := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range sub.C {
			var id peer.ID
			switch e := ev.(type) {
			case peer.PeerConnected:
				id = e.Peer
			case peer.PathChanged:
				id = e.Peer
			}
			if id == c.remote {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
	}()
	return ch, func() { cancel(); <-done }
}

// awaitResume fails the listener side's session if the dialer does not come
// back in time.
func (c *MsgConn) awaitResume(gen int, cause error) {
	defer c.wg.Done()
	t := time.NewTimer(c.resumeWait())
	defer t.Stop()
	for {
		c.mu.Lock()
		back := c.gen != gen || c.closed || c.err != nil
		ch := c.waitChLocked()
		c.mu.Unlock()
		if back {
			return
		}
		select {
		case <-ch:
		case <-t.C:
			c.fail(fmt.Errorf("%w: the dialer did not resume: %v", ErrSessionLost, cause))
			return
		case <-c.ctx.Done():
			return
		}
	}
}

// followPath moves a reliable dialer's session to a direct connection when one
// appears while its stream runs over a relay.
func (c *MsgConn) followPath() {
	defer c.wg.Done()
	sub := c.s.p.Subscribe(c.ctx, 0)
	for ev := range sub.C {
		pc, isPath := ev.(peer.PathChanged)
		if !isPath || pc.Peer != c.remote || pc.To != peer.PathDirect || c.Path() != peer.PathRelayed {
			continue
		}
		cctx, ccancel := context.WithTimeout(c.ctx, 10*time.Second)
		err := c.connect(cctx, true)
		ccancel()
		if err != nil {
			c.s.log.Debug("move to direct connection failed", "peer", c.remote, "err", err)
		}
	}
}
