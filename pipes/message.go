package pipes

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-msgio"
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

// resendTimeout bounds the resend of the buffer on a new stream.
const resendTimeout = 10 * time.Second

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

	wmu sync.Mutex // serialises writes to the current stream

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced on every state change; guarded by mu
	str      network.Stream
	w        msgio.WriteCloser
	gen      int       // stream generation; guarded by mu
	broken   bool      // the current stream failed; guarded by mu
	lostAt   time.Time // when the stream broke; guarded by mu
	nextSeq  uint64    // next sequence number to assign (from 1)
	unacked  []outMsg  // sent, not yet acknowledged, in order
	ubytes   int       // bytes in unacked
	acked    uint64    // highest cumulatively acknowledged
	recvSeq  uint64    // highest delivered in order
	ackOwed  int       // messages delivered since our last ack
	ackTimer *time.Timer
	ackBusy  bool     // an ack goroutine is running; guarded by mu
	inqBytes int      // bytes in inq; guarded by mu
	inq      [][]byte // delivered, not yet read
	eof      bool     // the other side closed
	closed   bool     // Close was called
	err      error    // terminal error
	wg       sync.WaitGroup
}

type outMsg struct {
	seq  uint64
	data []byte
}

// inboxMax bounds delivered messages waiting for Recv; the reader stops reading
// (and so flow control stops the sender) beyond it.
const inboxMax = 256

// MsgListener accepts message-pipe connections.
type MsgListener struct {
	s      *Service
	id     string
	cfg    MessageConfig
	conns  chan *MsgConn
	done   chan struct{}
	once   sync.Once
	mu     sync.Mutex // serialises enqueueing with Close
	closed bool       // guarded by mu
}

// ListenMessages binds the message pipe id on this peer.
func (s *Service) ListenMessages(ctx context.Context, id string, cfg MessageConfig, opts ...ListenOption) (*MsgListener, error) {
	if err := checkID("pipe", id); err != nil {
		return nil, err
	}
	cfg.defaults()
	proto := s.protocolFor(KindMessage, id)
	if s.hasHandler(string(proto)) {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyBound, id)
	}
	l := &MsgListener{s: s, id: id, cfg: cfg, conns: make(chan *MsgConn, acceptBacklog), done: make(chan struct{})}
	if !s.track(l, func() { l.Close() }) {
		return nil, fmt.Errorf("pipes: listen: %w", net.ErrClosed)
	}
	s.host.SetStreamHandler(proto, l.handle)
	if err := s.publish(ctx, KindMessage, id, listenOptions(opts)); err != nil {
		l.Close()
		return nil, fmt.Errorf("pipes: bind %s: %w", id, err)
	}
	return l, nil
}

// Accept waits for the next connection, or ctx, or Close (net.ErrClosed).
func (l *MsgListener) Accept(ctx context.Context) (*MsgConn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("pipes: accept: %w", net.ErrClosed)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close unbinds the pipe. Accepted connections stay open; reliable sessions
// bound here can no longer resume.
func (l *MsgListener) Close() error {
	first := false
	l.once.Do(func() {
		first = true
		l.s.host.RemoveStreamHandler(l.s.protocolFor(KindMessage, l.id))
		l.mu.Lock()
		l.closed = true
		close(l.done)
		for {
			select {
			case c := <-l.conns:
				c.Close()
				continue
			default:
			}
			break
		}
		l.mu.Unlock()
		l.s.untrack(l)
		l.s.unbind(l.id)
	})
	if !first {
		return fmt.Errorf("pipes: close: %w", net.ErrClosed)
	}
	return nil
}

func (l *MsgListener) handle(str network.Stream) {
	if err := l.s.authorize(str); err != nil {
		str.Reset()
		return
	}
	_ = str.SetDeadline(time.Now().Add(10 * time.Second))
	r := msgio.NewVarintReaderSize(str, l.cfg.MaxMessage+frameOverhead)
	b, err := r.ReadMsg()
	if err != nil {
		str.Reset()
		return
	}
	h, err := parseHello(b)
	r.ReleaseMsg(b)
	if err != nil {
		str.Reset()
		return
	}
	flags, sid, peerRecv := h.flags, h.sid, h.recv
	_ = str.SetDeadline(time.Time{})
	remote := peer.ID(str.Conn().RemotePeer())
	key := sessionKey(l.s.scope, l.id, remote, sid)
	if flags&helloResume != 0 {
		l.s.mu.Lock()
		c := l.s.sessions[key]
		l.s.mu.Unlock()
		if c == nil {
			w := msgio.NewVarintWriter(str)
			_ = w.WriteMsg([]byte{fRefuse})
			str.Close()
			return
		}
		c.attach(str, r, peerRecv, true)
		return
	}
	c := l.s.newMsgConn(l.id, remote, l.cfg, flags&helloReliable != 0, false, sid)
	if c.reliable && !l.s.addSession(key, remote, c) {
		c.Close()
		_ = msgio.NewVarintWriter(str).WriteMsg([]byte{fRefuse})
		str.Close()
		return
	}
	c.attach(str, r, peerRecv, true)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		c.Close()
		return
	}
	select {
	case l.conns <- c:
	default:
		c.Close() // backlog full
	}
}

// sessionKey names a reliable session: the pipe (scope and ID), the remote
// peer and its session ID, so that a session resumes only through the pipe it
// was opened on (and that pipe's Authorize hook).
func sessionKey(scope, pipe string, remote peer.ID, sid [sidLen]byte) string {
	return scope + "\x00" + pipe + "\x00" + string(remote) + string(sid[:])
}

func (s *Service) newMsgConn(id string, remote peer.ID, cfg MessageConfig, reliable, dialer bool, sid [sidLen]byte) *MsgConn {
	c := &MsgConn{
		s: s, id: id, remote: remote, cfg: cfg, reliable: reliable, dialer: dialer, sid: sid,
		changed: make(chan struct{}), nextSeq: 1,
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	s.track(c, func() { c.Close() })
	return c
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
		c := s.newMsgConn(id, pid, cfg, cfg.Reliable, true, sid)
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
	if conn.reliable {
		conn.wg.Add(1)
		go conn.followPath()
	}
	return conn, nil
}

// connect opens a stream and says hello; resume says this continues a session.
func (c *MsgConn) connect(ctx context.Context, resume bool) error {
	str, err := c.s.openStream(ctx, c.remote, c.s.protocolFor(KindMessage, c.id))
	if err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(d)
	}
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
	hello := append([]byte{fHello, flags}, c.sid[:]...)
	hello = binary.AppendUvarint(hello, recv)
	w := msgio.NewVarintWriter(str)
	r := msgio.NewVarintReaderSize(str, c.cfg.MaxMessage+frameOverhead)
	if err := w.WriteMsg(hello); err != nil {
		str.Reset()
		return err
	}
	b, err := r.ReadMsg()
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
	r.ReleaseMsg(b)
	if n <= 0 {
		str.Reset()
		return fmt.Errorf("%w: bad hello answer", ErrSessionLost)
	}
	_ = str.SetDeadline(time.Time{})
	c.attach(str, r, peerRecv, false)
	return nil
}

// attach makes str the connection's stream: it answers the hello (listener
// side), drops what the other side already has, resends the rest in order, and
// starts the reader.
func (c *MsgConn) attach(str network.Stream, r msgio.ReadCloser, peerRecv uint64, answer bool) {
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
	c.str, c.w, c.broken = str, msgio.NewVarintWriter(str), false
	c.ackLocked(peerRecv)
	resend := append([]outMsg(nil), c.unacked...)
	recv := c.recvSeq
	w := c.w
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
		err = w.WriteMsg(binary.AppendUvarint([]byte{fHelloAck}, recv))
	}
	for _, m := range resend {
		if err != nil {
			break
		}
		err = w.WriteMsg(dataFrame(m.seq, m.data))
	}
	_ = str.SetWriteDeadline(time.Time{})
	c.wg.Add(1)
	go c.read(gen, str, r)
	if err != nil {
		c.breakStream(gen, err)
	}
}

func dataFrame(seq uint64, data []byte) []byte {
	f := make([]byte, 0, frameOverhead+len(data))
	f = append(f, fData)
	f = binary.AppendUvarint(f, seq)
	return append(f, data...)
}

// Send queues msg and writes it. On a reliable pipe it returns the message's
// sequence number, for WaitDelivered; it blocks while the resend buffer is
// full, until ctx ends, and never drops a message silently. A message larger
// than MaxMessage fails with ErrTooLarge and leaves the pipe usable.
func (c *MsgConn) Send(ctx context.Context, msg []byte) (uint64, error) {
	if len(msg) > c.cfg.MaxMessage {
		return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), c.cfg.MaxMessage)
	}
	data := bytes.Clone(msg)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	for c.reliable && c.err == nil && !c.closed &&
		(len(c.unacked) >= c.cfg.Window || (c.ubytes > 0 && c.ubytes+len(data) > c.cfg.WindowBytes)) {
		ch := c.changed
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
	var seq uint64
	if c.reliable {
		seq = c.nextSeq
		c.nextSeq++
		c.unacked = append(c.unacked, outMsg{seq, data})
		c.ubytes += len(data)
	}
	w, gen, broken := c.w, c.gen, c.broken
	c.mu.Unlock()
	if broken || w == nil {
		if c.reliable {
			return seq, nil // resent on resume
		}
		return 0, c.opErr("send", io.ErrClosedPipe)
	}
	// ctx bounds the write too: a peer that stops reading must not hold Send
	// (and wmu) forever. On a reliable pipe the message stays in the resend
	// buffer and goes out again on the resumed stream.
	c.mu.Lock()
	str := c.str
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { _ = str.SetWriteDeadline(time.Now()) })
	err := w.WriteMsg(dataFrame(seq, data))
	if !stop() {
		_ = str.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		c.breakStream(gen, err)
		if !c.reliable {
			return 0, c.opErr("send", err)
		}
	}
	return seq, nil
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
		ch := c.changed
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

// Recv returns the next message. After the other side closes it returns
// io.EOF once every message has been read.
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
		ch := c.changed
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
	c.inq = c.inq[1:]
	c.inqBytes -= len(m)
	c.signalLocked()
	c.mu.Unlock()
	return m, nil
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
	str, w := c.str, c.w
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
	c.signalLocked()
	c.mu.Unlock()
	if w != nil {
		// A write stuck on a peer that stopped reading holds wmu: bound it
		// before waiting for the lock.
		_ = str.SetWriteDeadline(time.Now().Add(time.Second))
		c.wmu.Lock()
		_ = w.WriteMsg([]byte{fClose})
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

func (c *MsgConn) forget() {
	c.s.mu.Lock()
	c.s.deleteSessionLocked(sessionKey(c.s.scope, c.id, c.remote, c.sid), c)
	c.s.mu.Unlock()
	c.s.untrack(c)
}

func (c *MsgConn) signalLocked() {
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
// closes, or ResumeTimeout passes.
func (c *MsgConn) resume(cause error) {
	defer c.wg.Done()
	deadline := time.Now().Add(c.cfg.ResumeTimeout)
	backoff := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		err := c.connect(ctx, true)
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
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 2*time.Second)
	}
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
		ch := c.changed
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
