package farm

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// ProviderConfig configures a provider.
type ProviderConfig struct {
	Node NodeConfig
	// Invite is the farm invite.
	Invite string
	// Slots is how many units run at once. Default: the number of CPUs.
	Slots int
	// CacheDir keeps compiled modules. Default Node.Dir/wasm-cache.
	CacheDir string
	// Natives are native tasks this provider offers (trusted farms only:
	// they run outside the sandbox).
	Natives map[string]NativeFunc
	// Profile, when set, replaces the measured host profile (tests).
	Profile *Profile
}

// Provider is a volunteer's machine in a farm (seed 004's Provider): it
// registers its host profile, takes units from the scheduler, runs them in
// the sandbox and reports the results, reconnecting whenever the scheduler
// restarts.
type Provider struct {
	*Node
	w     *Worker
	exec  *Executor
	prof  Profile
	sched atomic.Value // peer.ID
	up    atomic.Bool
	wg    sync.WaitGroup
	once  sync.Once
}

// JoinProvider joins the farm an invite names and starts working.
func JoinProvider(ctx context.Context, cfg ProviderConfig) (_ *Provider, err error) {
	n, err := openNode(ctx, cfg.Node)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if _, err := n.join(ctx, cfg.Invite); err != nil {
		return nil, err
	}
	if cfg.Slots <= 0 {
		cfg.Slots = runtime.NumCPU()
	}
	if cfg.CacheDir == "" {
		cfg.CacheDir = filepath.Join(cfg.Node.Dir, "wasm-cache")
	}
	pr := &Provider{Node: n}
	if cfg.Profile != nil {
		pr.prof = *cfg.Profile
	} else {
		pr.prof = HostProfile(cfg.Node.Dir)
	}
	pr.prof.Slots = cfg.Slots
	if cfg.Node.Name != "" {
		pr.prof.Name = cfg.Node.Name
	}
	pr.exec, err = NewExecutor(cfg.CacheDir, func(ctx context.Context, ref Ref, max int64) ([]byte, error) {
		var hints []string
		if id, ok := pr.sched.Load().(peer.ID); ok {
			hints = append(hints, id.String())
		}
		return n.blobs.Get(ctx, ref, max, hints)
	})
	if err != nil {
		return nil, err
	}
	for name, f := range cfg.Natives {
		pr.exec.Register(name, f)
	}
	pr.w = NewWorker(pr.exec, cfg.Slots)
	n.wg.Add(2)
	go func() { defer n.wg.Done(); pr.w.Run(n.ctx) }()
	go func() { defer n.wg.Done(); pr.connectLoop() }()
	return pr, nil
}

// Profile is the host profile this provider registered with.
func (pr *Provider) Profile() Profile { return pr.prof }

// Connected reports whether the provider has a session with the scheduler.
func (pr *Provider) Connected() bool { return pr.up.Load() }

// Ran is how many units this provider finished, and the slot time spent.
func (pr *Provider) Ran() (uint64, time.Duration) { return pr.w.Ran() }

// Close stops working and leaves the farm. Safe twice.
func (pr *Provider) Close() error {
	err := pr.Node.Close()
	pr.once.Do(func() { pr.exec.Close() })
	return err
}

func (pr *Provider) connectLoop() {
	backoff := 50 * time.Millisecond
	for pr.ctx.Err() == nil {
		id, ok := pr.sched.Load().(peer.ID)
		if !ok {
			var err error
			if id, err = pr.findScheduler(pr.ctx); err != nil {
				pr.log.Info("no scheduler yet", "err", err)
				pr.sleep(time.Second)
				continue
			}
			pr.sched.Store(id)
		}
		start := time.Now()
		err := pr.session(id)
		pr.up.Store(false)
		if pr.ctx.Err() != nil {
			return
		}
		pr.log.Info("scheduler session ended", "err", err)
		if time.Since(start) > 5*time.Second {
			backoff = 50 * time.Millisecond
		}
		pr.sleep(backoff)
		backoff = min(2*backoff, 500*time.Millisecond)
	}
}

func (pr *Provider) sleep(d time.Duration) {
	select {
	case <-pr.ctx.Done():
	case <-time.After(d):
	}
}

func (pr *Provider) session(id peer.ID) error {
	ctx, cancel := context.WithCancel(pr.ctx)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
	prof := pr.prof
	c, err := pr.dial(dctx, id, &frame{T: tHello, Role: roleProvider, Profile: &prof, Holding: pr.w.Holding()})
	dcancel()
	if err != nil {
		return err
	}
	defer c.Close()
	l := &netLink{c: c, acks: map[uint64]chan struct{}{}, dead: make(chan struct{})}
	l.heard.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer cancel()
		l.read(ctx, pr.w)
	}()
	go func() { // heartbeat, and drop a scheduler gone silent (kill -9 over QUIC)
		defer wg.Done()
		defer cancel()
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if time.Since(time.Unix(0, l.heard.Load())) > silence {
				pr.p.Libp2p().Host.Network().ClosePeer(lpeer.ID(id))
				return
			}
			if l.want(pr.w.Free()) != nil {
				return
			}
		}
	}()
	pr.up.Store(true)
	err = pr.w.pump(ctx, l)
	cancel()
	c.Close()
	wg.Wait()
	return err
}

// netLink is a worker's link over the farm pipe.
type netLink struct {
	c     *pipes.MsgConn
	heard atomic.Int64  // unix ns of the last frame from the scheduler
	dead  chan struct{} // closed when the reader stops

	mu   sync.Mutex
	seq  uint64
	acks map[uint64]chan struct{} // guarded by mu
	err  string                   // guarded by mu; the scheduler's last error
}

func (l *netLink) read(ctx context.Context, w *Worker) {
	defer close(l.dead)
	for {
		f, err := recvFrame(ctx, l.c)
		if err != nil {
			return
		}
		l.heard.Store(time.Now().UnixNano())
		switch f.T {
		case tGrant:
			w.Add(f.Grant)
		case tAck:
			l.mu.Lock()
			if ch := l.acks[f.Seq]; ch != nil {
				close(ch)
				delete(l.acks, f.Seq)
			}
			l.mu.Unlock()
		case tError:
			l.mu.Lock()
			l.err = f.Err
			l.mu.Unlock()
			return
		}
	}
}

func (l *netLink) send(f *frame) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return sendFrame(ctx, l.c, f)
}

func (l *netLink) want(n int) error { return l.send(&frame{T: tWant, N: n}) }

func (l *netLink) started(ids []InstanceID) error { return l.send(&frame{T: tStarted, IDs: ids}) }

func (l *netLink) report(ctx context.Context, rs []Report) error {
	l.mu.Lock()
	l.seq++
	seq := l.seq
	ch := make(chan struct{})
	l.acks[seq] = ch
	l.mu.Unlock()
	if err := l.send(&frame{T: tReports, Seq: seq, Reports: rs}); err != nil {
		return err
	}
	select {
	case <-ch:
		return nil
	case <-l.dead:
		l.mu.Lock()
		defer l.mu.Unlock()
		return fmt.Errorf("farm: the scheduler went away before acknowledging (%s)", l.err)
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return fmt.Errorf("farm: no acknowledgement within a minute")
	}
}
