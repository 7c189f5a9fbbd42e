package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/juxta-p2p/juxta/groups"
	"github.com/juxta-p2p/juxta/internal/stats"
)

// The groups rows: presence propagation among n members of a group, and the
// latency of joining a group under each policy.
const (
	presenceMsgs  = 20 // presence changes per repetition and side
	benchPassword = "correct horse battery staple"
)

// The argon2id parameters of groups' password groups (defaultKDF in
// groups/membership.go: OWASP's minimum), for the password-join baseline.
const (
	kdfTime    = 2
	kdfMemory  = 19 * 1024 // KiB
	kdfThreads = 1
)

// presenceFixture is a group of n members (edges of one super-peer, which is
// not a member) that have all seen each other online, and a raw GossipSub
// network with the same connection graph among the members, built once per
// row.
type presenceFixture struct {
	n      int
	policy groups.Policy

	nw     *pnet
	grps   []*groups.Group
	jarr   *arrivals
	jnext  int
	raw    *rawGossip
	rarr   *arrivals
	rnext  int
	cancel context.CancelFunc // ends the subscriptions and receivers
	wg     sync.WaitGroup
}

func newPresenceFixture(n int, policy groups.Policy) *presenceFixture {
	return &presenceFixture{n: n, policy: policy}
}

// setup starts the network; the first member creates the group, the others
// join it; once every member lists every other online, the mesh has had a
// heartbeat to settle, and the raw network is wired like the members.
func (f *presenceFixture) setup(ctx context.Context) (_ func() error, err error) {
	sctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	rctx, stop := context.WithCancel(context.Background())
	f.cancel, f.jnext, f.rnext = stop, 0, 0
	f.grps, f.raw = nil, nil
	if f.nw, err = startPNet(sctx, f.n, true); err != nil {
		stop()
		return nil, err
	}
	teardown := f.teardown
	defer func() {
		if err != nil {
			err = errors.Join(err, teardown())
		}
	}()

	start := time.Now()
	f.grps = make([]*groups.Group, f.n)
	f.grps[0], err = f.nw.members[0].g.Create(sctx, groups.Spec{Name: "bench presence", Policy: f.policy, Password: benchPassword})
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	info := f.grps[0].Info()
	err = parallel(f.n-1, func(i int) (err error) {
		g := f.nw.members[i+1].g
		switch f.policy {
		case groups.PolicyOpen:
			f.grps[i+1], err = g.Join(sctx, groups.Open(info))
		case groups.PolicyPassword:
			f.grps[i+1], err = g.Join(sctx, groups.Password(info, benchPassword))
		default:
			err = fmt.Errorf("policy %s not supported here", f.policy)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("join: %w", err)
	}
	joined := time.Since(start)

	f.jarr = newArrivals(f.n)
	for i, g := range f.grps {
		sub := g.SubscribeMembers(rctx, 1024)
		f.wg.Go(func() {
			for ev := range sub.C {
				f.jarr.saw(i, ev.Member.Text)
			}
		})
	}
	err = waitFor(sctx, "every member to list every other online", 50*time.Millisecond, time.Minute, func() (bool, error) {
		for _, g := range f.grps {
			ms := g.Members()
			if len(ms) != f.n {
				return false, nil
			}
			for _, m := range ms {
				if m.State != groups.Online {
					return false, nil
				}
			}
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	logf("    juxta: %d joined the %s group in %.1fs; all listed all online %.1fs later", f.n-1, f.policy, joined.Seconds(), (time.Since(start) - joined).Seconds())
	time.Sleep(meshSettle)
	links := f.nw.links()
	logf("    members' graph: %s", graphStats(f.n, links))

	if f.raw, f.rarr, err = startRawBaseline(sctx, rctx, f.n, links, &f.wg); err != nil {
		return nil, err
	}
	if err := settle(sctx); err != nil {
		return nil, err
	}
	return teardown, nil
}

func (f *presenceFixture) teardown() error {
	f.cancel()
	var errs []error
	if f.raw != nil {
		errs = append(errs, f.raw.close())
	}
	f.wg.Wait()
	if f.nw != nil {
		errs = append(errs, f.nw.close())
	}
	return errors.Join(errs...)
}

// presenceStates are the states a member cycles through; the status text
// (the tag) changes every time, so that every change is an event.
var presenceStates = []groups.State{groups.Away, groups.Busy, groups.Online}

func (f *presenceFixture) juxta(ctx context.Context) (float64, error) {
	return timeToAll(ctx, f.jarr, presenceMsgs, &f.jnext, func(_ context.Context, from int, tag string) error {
		return f.grps[from].SetPresence(presenceStates[f.jnext%len(presenceStates)], tag)
	})
}

func (f *presenceFixture) base(ctx context.Context) (float64, error) {
	return timeToAll(ctx, f.rarr, presenceMsgs, &f.rnext, f.raw.publish)
}

// joinFixture is a super-peer and one member that created a group, built
// once per row. Each repetition starts joins fresh peers (edges of the
// super-peer; at least one) in turn, connects each to the creator, times its
// join, and reports the median.
type joinFixture struct {
	policy groups.Policy
	joins  int

	nw  *pnet
	grp *groups.Group
	// sigs are the signed messages baseRoundTripSigs verifies: as many as
	// an invite join checks (see there).
	sigs []signedMsg
}

// signedMsg is a message and its Ed25519 signature, as libp2p keys make it.
type signedMsg struct {
	key      crypto.PubKey
	msg, sig []byte
}

func (f *joinFixture) setup(ctx context.Context) (_ func() error, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if f.nw, err = startPNet(ctx, 1, true); err != nil {
		return nil, err
	}
	creator := f.nw.members[0]
	f.grp, err = creator.g.Create(ctx, groups.Spec{Name: "bench join", Policy: f.policy, Password: benchPassword})
	if err != nil {
		return nil, errors.Join(fmt.Errorf("create: %w", err), f.nw.close())
	}
	creator.p.Libp2p().Host.SetStreamHandler(rrProto, rrServe)
	if f.sigs, err = signedMsgs(3); err != nil {
		return nil, errors.Join(err, f.nw.close())
	}
	return f.nw.close, nil
}

// signedMsgs makes n signed messages of 400 bytes (a group advertisement's
// size) under a fresh Ed25519 key.
func signedMsgs(n int) ([]signedMsg, error) {
	priv, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	out := make([]signedMsg, n)
	for i := range out {
		msg := make([]byte, 400)
		rand.Read(msg)
		sig, err := priv.Sign(msg)
		if err != nil {
			return nil, err
		}
		out[i] = signedMsg{key: pub, msg: msg, sig: sig}
	}
	return out, nil
}

// fresh starts a new member-to-be, connected to the creator, and lets its
// start-up settle.
func (f *joinFixture) fresh(ctx context.Context) (*pnode, error) {
	start := time.Now()
	n, err := startPNode(ctx, f.nw.edgeConfig(), true)
	if err != nil {
		return nil, err
	}
	logf("    fresh peer ready in %.0fms", ms(time.Since(start)))
	if _, err := n.p.Connect(ctx, f.nw.members[0].p.Addr()); err != nil {
		return nil, errors.Join(fmt.Errorf("connect to the creator: %w", err), n.close())
	}
	if err := settle(ctx); err != nil {
		return nil, errors.Join(err, n.close())
	}
	return n, nil
}

// timeFresh starts f.joins fresh peers (at least one), times fn on each in
// turn, and returns the median, in ms.
func (f *joinFixture) timeFresh(ctx context.Context, fn func(context.Context, *pnode) (float64, error)) (_ float64, err error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var lat []float64
	for range max(f.joins, 1) {
		n, err := f.fresh(ctx)
		if err != nil {
			return 0, err
		}
		v, err := fn(ctx, n)
		if err = errors.Join(err, n.close()); err != nil {
			return 0, err
		}
		lat = append(lat, v)
	}
	return stats.Median(lat), nil
}

// juxta times joins by fresh peers: Join with Open, Password or Invited,
// with a credential the creator issued to it beforehand.
func (f *joinFixture) juxta(ctx context.Context) (float64, error) {
	return f.timeFresh(ctx, f.join)
}

// join times one join by the fresh peer n.
func (f *joinFixture) join(ctx context.Context, n *pnode) (_ float64, err error) {
	info := f.grp.Info()
	var cred string
	if f.policy == groups.PolicyInvite {
		if cred, err = f.grp.Invite(n.p.ID(), 0); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	var g *groups.Group
	switch f.policy {
	case groups.PolicyOpen:
		g, err = n.g.Join(ctx, groups.Open(info))
	case groups.PolicyPassword:
		g, err = n.g.Join(ctx, groups.Password(info, benchPassword))
	case groups.PolicyInvite:
		g, err = n.g.Join(ctx, groups.Invited(cred))
	}
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("join: %w", err)
	}
	if g.ID() != info.ID {
		return 0, fmt.Errorf("joined group %q, want %q", g.ID(), info.ID)
	}
	return ms(elapsed), nil
}

// baseRoundTripSigs is the invite join's baseline: one raw stream round
// trip (100 B request, 1 KiB answer) from a fresh peer, connected like the
// joiner, to the creator, plus the three signature checks an invite join
// by a credential its key holder issued cannot skip: the credential's and
// the group advertisement's by the joiner, and the signed revocation list
// (which carries the key's hash) by the joiner after the answer. The holder
// does not check the credential's signature again: it signed those bytes
// itself (Group.Invite remembers them; any other bytes are checked). They
// are Ed25519 verifications of 400-byte messages, timed in series with the
// round trip.
func (f *joinFixture) baseRoundTripSigs(ctx context.Context) (float64, error) {
	return f.timeFresh(ctx, f.roundTripSigs)
}

func (f *joinFixture) roundTripSigs(ctx context.Context, n *pnode) (float64, error) {
	start := time.Now()
	for _, m := range f.sigs {
		if ok, err := m.key.Verify(m.msg, m.sig); !ok || err != nil {
			return 0, fmt.Errorf("a signature did not verify: %v", err)
		}
	}
	if err := roundTrip(ctx, n.p.Libp2p().Host, lp(f.nw.members[0].p.ID())); err != nil {
		return 0, err
	}
	return ms(time.Since(start)), nil
}

// baseArgon2 times argon2id with the parameters of the group's password
// (and a fresh salt): the work Join with Password cannot avoid.
func (f *joinFixture) baseArgon2(ctx context.Context) (float64, error) {
	salt := make([]byte, 16)
	rand.Read(salt)
	id := f.grp.ID()
	if err := settle(ctx); err != nil {
		return 0, err
	}
	start := time.Now()
	key := argon2.IDKey([]byte(benchPassword), append(salt, id...), kdfTime, kdfMemory, kdfThreads, 32)
	elapsed := time.Since(start)
	if len(key) != 32 {
		return 0, errors.New("argon2id returned a short key")
	}
	return ms(elapsed), nil
}
