package groups

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/peer"
)

// awayFor is how long the user of a restarted member was away in these
// tests: a day past the group advertisement's lifetime.
const awayFor = discovery.DefaultLifetime + 24*time.Hour

// backLater is a member restarted from dir by a user back after awayFor:
// its clock (Config.Now) is set before its service starts.
func backLater(t *testing.T, sp *node, name, dir string) *node {
	t.Helper()
	gcfg := fastPresence
	gcfg.Now = func() time.Time { return time.Now().Add(awayFor) }
	cfg := peer.TestConfig()
	cfg.Name, cfg.Dir, cfg.SuperPeers = name, dir, []string{sp.p.Invite()}
	n := newNode(t, cfg, gcfg)
	if err := n.p.Ready(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	return n
}

// talk checks that a message from reaches to on a group pipe.
func talk(t *testing.T, ctx context.Context, from, to *Group, text string) {
	t.Helper()
	tf, err := from.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer tf.Close()
	tt, err := to.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer tt.Close()
	eventually(t, "the sender to know the receiver subscribes", func() bool { return len(tf.Peers()) > 0 })
	if err := tf.Publish(ctx, []byte(text)); err != nil {
		t.Fatal(err)
	}
	if m := next(t, tt, patience); string(m) != text {
		t.Fatalf("%s got %q, want %q", to.s.p.Name(), m, text)
	}
}

// savedAd is the group advertisement a saved state holds.
func savedAd(t *testing.T, state []byte) []byte {
	t.Helper()
	var st savedState
	if err := decMode.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ad
}

// Issue 11: a saved group came back only within a day of its advertisement
// being signed; past its lifetime, Restore refused it and the room was
// dropped. A member back after two days restores both kinds of private
// group from its saved state and talks.
func TestRestoreWithExpiredAdvertisement(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	dirB := filepath.Join(t.TempDir(), "bob")
	alice, bob := member(t, sp, "alice"), memberAt(t, sp, "bob", dirB)
	gp, err := alice.g.Create(ctx, Spec{Name: "den", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := alice.g.Create(ctx, Spec{Name: "club", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := gi.Invite(bob.p.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	bp, err := bob.g.Join(ctx, Password(gp.Info(), secret))
	if err != nil {
		t.Fatal(err)
	}
	bi, err := bob.g.Join(ctx, Invited(cred))
	if err != nil {
		t.Fatal(err)
	}
	var states [][]byte
	for _, g := range []*Group{bp, bi} {
		st, err := g.State()
		if err != nil {
			t.Fatal(err)
		}
		states = append(states, st)
	}
	bob.close()

	bob = backLater(t, sp, "bob", dirB)
	later := bob.g.cfg.Now()
	for _, st := range states {
		// The scenario: at bob's clock the advertisement is expired.
		if _, err := discovery.Verify(savedAd(t, st), later); !errors.Is(err, discovery.ErrExpired) {
			t.Fatalf("saved advertisement at bob's clock: %v, want expired", err)
		}
	}
	if bp, err = bob.g.Restore(ctx, states[0]); err != nil {
		t.Fatalf("restore the password group: %v", err)
	}
	if bi, err = bob.g.Restore(ctx, states[1]); err != nil {
		t.Fatalf("restore the invite group: %v", err)
	}
	if bp.ID() != gp.ID() || bi.ID() != gi.ID() {
		t.Fatal("restored other groups")
	}
	meshed(t, gp, bp)
	talk(t, ctx, gp, bp, "back after the weekend")
	meshed(t, gi, bi)
	talk(t, ctx, gi, bi, "the club too")
}

// A kept advertisement is refused, with a clear error, when tampered with,
// or dated ahead of the clock; ParseInfo takes it past its lifetime.
func TestKeptAdvertisementRefused(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	alice := member(t, sp, "alice")
	ga, err := alice.g.Create(ctx, Spec{Name: "den", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	state, err := PasswordState(ga.Info(), secret)
	if err != nil {
		t.Fatal(err)
	}
	info := ga.Info()
	raw := info.Raw()
	if info, err := parseKept(raw, time.Now().Add(awayFor)); err != nil || info.ID != ga.ID() {
		t.Fatalf("kept advertisement past its lifetime: %v", err)
	}

	// The group's name changed inside the signed advertisement.
	var st savedState
	if err := decMode.Unmarshal(state, &st); err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(st.Ad, []byte("den"))
	if i < 0 {
		t.Fatal("name not found in the advertisement")
	}
	st.Ad[i] = 'D'
	tampered, _ := encMode.Marshal(st)
	bob := backLater(t, sp, "bob", t.TempDir())
	_, err = bob.g.Restore(ctx, tampered)
	if !errors.Is(err, ErrBadGroup) || !errors.Is(err, discovery.ErrRejected) || !strings.Contains(err.Error(), "signature") {
		t.Fatalf("restore of a tampered advertisement: %v", err)
	}
	if _, err := ParseInfo(st.Ad); !errors.Is(err, ErrBadGroup) || !errors.Is(err, discovery.ErrRejected) {
		t.Fatalf("ParseInfo of a tampered advertisement: %v", err)
	}
	// Judged by a clock an hour behind its signing, it is dated ahead.
	if _, err := parseKept(raw, time.Now().Add(-time.Hour)); !errors.Is(err, ErrBadGroup) || !strings.Contains(err.Error(), "ahead") {
		t.Fatalf("advertisement dated ahead of the clock: %v", err)
	}
	// An invitation whose advertisement is tampered with is refused too.
	gi, err := alice.g.Create(ctx, Spec{Name: "club", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	cred, err := gi.Invite(bob.p.ID(), 0)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := decodeCredString(cred)
	if err != nil {
		t.Fatal(err)
	}
	cb.GroupAd[bytes.Index(cb.GroupAd, []byte("club"))] = 'C'
	bad, err := encodeCredString(cb.GroupAd, cb.Cred)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bob.g.Join(ctx, Invited(bad)); !errors.Is(err, ErrBadGroup) || !errors.Is(err, discovery.ErrRejected) {
		t.Fatalf("invitation with a tampered advertisement: %v", err)
	}
	// The untouched invitation, its advertisement past its lifetime at
	// bob's clock, admits him: the credential says how long it lasts.
	if _, err := bob.g.Join(ctx, Invited(cred)); err != nil {
		t.Fatalf("invitation with an expired advertisement: %v", err)
	}
}

// An old saved advertisement moves nothing backwards: a member restored at
// epoch 0 after the creator moved the group to a new password is told so,
// follows with Rotate, and talks; restoring or joining with the old
// advertisement again leaves the group at the newer epoch.
func TestRestoreOldEpochMovesForward(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	dirB := filepath.Join(t.TempDir(), "bob")
	alice, bob := member(t, sp, "alice"), memberAt(t, sp, "bob", dirB)
	ga, err := alice.g.Create(ctx, Spec{Name: "den", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	old := ga.Info()
	gb, err := bob.g.Join(ctx, Password(old, secret))
	if err != nil {
		t.Fatal(err)
	}
	stateB, err := gb.State()
	if err != nil {
		t.Fatal(err)
	}
	bob.close()
	if err := ga.Rotate(ctx, newSecret); err != nil {
		t.Fatal(err)
	}

	bob = backLater(t, sp, "bob", dirB)
	if gb, err = bob.g.Restore(ctx, stateB); err != nil {
		t.Fatalf("restore at the old epoch: %v", err)
	}
	if gb.Info().Epoch != 0 {
		t.Fatalf("restored at epoch %d", gb.Info().Epoch)
	}
	rotations := gb.SubscribeRotations(ctx, 4)
	defer rotations.Cancel()
	select {
	case r := <-rotations.C:
		if r.Epoch != 1 {
			t.Fatalf("told of epoch %d", r.Epoch)
		}
	case <-time.After(patience):
		t.Fatal("the restored member was not told the group moved to a new password")
	}
	if err := gb.Rotate(ctx, newSecret); err != nil {
		t.Fatalf("follow the rotation: %v", err)
	}
	if gb.Info().Epoch != 1 {
		t.Fatalf("epoch after following %d", gb.Info().Epoch)
	}
	// The old advertisement again: the joined group stays where it is.
	if g, err := bob.g.Restore(ctx, stateB); err != nil || g != gb || gb.Info().Epoch != 1 {
		t.Fatalf("restore of the old state while joined: %v, epoch %d", err, gb.Info().Epoch)
	}
	if g, err := bob.g.Join(ctx, Password(old, secret)); err != nil || g != gb || gb.Info().Epoch != 1 {
		t.Fatalf("join with the old advertisement while joined: %v", err)
	}
	meshed(t, ga, gb)
	talk(t, ctx, ga, gb, "welcome to epoch 1")
}

// A creator back after days advertises its group again, so that newcomers
// find it and members confirm its epoch; but a state it saved before a
// rotation does not bring the older epoch back.
func TestCreatorRestoreAdvertisesAgain(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	dirA := filepath.Join(t.TempDir(), "alice")
	alice, bob := memberAt(t, sp, "alice", dirA), member(t, sp, "bob")
	ga, err := alice.g.Create(ctx, Spec{Name: "den", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	saved := ga.Info()
	state0, err := ga.State()
	if err != nil {
		t.Fatal(err)
	}
	alice.close()

	alice = backLater(t, sp, "alice", dirA)
	if ga, err = alice.g.Restore(ctx, state0); err != nil {
		t.Fatal(err)
	}
	if got := ga.Info(); got.seq <= saved.seq || got.Epoch != 0 || got.ID != saved.ID {
		t.Fatalf("restored creator's advertisement: seq %d (saved %d), epoch %d", got.seq, saved.seq, got.Epoch)
	}
	info, err := bob.g.Lookup(ctx, saved.ID)
	if err != nil || info.seq != ga.Info().seq {
		t.Fatalf("bob looks the group up: %v, seq %d, want %d", err, info.seq, ga.Info().seq)
	}

	if err := ga.Rotate(ctx, newSecret); err != nil {
		t.Fatal(err)
	}
	alice.close()
	alice = backLater(t, sp, "alice", dirA)
	if ga, err = alice.g.Restore(ctx, state0); err != nil {
		t.Fatalf("restore of a state saved before the rotation: %v", err)
	}
	if ga.Info().Epoch != 0 {
		t.Fatalf("restored at epoch %d", ga.Info().Epoch)
	}
	if info, err := bob.g.Lookup(ctx, saved.ID); err != nil || info.Epoch != 1 {
		t.Fatalf("after the creator restored an older state, bob finds epoch %d (%v), want 1", info.Epoch, err)
	}
	// Rotating from there moves past the epoch advertised, not to a second
	// epoch 1 with another key.
	if err := ga.Rotate(ctx, "a third password"); err != nil {
		t.Fatal(err)
	}
	if got := ga.Info().Epoch; got != 2 {
		t.Fatalf("creator rotated from a stale epoch 0 to epoch %d, want 2", got)
	}
	if info, err := bob.g.Lookup(ctx, saved.ID); err != nil || info.Epoch != 2 {
		t.Fatalf("bob finds epoch %d (%v), want 2", info.Epoch, err)
	}
}

// A creator that takes its group again with Join from a kept advertisement
// (the taskfarm's scheduler does) advertises it again too, as it signed it:
// fields changed by hand in the Info are not published.
func TestCreatorJoinAdvertisesAgain(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	dirA := filepath.Join(t.TempDir(), "alice")
	alice, bob := memberAt(t, sp, "alice", dirA), member(t, sp, "bob")
	ga, err := alice.g.Create(ctx, Spec{Name: "farm", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	saved := ga.Info()
	raw := saved.Raw()
	alice.close()

	alice = backLater(t, sp, "alice", dirA)
	info, err := ParseInfo(raw)
	if err != nil {
		t.Fatal(err)
	}
	info.Name = "changed by hand"
	if ga, err = alice.g.Join(ctx, Password(info, secret)); err != nil {
		t.Fatal(err)
	}
	if got := ga.Info(); got.seq <= saved.seq || got.Name != "farm" {
		t.Fatalf("creator's group after Join: seq %d (saved %d), name %q", got.seq, saved.seq, got.Name)
	}
	found, err := bob.g.Lookup(ctx, saved.ID)
	if err != nil || found.seq != ga.Info().seq || found.Name != "farm" {
		t.Fatalf("bob looks the group up: %v, seq %d, name %q", err, found.seq, found.Name)
	}
}
