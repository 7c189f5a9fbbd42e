package farm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Pipe and advertisement names of the farm, in the farm group's scope.
const (
	farmPipe      = "taskfarm"
	blobPipe      = "taskfarm-blob"
	schedulerType = "taskfarm.scheduler"
)

// NodeConfig configures a farm member's network stack.
type NodeConfig struct {
	// Dir keeps the identity and, for a scheduler, the farm group. Required.
	Dir string
	// Name is the display name in the farm's presence list.
	Name string
	// Peer overrides the peer configuration (listen addresses, mDNS,
	// super-peers); Dir and Name are filled in. Zero: peer.Config defaults.
	Peer peer.Config
	// Groups tunes presence (heartbeat, offline delay).
	Groups groups.Config
	Logger *slog.Logger
}

// Node is one farm member's network stack: its peer, discovery, pipes and
// the farm group.
type Node struct {
	cfg   NodeConfig
	p     *peer.Peer
	d     *discovery.Service
	ps    *pipes.Service
	gs    *groups.Service
	g     *groups.Group
	blobs *contentBlobs // set when the node enters the group
	log   *slog.Logger
	pw    string

	invited peer.ID // the scheduler the invite named

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

func openNode(ctx context.Context, cfg NodeConfig) (n *Node, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("farm: a directory is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("farm: %w", err)
	}
	n = &Node{cfg: cfg, log: cfg.Logger}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var closers []func() error
	defer func() {
		if err != nil {
			n.cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
		}
	}()
	pc := cfg.Peer
	pc.Dir, pc.Name, pc.Logger = filepath.Join(cfg.Dir, "peer"), cfg.Name, cfg.Logger
	if n.p, err = peer.New(ctx, pc); err != nil {
		return nil, err
	}
	closers = append(closers, n.p.Close)
	if n.d, err = discovery.New(ctx, n.p, discovery.Config{}); err != nil {
		return nil, err
	}
	closers = append(closers, n.d.Close)
	if n.ps, err = pipes.New(ctx, n.p, n.d); err != nil {
		return nil, err
	}
	closers = append(closers, n.ps.Close)
	if n.gs, err = groups.New(ctx, n.p, n.d, n.ps, cfg.Groups); err != nil {
		return nil, err
	}
	return n, nil
}

// enter starts what every member runs once it is in the group: the content
// service for modules and data (members only) and its presence.
func (n *Node) enter(ctx context.Context, g *groups.Group) error {
	n.g = g
	b, err := newContentBlobs(ctx, n.p, g, n.cfg.Dir)
	if err != nil {
		return err
	}
	n.blobs = b
	return g.SetPresence(groups.Online, "")
}

func (n *Node) closeBlobs() {
	if n.blobs != nil {
		n.blobs.close()
	}
}

// ID is this member's peer ID as a string.
func (n *Node) ID() string { return n.p.ID().String() }

// Peer is the member's peer.
func (n *Node) Peer() *peer.Peer { return n.p }

// Group is the farm group.
func (n *Node) Group() *groups.Group { return n.g }

// Blobs is where this member offers and fetches modules and data.
func (n *Node) Blobs() Blobs { return n.blobs }

// Close leaves the farm and stops the stack. Safe twice.
func (n *Node) Close() error {
	err := fmt.Errorf("farm: node: %w", ErrClosed)
	n.once.Do(func() {
		if n.g != nil {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			n.g.Leave(ctx)
			cancel()
		}
		n.cancel()
		n.closeBlobs()
		n.wg.Wait()
		err = errors.Join(n.gs.Close(), n.ps.Close(), n.d.Close(), n.p.Close())
	})
	return err
}

// farmState is what a scheduler keeps to be the same farm after a restart.
type farmState struct {
	Group    []byte `cbor:"1,keyasint"`
	Password string `cbor:"2,keyasint"`
}

// createOrRejoin makes the farm group on first start and rejoins it after.
func (n *Node) createOrRejoin(ctx context.Context, name, password string) (*groups.Group, error) {
	path := filepath.Join(n.cfg.Dir, "farm.cbor")
	if b, err := os.ReadFile(path); err == nil {
		var st farmState
		if err := dec.Unmarshal(b, &st); err != nil {
			return nil, fmt.Errorf("farm: %s is damaged: %w", path, err)
		}
		info, err := groups.ParseInfo(st.Group)
		if err != nil {
			return nil, fmt.Errorf("farm: %s: %w", path, err)
		}
		n.pw = st.Password
		return n.gs.Join(ctx, groups.Password(info, st.Password))
	}
	if password == "" {
		return nil, errors.New("farm: a new farm needs a password")
	}
	g, err := n.gs.Create(ctx, groups.Spec{Name: name, Policy: groups.PolicyPassword, Password: password})
	if err != nil {
		return nil, err
	}
	info := g.Info()
	n.pw = password
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, mustEnc(farmState{Group: info.Raw(), Password: password}), 0o600); err != nil {
		return nil, fmt.Errorf("farm: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("farm: %w", err)
	}
	return g, nil
}

// join enters the farm an invite names and finds its scheduler through the
// group's discovery.
func (n *Node) join(ctx context.Context, invite string) (inviteBody, error) {
	inv, err := parseInvite(invite)
	if err != nil {
		return inv, err
	}
	sched, err := peer.ParseAddr(inv.Scheduler)
	if err == nil {
		_, err = n.p.Connect(ctx, sched)
	}
	if err != nil {
		return inv, fmt.Errorf("farm: reach the scheduler: %w", err)
	}
	if pi, err := peer.ParseInvite(inv.Scheduler); err == nil {
		n.invited = pi.Peer.ID
	}
	info, err := groups.ParseInfo(inv.Group)
	if err != nil {
		return inv, fmt.Errorf("%w: %v", ErrBadInvite, err)
	}
	g, err := n.gs.Join(ctx, groups.Password(info, inv.Password))
	if err != nil {
		return inv, fmt.Errorf("farm: join: %w", err)
	}
	return inv, n.enter(ctx, g)
}

// findScheduler looks the farm's scheduler up in the group's discovery
// (the cache, LAN neighbours, super-peers); without an answer, it takes the
// scheduler the invite named, a member that the dial then authenticates.
func (n *Node) findScheduler(ctx context.Context) (peer.ID, error) {
	id, err := n.discoverScheduler(ctx)
	if err != nil && n.invited != "" {
		n.log.Info("scheduler not found by discovery; using the invite's", "err", err)
		return n.invited, nil
	}
	return id, err
}

func (n *Node) discoverScheduler(ctx context.Context) (peer.ID, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var errs []error
	for r, err := range n.g.Discovery().Find(ctx, discovery.Query{Type: schedulerType, Limit: 4}) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if r.Attrs["farm"] == n.g.ID() {
			return r.Publisher, nil
		}
	}
	return "", fmt.Errorf("%w: %w", ErrNoScheduler, errors.Join(errs...))
}

// dial opens the farm pipe to the scheduler and says hello.
func (n *Node) dial(ctx context.Context, to peer.ID, hello *frame) (*pipes.MsgConn, error) {
	c, err := n.g.Pipes().DialMessages(ctx, farmPipe, pipes.MessageConfig{MaxMessage: MaxFrame}, pipes.ToPeer(to))
	if err != nil {
		return nil, err
	}
	if err := sendFrame(ctx, c, hello); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func sendFrame(ctx context.Context, c *pipes.MsgConn, f *frame) error {
	b, err := encodeFrame(f)
	if err != nil {
		return err
	}
	_, err = c.Send(ctx, b)
	return err
}

func recvFrame(ctx context.Context, c *pipes.MsgConn) (*frame, error) {
	b, err := c.Recv(ctx)
	if err != nil {
		return nil, err
	}
	return decodeFrame(b)
}
