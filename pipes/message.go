package pipes

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	pool "github.com/libp2p/go-buffer-pool"
	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/peer"
)

// MessageConfig configures a message pipe. Both ends use their own; the
// dialer's Reliable setting decides the mode of a connection.
type MessageConfig struct {
	// MaxMessage bounds one message, in bytes, on both sides. Default 1 MiB.
	MaxMessage int
	// Reliable delivers every message exactly once and in order across
	// reconnects, with delivery acknowledgements.
	Reliable bool
	// Window bounds the resend buffer of a reliable pipe: messages sent but not
	// yet acknowledged. Send blocks while it is full. Default 256.
	Window int
	// WindowBytes bounds the same buffer in bytes. Default 8 MiB.
	WindowBytes int
	// ResumeTimeout is how long a reliable pipe tries to resume after its stream
	// breaks before failing with ErrSessionLost. Default 2 min.
	ResumeTimeout time.Duration
}

// window is what a receiver is told of this side's send window.
func (c MessageConfig) window() window { return window{c.Window, c.WindowBytes} }

// setPeerWindow records the window the other side told.
func (c *MsgConn) setPeerWindow(w window) {
	c.mu.Lock()
	c.peerWin = w
	c.mu.Unlock()
}

func (c *MessageConfig) defaults() {
	if c.MaxMessage <= 0 {
		c.MaxMessage = 1 << 20
	}
	if c.Window <= 0 {
		c.Window = 256
	}
	if c.WindowBytes <= 0 {
		c.WindowBytes = 8 << 20
	}
	if c.ResumeTimeout <= 0 {
		c.ResumeTimeout = 2 * time.Minute
	}
}

// Frame types.
const (
	fHello    byte = 1 // dialer → listener, first frame of every stream
	fHelloAck byte = 2 // listener → dialer
	fData     byte = 3
	fAck      byte = 4
	fClose    byte = 5
	fRefuse   byte = 6 // listener → dialer: unknown session or denied
)

const sidLen = 16

// hello: type | flags | sid | recvSeq (uvarint)
const (
	helloReliable byte = 1 << iota
	helloResume
)

// frameOverhead bounds what framing adds to a message.
const frameOverhead = 1 + binary.MaxVarintLen64

// MsgConn is one message-pipe connection. Send and Recv may be used from
// different goroutines.
type MsgConn struct {
	s        *Service
	id       string
	remote   peer.ID
	cfg      MessageConfig
	reliable bool
	dialer   bool // the side that dials again to resume
	sid      [sidLen]byte
	ctx      context.Context // cancelled when the connection ends
	cancel   context.CancelFunc

	wmu   sync.Mutex // serialises writes to the current stream
	watch sendWatch  // bounds a Send's write by its ctx

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on a state change someone waits for; guarded by mu
	waiting  bool          // someone waits on changed; guarded by mu
	str      network.Stream
	gen      int       // stream generation; guarded by mu
	broken   bool      // the current stream failed; guarded by mu
	lostAt   time.Time // when the stream broke; guarded by mu
	nextSeq  uint64    // next sequence number to assign (from 1)
	unacked  []outMsg  // sent, not yet acknowledged, in order
	ubytes   int       // bytes in unacked
	freed    [][]byte  // buffers of acknowledged messages, for the pool once no write can use them
	acked    uint64    // highest cumulatively acknowledged
	recvSeq  uint64    // highest delivered in order
	ackOwed  int       // messages delivered since our last ack
	ackBytes int       // their bytes
	peerWin  window    // the sender's window, as it told; guarded by mu
	ackTimer *time.Timer
	ackArmed bool          // ackTimer is running; guarded by mu
	ackKick  chan struct{} // wakes ackLoop (reliable pipes); capacity 1
	inqBytes int           // bytes in inq; guarded by mu
	inq      [][]byte      // delivered, not yet read
	eof      bool          // the other side closed
	closed   bool          // Close was called
	err      error         // terminal error
	wg       sync.WaitGroup
}

// outMsg is a sent message kept for resending: its pooled buffer, whose
// suffix from off is the whole frame as written.
type outMsg struct {
	seq uint64
	buf []byte
	off int
}

func (m outMsg) frame() []byte { return m.buf[m.off:] }

// size is the message's payload size.
func (m outMsg) size() int { return len(m.buf) - maxHeader }

// newMsgConn fails with net.ErrClosed once the service is closing: a
// connection made then would have nobody to close it.
func (s *Service) newMsgConn(id string, remote peer.ID, cfg MessageConfig, reliable, dialer bool, sid [sidLen]byte) (*MsgConn, error) {
	c := &MsgConn{
		s: s, id: id, remote: remote, cfg: cfg, reliable: reliable, dialer: dialer, sid: sid,
		changed: make(chan struct{}), nextSeq: 1,
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	if reliable {
		// Started before the connection is tracked, so that Close (which
		// tracking makes reachable from Service.Close) waits for it.
		c.ackKick = make(chan struct{}, 1)
		c.wg.Add(1)
		go c.ackLoop()
	}
	if !s.track(c, func() { c.Close() }) {
		c.cancel()
		c.wg.Wait()
		return nil, fmt.Errorf("pipes: %w", net.ErrClosed)
	}
	return c, nil
}

// DialMessages connects to the message pipe id, resolving its bindings like
// Dial. With cfg.Reliable, the connection resumes on a new stream when its
// stream breaks, and moves to a direct connection when one appears.
func (s *Service) DialMessages(ctx context.Context, id string, cfg MessageConfig, opts ...DialOption) (*MsgConn, error) {
	cfg.defaults()
	var sid [sidLen]byte
	_, _ = rand.Read(sid[:])
	var conn *MsgConn
	err := s.resolve(ctx, KindMessage, id, opts, func(ctx context.Context, pid peer.ID) error {
		c, err := s.newMsgConn(id, pid, cfg, cfg.Reliable, true, sid)
		if err != nil {
			return err
		}
		if err := c.connect(ctx, false); err != nil {
			c.fail(err)
			return err
		}
		conn = c
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pipes: dial %s: %w", id, err)
	}
	// A Service.Close during the dial may have closed conn already. The
	// WaitGroup is added to under mu and only while open: Close sets closed
	// under mu before it waits on wg.
	conn.mu.Lock()
	if conn.closed {
		conn.mu.Unlock()
		return nil, fmt.Errorf("pipes: dial %s: %w", id, net.ErrClosed)
	}
	if conn.reliable {
		conn.wg.Add(1)
		go conn.followPath()
	}
	conn.mu.Unlock()
	return conn, nil
}

// Send queues msg and writes it. On a reliable pipe it returns the message's
// sequence number, for WaitDelivered; it blocks while the resend buffer is
// full, until ctx ends, and never drops a message silently. A message larger
// than MaxMessage fails with ErrTooLarge and leaves the pipe usable.
func (c *MsgConn) Send(ctx context.Context, msg []byte) (uint64, error) {
	if len(msg) > c.cfg.MaxMessage {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), c.cfg.MaxMessage)
	}
	// The one copy of msg: into its frame, a pooled buffer, which a
	// reliable pipe keeps for resending until the message is acknowledged.
	buf := pool.Get(maxHeader + len(msg))
	queued := false
	defer func() {
		if !queued {
			pool.Put(buf)
		}
	}()
	frameBuf(buf, msg)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	for c.reliable && c.err == nil && !c.closed &&
		(len(c.unacked) >= c.cfg.Window || (c.ubytes > 0 && c.ubytes+len(msg) > c.cfg.WindowBytes)) {
		ch := c.waitChLocked()
		c.mu.Unlock()
		c.wmu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			c.wmu.Lock()
			return 0, ctx.Err()
		}
		c.wmu.Lock()
		c.mu.Lock()
	}
	if err := c.stateErrLocked(); err != nil {
		c.mu.Unlock()
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return 0, err // nothing queued: a message is sent, or Send fails
	}
	var seq uint64
	if c.reliable {
		seq = c.nextSeq
		c.nextSeq++
	}
	frame := sealFrame(buf, fData, seq)
	if c.reliable {
		c.unacked = append(c.unacked, outMsg{seq, buf, len(buf) - len(frame)})
		c.ubytes += len(msg)
		queued = true
		c.releaseFreedLocked()
	}
	str, gen, broken := c.str, c.gen, c.broken
	c.mu.Unlock()
	if broken || str == nil {
		if c.reliable {
			return seq, nil // resent on resume
		}
		return 0, c.opErr("send", io.ErrClosedPipe)
	}
	// ctx bounds the write too: a peer that stops reading must not hold Send
	// (and wmu) forever. On a reliable pipe the message stays in the resend
	// buffer and goes out again on the resumed stream.
	if err := c.watch.begin(ctx, str); err != nil {
		// ctx ended, or the connection did, after the check above: nothing
		// is written, so nothing stays queued and the stream is left as it
		// is (still holding wmu, no other Send has queued since).
		c.unqueue(seq)
		if errors.Is(err, net.ErrClosed) {
			err = c.opErr("send", err)
		}
		return 0, err
	}
	_, err := str.Write(frame)
	c.watch.end(str)
	if err != nil {
		c.breakStream(gen, err)
		if !c.reliable {
			return 0, c.opErr("send", err)
		}
	}
	return seq, nil
}

// unqueue takes back the message with sequence number seq, the last one
// queued, which was never written. Called with wmu held.
func (c *MsgConn) unqueue(seq uint64) {
	if !c.reliable {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := len(c.unacked) - 1; k >= 0 && c.unacked[k].seq == seq && c.nextSeq == seq+1 {
		c.ubytes -= c.unacked[k].size()
		pool.Put(c.unacked[k].buf) // never written
		c.unacked[k] = outMsg{}
		c.unacked = c.unacked[:k]
		c.nextSeq = seq
		c.signalLocked()
	}
}

// WaitDelivered blocks until the other side has received the message with
// sequence number seq (from Send on a reliable pipe), or ctx ends.
func (c *MsgConn) WaitDelivered(ctx context.Context, seq uint64) error {
	if !c.reliable {
		return errors.New("pipes: delivery receipts need a reliable pipe")
	}
	c.mu.Lock()
	for c.acked < seq {
		if err := c.stateErrLocked(); err != nil {
			c.mu.Unlock()
			return err
		}
		ch := c.waitChLocked()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		c.mu.Lock()
	}
	c.mu.Unlock()
	return nil
}

// Delivered is the highest sequence number the other side has acknowledged:
// every message up to it has been received.
func (c *MsgConn) Delivered() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked
}

// Buffered is how many sent messages await acknowledgement.
func (c *MsgConn) Buffered() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.unacked)
}

// Recv returns the next message, which is the caller's: after use, Release
// may give it back for reuse. After the other side closes it returns io.EOF
// once every message has been read.
func (c *MsgConn) Recv(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	for len(c.inq) == 0 {
		if c.eof {
			c.mu.Unlock()
			return nil, io.EOF
		}
		if err := c.stateErrLocked(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
		ch := c.waitChLocked()
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	m := c.inq[0]
	c.inq[0] = nil
	if len(c.inq) == 1 {
		c.inq = c.inq[:0] // the next message reuses the array
	} else {
		c.inq = c.inq[1:]
	}
	c.inqBytes -= len(m)
	c.signalLocked()
	c.mu.Unlock()
	return m, nil
}

// Release gives back a message Recv returned, once the caller is done with
// it, so that a later message reuses its memory (as go-msgio's ReleaseMsg
// does). The message must not be used after. Calling it is optional: a
// message not released is garbage collected.
func (c *MsgConn) Release(msg []byte) {
	pool.Put(msg)
}

// RemotePeer is the peer at the other end.
func (c *MsgConn) RemotePeer() peer.ID { return c.remote }

// Path reports how the current stream runs: direct or relayed.
func (c *MsgConn) Path() peer.Path {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.str == nil || c.broken {
		return peer.PathNone
	}
	if _, err := c.str.Conn().RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT); err == nil || c.str.Conn().Stat().Limited {
		return peer.PathRelayed
	}
	return peer.PathDirect
}

// Close ends the connection: the other side reads io.EOF after what it has
// received. Unacknowledged messages are abandoned. A second call returns
// net.ErrClosed.
func (c *MsgConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("pipes: close: %w", net.ErrClosed)
	}
	c.closed = true
	str := c.str
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
	c.signalLocked()
	c.mu.Unlock()
	if str != nil {
		// A write stuck on a peer that stopped reading holds wmu: bound it
		// before waiting for the lock.
		_ = str.SetWriteDeadline(time.Now().Add(time.Second))
		c.wmu.Lock()
		// Again: a Send that held wmu may have cleared it on its way out.
		_ = str.SetWriteDeadline(time.Now().Add(time.Second))
		_, _ = str.Write(smallFrame(fClose, 0, false))
		c.wmu.Unlock()
		_ = str.CloseWrite()
		// The other side closes its end on fClose; do not wait for it long.
		t := time.AfterFunc(time.Second, func() { str.Reset() })
		defer t.Stop()
	}
	c.cancel()
	c.forget()
	c.wg.Wait()
	return nil
}

// forget unregisters an ended connection: from the service, and from the
// ctx its last Send registered, whether or not Close is ever called.
func (c *MsgConn) forget() {
	c.watch.close()
	c.s.mu.Lock()
	c.s.deleteSessionLocked(sessionKey(c.s.scope, c.id, c.remote, c.sid), c)
	c.s.mu.Unlock()
	c.s.untrack(c)
}

// waitChLocked returns the channel that the next state change closes, and
// marks that someone waits on it.
func (c *MsgConn) waitChLocked() chan struct{} {
	c.waiting = true
	return c.changed
}

// signalLocked wakes whoever waits for a state change. With no one waiting,
// as on a busy pipe whose Recv keeps finding messages, it costs nothing.
func (c *MsgConn) signalLocked() {
	if !c.waiting {
		return
	}
	c.waiting = false
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *MsgConn) stateErrLocked() error {
	if c.closed {
		return c.opErr("use", net.ErrClosed)
	}
	return c.err
}

func (c *MsgConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "juxta", Source: Addr{Peer: c.s.p.ID(), Pipe: c.id}, Addr: Addr{Peer: c.remote, Pipe: c.id}, Err: err}
}

// fail ends the connection with err.
func (c *MsgConn) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	str := c.str
	c.signalLocked()
	c.mu.Unlock()
	c.cancel()
	if str != nil {
		str.Reset()
	}
	c.forget()
}
