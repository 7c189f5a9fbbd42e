package groups

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

type node struct {
	p  *peer.Peer
	d  *discovery.Service
	ps *pipes.Service
	g  *Service
}

// patience bounds every wait for an event. Generous: a loaded 2-core machine
// under -race takes minutes where an idle one takes a second, and a wait that
// succeeds returns as soon as the event happens.
const patience = 4 * time.Minute

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*patience)
	t.Cleanup(cancel)
	return ctx
}

// fastPresence beats often, so that tests see changes soon, and shows a
// silent member offline only after 10 s. With 1.5 s, heartbeats delayed by a
// loaded machine (two busy loops, -race) made members flap offline and online
// on direct connections with full meshes, and meshed -- all pairs online at
// once -- never held for 4 minutes among 20 members (TestPresenceTwentyMembers, now ManyMembers,
// TestPasswordGroup).
var fastPresence = Config{Heartbeat: 300 * time.Millisecond, OfflineAfter: 10 * time.Second}

func newNode(t testing.TB, cfg peer.Config, gcfg Config) *node {
	t.Helper()
	ctx := testCtx(t)
	p, err := peer.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := discovery.New(ctx, p, discovery.Config{NoPeerAdvertisement: true, QueryRate: 1000, PublishRate: 1000})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := pipes.New(ctx, p, d)
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(ctx, p, d, ps, gcfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{p, d, ps, g}
	t.Cleanup(n.close)
	return n
}

func (n *node) close() {
	n.g.Close()
	n.ps.Close()
	n.d.Close()
	n.p.Close()
}

func superPeer(t testing.TB) *node { return newNode(t, peer.TestSuperPeerConfig(), fastPresence) }

func member(t testing.TB, sp *node, name string) *node {
	return memberWith(t, sp, name, fastPresence)
}

func memberWith(t testing.TB, sp *node, name string, gcfg Config) *node {
	cfg := peer.TestConfig()
	cfg.Name = name
	cfg.SuperPeers = []string{sp.p.Invite()}
	n := newNode(t, cfg, gcfg)
	if err := n.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually waits, up to patience, for cond.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func stateOf(g *Group, id peer.ID) State {
	for _, m := range g.Members() {
		if m.ID == id {
			return m.State
		}
	}
	return ""
}

// meshed waits until every group sees every other member online, which also
// means the presence mesh carries messages.
func meshed(t testing.TB, groups ...*Group) {
	t.Helper()
	ok := func() bool {
		for _, g := range groups {
			for _, o := range groups {
				if o != g && stateOf(g, o.s.p.ID()) != Online {
					return false
				}
			}
		}
		return true
	}
	deadline := time.Now().Add(patience)
	for !ok() {
		if time.Now().After(deadline) {
			for _, g := range groups {
				g.presence.mu.Lock()
				topic := g.presence.topic
				g.presence.mu.Unlock()
				var peers []peer.ID
				if topic != nil {
					peers = topic.Peers()
				}
				for _, o := range groups {
					if o != g && stateOf(g, o.s.p.ID()) != Online {
						t.Logf("%s sees %s as %q; path %s; %d connections; presence joined %v, topic peers %d (%s among them: %v)",
							g.s.p.Name(), o.s.p.Name(), stateOf(g, o.s.p.ID()), g.s.p.PathTo(o.s.p.ID()),
							len(g.s.host.Network().ConnsToPeer(o.s.host.ID())), topic != nil, len(peers),
							o.s.p.Name(), slices.Contains(peers, o.s.p.ID()))
					}
				}
			}
			t.Fatal("timed out waiting for every member to see every other online")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type topicT = pipes.Topic

func pipesHooksNone() pipes.Hooks { return pipes.Hooks{} }

func toPeer(id peer.ID) pipes.DialOption { return pipes.ToPeer(id) }

// memberAt is member with the peer's identity kept in dir, so that a second
// memberAt with the same dir is the same peer restarted.
func memberAt(t testing.TB, sp *node, name, dir string) *node {
	cfg := peer.TestConfig()
	cfg.Name = name
	cfg.Dir = dir
	cfg.SuperPeers = []string{sp.p.Invite()}
	n := newNode(t, cfg, fastPresence)
	if err := n.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return n
}
