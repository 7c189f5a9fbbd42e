package pipes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/juxta-p2p/juxta/peer"
)

// Addr is a pipe endpoint: a peer and a pipe ID.
type Addr struct {
	Peer peer.ID
	Pipe string
}

// Network returns "juxta".
func (Addr) Network() string { return "juxta" }

func (a Addr) String() string { return a.Peer.String() + "/" + a.Pipe }

// acceptBacklog bounds streams waiting for Accept; more are reset.
const acceptBacklog = 64

// Listener accepts stream-pipe connections. It is a net.Listener.
type Listener struct {
	s      *Service
	id     string
	proto  string
	conns  chan net.Conn
	done   chan struct{}
	mu     sync.Mutex // serialises enqueueing with Close
	closed atomic.Bool
	once   sync.Once
}

var _ net.Listener = (*Listener)(nil)

// Listen binds the stream pipe id on this peer and publishes the binding
// (see Public and Unpublished for who may then dial it).
func (s *Service) Listen(ctx context.Context, id string, opts ...ListenOption) (*Listener, error) {
	if err := checkID("pipe", id); err != nil {
		return nil, err
	}
	proto := s.protocolFor(KindStream, id)
	if s.hasHandler(string(proto)) {
		return nil, fmt.Errorf("%w: %s", ErrAlreadyBound, id)
	}
	l := &Listener{s: s, id: id, proto: string(proto), conns: make(chan net.Conn, acceptBacklog), done: make(chan struct{})}
	if !s.track(l, func() { l.Close() }) {
		return nil, fmt.Errorf("pipes: listen: %w", net.ErrClosed)
	}
	s.host.SetStreamHandler(proto, l.handle)
	if err := s.publish(ctx, KindStream, id, listenOptions(opts)); err != nil {
		l.Close()
		return nil, fmt.Errorf("pipes: bind %s: %w", id, err)
	}
	return l, nil
}

func (c *core) hasHandler(proto string) bool {
	for _, p := range c.host.Mux().Protocols() {
		if string(p) == proto {
			return true
		}
	}
	return false
}

// accepted is the byte a listener writes when it takes a stream. It completes
// libp2p's lazy protocol negotiation before the application reads (a read that
// timed out in the middle of it would leave the stream broken for good), and
// tells Dial that the listener let it in.
const accepted byte = 0x4a

func (l *Listener) handle(str network.Stream) {
	if err := l.s.authorize(str); err != nil {
		l.s.log.Debug("stream refused", "pipe", l.id, "peer", str.Conn().RemotePeer(), "err", err)
		str.Reset()
		return
	}
	if _, err := str.Write([]byte{accepted}); err != nil {
		str.Reset()
		return
	}
	c := newConn(str, l.id)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed.Load() {
		str.Reset()
		return
	}
	select {
	case l.conns <- c:
	default:
		str.Reset() // backlog full
	}
}

// Accept waits for the next connection. After Close it returns an error
// wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: "juxta", Addr: l.Addr(), Err: net.ErrClosed}
	}
}

// Close unbinds the pipe: the handler is removed, the binding withdrawn, and
// connections not yet accepted are reset. Accepted connections stay open.
func (l *Listener) Close() error {
	if !l.closed.CompareAndSwap(false, true) {
		return &net.OpError{Op: "close", Net: "juxta", Addr: l.Addr(), Err: net.ErrClosed}
	}
	l.s.host.RemoveStreamHandler(l.s.protocolFor(KindStream, l.id))
	l.mu.Lock()
	close(l.done)
	for {
		select {
		case c := <-l.conns:
			c.(*Conn).s.Reset()
			continue
		default:
		}
		break
	}
	l.mu.Unlock()
	l.s.untrack(l)
	l.s.unbind(l.id)
	return nil
}

// Addr is this peer and the pipe.
func (l *Listener) Addr() net.Addr { return Addr{Peer: l.s.p.ID(), Pipe: l.id} }

// Dial connects to the stream pipe id: it resolves the pipe's bindings through
// discovery and connects to the first bound peer that answers, trying the
// others in turn. libp2p picks the path: direct, hole-punched or relayed.
func (s *Service) Dial(ctx context.Context, id string, opts ...DialOption) (*Conn, error) {
	var conn *Conn
	err := s.resolve(ctx, KindStream, id, opts, func(ctx context.Context, pid peer.ID) error {
		str, err := s.openStream(ctx, pid, s.protocolFor(KindStream, id))
		if err != nil {
			return err
		}
		if d, ok := ctx.Deadline(); ok {
			_ = str.SetReadDeadline(d)
		}
		var b [1]byte
		if _, err := io.ReadFull(str, b[:]); err != nil || b[0] != accepted {
			str.Reset()
			if err == nil {
				err = errors.New("bad accept byte")
			}
			return fmt.Errorf("%w: the listener did not accept the stream: %v", ErrDenied, err)
		}
		_ = str.SetReadDeadline(time.Time{})
		conn = newConn(str, id)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pipes: dial %s: %w", id, err)
	}
	return conn, nil
}

// Conn is a stream pipe connection: a net.Conn over a libp2p stream, with
// deadlines and half-close. Errors are *net.OpError values wrapping the
// standard ones: net.ErrClosed after Close, os.ErrDeadlineExceeded on timeout;
// io.EOF is returned as is.
//
// A Conn stays on the connection it was opened on. When that is a relayed
// connection and a direct one appears later, the Conn does not move: a byte
// stream has no message boundaries or acknowledgements to resume from, and
// adding them would cost the raw-stream throughput stream pipes exist for. Use a
// reliable message pipe where traffic must follow the upgrade; relays also
// bound how long and how much a relayed stream may carry (peer.RelayLimits).
type Conn struct {
	s      network.Stream
	rmu    sync.Mutex // serialises Read: go-yamux's stream races on its receive window update otherwise
	wmu    sync.Mutex // serialises Write: go-yamux's stream races on its send window otherwise
	local  Addr
	remote Addr
	closed atomic.Bool
}

var _ net.Conn = (*Conn)(nil)

func newConn(s network.Stream, pipe string) *Conn {
	return &Conn{
		s:      s,
		local:  Addr{Peer: peer.ID(s.Conn().LocalPeer()), Pipe: pipe},
		remote: Addr{Peer: peer.ID(s.Conn().RemotePeer()), Pipe: pipe},
	}
}

func (c *Conn) opErr(op string, err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	if c.closed.Load() {
		err = net.ErrClosed
	} else if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		err = os.ErrDeadlineExceeded
	}
	return &net.OpError{Op: op, Net: "juxta", Source: c.local, Addr: c.remote, Err: err}
}

func (c *Conn) Read(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("read", net.ErrClosed)
	}
	// A Read blocked here holding rmu is ended by Close, a deadline or the far
	// side, and the next one then sees the same state.
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.closed.Load() { // closed while this Read waited for rmu
		return 0, c.opErr("read", net.ErrClosed)
	}
	n, err := c.s.Read(b)
	return n, c.opErr("read", err)
}

func (c *Conn) Write(b []byte) (int, error) {
	if c.closed.Load() {
		return 0, c.opErr("write", net.ErrClosed)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	n, err := c.s.Write(b)
	return n, c.opErr("write", err)
}

// Close closes both directions. A second call returns net.ErrClosed.
func (c *Conn) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return c.opErr("close", net.ErrClosed)
	}
	// Close sends our FIN and stops reading; unread data is discarded.
	err := c.s.Close()
	if err != nil {
		c.s.Reset()
		return nil
	}
	// A Write in progress may be blocked on flow control, which a QUIC
	// stream's Close does not interrupt (and the far side, told we stopped
	// reading, may never read again): net.Conn promises Close unblocks it,
	// so such a Write ends with a reset.
	if c.wmu.TryLock() {
		c.wmu.Unlock()
	} else {
		c.s.Reset()
	}
	return nil
}

// CloseWrite half-closes: the other side reads io.EOF, and this side can still
// read.
func (c *Conn) CloseWrite() error { return c.opErr("close", c.s.CloseWrite()) }

// CloseRead stops reading; the other side's writes fail.
func (c *Conn) CloseRead() error { return c.opErr("close", c.s.CloseRead()) }

func (c *Conn) LocalAddr() net.Addr                { return c.local }
func (c *Conn) RemoteAddr() net.Addr               { return c.remote }
func (c *Conn) SetDeadline(t time.Time) error      { return c.opErr("set", c.s.SetDeadline(t)) }
func (c *Conn) SetReadDeadline(t time.Time) error  { return c.opErr("set", c.s.SetReadDeadline(t)) }
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.opErr("set", c.s.SetWriteDeadline(t)) }

// RemotePeer is the peer at the other end.
func (c *Conn) RemotePeer() peer.ID { return c.remote.Peer }
