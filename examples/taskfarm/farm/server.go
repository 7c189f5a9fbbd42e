package farm

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// ServerConfig configures a scheduler on the network.
type ServerConfig struct {
	Node NodeConfig
	// Farm names the farm group on first start.
	Farm string
	// Password protects the farm group; needed on first start only (it is
	// kept in Node.Dir).
	Password string
	// Scheduler tunes scheduling; its Dir defaults to Node.Dir/scheduler.
	Scheduler SchedulerConfig
}

// Server is a scheduler serving a farm group: it creates the group on first
// start (and rejoins it after), advertises itself in the group, and serves
// providers and clients on the farm pipe.
type Server struct {
	*Node
	s *Scheduler
	l *pipes.MsgListener

	mu    sync.Mutex
	conns map[peer.ID]int // guarded by mu
}

// silence is how long either end of a farm connection waits without a
// frame before it drops the connection; both send one at least every
// heartbeat. A peer killed with kill -9 over QUIC sends no reset, so this is
// what notices it.
const (
	silence   = 3 * time.Second
	heartbeat = 500 * time.Millisecond
)

// Bounds on connections to a scheduler.
const (
	maxConnsPerPeer = 4
	maxConns        = 4096
)

// StartServer starts a scheduler node.
func StartServer(ctx context.Context, cfg ServerConfig) (_ *Server, err error) {
	n, err := openNode(ctx, cfg.Node)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if cfg.Farm == "" {
		cfg.Farm = "taskfarm"
	}
	g, err := n.createOrRejoin(ctx, cfg.Farm, cfg.Password)
	if err != nil {
		return nil, err
	}
	if err := n.enter(ctx, g); err != nil {
		return nil, err
	}
	if cfg.Scheduler.Dir == "" {
		cfg.Scheduler.Dir = filepath.Join(cfg.Node.Dir, "scheduler")
	}
	if cfg.Scheduler.Logger == nil {
		cfg.Scheduler.Logger = n.log
	}
	srv := &Server{Node: n, conns: map[peer.ID]int{}}
	if srv.s, err = OpenScheduler(cfg.Scheduler); err != nil {
		return nil, err
	}
	if srv.l, err = g.Pipes().ListenMessages(n.ctx, farmPipe, pipes.MessageConfig{MaxMessage: MaxFrame}); err != nil {
		srv.s.Close()
		return nil, err
	}
	ad := discovery.Advertisement{Type: schedulerType, ID: "scheduler", Attrs: map[string]string{"farm": g.ID()}}
	if _, err := g.Discovery().Publish(ctx, ad); err != nil {
		srv.l.Close()
		srv.s.Close()
		return nil, err
	}
	n.wg.Add(2)
	go srv.accept()
	go srv.watchPresence()
	return srv, nil
}

// Scheduler is the engine behind the server.
func (srv *Server) Scheduler() *Scheduler { return srv.s }

// Invite returns the farm invite: the group, its password and how to reach
// this scheduler. Anyone holding it can join as a provider or a client.
func (srv *Server) Invite() string {
	info := srv.g.Info()
	return encodeInvite(inviteBody{Group: info.Raw(), Password: srv.pw, Scheduler: srv.p.Invite()})
}

// Close stops serving, closes the scheduler (what was committed stays) and
// the node.
func (srv *Server) Close() error {
	srv.l.Close()
	srv.cancel()
	srv.closeBlobs()
	srv.wg.Wait()
	return errors.Join(srv.s.Close(), srv.Node.Close())
}

func (srv *Server) watchPresence() {
	defer srv.wg.Done()
	sub := srv.g.SubscribeMembers(srv.ctx, 0)
	for ev := range sub.C {
		if ev.Member.State == groups.Offline {
			srv.s.Offline(ev.Member.ID.String())
		}
	}
}

func (srv *Server) accept() {
	defer srv.wg.Done()
	for {
		c, err := srv.l.Accept(srv.ctx)
		if err != nil {
			return
		}
		remote := c.RemotePeer()
		srv.mu.Lock()
		total := 0
		for _, k := range srv.conns {
			total += k
		}
		if srv.conns[remote] >= maxConnsPerPeer || total >= maxConns {
			srv.mu.Unlock()
			c.Close()
			continue
		}
		srv.conns[remote]++
		srv.mu.Unlock()
		srv.wg.Add(1)
		go func() {
			defer srv.wg.Done()
			defer func() {
				srv.mu.Lock()
				if srv.conns[remote]--; srv.conns[remote] <= 0 {
					delete(srv.conns, remote)
				}
				srv.mu.Unlock()
			}()
			srv.serve(c)
		}()
	}
}

// outbox sends frames on one connection in order, without blocking the
// caller; it is bounded by what the scheduler hands one peer.
type outbox struct {
	c    *pipes.MsgConn
	mu   sync.Mutex
	q    []*frame // guarded by mu
	wake chan struct{}
}

func (o *outbox) push(f *frame) {
	o.mu.Lock()
	o.q = append(o.q, f)
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
		case <-o.wake:
		}
		// Once ctx has ended, what is queued (a last error frame) is
		// flushed within a second, and run returns. A frame whose Send
		// failed because ctx ended in the meantime was not written (a
		// MsgConn queues nothing then), so it goes out in that flush.
		stop := ctx.Err() != nil
		sctx := ctx
		if stop {
			var cancel context.CancelFunc
			sctx, cancel = context.WithTimeout(context.Background(), time.Second)
			defer cancel()
		}
		o.mu.Lock()
		q := o.q
		o.q = nil
		o.mu.Unlock()
		for i, f := range q {
			err := sendFrame(sctx, o.c, f)
			if err == nil {
				continue
			}
			if !stop && ctx.Err() != nil { // sctx is ctx here
				o.mu.Lock()
				o.q = append(q[i:len(q):len(q)], o.q...)
				o.mu.Unlock()
				break
			}
			o.c.Close()
			return
		}
		if stop {
			return
		}
	}
}

func (srv *Server) serve(c *pipes.MsgConn) {
	defer c.Close()
	ctx, cancel := context.WithCancel(srv.ctx)
	defer cancel()
	f, err := recvFrame(ctx, c)
	if err != nil || f.T != tHello {
		return
	}
	out := &outbox{c: c, wake: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); out.run(ctx) }()
	defer wg.Wait()
	defer cancel()
	switch f.Role {
	case roleProvider:
		if f.Profile == nil {
			out.push(&frame{T: tError, Err: "a provider's hello needs its profile"})
			return
		}
		srv.serveProvider(ctx, c, out, f)
	case roleClient:
		srv.serveClient(ctx, c, out)
	default:
		out.push(&frame{T: tError, Err: fmt.Sprintf("unknown role %q", f.Role)})
	}
}

func (srv *Server) serveProvider(ctx context.Context, c *pipes.MsgConn, out *outbox, hello *frame) {
	id := c.RemotePeer().String()
	sess, err := srv.s.Connect(id, *hello.Profile, hello.Holding, func(as []Assignment) {
		out.push(&frame{T: tGrant, Grant: as})
	})
	if err != nil {
		return
	}
	defer sess.Close()
	sess.OnEnd(func() { c.Close() })
	for {
		rctx, cancel := context.WithTimeout(ctx, silence)
		f, err := recvFrame(rctx, c)
		cancel()
		if err != nil {
			if errors.Is(err, ErrBadFrame) || errors.Is(err, ErrTooLarge) {
				out.push(&frame{T: tError, Err: err.Error()})
			}
			return
		}
		switch f.T {
		case tWant:
			sess.Want(f.N)
			out.push(&frame{T: tAck}) // a pong: the provider watches for silence
		case tStarted:
			sess.Started(f.IDs)
		case tReports:
			if err := sess.Report(ctx, f.Reports); err != nil {
				return
			}
			out.push(&frame{T: tAck, Seq: f.Seq})
		default:
			out.push(&frame{T: tError, Err: fmt.Sprintf("frame type %d is not for providers", f.T)})
			return
		}
	}
}
