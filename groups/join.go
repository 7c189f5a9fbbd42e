package groups

import (
	"bytes"
	"context"
	"crypto/hmac"
	"fmt"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// A Credential is what Join presents to a group, one for each policy: Open,
// Password or Invited makes it. The zero Credential joins nothing.
type Credential struct {
	policy   Policy
	info     Info   // Open, Password
	password string // Password
	invite   string // Invited
}

// Open is the credential for an open group, with its Info (from Lookup).
func Open(info Info) Credential { return Credential{policy: PolicyOpen, info: info} }

// Password is the credential for a password group, with its Info (from
// Lookup). The password is checked against the group's verifier by Join; it
// is never sent to anyone.
func Password(info Info, password string) Credential {
	return Credential{policy: PolicyPassword, info: info, password: password}
}

// Invited is the credential for an invite group: a credential string from
// its creator or an admin (Group.Invite), which carries the group's Info.
func Invited(credential string) Credential {
	return Credential{policy: PolicyInvite, invite: credential}
}

// Join joins a group with cred:
//   - Open: no network I/O; the group must be open.
//   - Password: a wrong password fails with ErrWrongPassword.
//   - Invited: the credential must name this peer, be unexpired and not
//     revoked (ErrCredential, ErrExpired); the group key is then fetched from
//     its issuer, the creator or an admin, until ctx ends.
//
// A credential for another policy than the group's fails with ErrPolicy.
// The group's advertisement may be past its lifetime (ParseInfo). The
// group's creator taking it again publishes its advertisement again, as
// Restore does.
func (s *Service) Join(ctx context.Context, cred Credential) (*Group, error) {
	switch cred.policy {
	case PolicyOpen:
		return s.joinOpen(ctx, cred.info)
	case PolicyPassword:
		return s.joinPassword(ctx, cred.info, cred.password)
	case PolicyInvite:
		return s.joinInvite(ctx, cred.invite)
	}
	return nil, fmt.Errorf("%w: no credential (make one with Open, Password or Invited)", ErrPolicy)
}

// joinOpen joins an open group.
func (s *Service) joinOpen(ctx context.Context, info Info) (*Group, error) {
	if info.Policy != PolicyOpen {
		return nil, fmt.Errorf("%w: group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	return s.register(s.newGroup(s.ownInfo(ctx, &info)))
}

// joinPassword joins a password group: the password is checked against the
// group's verifier here.
func (s *Service) joinPassword(ctx context.Context, info Info, password string) (*Group, error) {
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
	own := s.ownInfo(ctx, &info)
	g := s.newGroup(own)
	if err := g.setPassword(own, pw); err != nil {
		return nil, err
	}
	return s.register(g)
}

// joinInvite joins an invite group with a credential string and fetches the
// group key from a member.
func (s *Service) joinInvite(ctx context.Context, credential string) (*Group, error) {
	cb, err := decodeCredString(credential)
	if err != nil {
		return nil, err
	}
	// The group's advertisement inside may be past its lifetime: the
	// credential, signed by the issuer and dated, says how long the
	// invitation lasts (Config.CredentialTTL, 30 days by default).
	now := s.cfg.Now()
	c, err := openCredential(cb.Cred)
	if err != nil {
		return nil, err
	}
	if c.member != s.p.ID() {
		return nil, fmt.Errorf("%w: issued to %s, not to this peer", ErrCredential, c.member)
	}
	if !now.Before(c.expires) {
		return nil, fmt.Errorf("%w on %s", ErrExpired, c.expires.UTC().Format(time.RFC3339))
	}
	// The group's advertisement is checked on another goroutine while this
	// one asks the issuer for the key: the answer is looked at only once the
	// advertisement and the credential hold (fetchKey), and the request is
	// abandoned as soon as either fails.
	kctx, kcancel := context.WithCancel(ctx)
	defer kcancel()
	checked := make(chan checkedAd, 1)
	go func() {
		info, err := checkInvite(cb.GroupAd, c, now)
		if err != nil {
			kcancel()
		}
		checked <- checkedAd{info, err}
	}()
	var pre *keyAnswer
	if c.issuer != s.p.ID() {
		pre = &keyAnswer{holder: c.issuer, group: c.Group, cred: cb.Cred}
		pre.resp, pre.err = s.askKey(kctx, c.issuer, c.Group, cb.Cred)
	}
	ad := <-checked
	if ad.err != nil {
		return nil, ad.err
	}
	info := ad.info
	g := s.newGroup(s.ownInfo(ctx, info))
	g.cred = cb.Cred
	// The issuer holds the key; so do the creator and the admins.
	holders := append([]peer.ID{c.issuer, info.Creator}, info.Admins...)
	if err := g.fetchKey(ctx, holders, 0, pre); err != nil {
		return nil, err
	}
	return s.register(g)
}

// checkedAd is an invite group's advertisement, checked, or why not.
type checkedAd struct {
	info *Info
	err  error
}

// checkInvite checks the group advertisement of an invite bundle (it may be
// past its lifetime: the credential, signed by the issuer and dated, says
// how long the invitation lasts), and the opened credential c against it.
func checkInvite(groupAd []byte, c *credential, now time.Time) (*Info, error) {
	info, err := parseKept(groupAd, now)
	if err != nil {
		return nil, err
	}
	if info.Policy != PolicyInvite {
		return nil, fmt.Errorf("%w: group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	if err := c.check(info); err != nil {
		return nil, err
	}
	return info, nil
}

// keyAnswer is what a holder answered to a key request a join made before
// it had checked the group's advertisement: fetchKey takes it in place of
// asking that holder again.
type keyAnswer struct {
	holder peer.ID
	group  string
	cred   []byte
	resp   keyMsg
	err    error
}

// answerFor returns the answer, if a asked holder for group with cred: ok
// says whether it did.
func (a *keyAnswer) answerFor(holder peer.ID, group string, cred []byte) (_ keyMsg, ok bool, _ error) {
	if a == nil || a.holder != holder || a.group != group || !bytes.Equal(a.cred, cred) {
		return keyMsg{}, false, nil
	}
	return a.resp, true, a.err
}
