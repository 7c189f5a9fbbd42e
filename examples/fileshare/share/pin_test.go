package share

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// holders counts the nodes that hold a copy of id.
func holders(nodes []*Node, id string) (n int) {
	for _, x := range nodes {
		if x.pins.holds(id) && !x.pins.fetchingNow(id) {
			n++
		}
	}
	return n
}

func waitHolders(t *testing.T, nodes []*Node, id string, want int, d time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for holders(nodes, id) < want {
		if time.Since(start) > d {
			t.Fatalf("%d online holders after %s, want %d", holders(nodes, id), d, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return time.Since(start)
}

// TestPinning is acceptance 5: five volunteers, a file pinned with K = 3;
// the sharer and one holder go offline, and within 60 s three online members
// hold it again; a newcomer downloads it; no volunteer exceeds its offer.
func TestPinning(t *testing.T) {
	if testing.Short() {
		t.Skip("eight peers and presence timeouts: not in -short")
	}
	ctx := context.Background()
	_, sps := superPeerNode(t)
	const group, pass = "vault", "correct horse battery"
	sharer := testNode(t, Config{Name: "sharer", SuperPeers: sps})
	if err := sharer.CreateGroup(ctx, group, pass); err != nil {
		t.Fatal(err)
	}
	lib := t.TempDir()
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(rand.IntN(256))
	}
	if err := os.WriteFile(filepath.Join(lib, "rare field recording.flac"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := sharer.Share(ctx, lib, group); err != nil {
		t.Fatal(err)
	}
	offers := []int64{3 << 19, 3 << 19, 3 << 19, 3 << 19, 1 << 19} // the last is too small for the file
	var vols []*Node
	for i, offer := range offers {
		v := testNode(t, Config{Name: fmt.Sprintf("volunteer%d", i+1), SuperPeers: sps})
		joinRetry(t, v, group, pass)
		if err := v.Volunteer(ctx, group, offer); err != nil {
			t.Fatal(err)
		}
		vols = append(vols, v)
	}
	rs := searchFor(t, vols[0], "rare recording", func(rs []Result) bool { return len(rs) == 1 })
	id := rs[0].ID
	if err := sharer.Pin(ctx, group, rs[0], 3); err != nil {
		t.Fatal(err)
	}
	all := append([]*Node{sharer}, vols...)
	took := waitHolders(t, all, id, 3, 2*time.Minute)
	t.Logf("pinned with K=3: 3 holders after %s", took.Round(time.Millisecond))

	// The sharer and one volunteer holder go offline (closed, as a crash).
	var gone *Node
	for _, v := range vols {
		if v.pins.holds(id) {
			gone = v
			break
		}
	}
	sharer.Close()
	gone.Close()
	var online []*Node
	for _, v := range vols {
		if v != gone {
			online = append(online, v)
		}
	}
	took = waitHolders(t, online, id, 3, 60*time.Second)
	t.Logf("sharer and a holder offline: 3 online holders again after %s", took.Round(time.Millisecond))

	for i, v := range vols {
		if v == gone {
			continue
		}
		_, offered, used := v.Pins()
		if used[group] > offered[group] {
			t.Errorf("volunteer%d uses %d bytes of an offer of %d", i+1, used[group], offered[group])
		}
	}
	if vols[4].pins.holds(id) {
		t.Error("the volunteer whose offer is smaller than the file took a copy")
	}

	newcomer := testNode(t, Config{Name: "newcomer", SuperPeers: sps})
	joinRetry(t, newcomer, group, pass)
	rs = searchFor(t, newcomer, "rare recording", func(rs []Result) bool { return len(rs) == 1 })
	if _, err := newcomer.Get(ctx, rs[0]); err != nil {
		t.Fatal(err)
	}
	info, err := newcomer.Wait(ctx, id)
	if err != nil || info.State != Done {
		t.Fatalf("newcomer's download: %+v %v", info, err)
	}
	got, err := os.ReadFile(info.Path)
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("newcomer's copy differs (%v)", err)
	}
	t.Logf("newcomer downloaded it from %d holders: %v", len(info.Peers), info.Peers)

	// The sharer and the holder come back: five online copies are two more
	// than K, so the volunteer copy ranked last goes, leaving K+1.
	back := []*Node{
		testNode(t, Config{Name: "sharer", SuperPeers: sps, Dir: sharer.cfg.Dir}),
		testNode(t, Config{Name: "back", SuperPeers: sps, Dir: gone.cfg.Dir}),
	}
	for _, n := range back {
		joinRetry(t, n, group, pass)
	}
	if !back[0].pins.holds(id) || !back[1].pins.holds(id) {
		t.Fatal("the pins were not kept across the restart")
	}
	everyone := append(back, online...)
	deadline := time.Now().Add(90 * time.Second)
	for holders(everyone, id) != 4 {
		if time.Now().After(deadline) {
			t.Fatalf("%d holders with the sharer and the holder back, want K+1 = 4", holders(everyone, id))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !back[0].pins.holds(id) {
		t.Error("the sharer dropped its own file")
	}
	for _, v := range everyone[1:] {
		_, offered, used := v.Pins()
		if used[group] > offered[group] || used[group] < 0 {
			t.Errorf("%s uses %d of %d", v.p.Name(), used[group], offered[group])
		}
	}
}

func joinRetry(t *testing.T, n *Node, group, pass string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		err := n.JoinGroup(context.Background(), group, pass)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("join %s: %v", group, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestPinsSurviveRestart: a volunteer's offer and its held copies are kept
// across a restart, and advertised again once the group is joined.
func TestPinsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	_, sps := superPeerNode(t)
	dir := t.TempDir()
	a, err := Open(ctx, Config{Dir: dir, SuperPeers: sps, Loopback: true, NoMDNS: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.CreateGroup(ctx, "club", "pw-pw-pw"); err != nil {
		t.Fatal(err)
	}
	if err := a.Volunteer(ctx, "club", 12345); err != nil {
		t.Fatal(err)
	}
	if err := a.Volunteer(ctx, "nope", 1); err == nil {
		t.Error("volunteering in a group not joined succeeded")
	}
	if err := a.Pin(ctx, "club", Result{ID: "bafkr4notheld", Name: "x"}, 2); err == nil {
		t.Error("pinning content not held succeeded")
	}
	if err := a.Pin(ctx, "club", Result{ID: "x"}, MaxK+1); err == nil {
		t.Error("pinning with K above MaxK succeeded")
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	b := testNode(t, Config{Dir: dir, SuperPeers: sps})
	if _, err := Open(ctx, Config{Dir: dir, Loopback: true, NoMDNS: true}); !errors.Is(err, ErrLocked) {
		t.Errorf("a second node on the same directory: %v, want ErrLocked", err)
	}
	_, offered, _ := b.Pins()
	if offered["club"] != 12345 {
		t.Fatalf("offers after restart: %v", offered)
	}
}
