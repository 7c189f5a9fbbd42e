package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// fullSpec has one of everything.
func fullSpec() Spec {
	return Spec{
		Routers: []RouterSpec{
			{Name: "home", NAT: NATPortRestricted, WAN: Link{Delay: 5 * time.Millisecond}},
			{Name: "isp", NAT: NATSymmetric},
			{Name: "flat", NAT: NATFullCone, Upstream: "isp", WAN: Link{Rate: 50_000_000}},
		},
		Hosts: []HostSpec{
			{Name: "laptop", Router: "home"},
			{Name: "phone", Router: "flat"},
			{Name: "super"},
		},
	}
}

// labFDs lists this process's open descriptors that refer to a network
// namespace, and counts all of them.
func openFDs(t *testing.T) (all int, netns []string) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err != nil {
			continue
		}
		all++
		if strings.HasPrefix(target, "net:[") {
			netns = append(netns, target)
		}
	}
	return all, netns
}

func TestLifecycle(t *testing.T) {
	needRoot(t)
	fdsBefore, nsBefore := openFDs(t)

	l, err := New(context.Background(), fullSpec())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", l)
	paths := l.namespacePaths()
	if len(paths) != 1+3+3 {
		t.Fatalf("%d namespaces, want 7: %v", len(paths), paths)
	}
	for _, p := range paths {
		if !strings.HasPrefix(filepath.Base(p), l.Prefix()+"-") {
			t.Errorf("namespace %s lacks the run prefix %s", p, l.Prefix())
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("namespace %s: %v", p, err)
		}
	}
	if _, err := os.Stat(markerPath(l.id)); err != nil {
		t.Errorf("marker: %v", err)
	}
	if got := l.Router("flat").WANAddr(); !netip4In(got, "100.64.0.0/10") {
		t.Errorf("flat WAN %v, want carrier-grade 100.64.0.0/10", got)
	}
	if l.Host("phone").PublicAddr() != l.Router("isp").WANAddr() {
		t.Errorf("phone public %v, want isp's WAN %v", l.Host("phone").PublicAddr(), l.Router("isp").WANAddr())
	}

	start := time.Now()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	t.Logf("closed in %v", time.Since(start).Round(time.Millisecond))
	for _, p := range paths {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("namespace %s still there after Close (%v)", p, err)
		}
	}
	if _, err := os.Stat(markerPath(l.id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("marker still there after Close (%v)", err)
	}
	// Nothing holds the namespaces any more (no mount, no descriptor, no
	// process), so the kernel has freed them with every link inside.
	fdsAfter, nsAfter := openFDs(t)
	if len(nsAfter) != len(nsBefore) || fdsAfter > fdsBefore {
		t.Errorf("descriptors: %d before, %d after; namespace descriptors %v before, %v after", fdsBefore, fdsAfter, nsBefore, nsAfter)
	}
	if err := l.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	if err := l.Host("laptop").Do(func() error { return nil }); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Do after Close: %v, want net.ErrClosed", err)
	}
}

func netip4In(a interface{ String() string }, prefix string) bool {
	_, n, _ := net.ParseCIDR(prefix)
	return n.Contains(net.ParseIP(a.String()))
}

func TestBadSpec(t *testing.T) {
	for _, s := range []Spec{
		{Routers: []RouterSpec{{Name: "a"}, {Name: "a"}}},
		{Routers: []RouterSpec{{Name: "Bad_Name"}}},
		{Routers: []RouterSpec{{Name: "a", Upstream: "b"}, {Name: "b"}}},
		{Hosts: []HostSpec{{Name: "h", Router: "nope"}}},
		{Hosts: []HostSpec{{Name: "internet"}}},
		{Hosts: []HostSpec{{Name: "h", Link: Link{Loss: 1}}}},
		{Routers: []RouterSpec{{Name: "a", NAT: NAT(9)}}},
	} {
		if _, err := s.check(); !errors.Is(err, ErrBadSpec) {
			t.Errorf("%+v: %v, want ErrBadSpec", s, err)
		}
	}
}

func TestNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root")
	}
	if _, err := New(context.Background(), Spec{}); !errors.Is(err, ErrNotRoot) {
		t.Fatalf("New: %v, want ErrNotRoot", err)
	}
}

// TestNewFailsCleanly: a New that fails part-way (here after making the
// internet and the first router) leaves nothing behind.
func TestNewFailsCleanly(t *testing.T) {
	needRoot(t)
	before, _ := os.ReadDir(netnsDir)
	_, err := New(context.Background(), Spec{
		Routers: []RouterSpec{
			{Name: "isp", LAN: netip.MustParsePrefix("100.64.1.0/24")},
			{Name: "flat", Upstream: "isp", LAN: netip.MustParsePrefix("100.64.1.0/25"), WAN: Link{Delay: time.Millisecond}},
		},
		Hosts: []HostSpec{{Name: "laptop", Router: "isp"}},
	})
	if !errors.Is(err, ErrBadSpec) {
		t.Fatalf("New: %v, want ErrBadSpec for a LAN overlapping its upstream", err)
	}
	// Other processes may run labs meanwhile; theirs have live markers.
	after, _ := os.ReadDir(netnsDir)
	for _, e := range after {
		m := runRE.FindStringSubmatch(e.Name())
		if m != nil && !slices.ContainsFunc(before, func(b os.DirEntry) bool { return b.Name() == e.Name() }) && !runAlive(m[1]) {
			t.Errorf("namespace %s left by a failed New", e.Name())
		}
	}
	markers, _ := os.ReadDir(markerDir)
	for _, e := range markers {
		b, _ := os.ReadFile(filepath.Join(markerDir, e.Name()))
		if strings.Contains(string(b), fmt.Sprintf(`"pid":%d,`, os.Getpid())) {
			t.Errorf("marker %s left by a failed New", e.Name())
		}
	}
}
