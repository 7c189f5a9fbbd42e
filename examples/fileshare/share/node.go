package share

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Errors of the engine.
var (
	// ErrLocked: another node runs with the same directory.
	ErrLocked = errors.New("share: another fileshare is running with this directory")
	// ErrNoGroup: the group is not one this node has joined.
	ErrNoGroup = errors.New("share: not a member of this group")
	// ErrSuperPeer: the operation needs an edge node, not a super-peer.
	ErrSuperPeer = errors.New("share: a super-peer does not share or download")
)

// Node is one running file-sharing peer: its shares, searches and downloads.
type Node struct {
	cfg  Config
	log  *slog.Logger
	lock *os.File
	p    *peer.Peer
	d    *discovery.Service
	ps   *pipes.Service
	gs   *groups.Service
	cs   *content.Service
	w    *Watcher
	bus  *event.Bus[Event]

	ctx    context.Context // ends on Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	saveMu sync.Mutex // serialises writes of the downloads list

	mu          sync.Mutex
	folders     map[string]string      // guarded by mu; shared folder → group name
	files       map[string]*sharedFile // guarded by mu; by absolute path
	refs        map[refKey]int         // guarded by mu; shared paths per scope and content ID
	pending     int                    // guarded by mu; files waiting to be hashed
	unpublished int                    // guarded by mu; files hashed or not, whose batch is not yet published
	hashed      int                    // guarded by mu; of the current wave
	groups      map[string]*joined     // guarded by mu; joined groups by name
	downloads   map[string]*download   // guarded by mu; by content ID
	rates       map[peer.ID]peerRate   // guarded by mu; download rate by peer
	pins        *pinner                // nil on a super-peer
	hashing     content.Progress       // guarded by mu; the file being hashed, if any
}

// sharedFile is one advertised file.
type sharedFile struct {
	root, rel, group string
	id               string
	size             int64
}

// Open starts a node: the peer, discovery, groups and the content service, and
// resumes the downloads left unfinished.
func Open(ctx context.Context, cfg Config) (_ *Node, err error) {
	if cfg.Dir == "" {
		return nil, errors.New("share: a directory is required")
	}
	if cfg.Downloads == "" {
		cfg.Downloads = filepath.Join(cfg.Dir, "downloads")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, d := range []string{cfg.Dir, cfg.Downloads} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("share: %w", err)
		}
	}
	if cfg.Downloads, err = filepath.Abs(cfg.Downloads); err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	n := &Node{
		cfg: cfg, log: cfg.Logger, bus: event.New[Event](),
		folders: map[string]string{}, files: map[string]*sharedFile{}, refs: map[refKey]int{}, groups: map[string]*joined{},
		downloads: map[string]*download{}, rates: map[peer.ID]peerRate{},
	}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	var closers []func() error
	defer func() {
		if err != nil {
			n.cancel()
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			n.bus.Close()
		}
	}()
	if n.lock, err = lockDir(cfg.Dir); err != nil {
		return nil, err
	}
	closers = append(closers, n.lock.Close)
	pcfg := peer.Config{Dir: filepath.Join(cfg.Dir, "peer"), Name: cfg.Name, SuperPeers: cfg.SuperPeers, NoMDNS: cfg.NoMDNS, Port: cfg.Port, Logger: cfg.Logger}
	if cfg.Loopback {
		pcfg.ListenAddrs = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", cfg.Port), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", cfg.Port)}
	}
	if cfg.SuperPeer {
		pcfg.Role, pcfg.Reachability, pcfg.Name = peer.RoleSuperPeer, peer.ReachabilityPublic, "super-peer"
	}
	if n.p, err = peer.New(ctx, pcfg); err != nil {
		return nil, err
	}
	closers = append(closers, n.p.Close)
	dcfg := discovery.Config{Flood: cfg.Flood}
	if cfg.SuperPeer {
		// A household of sharers with thousands of files each.
		dcfg.Capacity, dcfg.PublisherQuota = 200_000, 20_000
	} else {
		dcfg.PublisherQuota = 20_000
	}
	if n.d, err = discovery.New(ctx, n.p, dcfg); err != nil {
		return nil, err
	}
	closers = append(closers, n.d.Close)
	if cfg.SuperPeer {
		return n, nil
	}
	if n.ps, err = pipes.New(ctx, n.p, n.d); err != nil {
		return nil, err
	}
	closers = append(closers, n.ps.Close)
	if n.gs, err = groups.New(ctx, n.p, n.d, n.ps, groups.Config{}); err != nil {
		return nil, err
	}
	closers = append(closers, n.gs.Close)
	if err := n.openContent(ctx); err != nil {
		return nil, err
	}
	closers = append(closers, n.cs.Close)
	if n.w, err = Watch(nil, cfg.Settle); err != nil {
		return nil, err
	}
	closers = append(closers, n.w.Close)
	n.pins = newPinner(n)
	n.pins.load()
	n.wg.Add(2)
	go n.indexLoop()
	go n.progressLoop()
	if !cfg.NoShareDownloads {
		if err := n.w.Add(cfg.Downloads); err != nil {
			return nil, err
		}
		n.mu.Lock()
		n.folders[cfg.Downloads] = ""
		n.mu.Unlock()
	}
	n.resumeDownloads("")
	return n, nil
}

// lockDir takes an exclusive lock on dir, so that two nodes never share one
// identity and index.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "fileshare.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("share: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s (use its prompt, or another -dir)", ErrLocked, dir)
	}
	return f, nil
}

// Close stops the node; its advertisements stay in others' caches until they
// expire. A second call returns an error wrapping net.ErrClosed.
func (n *Node) Close() error {
	if !n.closed.CompareAndSwap(false, true) {
		return fmt.Errorf("share: close: %w", net.ErrClosed)
	}
	n.cancel()
	var errs []error
	if n.w != nil {
		errs = append(errs, n.w.Close())
	}
	n.wg.Wait()
	if n.cs != nil { // an edge: content, groups and pipes run
		errs = append(errs, n.cs.Close(), n.gs.Close(), n.ps.Close())
	}
	errs = append(errs, n.d.Close(), n.p.Close(), n.lock.Close())
	n.bus.Close()
	return errors.Join(errs...)
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.p.ID() }

// Invite is the node's invite: others pass it as -superpeer (to a super-peer)
// or to Connect.
func (n *Node) Invite() string { return n.p.Invite() }

// Peer is the node's peer.
func (n *Node) Peer() *peer.Peer { return n.p }

// Connect connects to a peer by its invite.
func (n *Node) Connect(ctx context.Context, invite string) error {
	a, err := peer.ParseAddr(invite)
	if err != nil {
		return err
	}
	_, err = n.p.Connect(ctx, a)
	return err
}

// Subscribe delivers the node's events under juxta's one event contract: each
// subscriber has its own buffer, a full buffer drops events for that
// subscriber only, and the channel closes when ctx ends or the node closes.
func (n *Node) Subscribe(ctx context.Context) *event.Subscription[Event] {
	return n.bus.Subscribe(ctx, 1024)
}

func (n *Node) emit(ev Event) { n.bus.Publish(ev) }

func (n *Node) edge() error {
	if n.cfg.SuperPeer {
		return ErrSuperPeer
	}
	return nil
}
