package groups

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
)

// MaxStateLen bounds a saved group state.
const MaxStateLen = 64 << 10

// savedState is a private group member's place in the group: enough to take
// it again after a restart with nobody else online.
type savedState struct {
	Ad    []byte `cbor:"1,keyasint"`           // the signed group advertisement
	Cred  []byte `cbor:"2,keyasint,omitempty"` // invite: this peer's credential
	Epoch uint64 `cbor:"3,keyasint,omitempty"` // invite
	Key   []byte `cbor:"4,keyasint,omitempty"` // invite: the group key of Epoch
	Rev   []byte `cbor:"5,keyasint,omitempty"` // invite: the signed revocation list of Epoch
	// Master is a password group's argon2id output, from which its keys
	// derive: it admits to this one group, and is not the password.
	Master []byte `cbor:"6,keyasint,omitempty"`
}

// State returns what this peer needs to take its place in a private group
// again after a restart (Service.Restore), even when no other member is
// online:
//   - invite groups: the group's advertisement, this peer's credential and
//     the current group key with its signed revocation list;
//   - password groups: the group's advertisement and the key derived from
//     the password (argon2id over the password, the group's salt and ID), not
//     the password itself, so that an application need not keep a password
//     its user may use elsewhere too.
//
// It holds the group's keys: store it as you store the peer's own key. Open
// groups have no state; they rejoin with Open.
func (g *Group) State() ([]byte, error) {
	info := g.Info()
	g.mu.Lock()
	st := savedState{Ad: info.Raw()}
	switch info.Policy {
	case PolicyInvite:
		st.Cred, st.Epoch, st.Key, st.Rev = g.cred, g.epoch, g.keys[g.epoch], g.revRaw
	case PolicyPassword:
		st.Master = g.pw.master
	}
	g.mu.Unlock()
	if info.Policy == PolicyOpen {
		return nil, fmt.Errorf("%w: open groups have no state to save; group %q rejoins with Open", ErrPolicy, info.Name)
	}
	return encMode.Marshal(st)
}

// Restore takes this peer's place in a private group again from a State saved
// earlier. The advertisement, the credential and the key are checked as when
// they were first received: signed by the creator, issued to this peer,
// unexpired (the creator and admins need no credential), not revoked. A key
// changed while this peer was away (a revocation) is pushed by an admin when
// it next meets this peer, or fetched by Join with Invited. A password
// group's saved key must match the advertisement's verifier
// (ErrWrongPassword otherwise).
//
// The saved advertisement may be past its lifetime (a day by default):
// it is checked with discovery.VerifyKept, as it stays its creator's, so a
// user away for a weekend gets the group back. A tampered one, or one
// signed by anyone but the creator, fails with ErrBadGroup. If the group
// moved to a newer password meanwhile, the restored member is told so
// (SubscribeRotations) and follows with Rotate. The group's creator
// publishes the advertisement again, renewed while it runs, unless its
// cache holds a later epoch of it.
func (s *Service) Restore(ctx context.Context, state []byte) (*Group, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(state) > MaxStateLen {
		return nil, fmt.Errorf("%w: saved state of %d bytes, limit %d", ErrCredential, len(state), MaxStateLen)
	}
	var st savedState
	if err := decMode.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("%w: saved state: %v", ErrCredential, err)
	}
	now := s.cfg.Now()
	info, err := parseKept(st.Ad, now)
	if err != nil {
		return nil, err
	}
	info = s.ownInfo(ctx, info)
	switch info.Policy {
	case PolicyPassword:
		return s.restorePassword(info, st.Master)
	case PolicyInvite:
	default:
		return nil, fmt.Errorf("%w: group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	self := s.p.ID()
	if !info.isAdmin(self) {
		c, err := verifyCredential(st.Cred, info)
		if err != nil {
			return nil, err
		}
		if c.member != self {
			return nil, fmt.Errorf("%w: issued to %s, not to this peer", ErrCredential, c.member)
		}
		if !now.Before(c.expires) {
			return nil, fmt.Errorf("%w on %s", ErrExpired, c.expires.UTC().Format(time.RFC3339))
		}
	}
	g := s.newGroup(info)
	g.cred = st.Cred
	if info.isAdmin(self) {
		// The creator's own credential expires like any other; it needs none.
		if g.cred, err = issueCredential(s.key, info.ID, self, s.cfg.CredentialTTL); err != nil {
			return nil, err
		}
	}
	if err := g.installKey(st.Epoch, st.Key, st.Rev); err != nil {
		if errors.Is(err, ErrRevoked) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: saved key: %w", ErrCredential, err)
	}
	return s.register(g)
}

// ownInfo publishes again, renewed, the advertisement of a group this peer
// created and now takes again (Restore, Join): while the peer was away it
// lapsed (a day) or at least stopped being refreshed, and newcomers and
// rotation notices look it up. Not when this peer's cache holds a later
// epoch of it (a state saved before a rotation): an older epoch is never
// advertised again. It returns the Info to take the group with.
func (s *Service) ownInfo(ctx context.Context, info *Info) *Info {
	if info.Creator != s.p.ID() {
		return info
	}
	// Only what this peer signed is signed again, as it signed it: not an
	// Info made or changed by hand.
	kept, err := parseKept(info.raw, time.Now())
	if err != nil || kept.Creator != s.p.ID() {
		return info
	}
	if cached := s.advertisedEpoch(kept.ID); cached > kept.Epoch {
		s.log.Warn("took an older epoch of a group this peer moved on; not advertising it again",
			"group", kept.Name, "taken", kept.Epoch, "advertised", cached)
		return info
	}
	fresh, err := s.publishInfo(ctx, kept.ID, kept.wire())
	if err != nil {
		s.log.Warn("group advertisement not published again", "group", kept.Name, "err", err)
		return info
	}
	return fresh
}

// advertisedEpoch is the epoch of the newest advertisement of group id that
// this peer signed and still has in its cache; 0 without one.
func (s *Service) advertisedEpoch(id string) uint64 {
	raw, ok := s.disc.Raw(discovery.Key{Type: discovery.TypeGroup, ID: id, Publisher: s.p.ID()})
	if !ok {
		return 0
	}
	cached, err := parseKept(raw, time.Now())
	if err != nil {
		return 0
	}
	return cached.Epoch
}

// restorePassword rejoins a password group with the key a State saved.
func (s *Service) restorePassword(info *Info, master []byte) (*Group, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("%w: saved state of group %q holds no password key", ErrCredential, info.Name)
	}
	pw := keysFromMaster(master)
	if !hmac.Equal(pw.verifier, info.verifier) {
		return nil, fmt.Errorf("%w for group %q: the saved key does not match its advertisement", ErrWrongPassword, info.Name)
	}
	g := s.newGroup(info)
	if err := g.setPassword(info, pw); err != nil {
		return nil, err
	}
	return s.register(g)
}

// PasswordState returns the State a member of the password group info would
// save after joining it with password (Group.State), without joining: for an
// application that kept a password on disk and now keeps the derived key
// instead. A wrong password fails with ErrWrongPassword.
func PasswordState(info Info, password string) ([]byte, error) {
	if info.Policy != PolicyPassword {
		return nil, fmt.Errorf("%w: group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	if !info.kdf.sane() {
		return nil, fmt.Errorf("%w: password parameters out of bounds", ErrBadGroup)
	}
	pw := derivePassword(password, info.ID, info.salt, info.kdf)
	if !hmac.Equal(pw.verifier, info.verifier) {
		return nil, fmt.Errorf("%w for group %q", ErrWrongPassword, info.Name)
	}
	return encMode.Marshal(savedState{Ad: info.Raw(), Master: pw.master})
}
