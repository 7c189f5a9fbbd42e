package groups

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lpeer "github.com/libp2p/go-libp2p/core/peer"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

const secret = "correct horse battery staple"

func TestPasswordGroup(t *testing.T) {
	sp := superPeer(t)
	alice, bob, eve := member(t, sp, "alice"), member(t, sp, "bob"), member(t, sp, "eve")
	ctx := testCtx(t)
	ga, err := alice.g.Create(ctx, Spec{Name: "book club", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	found, err := bob.g.Find(ctx, "book*")
	if err != nil || len(found) != 1 || found[0].ID != ga.ID() || found[0].Policy != PolicyPassword {
		t.Fatalf("find: %+v %v", found, err)
	}
	if _, err := eve.g.Join(ctx, Password(found[0], "tr0ub4dor&3")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrong password: %v", err)
	} else if !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("unclear error: %v", err)
	}
	// A credential of another kind than the group's, or none, is refused.
	if _, err := eve.g.Join(ctx, Open(found[0])); !errors.Is(err, ErrPolicy) {
		t.Fatalf("open credential for a password group: %v", err)
	}
	if _, err := eve.g.Join(ctx, Credential{}); !errors.Is(err, ErrPolicy) || !strings.Contains(err.Error(), "no credential") {
		t.Fatalf("no credential: %v", err)
	}
	gb, err := bob.g.Join(ctx, Password(found[0], secret))
	if err != nil {
		t.Fatal(err)
	}
	meshed(t, ga, gb)

	// A member opens a group pipe: the membership challenge passes.
	l, err := ga.Pipes().Listen(ctx, "door")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		if c, err := l.Accept(); err == nil {
			c.Write([]byte("welcome"))
			c.Close()
		}
	}()
	c, err := gb.Pipes().Dial(ctx, "door")
	if err != nil {
		t.Fatalf("member dial: %v", err)
	}
	c.Close()
	// A non-member speaking the same pipe protocol is refused when the stream
	// opens: it cannot answer the challenge.
	if _, err := eve.ps.Scoped(ga.ID(), pipesHooksNone()).Dial(ctx, "door", toPeer(alice.p.ID())); err == nil {
		t.Fatal("non-member opened a group pipe")
	}

	// Nothing that crossed the wire holds the password: the advertisement,
	// the proofs and the sealed payloads are all derived from it one way.
	wire := [][]byte{ga.Info().raw}
	nonce := bytes.Repeat([]byte{7}, 32)
	wire = append(wire, proof(gb.pw.auth, ga.ID(), nonce, bob.p.ID(), alice.p.ID()))
	env, err := encrypt(ga.pw.msg, ga.ID(), 0, alice.p.ID(), nil, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	wire = append(wire, env)
	for _, w := range wire {
		if bytes.Contains(w, []byte(secret)) || bytes.Contains(bytes.ToLower(w), []byte("horse")) {
			t.Fatal("the password appears in what is sent")
		}
	}
}

func TestInviteGroupCredentials(t *testing.T) {
	sp := superPeer(t)
	alice, bob, carol, mallory := member(t, sp, "alice"), member(t, sp, "bob"), member(t, sp, "carol"), member(t, sp, "mallory")
	ctx := testCtx(t)
	ga, err := alice.g.Create(ctx, Spec{Name: "inner circle", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	// Valid.
	credB, err := ga.Invite(bob.p.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	gb, err := bob.g.Join(ctx, Invited(credB))
	if err != nil {
		t.Fatalf("valid credential: %v", err)
	}
	// Issued to someone else.
	if _, err := carol.g.Join(ctx, Invited(credB)); !errors.Is(err, ErrCredential) {
		t.Fatalf("someone else's credential: %v", err)
	}
	// Expired.
	short, err := ga.Invite(carol.p.ID(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := carol.g.Join(ctx, Invited(short)); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired credential: %v", err)
	}
	// Forged: mallory signs a credential for herself.
	forged, err := issueCredential(mallory.g.key, ga.ID(), mallory.p.ID(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	fs, _ := encodeCredString(ga.Info().raw, forged)
	if _, err := mallory.g.Join(ctx, Invited(fs)); !errors.Is(err, ErrCredential) {
		t.Fatalf("forged credential: %v", err)
	}
	// Tampered: a flipped byte anywhere is caught.
	bad := []byte(credB)
	bad[len(bad)/2] ^= 1
	if _, err := bob.g.Join(ctx, Invited(string(bad))); err == nil {
		t.Fatal("tampered credential accepted")
	}
	// Malformed strings get clear errors.
	for _, s := range []string{"", "hello", "juxtagroup1!!!", "juxtagroup1aaaa", strings.Repeat("a", MaxCredentialLen+1)} {
		if _, err := carol.g.Join(ctx, Invited(s)); !errors.Is(err, ErrCredential) {
			t.Fatalf("malformed %q: %v", s[:min(len(s), 20)], err)
		}
	}

	// Revoked: carol joins, then is removed.
	credC, _ := ga.Invite(carol.p.ID(), 0)
	gc, err := carol.g.Join(ctx, Invited(credC))
	if err != nil {
		t.Fatal(err)
	}
	meshed(t, ga, gb, gc)
	ta, _ := ga.Pipes().Join(ctx, "chat")
	tb, _ := gb.Pipes().Join(ctx, "chat")
	tc, _ := gc.Pipes().Join(ctx, "chat")
	defer ta.Close()
	defer tb.Close()
	defer tc.Close()
	// alice's own messages flood to every member she knows subscribes.
	eventually(t, "alice to know both subscribers", func() bool {
		return slices.Contains(ta.Peers(), bob.p.ID()) && slices.Contains(ta.Peers(), carol.p.ID()) &&
			len(tc.Peers()) > 0
	})
	ta.Publish(ctx, []byte("before"))
	for _, tp := range []*topicT{tb, tc} {
		if m := next(t, tp, patience); string(m) != "before" {
			t.Fatalf("before revocation: %q", m)
		}
	}
	if err := ga.Revoke(ctx, carol.p.ID()); err != nil {
		t.Fatal(err)
	}
	if err := ta.Publish(ctx, []byte("after")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, tb, patience); string(m) != "after" {
		t.Fatalf("bob after revocation: %q", m)
	}
	if m := next(t, tc, 2*time.Second); m != nil {
		t.Fatalf("revoked carol read %q", m)
	}
	// carol's own messages no longer reach members.
	tc.Publish(ctx, []byte("from the revoked"))
	if m := next(t, tb, 2*time.Second); m != nil {
		t.Fatalf("bob received %q from a revoked member", m)
	}
	// Her old credential no longer fetches the key: she cannot rejoin.
	if _, err := carol.g.Join(ctx, Invited(credC)); !errors.Is(err, ErrRevoked) {
		t.Fatalf("revoked credential rejoined: %v", err)
	}
	// Nor open the group's pipes.
	l, err := ga.Pipes().Listen(ctx, "door")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := gc.Pipes().Dial(ctx, "door", toPeer(alice.p.ID())); err == nil {
		t.Fatal("revoked member opened a group pipe")
	}
	if _, err := gb.Pipes().Dial(ctx, "door", toPeer(alice.p.ID())); err != nil {
		t.Fatalf("member in good standing refused: %v", err)
	}
}

func next(t *testing.T, tp *topicT, d time.Duration) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	m, err := tp.Next(ctx)
	if err != nil {
		return nil
	}
	return m.Data
}

func TestRawPubsubAttacker(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	for _, policy := range []Policy{PolicyPassword, PolicyInvite} {
		t.Run(string(policy), func(t *testing.T) {
			ga, err := alice.g.Create(ctx, Spec{Name: "private " + string(policy), Policy: policy, Password: secret})
			if err != nil {
				t.Fatal(err)
			}
			var gb *Group
			if policy == PolicyPassword {
				gb, err = bob.g.Join(ctx, Password(ga.Info(), secret))
			} else {
				cred, _ := ga.Invite(bob.p.ID(), 0)
				gb, err = bob.g.Join(ctx, Invited(cred))
			}
			if err != nil {
				t.Fatal(err)
			}
			ta, _ := ga.Pipes().Join(ctx, "chat")
			tb, _ := gb.Pipes().Join(ctx, "chat")
			defer ta.Close()
			defer tb.Close()

			// The attacker: plain go-libp2p and GossipSub, subscribed by
			// topic name, connected to both members.
			h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			actx, acancel := context.WithCancel(ctx)
			defer acancel()
			ps, err := pubsub.NewGossipSub(actx, h)
			if err != nil {
				t.Fatal(err)
			}
			topicName := fmt.Sprintf("/juxta/pipe/1/propagate/%s/chat", ga.ID())
			at, err := ps.Join(topicName)
			if err != nil {
				t.Fatal(err)
			}
			asub, _ := at.Subscribe()
			defer asub.Cancel()
			connect := func() {
				for _, n := range []*node{alice, bob} {
					h.Connect(ctx, lpeer.AddrInfo{ID: lpeer.ID(n.p.ID()), Addrs: n.p.Libp2p().Host.Addrs()})
				}
			}
			connect()
			// A plain GossipSub has no watchdog against its lost-subscription
			// states (see pipes' watchdog), so the attacker, as a real one
			// would, reconnects afresh when the mesh has not formed after a
			// while; what each side sees is logged for a failure's reader.
			last := time.Now()
			eventually(t, "mesh with the attacker", func() bool {
				ok := len(at.ListPeers()) == 2 && len(tb.Peers()) > 0 &&
					slices.Contains(ta.Peers(), bob.p.ID()) && slices.Contains(ta.Peers(), peer.ID(h.ID()))
				if !ok && time.Since(last) > 15*time.Second {
					last = time.Now()
					t.Logf("no mesh yet: the attacker's topic peers %v, bob's %v, alice's %v; reconnecting the attacker",
						at.ListPeers(), tb.Peers(), ta.Peers())
					for _, n := range []*node{alice, bob} {
						h.Network().ClosePeer(lpeer.ID(n.p.ID()))
					}
					connect()
				}
				return ok
			})

			// It sees only ciphertext.
			plain := "meet at the usual place at noon"
			if err := ta.Publish(ctx, []byte(plain)); err != nil {
				t.Fatal(err)
			}
			if m := next(t, tb, patience); string(m) != plain {
				t.Fatalf("member got %q", m)
			}
			sctx, scancel := context.WithTimeout(ctx, patience)
			am, err := asub.Next(sctx)
			scancel()
			if err != nil {
				t.Fatalf("attacker saw nothing at all: %v", err)
			}
			if bytes.Contains(am.Data, []byte("usual place")) {
				t.Fatal("attacker read the plaintext")
			}
			// Its injections never reach the members' applications.
			for _, inj := range [][]byte{[]byte("injected plaintext"), am.Data, bytes.Repeat([]byte{0xa1}, 64)} {
				at.Publish(ctx, inj)
			}
			if m := next(t, tb, 2*time.Second); m != nil {
				t.Fatalf("member received an injected message %q", m)
			}
		})
	}
}

func TestScopedDiscovery(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	g1, _ := alice.g.Create(ctx, Spec{Name: "G"})
	h1, _ := alice.g.Create(ctx, Spec{Name: "H"})
	g2, err := bob.g.Join(ctx, Open(g1.Info()))
	if err != nil {
		t.Fatal(err)
	}
	h2, _ := bob.g.Join(ctx, Open(h1.Info()))
	if _, err := g1.Discovery().Publish(ctx, discovery.Advertisement{Type: "note", ID: "n1", Attrs: map[string]string{"text": "only in G"}}); err != nil {
		t.Fatal(err)
	}
	q := discovery.Query{Type: "note", Attr: "text", Value: "only*", Sources: discovery.SourceSuperPeers}
	count := func(d *discovery.Service) int {
		n := 0
		for _, err := range d.Find(ctx, q) {
			if err == nil {
				n++
			}
		}
		return n
	}
	if n := count(g2.Discovery()); n != 1 {
		t.Fatalf("group G found %d", n)
	}
	if n := count(bob.d); n != 0 {
		t.Fatalf("net group found %d", n)
	}
	if n := count(h2.Discovery()); n != 0 {
		t.Fatalf("group H found %d", n)
	}
}

var _ = peer.TestConfig

// An invite join asks the issuer for the key while it checks the group's
// advertisement and the credential: the key the issuer answers must not be
// used when either check fails, even though the issuer, a real admin, hands
// it over.
func TestInviteJoinUsesTheKeyOnlyOnceChecked(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	g1, err := alice.g.Create(ctx, Spec{Name: "first", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := alice.g.Create(ctx, Spec{Name: "second", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	cred1, err := issueCredential(alice.g.key, g1.ID(), bob.p.ID(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cred2, err := issueCredential(alice.g.key, g2.ID(), bob.p.ID(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The first group's advertisement with its signature's last byte
	// flipped: alice answers the key request, the advertisement fails.
	tampered := slices.Clone(g1.Info().raw)
	tampered[len(tampered)-1] ^= 1
	s, err := encodeCredString(tampered, cred1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Join(ctx, Invited(s)); !errors.Is(err, ErrBadGroup) {
		t.Fatalf("tampered advertisement: %v, want ErrBadGroup", err)
	}
	// A valid credential for the second group, presented with the first
	// group's advertisement: alice hands over the second group's key, the
	// credential does not match the advertisement.
	if s, err = encodeCredString(g1.Info().raw, cred2); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Join(ctx, Invited(s)); !errors.Is(err, ErrCredential) {
		t.Fatalf("credential of another group: %v, want ErrCredential", err)
	}
	if bob.g.group(g1.ID()) != nil || bob.g.group(g2.ID()) != nil {
		t.Fatal("a refused join left a group behind")
	}
	// The same credentials, presented rightly, join.
	for _, c := range []struct {
		g    *Group
		cred []byte
	}{{g1, cred1}, {g2, cred2}} {
		s, err := encodeCredString(c.g.Info().raw, c.cred)
		if err != nil {
			t.Fatal(err)
		}
		g, err := bob.g.Join(ctx, Invited(s))
		if err != nil {
			t.Fatalf("join %s: %v", c.g.Info().Name, err)
		}
		g.mu.Lock()
		key := g.keys[g.epoch]
		g.mu.Unlock()
		if g.ID() != c.g.ID() || len(key) != 32 {
			t.Fatalf("joined %s without its key", c.g.Info().Name)
		}
	}
}

// An issuer trusts, without checking the signature again, only the exact
// bytes of a credential it issued: a changed one is checked in full, and
// refused.
func TestIssuerTrustsOnlyTheCredentialItSigned(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	ga, err := alice.g.Create(ctx, Spec{Name: "issued", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	s, err := ga.Invite(bob.p.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := decodeCredString(s)
	if err != nil {
		t.Fatal(err)
	}
	ga.mu.Lock()
	cached := ga.creds[bob.p.ID()]
	ga.mu.Unlock()
	if cached == nil || !bytes.Equal(cached.raw(), cb.Cred) {
		t.Fatal("the issued credential is not remembered as checked")
	}
	// Its signature's last byte flipped, and its expiry pushed out: same
	// member, same issuer named, but not the bytes alice signed.
	changed := [][]byte{slices.Clone(cb.Cred)}
	changed[0][len(changed[0])-1] ^= 1
	i := bytes.Index(cb.Cred, []byte{0x04, 0x1b}) // CBOR key 4 (Expires), an 8-byte integer
	if i < 0 {
		t.Fatal("no expiry field in the credential's payload")
	}
	later := slices.Clone(cb.Cred)
	later[i+2] ^= 0x01
	changed = append(changed, later)
	for n, raw := range changed {
		resp, err := bob.g.askKey(ctx, alice.p.ID(), ga.ID(), raw)
		if err != nil {
			t.Fatal(err)
		}
		if resp.Err == "" || len(resp.Key) != 0 {
			t.Fatalf("changed credential %d: the issuer handed over the key", n)
		}
	}
	resp, err := bob.g.askKey(ctx, alice.p.ID(), ga.ID(), cb.Cred)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Err != "" || len(resp.Key) != 32 {
		t.Fatalf("the issued credential: %q, key of %d bytes", resp.Err, len(resp.Key))
	}
}
