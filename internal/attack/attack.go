package attack

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/stats"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Host is a raw go-libp2p host on loopback TCP with a fresh identity and no
// resource limits of its own: the attacker. It is closed when t ends.
func Host(t testing.TB) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.ResourceManager(&network.NullResourceManager{}),
		libp2p.DisableRelay(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// Hosts makes n attacker hosts, each a separate identity.
func Hosts(t testing.TB, n int) []host.Host {
	out := make([]host.Host, n)
	for i := range out {
		out[i] = Host(t)
	}
	return out
}

// Connect connects h to the target's loopback addresses.
func Connect(ctx context.Context, h host.Host, target host.Host) error {
	return h.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()})
}

// RSS is the process's resident set in bytes (Linux; 0 elsewhere).
func RSS() int64 { return status("VmRSS:") }

// HeapInUse is the Go heap in use after a collection, in bytes: steadier
// than RSS, which the runtime returns to the system lazily.
func HeapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse)
}

// Goroutines is runtime.NumGoroutine.
func Goroutines() int { return runtime.NumGoroutine() }

// RSSScale is how much more memory the race detector needs: bounds on RSS are
// multiplied by it.
func RSSScale() int64 {
	if Race {
		return 8
	}
	return 1
}

// SkipRSSUnderRace skips a test whose point is an RSS bound.
func SkipRSSUnderRace(t testing.TB) {
	if Race {
		t.Skip("RSS bounds do not hold under the race detector")
	}
}

// Peak samples RSS and goroutines every interval until Stop, keeping the
// highest of each.
type Peak struct {
	mu         sync.Mutex
	rss        int64
	goroutines int
	stop       chan struct{}
	done       chan struct{}
}

// Watch starts sampling.
func Watch(interval time.Duration) *Peak {
	p := &Peak{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			p.sample()
			select {
			case <-p.stop:
				return
			case <-t.C:
			}
		}
	}()
	return p
}

func (p *Peak) sample() {
	r, g := RSS(), Goroutines()
	p.mu.Lock()
	p.rss, p.goroutines = max(p.rss, r), max(p.goroutines, g)
	p.mu.Unlock()
}

// Stop ends sampling and returns the peaks.
func (p *Peak) Stop() (rss int64, goroutines int) {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.done
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.rss, p.goroutines
}

// Latencies collects durations of honest operations under attack.
type Latencies struct {
	mu sync.Mutex
	d  []time.Duration
	n  int // failures
}

// Time runs op and records how long it took, or a failure.
func (l *Latencies) Time(op func() error) error {
	start := time.Now()
	err := op()
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.n++
		return err
	}
	l.d = append(l.d, time.Since(start))
	return nil
}

// P99 is the 99th percentile (nearest rank) of the recorded durations: the
// slowest one when there are 100 or fewer.
func (l *Latencies) P99() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return stats.Percentile(l.d, 99)
}

// Failures is how many operations failed.
func (l *Latencies) Failures() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n
}

// Count is how many operations succeeded.
func (l *Latencies) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.d)
}

// String reports the figures for a test log.
func (l *Latencies) String() string {
	return fmt.Sprintf("honest p99 %v over %d ops, %d failed", l.P99(), l.Count(), l.Failures())
}

// MiB formats bytes.
func MiB(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
