package groups

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/juxta-p2p/juxta/discovery"
)

// MaxStateLen bounds a saved group state.
const MaxStateLen = 64 << 10

// savedState is an invite group member's place in the group: enough to take
// it again after a restart with nobody else online.
type savedState struct {
	Ad    []byte `cbor:"1,keyasint"` // the signed group advertisement
	Cred  []byte `cbor:"2,keyasint"` // this peer's credential
	Epoch uint64 `cbor:"3,keyasint"`
	Key   []byte `cbor:"4,keyasint"` // the group key of Epoch
	Rev   []byte `cbor:"5,keyasint"` // the signed revocation list of Epoch
}

// State returns what this peer needs to take its place in the invite group
// again after a restart (Service.Restore), even when no other member is
// online to hand over the key: the group's advertisement, this peer's
// credential and the current group key with its signed revocation list.
// It holds the group key: store it as you store the peer's own key. Password
// groups rejoin with their password (Join with Password needs nobody online), open
// groups with Open.
func (g *Group) State() ([]byte, error) {
	info := g.Info()
	if info.Policy != PolicyInvite {
		return nil, fmt.Errorf("%w: only invite groups have a state to save; group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	g.mu.Lock()
	st := savedState{Ad: info.Raw(), Cred: g.cred, Epoch: g.epoch, Key: g.keys[g.epoch], Rev: g.revRaw}
	g.mu.Unlock()
	return encMode.Marshal(st)
}

// Restore takes this peer's place in an invite group again from a State saved
// earlier. The advertisement, the credential and the key are checked as when
// they were first received: signed by the creator, issued to this peer,
// unexpired (the creator and admins need no credential), not revoked. A key
// changed while this peer was away (a revocation) is pushed by an admin when
// it next meets this peer, or fetched by Join with Invited.
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
	ad, err := discovery.Verify(st.Ad, time.Now())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadGroup, err)
	}
	info, err := infoFromAd(ad, st.Ad)
	if err != nil {
		return nil, err
	}
	if info.Policy != PolicyInvite {
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
		if !time.Now().Before(c.expires) {
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
