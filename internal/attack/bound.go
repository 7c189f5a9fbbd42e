package attack

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SuperPeerBound is issue 12's bound: no super-peer under any single attack
// grows past 256 MiB of resident memory.
const SuperPeerBound = 256 << 20

// Memory measures the resident memory of the test process during one attack.
//
// The super-peer under attack runs inside the test process, with the honest
// peers, the attackers and the test itself, so the process's resident set is
// an upper bound on the super-peer's: when the process stays under
// SuperPeerBound, the super-peer does. The peak is the kernel's high-water
// mark (VmHWM), reset when the watch starts (/proc/self/clear_refs), so that
// a spike between two samples counts too; where that reset is not allowed,
// the highest of samples every 20 ms.
type Memory struct {
	peak  *Peak
	hwm   bool // VmHWM was reset at the start and measures this attack alone
	base  int64
	start time.Time
}

// WatchMemory starts measuring; call it when the attack starts.
func WatchMemory() *Memory {
	// What earlier tests freed goes back to the system first, so that it
	// does not count against this attack.
	runtime.GC()
	debug.FreeOSMemory()
	m := &Memory{base: RSS(), start: time.Now()}
	m.hwm = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	m.peak = Watch(20 * time.Millisecond)
	return m
}

// Stop ends the measurement: the process's peak resident set during the
// attack, its resident set when the attack started, and the goroutine peak.
func (m *Memory) Stop() (peak, base int64, goroutines int) {
	rss, g := m.peak.Stop()
	if m.hwm {
		rss = max(rss, status("VmHWM:"))
	}
	return rss, m.base, g
}

// SuperPeer stops m, fails t when the process, and so the super-peer in it,
// went past SuperPeerBound (scaled by RSSScale under the race detector), and
// logs the attack's figures on one line that begins with "attack figures:",
// with the honest peers' p99 latency meanwhile.
func (m *Memory) SuperPeer(t testing.TB, what string, honestP99 time.Duration) {
	t.Helper()
	peak, base, g := m.Stop()
	bound := int64(SuperPeerBound) * RSSScale()
	t.Logf("attack figures: %s | super-peer RSS peak <= %s (the whole test process; %s at the start) | bound %s | goroutine peak %d | honest p99 %v",
		what, MiB(peak), MiB(base), MiB(bound), g, honestP99.Round(10*time.Microsecond))
	if peak > bound {
		t.Errorf("%s: the process holding the super-peer reached %s RSS, bound %s", what, MiB(peak), MiB(bound))
	}
}

// status reads one field of /proc/self/status in bytes (0 if absent).
func status(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
