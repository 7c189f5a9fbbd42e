package farm

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/peer"
)

func nodeCfg(t *testing.T, dir, name string) NodeConfig {
	return NodeConfig{Dir: filepath.Join(dir, name), Name: name, Peer: peer.TestConfig(),
		Groups: groups.Config{Heartbeat: 500 * time.Millisecond, OfflineAfter: 2 * time.Second}}
}

// netFarm is a scheduler, providers and a client on loopback.
type netFarm struct {
	srv    *Server
	client *Client
	provs  []*Provider
}

func startNetFarm(t *testing.T, providers int, natives map[string]NativeFunc) *netFarm {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := StartServer(ctx, ServerConfig{Node: nodeCfg(t, dir, "sched"), Password: "correct horse battery staple"})
	if err != nil {
		t.Fatal(err)
	}
	f := &netFarm{srv: srv}
	t.Cleanup(func() {
		for _, p := range f.provs {
			p.Close()
		}
		if f.client != nil {
			f.client.Close()
		}
		srv.Close()
	})
	inv := srv.Invite()
	for i := range providers {
		prof := testProfile("p")
		p, err := JoinProvider(ctx, ProviderConfig{Node: nodeCfg(t, dir, "prov"+string(rune('a'+i))), Invite: inv, Slots: 2, Natives: natives, Profile: &prof})
		if err != nil {
			t.Fatal(err)
		}
		f.provs = append(f.provs, p)
	}
	if f.client, err = JoinClient(ctx, ClientConfig{Node: nodeCfg(t, dir, "client"), Invite: inv}); err != nil {
		t.Fatal(err)
	}
	return f
}

// The farm over the network: a client submits, providers found the
// scheduler through group discovery, results stream back once each.
func TestNetworkJob(t *testing.T) {
	f := startNetFarm(t, 3, map[string]NativeFunc{"square": square})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	job, err := f.client.Submit(ctx, JobSpec{Name: "sq", Task: Task{Kind: KindNative, Name: "square"}}, squareUnits(300, 2))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint32]bool{}
	for r, err := range f.client.Results(ctx, job, 0) {
		if err != nil {
			t.Fatal(err)
		}
		want, _ := square(ctx, squareInput(int(r.Unit)))
		if seen[r.Unit] || !bytes.Equal(r.Output, want) {
			t.Fatalf("unit %d: dup %v output %x", r.Unit, seen[r.Unit], r.Output)
		}
		seen[r.Unit] = true
	}
	if len(seen) != 300 {
		t.Fatalf("%d results", len(seen))
	}
	st, err := f.client.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Units[Validated] != 300 || len(st.Providers) != 3 {
		t.Fatalf("stats %+v", st)
	}
}
