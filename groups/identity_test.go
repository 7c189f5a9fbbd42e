package groups

import (
	"errors"
	"testing"

	"github.com/juxta-p2p/juxta/discovery"
)

// Nobody but the creator can publish under a group's ID: another peer's
// advertisement with the same ID is not a group, and Lookup finds the real one.
func TestGroupIDBoundToCreator(t *testing.T) {
	sp := superPeer(t)
	alice, bob, mallory := member(t, sp, "alice"), member(t, sp, "bob"), member(t, sp, "mallory")
	ctx := testCtx(t)
	g, err := alice.g.Create(ctx, Spec{Name: "club", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	// Mallory publishes an open group under alice's ID, later (newer Seq).
	body, _ := encMode.Marshal(wireInfo{Name: "club", Policy: string(PolicyOpen), Nonce: randomBytes(16)})
	fake, err := mallory.d.Publish(ctx, discovery.Advertisement{Type: discovery.TypeGroup, ID: g.ID(), Body: body,
		Attrs: map[string]string{"id": g.ID(), "name": "club", "policy": "open"}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := mallory.d.Raw(fake.Key())
	if _, err := infoFromAd(fake, raw); !errors.Is(err, ErrBadGroup) {
		t.Fatalf("an advertisement under someone else's group ID was accepted: %v", err)
	}
	info, err := bob.g.Lookup(ctx, g.ID())
	if err != nil {
		t.Fatal(err)
	}
	if info.Creator != alice.p.ID() || info.Policy != PolicyPassword {
		t.Fatalf("lookup returned %s's %s group", info.Creator, info.Policy)
	}
}

// A group key handed on must be the one its admin signed.
func TestGroupKeyMustMatchSignature(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	ga, err := alice.g.Create(ctx, Spec{Name: "inner", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	cred, _ := ga.Invite(bob.p.ID(), 0)
	gb, err := bob.g.Join(ctx, Invited(cred))
	if err != nil {
		t.Fatal(err)
	}
	ga.mu.Lock()
	rev := ga.revRaw
	ga.mu.Unlock()
	if err := gb.installKey(2, randomBytes(32), rev); err == nil {
		t.Fatal("a key for another epoch was installed")
	}
	if err := gb.installKey(1, randomBytes(32), rev); !errors.Is(err, ErrNoKey) {
		t.Fatalf("a substituted key was installed: %v", err)
	}
}
