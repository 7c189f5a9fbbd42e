package pipes

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/juxta-p2p/juxta/peer"
)

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
	r := newFrameReader(str, l.cfg.MaxMessage+frameOverhead)
	b, err := r.next()
	if err != nil {
		str.Reset()
		return
	}
	h, err := parseHello(b)
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
			_, _ = str.Write(smallFrame(fRefuse, 0, false))
			str.Close()
			return
		}
		c.setPeerWindow(h.win)
		c.attach(str, r, peerRecv, true)
		return
	}
	c, err := l.s.newMsgConn(l.id, remote, l.cfg, flags&helloReliable != 0, false, sid)
	if err != nil { // the service is closing
		str.Reset()
		return
	}
	if c.reliable && !l.s.addSession(key, remote, c) {
		c.Close()
		_, _ = str.Write(smallFrame(fRefuse, 0, false))
		str.Close()
		return
	}
	c.setPeerWindow(h.win)
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
