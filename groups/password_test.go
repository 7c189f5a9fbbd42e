package groups

import (
	"context"
	"errors"
	"testing"
	"time"
)

const newSecret = "a brand new passphrase, told only to friends"

// rotateWhenSeen calls Rotate until the member has seen the creator's new
// advertisement (Lookup goes through the super-peer), and returns its error.
func rotateWhenSeen(t *testing.T, ctx context.Context, g *Group, pw string) error {
	t.Helper()
	var err error
	eventually(t, "the new advertisement to reach "+g.s.p.Name(), func() bool {
		err = g.Rotate(ctx, pw)
		return !errors.Is(err, ErrNotRotated)
	})
	return err
}

// Issue 12 (low): password groups had no key rotation. The creator moves the
// group to a new password; a member told it follows and keeps talking; a
// newcomer joins with it and finds the others; eve, who knows only the old
// password, can no longer read, prove membership, join or appear present.
func TestRotatePassword(t *testing.T) {
	sp := superPeer(t)
	short := fastPresence
	short.RotateGrace = time.Second
	alice, bob := memberWith(t, sp, "alice", short), memberWith(t, sp, "bob", short)
	eve, carol := member(t, sp, "eve"), member(t, sp, "carol")
	ctx := testCtx(t)
	ga, err := alice.g.Create(ctx, Spec{Name: "attic", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	old := ga.Info()
	gb, err := bob.g.Join(ctx, Password(old, secret))
	if err != nil {
		t.Fatal(err)
	}
	ge, err := eve.g.Join(ctx, Password(old, secret))
	if err != nil {
		t.Fatal(err)
	}
	meshed(t, ga, gb, ge)
	if err := ga.Authorize(ctx, eve.p.ID()); err != nil {
		t.Fatalf("eve before the rotation: %v", err)
	}

	rotations := ge.SubscribeRotations(ctx, 4)
	defer rotations.Cancel()
	if err := ga.Rotate(ctx, newSecret); err != nil {
		t.Fatalf("creator rotates: %v", err)
	}
	// Eve, left behind, is told the group moved on (alice's heartbeats
	// under the new key make her look the advertisement up).
	select {
	case r := <-rotations.C:
		if r.Epoch != 1 {
			t.Fatalf("rotation to epoch %d", r.Epoch)
		}
	case <-time.After(patience):
		t.Fatal("eve was not told the group moved to a new password")
	}
	if got := ga.Info().Epoch; got != 1 {
		t.Fatalf("epoch after rotation %d", got)
	}
	if err := rotateWhenSeen(t, ctx, gb, "not the new one"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("bob with a wrong new password: %v", err)
	}
	if err := gb.Rotate(ctx, newSecret); err != nil {
		t.Fatalf("bob follows: %v", err)
	}
	// Eve tries to follow with what she knows, and to join afresh with it.
	if err := rotateWhenSeen(t, ctx, ge, secret); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("eve follows with the old password: %v", err)
	}
	if _, err := carol.g.Join(ctx, Password(ga.Info(), secret)); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("join with the old password: %v", err)
	}
	// Membership is proven with the new password only.
	if err := ga.Authorize(ctx, eve.p.ID()); !errors.Is(err, ErrNotMember) {
		t.Fatalf("eve after the rotation: %v", err)
	}
	if err := ga.Authorize(ctx, bob.p.ID()); err != nil {
		t.Fatalf("bob after the rotation: %v", err)
	}
	// Eve cannot open what is sealed now.
	sealedNow, err := ga.sealPassword([]byte("new traffic"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ge.openPassword(alice.p.ID(), sealedNow); !errors.Is(err, ErrNotMember) {
		t.Fatalf("eve opens a new-epoch message: %v", err)
	}
	if got, err := gb.openPassword(alice.p.ID(), sealedNow); err != nil || string(got) != "new traffic" {
		t.Fatalf("bob opens a new-epoch message: %q %v", got, err)
	}
	// Once the grace ends, what eve seals is refused, her heartbeats with
	// it: alice and bob show her offline.
	sealedOld, err := ge.sealPassword([]byte("still here"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the grace to end", func() bool { return !ga.validatePassword(eve.p.ID(), sealedOld) })
	eventually(t, "eve offline to alice and bob", func() bool {
		return stateOf(ga, eve.p.ID()) == Offline && stateOf(gb, eve.p.ID()) == Offline
	})

	// A newcomer joins with the new password and finds the others: the
	// discovery scope is the same in every epoch.
	gc, err := carol.g.Join(ctx, Password(ga.Info(), newSecret))
	if err != nil {
		t.Fatal(err)
	}
	if gc.discoveryScope() != ga.discoveryScope() {
		t.Fatal("the newcomer's discovery scope differs")
	}
	meshed(t, ga, gb, gc)
	tc, err := gc.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tb, err := gb.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	eventually(t, "carol to know bob subscribes", func() bool { return len(tc.Peers()) > 0 })
	if err := tc.Publish(ctx, []byte("hello from epoch 1")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, tb, patience); string(m) != "hello from epoch 1" {
		t.Fatalf("bob got %q", m)
	}

	// The state saved now holds the new key and restores at epoch 1.
	st, err := gb.State()
	if err != nil {
		t.Fatal(err)
	}
	dave := member(t, sp, "dave")
	gd, err := dave.g.Restore(ctx, st)
	if err != nil || gd.Info().Epoch != 1 || gd.discoveryScope() != ga.discoveryScope() {
		t.Fatalf("restore at epoch 1: %v", err)
	}
}

// Rotate refuses what it cannot do, and the previous epoch's key opens
// messages only during the grace.
func TestRotateBadInput(t *testing.T) {
	sp := superPeer(t)
	alice, bob := member(t, sp, "alice"), member(t, sp, "bob")
	ctx := testCtx(t)
	if err := alice.g.Net().Rotate(ctx, "x"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("rotate the net group: %v", err)
	}
	gi, err := alice.g.Create(ctx, Spec{Name: "club", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	if err := gi.Rotate(ctx, "x"); !errors.Is(err, ErrPolicy) {
		t.Fatalf("rotate an invite group: %v", err)
	}
	ga, err := alice.g.Create(ctx, Spec{Name: "den", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.Rotate(ctx, ""); !errors.Is(err, ErrPolicy) {
		t.Fatalf("rotate to an empty password: %v", err)
	}
	if err := ga.Rotate(ctx, secret); !errors.Is(err, ErrPolicy) {
		t.Fatalf("rotate to the same password: %v", err)
	}
	if ga.Info().Epoch != 0 {
		t.Fatal("a refused rotation moved the epoch")
	}
	gb, err := bob.g.Join(ctx, Password(ga.Info(), secret))
	if err != nil {
		t.Fatal(err)
	}
	if err := gb.Rotate(ctx, newSecret); !errors.Is(err, ErrNotRotated) {
		t.Fatalf("member rotates before the creator: %v", err)
	}
	// A message claiming a newer epoch, which anyone can send, is checked
	// against the creator's advertisement and not believed.
	rotations := gb.SubscribeRotations(ctx, 4)
	defer rotations.Cancel()
	gb.sawEpoch(7)
	eventually(t, "bob to check the claim", func() bool {
		gb.mu.Lock()
		defer gb.mu.Unlock()
		return gb.ahead == 0
	})
	select {
	case r := <-rotations.C:
		t.Fatalf("a forged epoch claim was believed: %+v", r)
	default:
	}

	if err := ga.Rotate(ctx, newSecret); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	grace := alice.g.cfg.RotateGrace
	if ga.msgKey(1, now) == nil || ga.msgKey(0, now) == nil {
		t.Fatal("current and previous epochs must open during the grace")
	}
	if ga.msgKey(0, now.Add(grace+time.Second)) != nil {
		t.Fatal("the previous epoch opens after the grace")
	}
	if ga.msgKey(2, now) != nil {
		t.Fatal("a future epoch opens")
	}
	// Two rotations at once take turns: two epochs, not two keys for one.
	errs := make(chan error, 2)
	for _, pw := range []string{"turn one", "turn two"} {
		go func() { errs <- ga.Rotate(ctx, pw) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent rotation: %v", err)
		}
	}
	if got := ga.Info().Epoch; got != 3 {
		t.Fatalf("after two concurrent rotations: epoch %d, want 3", got)
	}
	// An advertisement of a later epoch without its sealed scope is refused.
	info := ga.Info()
	info.scopeBox = nil
	if _, err := passwordScope(&info, ga.pw); !errors.Is(err, ErrBadGroup) {
		t.Fatalf("epoch 1 without a sealed scope: %v", err)
	}
}
