package content

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	"golang.org/x/time/rate"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
)

// Config configures a content service. Only Peer is required.
type Config struct {
	// Peer is the peer the service runs on. Required.
	Peer *peer.Peer
	// Discovery, if set, publishes a TypeContent advertisement for every
	// shared ID (found through the super-peers' index) and is asked for
	// providers when fetching.
	Discovery *discovery.Service
	// Dir holds the index (index.db), the outboard trees and the blobs added
	// as bytes. Empty means a temporary directory removed by Close.
	Dir string
	// Allow, if set, limits the peers this service serves and fetches from:
	// a group-scoped service passes its membership check.
	Allow func(peer.ID) bool
	// AllowContent, if set, decides per content whether a peer may fetch it
	// from this service, after Allow: a service holding content of several
	// scopes (the net group's and a group's) serves each only in its scope.
	// It may block (a membership check) but must return within seconds.
	AllowContent func(peer.ID, ID) bool
	// NoAnnounce stops Add, AddBytes and completed fetches from announcing
	// this peer as a provider (DHT provider records and discovery).
	NoAnnounce bool

	// UploadRate and DownloadRate cap the service's total rates, in bytes per
	// second; PeerUploadRate and PeerDownloadRate cap them per remote peer.
	// 0 means no cap.
	UploadRate, DownloadRate         float64
	PeerUploadRate, PeerDownloadRate float64

	// UploadSlots is how many peers per content are unchoked by rate, re-chosen
	// every 10 s; one more is unchoked optimistically, rotated every 30 s.
	// Default 4.
	UploadSlots int
	// MaxPeers bounds the providers a download uses at once. Default 8.
	MaxPeers int
	// Pipeline is how many piece requests a download keeps outstanding per
	// provider. Default 16 (4 MiB in flight per provider).
	Pipeline int
	// MaxUploads bounds the streams served at once. Default 64.
	MaxUploads int
	// MaxBadPieces is how many pieces failing verification a provider may send
	// before it is banned. Default 3.
	MaxBadPieces int
	// ReprovideInterval is how often DHT provider records are renewed (they
	// expire after 48 h). Default 12 h.
	ReprovideInterval time.Duration

	// Logger receives the service's logs. Nil uses the peer's.
	Logger *slog.Logger

	// test, set by this package's tests, changes how the service behaves. It
	// lives in Config, not Service, so that it is set before New registers
	// the stream handler that reads it. A pointer keeps Config comparable.
	test *testHooks
}

// testHooks make a service misbehave in tests.
type testHooks struct {
	// noServe makes the service a free-rider that serves nobody.
	noServe bool
	// corrupt damages pieces the service serves.
	corrupt func(piece int, data []byte)
}

func (c *Config) defaults() {
	if c.UploadSlots <= 0 {
		c.UploadSlots = 4
	}
	if c.MaxPeers <= 0 {
		c.MaxPeers = 8
	}
	if c.Pipeline <= 0 {
		c.Pipeline = 16
	}
	if c.MaxUploads <= 0 {
		c.MaxUploads = 64
	}
	if c.MaxBadPieces <= 0 {
		c.MaxBadPieces = 3
	}
	if c.ReprovideInterval <= 0 {
		c.ReprovideInterval = 12 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = c.Peer.Logger()
	}
}

// TypeContent is the discovery advertisement type of shared content: ID is
// the content's CID; attributes "cid" and "name".
const TypeContent = "juxta.content"

// Service stores, shares and fetches content on one peer.
type Service struct {
	cfg   Config
	p     *peer.Peer
	h     host.Host
	log   *slog.Logger
	st    *store
	tmp   bool // st.dir is a temporary directory, removed by Close
	bus   *event.Bus[Event]
	clock clock

	upAll, downAll *rate.Limiter // nil when uncapped

	ctx    context.Context    // ends on Close
	cancel context.CancelFunc // ends ctx
	wg     sync.WaitGroup     // every goroutine of the service

	mu        sync.Mutex
	closed    bool                      // guarded by mu
	swarms    map[ID]*swarm             // guarded by mu: content being served
	downloads map[ID]*download          // guarded by mu
	banned    map[peer.ID]time.Time     // guarded by mu: until when
	uploads   int                       // guarded by mu: streams served
	peerUp    map[peer.ID]*rate.Limiter // guarded by mu
	peerDown  map[peer.ID]*rate.Limiter // guarded by mu
	announced map[ID]context.CancelFunc // guarded by mu: stops re-providing
	// Durability (durable.go).
	ours      map[ID]syncMark       // guarded by mu: files this run wrote, not yet durable
	pending   map[*syncJob]struct{} // guarded by mu: for Flush
	syncQ     []*syncJob            // guarded by mu: for the syncer
	syncKick  chan struct{}         // wakes the syncer; buffered 1
	syncEnded bool                  // guarded by mu: the syncer is gone
	syncErr   error                 // guarded by mu: the first fsync that failed, for Close
	flushErr  error                 // guarded by mu: the first since the last Flush
	idLocks   map[ID]chan struct{}  // guarded by mu: see lockID
	syncHook  func(*os.File) error  // tests: replaces the fsync of a finished file

	uploaded atomic.Int64 // piece bytes sent to downloaders

	// stallTimeout ends a download stream that delivers nothing for this long
	// while pieces are asked of it; tests shorten it.
	stallTimeout time.Duration
	// rechokeEvery and optimisticEvery are RechokeInterval and
	// OptimisticInterval; tests shorten them.
	rechokeEvery, optimisticEvery time.Duration
}

// New starts a content service on cfg.Peer. Close stops it.
func New(ctx context.Context, cfg Config) (_ *Service, err error) {
	if cfg.Peer == nil {
		return nil, errors.New("content: Config.Peer is required")
	}
	cfg.defaults()
	s := &Service{
		cfg: cfg, p: cfg.Peer, h: cfg.Peer.Libp2p().Host, log: cfg.Logger.With("svc", "content"),
		bus: event.New[Event](), clock: realClock{},
		swarms: map[ID]*swarm{}, downloads: map[ID]*download{}, banned: map[peer.ID]time.Time{},
		peerUp: map[peer.ID]*rate.Limiter{}, peerDown: map[peer.ID]*rate.Limiter{},
		announced: map[ID]context.CancelFunc{}, stallTimeout: StallTimeout,
		ours: map[ID]syncMark{}, pending: map[*syncJob]struct{}{}, syncKick: make(chan struct{}, 1),
		idLocks:      map[ID]chan struct{}{},
		rechokeEvery: rechokeDefault, optimisticEvery: optimisticDefault,
	}
	dir := cfg.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "juxta-content-"); err != nil {
			return nil, fmt.Errorf("content: %w", err)
		}
		s.tmp = true
	}
	if s.st, err = openStore(dir); err != nil {
		if s.tmp {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	s.upAll, s.downAll = newLimiter(cfg.UploadRate), newLimiter(cfg.DownloadRate)
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.h.SetStreamHandler(protocol.ID(ProtocolID), s.handle)
	s.wg.Add(3)
	go s.chokeLoop()
	go s.syncLoop()
	go s.settleAll()
	return s, nil
}

func newLimiter(r float64) *rate.Limiter {
	if r <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(r), max(int(r/10), PieceSize))
}

// Close stops serving and fetching, and waits for every goroutine of the
// service. A second call returns an error wrapping net.ErrClosed.
func (s *Service) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("content: close: %w", net.ErrClosed)
	}
	s.closed = true
	s.mu.Unlock()
	s.h.RemoveStreamHandler(protocol.ID(ProtocolID))
	s.cancel()
	s.mu.Lock()
	for _, sw := range s.swarms {
		sw.closeSessions()
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.bus.Close()
	err := s.st.close()
	s.mu.Lock()
	err = errors.Join(s.syncErr, err)
	s.mu.Unlock()
	if s.tmp {
		err = errors.Join(err, os.RemoveAll(s.st.dir))
	}
	return err
}

// Uploaded returns how many bytes of pieces the service has sent.
func (s *Service) Uploaded() int64 { return s.uploaded.Load() }

// Dir is where the service keeps its index, trees and blobs.
func (s *Service) Dir() string { return s.st.dir }

// Info describes stored content.
type Info struct {
	ID   ID
	Size int64
	Name string
	// Path is the file holding the content on this peer.
	Path string
}

// Add shares the file at path in place: it is hashed once (Progress events
// report the hashing), its tree is kept in Dir, and the file itself is not
// copied. Adding a file again returns the recorded ID at once unless its size
// or modification time changed, in which case it is hashed again.
func (s *Service) Add(ctx context.Context, path string) (Info, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return Info{}, fmt.Errorf("content: add %s: %w", path, err)
	}
	if id, ok := s.st.byPath(abs); ok {
		// A record an earlier run left unsynced is not taken on trust:
		// the file is hashed again below.
		if r, ok := s.st.get(id); ok && (!r.Unsynced || s.wrote(id, r)) && r.fresh() == nil {
			if _, err := os.Stat(s.st.treePath(id)); err == nil {
				s.announce(id, r.Name)
				return Info{ID: id, Size: r.Size, Name: r.Name, Path: abs}, nil
			}
		}
	}
	f, err := os.Open(abs)
	if err != nil {
		return Info{}, fmt.Errorf("content: add: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Info{}, fmt.Errorf("content: add: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("content: add %s: not a regular file", abs)
	}
	name := filepath.Base(abs)
	id, err := s.hash(ctx, f, fi.Size(), name)
	if err != nil {
		return Info{}, fmt.Errorf("content: add %s: %w", abs, err)
	}
	// The file must not have changed while it was hashed.
	fi2, err := os.Stat(abs)
	if err != nil || fi2.Size() != fi.Size() || !fi2.ModTime().Equal(fi.ModTime()) {
		return Info{}, fmt.Errorf("content: add %s: %w while it was hashed", abs, ErrStale)
	}
	r := record{Path: abs, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Name: name}
	if err := s.st.put(id, r); err != nil {
		return Info{}, fmt.Errorf("content: add %s: %w", abs, err)
	}
	s.announce(id, name)
	return Info{ID: id, Size: r.Size, Name: name, Path: abs}, nil
}

// hash hashes size bytes from r, saves the tree and reports progress.
func (s *Service) hash(ctx context.Context, r io.Reader, size int64, name string) (ID, error) {
	start := s.clock.Now()
	last := start
	tick := func(n int64) {
		if now := s.clock.Now(); now.Sub(last) >= ProgressInterval {
			last = now
			s.bus.Publish(hashProgress(name, n, size, now.Sub(start)))
		}
	}
	id, t, err := hashContent(ctx, r, size, tick)
	ev := hashProgress(name, size, size, s.clock.Now().Sub(start))
	ev.ID, ev.Done, ev.Err = id, true, err
	if err == nil {
		err = s.st.saveTree(id, t)
	}
	s.bus.Publish(ev)
	return id, err
}

func hashProgress(name string, n, size int64, el time.Duration) Progress {
	ev := Progress{Op: OpHash, Name: name, Bytes: n, Total: size}
	if el > 0 {
		ev.Rate = float64(n) / el.Seconds()
		if ev.Rate > 0 {
			ev.ETA = time.Duration(float64(size-n) / ev.Rate * float64(time.Second))
		}
	}
	return ev
}

// AddBytes stores b in Dir (named name, which may be empty) and shares it.
func (s *Service) AddBytes(ctx context.Context, name string, b []byte) (Info, error) {
	id, err := s.hash(ctx, bytes.NewReader(b), int64(len(b)), name)
	if err != nil {
		return Info{}, fmt.Errorf("content: add bytes: %w", err)
	}
	path := s.st.blobPath(id)
	if err := writeFileAtomic(path, b); err != nil {
		return Info{}, fmt.Errorf("content: add bytes: %w", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return Info{}, fmt.Errorf("content: add bytes: %w", err)
	}
	r := record{Path: path, Size: fi.Size(), MTime: fi.ModTime().UnixNano(), Name: name, Owned: true, Unsynced: true}
	unlock, ok := s.lockID(id, true)
	if !ok {
		return Info{}, fmt.Errorf("content: add bytes: %w", net.ErrClosed)
	}
	defer unlock()
	j := s.queueSync(id, path, r.MTime)
	if err := s.st.put(id, r); err != nil {
		s.dropSync(j)
		return Info{}, fmt.Errorf("content: add bytes: %w", err)
	}
	s.startSync(j)
	s.announce(id, name)
	return Info{ID: id, Size: r.Size, Name: name, Path: path}, nil
}

// Stat returns what is stored under id, or ErrNotFound. A shared file that
// changed since it was added gives ErrStale.
func (s *Service) Stat(id ID) (Info, error) {
	r, ok := s.st.get(id)
	if !ok {
		return Info{}, fmt.Errorf("content: %s: %w", id, ErrNotFound)
	}
	r, err := s.settle(id, r, true)
	if err != nil {
		return Info{}, fmt.Errorf("content: %s: %w", id, err)
	}
	if err := r.fresh(); err != nil {
		return Info{}, fmt.Errorf("content: %s: %w", id, err)
	}
	return Info{ID: id, Size: r.Size, Name: r.Name, Path: r.Path}, nil
}

// List returns everything stored, in ID order.
func (s *Service) List() []Info { return s.st.list() }

// Open opens stored content for reading.
func (s *Service) Open(id ID) (*os.File, error) {
	info, err := s.Stat(id)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(info.Path)
	if err != nil {
		return nil, fmt.Errorf("content: open %s: %w", id, err)
	}
	return f, nil
}

// Bytes returns stored content of at most limit bytes.
func (s *Service) Bytes(id ID, limit int64) ([]byte, error) {
	info, err := s.Stat(id)
	if err != nil {
		return nil, err
	}
	if info.Size > limit {
		return nil, fmt.Errorf("content: %s: %w: %d bytes, limit %d", id, ErrTooLarge, info.Size, limit)
	}
	b, err := os.ReadFile(info.Path)
	if err != nil {
		return nil, fmt.Errorf("content: read %s: %w", id, err)
	}
	if int64(len(b)) != info.Size {
		return nil, fmt.Errorf("content: read %s: %w", id, ErrStale)
	}
	return b, nil
}

// Remove stops sharing id and forgets it: its tree goes, and so does its data
// when it lives in Dir (AddBytes, Fetch without a destination). A shared
// file stays where it is.
func (s *Service) Remove(ctx context.Context, id ID) error {
	unlock, ok := s.lockID(id, true)
	if !ok {
		return fmt.Errorf("content: remove %s: %w", id, net.ErrClosed)
	}
	r, err := s.st.delete(id)
	unlock()
	if err != nil {
		return fmt.Errorf("content: remove %s: %w", id, err)
	}
	s.unannounce(ctx, id)
	s.mu.Lock()
	if sw := s.swarms[id]; sw != nil && sw.dl == nil {
		sw.closeSessions()
	}
	s.mu.Unlock()
	err = os.Remove(s.st.treePath(id))
	if r.Owned {
		err = errors.Join(err, os.Remove(r.Path))
	}
	if errors.Is(err, os.ErrNotExist) {
		err = nil
	}
	return err
}

// Link returns a share link for stored content naming this peer as provider.
func (s *Service) Link(id ID) (Link, error) {
	info, err := s.Stat(id)
	if err != nil {
		return Link{}, err
	}
	return Link{ID: id, Size: info.Size, Name: info.Name, Providers: []peer.Addr{s.p.Addr()}}, nil
}

func (s *Service) allowed(id peer.ID) bool {
	if s.cfg.Allow != nil && !s.cfg.Allow(id) {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.banned[id]
	if ok && s.clock.Now().After(until) {
		delete(s.banned, id)
		ok = false
	}
	return !ok
}

// rechokeDefault and optimisticDefault are what New uses; tests shorten them.
var rechokeDefault, optimisticDefault = RechokeInterval, OptimisticInterval

// StallTimeout is how long a provider may leave requested pieces unanswered
// before the download drops the stream (and retries it, or another provider).
const StallTimeout = 30 * time.Second

// BanTime is how long a peer that sent bad data stays banned.
const BanTime = time.Hour

func (s *Service) ban(id peer.ID) {
	s.mu.Lock()
	now := s.clock.Now()
	if len(s.banned) >= maxPeerEntries {
		for p, until := range s.banned {
			if now.After(until) || len(s.banned) >= maxPeerEntries {
				delete(s.banned, p) // expired first; then the map's order
			}
		}
	}
	s.banned[id] = now.Add(BanTime)
	s.mu.Unlock()
	s.log.Warn("banned a peer for bad data", "peer", id)
}

// Banned reports whether a peer is banned for sending bad data.
func (s *Service) Banned(id peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.banned[id]
	return ok && s.clock.Now().Before(until)
}

// maxPeerEntries bounds the per-peer maps (limiters, bans): past it they are
// pruned, so peers with fresh identities cannot grow them without end.
const maxPeerEntries = 4096

func (s *Service) peerLimiters(id peer.ID) (up, down *rate.Limiter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.peerUp) >= maxPeerEntries || len(s.peerDown) >= maxPeerEntries {
		// Forgetting a limiter only grants that peer one fresh burst.
		clear(s.peerUp)
		clear(s.peerDown)
	}
	if s.cfg.PeerUploadRate > 0 {
		if up = s.peerUp[id]; up == nil {
			up = newLimiter(s.cfg.PeerUploadRate)
			s.peerUp[id] = up
		}
	}
	if s.cfg.PeerDownloadRate > 0 {
		if down = s.peerDown[id]; down == nil {
			down = newLimiter(s.cfg.PeerDownloadRate)
			s.peerDown[id] = down
		}
	}
	return up, down
}

// wait takes n tokens from each limiter that is set.
func wait(ctx context.Context, n int, ls ...*rate.Limiter) error {
	for _, l := range ls {
		if l == nil || n == 0 {
			continue
		}
		if err := l.WaitN(ctx, min(n, l.Burst())); err != nil {
			return err
		}
	}
	return nil
}
