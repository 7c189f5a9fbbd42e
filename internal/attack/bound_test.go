package attack

import (
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/internal/leaktest"
)

func TestMain(m *testing.M) { leaktest.VerifyTestMain(m) }

// The peak is the process's, spikes between samples included, and the bound
// fails the test that passes it.
func TestMemoryPeak(t *testing.T) {
	m := WatchMemory()
	b := make([]byte, 64<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	peak, base, _ := m.Stop()
	if peak < base+60<<20 {
		t.Fatalf("peak %s from %s after touching 64 MiB", MiB(peak), MiB(base))
	}
	b[0] = 2
	if Race {
		return // the bound is scaled to 2 GiB under the detector
	}

	var ft fakeT
	m = WatchMemory()
	big := make([]byte, SuperPeerBound*RSSScale()+8<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	m.SuperPeer(&ft, "a test attack", time.Millisecond)
	big[0] = 2
	if !ft.failed {
		t.Fatal("a process past the bound passed")
	}
}

type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Logf(string, ...any)   {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
