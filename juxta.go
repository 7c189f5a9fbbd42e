// Package juxta is the front door: one call builds a whole peer-to-peer stack
// (a peer, its discovery, its pipes and its groups) from one Config, and one
// Close takes it down.
//
//	node, err := juxta.New(ctx, juxta.Config{SuperPeers: []string{superPeerInvite}})
//	defer node.Close()
//	l, err := node.Listen(ctx, "chat")     // and hand out node.Invite("chat")
//	conn, err := node.Dial(ctx, invite, "chat") // on the other side
//
// Dial connects to the peer an invite (or a peer ID) names, hole-punches
// through NATs when it can, falls back to a super-peer's relay when it cannot,
// and opens the pipe: a net.Conn. The packages underneath (peer, discovery,
// pipes, groups) stay available through Node's accessors for everything else.
//
// In JXTA terms a Node is a platform: the net peer group with its peer,
// discovery, pipe and membership services started. On libp2p it is a host with
// a Kademlia DHT, GossipSub, relay v2 client, DCUtR and AutoNAT, wired as the
// peer package describes; no libp2p type appears on this path.
package juxta

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Config configures a Node. The zero Config is a LAN peer with a fresh
// in-memory identity, as peer.Config's zero value is.
type Config struct {
	// Dir keeps the identity key and the services' state; empty means in
	// memory, with a new identity at every start.
	Dir string
	// Name is the display name others see.
	Name string
	// SuperPeers are invites (or /p2p multiaddrs) of super-peers, for NAT
	// traversal, relaying and discovery beyond the LAN. Empty strings are
	// skipped, so an unset flag can be passed as it is.
	SuperPeers []string
	// Loopback keeps the node on 127.0.0.1 with mDNS off: for trying juxta
	// with two processes on one machine, and for tests.
	Loopback bool
	// SuperPeer makes this node a super-peer (peer.SuperPeerConfig).
	SuperPeer bool
	// Logger receives the services' logs; nil discards them.
	Logger *slog.Logger

	// Peer is the rest of the peer's configuration; the fields above, when
	// set, take precedence over its own.
	Peer peer.Config
	// Discovery, Groups configure those services; zero values use defaults.
	Discovery discovery.Config
	Groups    groups.Config
}

func (c Config) peerConfig() peer.Config {
	pc := c.Peer
	if c.SuperPeer {
		sp := peer.SuperPeerConfig(pc.Dir, pc.Port)
		sp.ListenAddrs, sp.Logger = pc.ListenAddrs, pc.Logger
		pc = sp
	}
	if c.Loopback {
		t := peer.TestConfig()
		pc.ListenAddrs, pc.NoMDNS, pc.PortMapping = t.ListenAddrs, true, false
	}
	if c.Dir != "" {
		pc.Dir = c.Dir
	}
	if c.Name != "" {
		pc.Name = c.Name
	}
	if c.Logger != nil {
		pc.Logger = c.Logger
	}
	pc.SuperPeers = append(append([]string(nil), pc.SuperPeers...), c.SuperPeers...)
	return pc
}

// Node is a running stack. Its methods are safe for concurrent use.
type Node struct {
	p  *peer.Peer
	d  *discovery.Service
	ps *pipes.Service
	g  *groups.Service

	mu     sync.Mutex
	closed bool // guarded by mu
}

// New starts a node: the peer, then discovery, pipes and groups on it. A New
// that fails part-way closes what it started.
func New(ctx context.Context, cfg Config) (_ *Node, err error) {
	n := &Node{}
	defer func() {
		if err != nil {
			n.shutdown()
		}
	}()
	if n.p, err = peer.New(ctx, cfg.peerConfig()); err != nil {
		return nil, err
	}
	if n.d, err = discovery.New(ctx, n.p, cfg.Discovery); err != nil {
		return nil, err
	}
	if n.ps, err = pipes.New(ctx, n.p, n.d); err != nil {
		return nil, err
	}
	if n.g, err = groups.New(ctx, n.p, n.d, n.ps, cfg.Groups); err != nil {
		return nil, err
	}
	return n, nil
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.p.ID() }

// Peer, Discovery, Pipes and Groups are the services the node runs. They
// belong to the node: Close the node, not them.
func (n *Node) Peer() *peer.Peer { return n.p }

// Discovery is the node's discovery service, in the net group's scope.
func (n *Node) Discovery() *discovery.Service { return n.d }

// Pipes is the node's pipe service, in the net group's scope.
func (n *Node) Pipes() *pipes.Service { return n.ps }

// Groups is the node's groups service. A group's own discovery and pipes
// (Group.Discovery, Group.Pipes) are views: leaving the group ends them, and
// none of them closes the node.
func (n *Node) Groups() *groups.Service { return n.g }

// Invite is the node's invite naming pipe, for a friend's Dial; with pipe
// empty it names the peer alone. It carries the node's addresses and
// super-peers.
func (n *Node) Invite(pipe string) string {
	if pipe == "" {
		return n.p.Invite()
	}
	s, err := n.p.PipeInvite(pipe)
	if err != nil {
		return n.p.Invite() // an over-long name: Dial reports it on the other side
	}
	return s
}

// Listen binds the stream pipe on this node. By default its binding names
// this peer only: it is reached by Dial with this node's invite or ID, never
// captured by a stranger's dial by name (pipes.Public lets anyone dial it by
// name; pipes.Unpublished publishes nothing).
func (n *Node) Listen(ctx context.Context, pipe string, opts ...pipes.ListenOption) (*pipes.Listener, error) {
	return n.ps.Listen(ctx, pipe, opts...)
}

// ErrNoPipe: Dial was given no pipe name and the invite names none.
var ErrNoPipe = errors.New("juxta: no pipe name given and the invite names none")

// Dial connects to the peer to names and opens its stream pipe. to is an
// invite (whose pipe name, if any, is used when pipe is empty), a /p2p
// multiaddr or a peer ID; with an ID alone the peer is found through the
// super-peers' DHT. The connection starts direct, hole-punched or relayed,
// as the networks between the two allow; the pipe is a net.Conn.
func (n *Node) Dial(ctx context.Context, to, pipe string) (net.Conn, error) {
	a, err := peer.ParseAddr(to)
	if err != nil {
		return nil, fmt.Errorf("juxta: dial: %w", err)
	}
	if pipe == "" && strings.HasPrefix(strings.ToLower(strings.TrimSpace(to)), "juxta") {
		if inv, err := peer.ParseInvite(to); err == nil {
			pipe = inv.Pipe
		}
	}
	if pipe == "" {
		return nil, ErrNoPipe
	}
	if _, err := n.p.Connect(ctx, a); err != nil {
		return nil, fmt.Errorf("juxta: dial %s: %w", a.ID.ShortString(), err)
	}
	c, err := n.ps.Dial(ctx, pipe, pipes.ToPeer(a.ID))
	if err != nil {
		return nil, fmt.Errorf("juxta: dial %s: %w", a.ID.ShortString(), err)
	}
	return c, nil
}

// Close stops every service and the peer. No goroutine the node started
// survives it. A second call returns an error wrapping net.ErrClosed.
func (n *Node) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return fmt.Errorf("juxta: close: %w", net.ErrClosed)
	}
	n.closed = true
	n.mu.Unlock()
	return n.shutdown()
}

// shutdown closes the services in the reverse order of their start.
func (n *Node) shutdown() error {
	var errs []error
	if n.g != nil {
		errs = append(errs, n.g.Close())
	}
	if n.ps != nil {
		errs = append(errs, n.ps.Close())
	}
	if n.d != nil {
		errs = append(errs, n.d.Close())
	}
	if n.p != nil {
		errs = append(errs, n.p.Close())
	}
	return errors.Join(errs...)
}
