package groups

import (
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 11: an invite room vanished for its creator after a restart, with
// "no member could hand over the group key: %!w(<nil>)", and for a member who
// restarted while the creator was offline. Members restart in any order, each
// alone, and take their places again from their saved State.
func TestRestoreInviteGroupAfterRestarts(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	dirA, dirB := filepath.Join(t.TempDir(), "alice"), filepath.Join(t.TempDir(), "bob")
	alice, bob := memberAt(t, sp, "alice", dirA), memberAt(t, sp, "bob", dirB)
	ga, err := alice.g.Create(ctx, Spec{Name: "inner", Policy: PolicyInvite})
	if err != nil {
		t.Fatal(err)
	}
	credA, _ := ga.Invite(alice.p.ID(), 0)
	credB, _ := ga.Invite(bob.p.ID(), 0)
	gb, err := bob.g.Join(ctx, Invited(credB))
	if err != nil {
		t.Fatal(err)
	}
	stateA, err := ga.State()
	if err != nil {
		t.Fatal(err)
	}
	stateB, err := gb.State()
	if err != nil {
		t.Fatal(err)
	}
	alice.close()
	bob.close()

	// Bob comes back while alice is away: the credential alone cannot get
	// the key, the saved state can.
	bob = memberAt(t, sp, "bob", dirB)
	if _, err := bob.g.Join(ctx, Invited(credB)); !errors.Is(err, ErrNoKey) {
		t.Fatalf("credential with the creator away: %v", err)
	}
	gb, err = bob.g.Restore(ctx, stateB)
	if err != nil {
		t.Fatalf("bob restores alone: %v", err)
	}
	// Alice comes back after him. Her own credential names nobody else to
	// ask: the error says so in words, not %!w(<nil>).
	alice = memberAt(t, sp, "alice", dirA)
	_, err = alice.g.Join(ctx, Invited(credA))
	if !errors.Is(err, ErrNoKey) || strings.Contains(err.Error(), "%!") {
		t.Fatalf("creator's own credential: %v", err)
	}
	ga, err = alice.g.Restore(ctx, stateA)
	if err != nil {
		t.Fatalf("alice restores: %v", err)
	}

	// Same group, same key: a message alice seals reaches bob.
	meshed(t, ga, gb)
	ta, err := ga.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	tb, err := gb.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	eventually(t, "alice to know bob subscribes", func() bool { return len(ta.Peers()) > 0 })
	if err := ta.Publish(ctx, []byte("we are back")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, tb, patience); string(m) != "we are back" {
		t.Fatalf("bob got %q", m)
	}

	// A state is checked like a credential: someone else's is refused, and
	// so is garbage.
	mallory := member(t, sp, "mallory")
	if _, err := mallory.g.Restore(ctx, stateB); !errors.Is(err, ErrCredential) {
		t.Fatalf("someone else's state: %v", err)
	}
	if _, err := mallory.g.Restore(ctx, []byte("not a state")); !errors.Is(err, ErrCredential) {
		t.Fatalf("garbage state: %v", err)
	}
	if _, err := (&Group{info: &Info{Policy: PolicyOpen}}).State(); !errors.Is(err, ErrPolicy) {
		t.Fatalf("state of an open group: %v", err)
	}
}

// A password group's saved State holds the key derived from the password,
// not the password: a member restarted from it rejoins and talks with nobody
// asking for the password again, and a state whose key does not match the
// advertisement is refused.
func TestRestorePasswordGroup(t *testing.T) {
	sp := superPeer(t)
	ctx := testCtx(t)
	dirB := filepath.Join(t.TempDir(), "bob")
	alice, bob := member(t, sp, "alice"), memberAt(t, sp, "bob", dirB)
	ga, err := alice.g.Create(ctx, Spec{Name: "den", Policy: PolicyPassword, Password: secret})
	if err != nil {
		t.Fatal(err)
	}
	gb, err := bob.g.Join(ctx, Password(ga.Info(), secret))
	if err != nil {
		t.Fatal(err)
	}
	stateB, err := gb.State()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stateB, []byte(secret)) {
		t.Fatal("the saved state holds the password")
	}
	// PasswordState makes the same state offline, for an application that
	// kept the password and moves to keeping the key.
	if st, err := PasswordState(ga.Info(), secret); err != nil || !bytes.Equal(st, stateB) {
		t.Fatalf("PasswordState: %v, same as State: %v", err, bytes.Equal(st, stateB))
	}
	if _, err := PasswordState(ga.Info(), "tr0ub4dor&3"); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("PasswordState with a wrong password: %v", err)
	}
	if _, err := PasswordState(Info{Name: "x", Policy: PolicyOpen}, secret); !errors.Is(err, ErrPolicy) {
		t.Fatalf("PasswordState of an open group: %v", err)
	}
	bob.close()

	bob = memberAt(t, sp, "bob", dirB)
	if gb, err = bob.g.Restore(ctx, stateB); err != nil {
		t.Fatalf("restore: %v", err)
	}
	meshed(t, ga, gb)
	ta, err := ga.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Close()
	tb, err := gb.Pipes().Join(ctx, "chat")
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	eventually(t, "alice to know bob subscribes", func() bool { return len(ta.Peers()) > 0 })
	if err := ta.Publish(ctx, []byte("still here")); err != nil {
		t.Fatal(err)
	}
	if m := next(t, tb, patience); string(m) != "still here" {
		t.Fatalf("bob got %q", m)
	}

	// A key that is not the group's, or none, is refused.
	var st savedState
	if err := decMode.Unmarshal(stateB, &st); err != nil {
		t.Fatal(err)
	}
	st.Master[0] ^= 1
	bad, _ := encMode.Marshal(st)
	mallory := member(t, sp, "mallory")
	if _, err := mallory.g.Restore(ctx, bad); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("state with a wrong key: %v", err)
	}
	st.Master = nil
	bad, _ = encMode.Marshal(st)
	if _, err := mallory.g.Restore(ctx, bad); !errors.Is(err, ErrCredential) {
		t.Fatalf("state with no key: %v", err)
	}
}
