package pipes

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

// Kind is what a pipe carries.
type Kind string

const (
	// KindStream pipes are byte streams: net.Listener and net.Conn.
	KindStream Kind = "stream"
	// KindMessage pipes carry framed messages, optionally reliable across
	// reconnects.
	KindMessage Kind = "message"
	// KindPropagate pipes fan messages out to every member (GossipSub).
	KindPropagate Kind = "propagate"
)

// Errors of the pipes package.
var (
	// ErrNoBinding: no live peer is bound to the pipe, or none answered.
	ErrNoBinding = errors.New("pipes: no peer is bound to this pipe")
	// ErrUntrusted: bindings were found, but a dial by name alone may not
	// follow them (see Public and ToPeer). It comes wrapped in ErrNoBinding.
	ErrUntrusted = errors.New("pipes: bindings found but not trusted")
	// ErrBadID: a pipe ID or scope holds characters outside [A-Za-z0-9._-] or is
	// too long.
	ErrBadID = errors.New("pipes: invalid pipe ID")
	// ErrTooLarge: a message exceeds the pipe's maximum message size.
	ErrTooLarge = errors.New("pipes: message too large")
	// ErrAlreadyBound: this peer already listens on the pipe.
	ErrAlreadyBound = errors.New("pipes: pipe already bound on this peer")
	// ErrDenied: the listener refused the stream (not a member of its group).
	ErrDenied = errors.New("pipes: access denied")
	// ErrSessionLost: a reliable pipe could not resume within its resume timeout.
	ErrSessionLost = errors.New("pipes: reliable session lost")
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// NewID returns a fresh random pipe ID.
func NewID() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}

func checkID(what, id string) error {
	if !idPattern.MatchString(id) {
		return fmt.Errorf("%w: %s %q", ErrBadID, what, id)
	}
	return nil
}

// Hooks let a scope (a group) control its pipes.
type Hooks struct {
	// Authorize, if set, is called when a stream opens on a pipe of this scope,
	// before the application sees it; an error refuses the stream.
	Authorize func(ctx context.Context, remote peer.ID) error
	// Propagate, if set, validates and transforms propagate-pipe payloads.
	Propagate PropagateHooks
	// DiscoveryScope, if set, is the discovery scope where the scope's pipe
	// bindings are published and resolved, in place of the scope itself: a
	// private group derives it from its key, so that a non-member, who
	// knows the group's ID, still cannot read its bindings.
	DiscoveryScope string
}

// discoveryScope is where this scope's bindings live.
func (s *Service) discoveryScope() string {
	if s.hooks.DiscoveryScope != "" {
		return s.hooks.DiscoveryScope
	}
	return s.scope
}

// Service is pipes in one scope. New returns the net group's; Scoped gives the
// same service in another scope, with that scope's hooks.
type Service struct {
	*core
	scope string
	hooks Hooks
}

type core struct {
	p    *peer.Peer
	host host.Host
	disc *discovery.Service
	log  *slog.Logger

	ctx    context.Context // cancelled on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	mu       sync.Mutex
	closers  map[any]func()      // guarded by mu; listeners, conns, topics to close
	sessions map[string]*MsgConn // listener-side reliable sessions; guarded by mu
	perPeer  map[peer.ID]int     // sessions per remote peer; guarded by mu

	psOnce sync.Once
	ps     *pubsubState

	// ackDelay: tests lengthen it, to show that acks do not wait for it.
	ackDelay time.Duration
}

// New starts pipes on p, resolving bindings through d.
func New(ctx context.Context, p *peer.Peer, d *discovery.Service) (*Service, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &core{
		p: p, host: p.Libp2p().Host, disc: d, log: p.Logger().With("svc", "pipes"),
		closers:  make(map[any]func()),
		sessions: make(map[string]*MsgConn),
		perPeer:  make(map[peer.ID]int),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return &Service{core: c}, nil
}

// Scoped returns the service acting in scope (a group ID) with hooks.
func (s *Service) Scoped(scope string, hooks Hooks) *Service {
	return &Service{core: s.core, scope: scope, hooks: hooks}
}

// Close closes every listener, connection and topic opened through the service
// and waits for its goroutines. A second call returns an error wrapping
// net.ErrClosed.
func (c *core) Close() error {
	if !c.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("pipes: close: %w", net.ErrClosed)
	}
	c.cancel()
	c.mu.Lock()
	closers := make([]func(), 0, len(c.closers))
	for _, f := range c.closers {
		closers = append(closers, f)
	}
	c.mu.Unlock()
	for _, f := range closers {
		f()
	}
	c.wg.Wait()
	// Do orders this read after a concurrent first Join's write of c.ps (or
	// makes sure no GossipSub starts from now on).
	c.psOnce.Do(func() {})
	if c.ps != nil {
		c.ps.close()
	}
	return nil
}

func (c *core) track(k any, closeFn func()) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Load() {
		return false
	}
	c.closers[k] = closeFn
	return true
}

func (c *core) untrack(k any) {
	c.mu.Lock()
	delete(c.closers, k)
	c.mu.Unlock()
}

// protocolFor is the libp2p protocol a pipe's streams use.
func (s *Service) protocolFor(kind Kind, id string) protocol.ID {
	scope := s.scope
	if scope == "" {
		scope = "-"
	}
	return protocol.ID(fmt.Sprintf("/juxta/pipe/1/%s/%s/%s", kind, scope, id))
}

func (s *Service) unbind(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.disc.Scoped(s.discoveryScope()).Flush(ctx, discovery.TypePipe, id); err != nil {
		s.log.Debug("flush pipe binding", "pipe", id, "err", err)
	}
}

// DialOption varies one Dial.
type DialOption func(*dialOpts)

type dialOpts struct {
	peer peer.ID
}

// ToPeer makes Dial use the binding on one peer only.
func ToPeer(id peer.ID) DialOption { return func(o *dialOpts) { o.peer = id } }

// resolve finds the peers bound to a pipe: cached bindings first, then a
// remote search. It calls try for each candidate until try succeeds.
// perBindingTimeout bounds one binding's attempt, so that a dead binding
// cannot eat the whole budget.
const perBindingTimeout = 5 * time.Second

func (s *Service) resolve(ctx context.Context, kind Kind, id string, opts []DialOption, try func(context.Context, peer.ID) error) error {
	if err := checkID("pipe", id); err != nil {
		return err
	}
	if s.closed.Load() {
		return net.ErrClosed
	}
	var o dialOpts
	for _, f := range opts {
		f(&o)
	}
	if s.hooks.Authorize != nil {
		// A scope's pipes admit only members at both ends: the dialer
		// checks the listener too, so that a non-member binding the same
		// pipe name never receives what a member sends.
		inner := try
		try = func(ctx context.Context, pid peer.ID) error {
			if err := s.hooks.Authorize(ctx, pid); err != nil {
				return fmt.Errorf("%w: listener %s: %w", ErrDenied, pid.ShortString(), err)
			}
			return inner(ctx, pid)
		}
	}
	if o.peer != "" {
		return try(ctx, o.peer)
	}
	d := s.disc.Scoped(s.discoveryScope())
	q := discovery.Query{Type: discovery.TypePipe, Attr: "id", Value: id, Limit: 16}
	tried := map[peer.ID]bool{}
	var errs []error
	untrusted := 0
	// attempt tries bindings as the search streams them in, so that the first
	// answer is dialled at once rather than after the slowest source. A
	// binding that fails gets perBindingTimeout at most, unless it is the
	// only one the search could still yield.
	attempt := func(sources discovery.Source) (bool, error) {
		q.Sources = sources
		for r, err := range d.Find(ctx, q) {
			if err != nil {
				if ctx.Err() != nil {
					return false, err
				}
				errs = append(errs, err)
				continue
			}
			if r.Attrs["kind"] != string(kind) || tried[r.Publisher] {
				continue
			}
			tried[r.Publisher] = true
			if !s.trusts(r) {
				untrusted++
				continue
			}
			tctx, cancel := context.WithTimeout(ctx, perBindingTimeout)
			err = try(tctx, r.Publisher)
			cancel()
			if err == nil {
				return true, nil
			}
			if ctx.Err() != nil {
				return false, ctx.Err()
			}
			if s.closed.Load() { // not the binding's fault: stop, do not try the rest
				return false, net.ErrClosed
			}
			errs = append(errs, fmt.Errorf("binding on %s: %w", r.Publisher.ShortString(), err))
		}
		return false, nil
	}
	for _, src := range []discovery.Source{discovery.SourceLocal, discovery.DefaultSources &^ discovery.SourceLocal} {
		ok, err := attempt(src)
		if ok {
			return nil
		}
		if err != nil {
			return err
		}
	}
	if untrusted > 0 {
		errs = append(errs, fmt.Errorf("%w: %d found, none public; name the peer (ToPeer) or have its listener use Public", ErrUntrusted, untrusted))
	}
	return fmt.Errorf("%w: %s: %w", ErrNoBinding, id, errors.Join(errs...))
}

// authorize runs the scope's Authorize hook for an incoming stream.
func (s *Service) authorize(str network.Stream) error {
	if s.hooks.Authorize == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if err := s.hooks.Authorize(ctx, peer.ID(str.Conn().RemotePeer())); err != nil {
		return fmt.Errorf("%w: %w", ErrDenied, err)
	}
	return nil
}

// openStream opens a stream for a pipe to pid. Pipes work over relayed
// (limited) connections too.
func (s *Service) openStream(ctx context.Context, pid peer.ID, proto protocol.ID) (network.Stream, error) {
	if _, err := s.p.Connect(ctx, peer.Addr{ID: pid}); err != nil {
		return nil, err
	}
	return s.host.NewStream(network.WithAllowLimitedConn(ctx, "juxta pipe"), lpeer.ID(pid), proto)
}
