package groups

import (
	"context"
	"crypto/hmac"
	"fmt"
	"sync"
	"time"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/juxta-p2p/juxta/discovery"
	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
)

// Password epochs. A password group's creator moves it to a new password
// with Rotate: a new advertisement (same ID, next Epoch, a fresh salt and
// verifier) whose keys derive from the new password. Members who are told
// the new password move with Rotate too; from then on they seal, and accept,
// only what the new keys open (the previous epoch's for Config.RotateGrace
// more), and prove membership only with the new key. Someone who knows only
// an old password can then neither read nor send group messages, nor appear
// present, nor open or receive group pipe streams.
//
// The discovery scope stays the same in every epoch, so that members who
// joined before and after a rotation publish and search in one place: each
// new advertisement carries the scope secret sealed under the new password's
// key (scopeBox). Someone who knew an old password therefore still knows
// the scope: it can read the group's scoped advertisements and pipe bindings
// (which member binds which pipe name) and publish there, but the pipes
// challenge both ends with the new password, so it cannot use them. To hide
// the scope too, make a new group.

// scopeBoxLen is a sealed scope secret: XChaCha20 nonce, 32 bytes, tag.
const scopeBoxLen = chacha20poly1305.NonceSizeX + 32 + chacha20poly1305.Overhead

// scopeSecret derives a discovery scope's secret from a member secret.
func scopeSecret(secret []byte, groupID string) []byte {
	return mac(secret, "juxta/group/discovery-scope", groupID)
}

func scopeAD(groupID string, epoch uint64) []byte {
	return fmt.Appendf(nil, "juxta/group/scope/%s/%d", groupID, epoch)
}

func scopeAEAD(pw passwordKeys) interface {
	Seal(dst, nonce, plaintext, additionalData []byte) []byte
	Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error)
} {
	// The key is 32 bytes, so NewX cannot fail.
	aead, _ := chacha20poly1305.NewX(mac(pw.master, "juxta/group/scope-box"))
	return aead
}

// passwordScope is the discovery scope's secret of a password group at
// info's epoch: derived from the first password's key in epoch 0, opened
// from the advertisement's scopeBox with the password's key later.
func passwordScope(info *Info, pw passwordKeys) ([]byte, error) {
	if info.Epoch == 0 {
		return scopeSecret(pw.msg, info.ID), nil
	}
	box := info.scopeBox
	if len(box) != scopeBoxLen {
		return nil, fmt.Errorf("%w: no sealed discovery scope", ErrBadGroup)
	}
	n := chacha20poly1305.NonceSizeX
	scope, err := scopeAEAD(pw).Open(nil, box[:n], box[n:], scopeAD(info.ID, info.Epoch))
	if err != nil {
		return nil, fmt.Errorf("%w: its discovery scope does not open with this password's key", ErrBadGroup)
	}
	return scope, nil
}

// setPassword installs the keys of info's epoch in a group not yet
// registered.
func (g *Group) setPassword(info *Info, pw passwordKeys) error {
	scope, err := passwordScope(info, pw)
	if err != nil {
		return err
	}
	g.mu.Lock()
	g.pw, g.cur, g.scope = pw, info, scope
	g.mu.Unlock()
	return nil
}

func (g *Group) authKey() []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.pw.auth
}

// msgKey is the key that opens a password group's message of epoch at now:
// the current epoch's, or the previous one's until the grace ends; nil for
// any other.
func (g *Group) msgKey(epoch uint64, now time.Time) []byte {
	g.mu.Lock()
	defer g.mu.Unlock()
	switch {
	case g.cur != nil && epoch == g.cur.Epoch:
		return g.pw.msg
	case g.prev.msg != nil && epoch == g.prevEpoch && now.Before(g.prevUntil):
		return g.prev.msg
	}
	return nil
}

func (g *Group) sealPassword(p []byte) ([]byte, error) {
	g.mu.Lock()
	key, epoch := g.pw.msg, g.cur.Epoch
	g.mu.Unlock()
	return encrypt(key, g.info.ID, epoch, g.s.p.ID(), nil, p)
}

func (g *Group) validatePassword(from peer.ID, data []byte) bool {
	_, err := g.openPassword(from, data)
	return err == nil
}

func (g *Group) openPassword(from peer.ID, data []byte) ([]byte, error) {
	var s sealed
	if err := decMode.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	key := g.msgKey(s.Epoch, time.Now())
	if key == nil {
		g.sawEpoch(s.Epoch)
		return nil, fmt.Errorf("%w: a message sealed under password epoch %d", ErrNotMember, s.Epoch)
	}
	return decrypt(key, g.info.ID, from, &s)
}

// Rotate moves this member of a password group to newPassword, the group's
// next epoch.
//
// The creator rotates first: Rotate publishes the group's advertisement
// again with a fresh salt and a verifier of newPassword. Each other member,
// told the new password out of band, then calls Rotate with it: it looks the
// group's newest advertisement up (ErrNotRotated while the creator has not
// rotated, or this peer has not seen it yet) and checks newPassword against
// it (ErrWrongPassword). From then on this member seals with the new key,
// accepts the previous epoch's messages for Config.RotateGrace more, and
// admits to the group's pipes only peers that prove the new password.
// Save the group's State again afterwards: it holds the new key.
//
// An empty password, the current password again, or a group that is not a
// password group fails with ErrPolicy.
func (g *Group) Rotate(ctx context.Context, newPassword string) error {
	info := g.Info()
	if info.Policy != PolicyPassword {
		return fmt.Errorf("%w: group %q is %s; only password groups change password", ErrPolicy, info.Name, info.Policy)
	}
	if newPassword == "" {
		return fmt.Errorf("%w: the new password is empty", ErrPolicy)
	}
	// One rotation at a time: two at once would publish two advertisements
	// of the same epoch with different keys.
	g.rotMu.Lock()
	defer g.rotMu.Unlock()
	info = g.Info()
	var next *Info
	var pw passwordKeys
	var err error
	if info.Creator == g.s.p.ID() {
		next, pw, err = g.publishRotation(ctx, info, newPassword)
	} else {
		next, pw, err = g.s.lookupRotation(ctx, info, newPassword)
	}
	if err != nil {
		return err
	}
	return g.switchTo(next, pw)
}

// publishRotation publishes the group's advertisement of the next epoch.
func (g *Group) publishRotation(ctx context.Context, info Info, newPassword string) (*Info, passwordKeys, error) {
	if same := derivePassword(newPassword, info.ID, info.salt, info.kdf); hmac.Equal(same.verifier, info.verifier) {
		return nil, passwordKeys{}, fmt.Errorf("%w: the new password is the current one", ErrPolicy)
	}
	g.mu.Lock()
	scope := g.scope
	g.mu.Unlock()
	w := info.wire()
	// After the epoch this creator last advertised, should it have taken
	// the group again from a state saved before that: one epoch, one key.
	w.Salt, w.Epoch = randomBytes(16), max(info.Epoch, g.s.advertisedEpoch(info.ID))+1
	pw := derivePassword(newPassword, info.ID, w.Salt, w.KDF)
	w.Verifier = pw.verifier
	nonce := randomBytes(chacha20poly1305.NonceSizeX)
	w.ScopeBox = scopeAEAD(pw).Seal(nonce, nonce, scope, scopeAD(info.ID, w.Epoch))
	next, err := g.s.publishInfo(ctx, info.ID, w)
	if err != nil {
		return nil, passwordKeys{}, err
	}
	return next, pw, nil
}

// lookupRotation finds the group's advertisement of a later epoch than
// info's and checks newPassword against it.
func (s *Service) lookupRotation(ctx context.Context, info Info, newPassword string) (*Info, passwordKeys, error) {
	next, err := s.Lookup(ctx, info.ID)
	if err != nil {
		return nil, passwordKeys{}, fmt.Errorf("%w: %w", ErrNotRotated, err)
	}
	if next.Epoch <= info.Epoch || next.Policy != PolicyPassword {
		return nil, passwordKeys{}, fmt.Errorf("%w: group %q is still at password epoch %d", ErrNotRotated, info.Name, info.Epoch)
	}
	pw := derivePassword(newPassword, next.ID, next.salt, next.kdf)
	if !hmac.Equal(pw.verifier, next.verifier) {
		return nil, passwordKeys{}, fmt.Errorf("%w for group %q at epoch %d", ErrWrongPassword, next.Name, next.Epoch)
	}
	return &next, pw, nil
}

// switchTo makes next's epoch the group's current one, keeping the previous
// epoch's keys for the grace, and forgets the proofs checked so far.
func (g *Group) switchTo(next *Info, pw passwordKeys) error {
	scope, err := passwordScope(next, pw)
	if err != nil {
		return err
	}
	g.mu.Lock()
	if next.Epoch <= g.cur.Epoch {
		g.mu.Unlock()
		return fmt.Errorf("%w: already at epoch %d", ErrNotRotated, g.cur.Epoch)
	}
	if !hmac.Equal(scope, g.scope) {
		g.mu.Unlock()
		return fmt.Errorf("%w: epoch %d moves the group's discovery scope", ErrBadGroup, next.Epoch)
	}
	g.prev, g.prevEpoch, g.prevUntil = g.pw, g.cur.Epoch, time.Now().Add(g.s.cfg.RotateGrace)
	g.pw, g.cur = pw, next
	clear(g.proven)
	g.mu.Unlock()
	// Announce presence under the new key now, not at the next heartbeat.
	if g.presence != nil {
		select {
		case g.presence.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// publishInfo publishes a group advertisement with body w under id, in the
// net group, and reads it back. Discovery renews it for as long as this peer
// runs (PublishRenewed), so that the group is found, and its epoch
// confirmed, for longer than an advertisement's lifetime.
func (s *Service) publishInfo(ctx context.Context, id string, w wireInfo) (*Info, error) {
	body, err := encMode.Marshal(w)
	if err != nil {
		return nil, err
	}
	ad, err := s.disc.PublishRenewed(ctx, discovery.Advertisement{
		Type: discovery.TypeGroup, ID: id, Body: body,
		Attrs: map[string]string{"id": id, "name": w.Name, "policy": w.Policy},
	})
	if err != nil {
		return nil, fmt.Errorf("groups: publish group: %w", err)
	}
	raw, err := s.rawAd(ad)
	if err != nil {
		return nil, err
	}
	return infoFromAd(ad, raw)
}

// Rotation tells a member of a password group that the group's creator has
// moved it to a newer password than this member's (Epoch, from the
// creator's signed advertisement): this member no longer reads the group,
// nor is admitted to its pipes, until it calls Rotate with the new password.
type Rotation struct {
	Epoch uint64
}

// SubscribeRotations delivers a Rotation when this member learns that its
// password group moved on without it, under juxta's one event contract
// (package event): drain C; a full buffer drops and counts; C closes when
// ctx ends or the group is left. It learns it when a message sealed under a
// newer epoch arrives, which makes it look the group's advertisement up (at
// most once per rotationCheckEvery): a message alone, which anyone can
// send, proves nothing. Other groups deliver nothing.
func (g *Group) SubscribeRotations(ctx context.Context, buffer int) *event.Subscription[Rotation] {
	return g.rotations.Subscribe(ctx, buffer)
}

// rotationCheckEvery bounds how often messages of newer epochs make a member
// look the group's advertisement up.
const rotationCheckEvery = 15 * time.Second

// sawEpoch notes a message that claims a newer epoch than this member's. It
// runs inside GossipSub's validation: it only wakes watchRotations.
func (g *Group) sawEpoch(epoch uint64) {
	g.mu.Lock()
	newer := g.cur != nil && epoch > g.cur.Epoch && epoch > g.ahead
	if newer {
		g.ahead = epoch
	}
	g.mu.Unlock()
	if newer && g.rotKick != nil {
		select {
		case g.rotKick <- struct{}{}:
		default:
		}
	}
}

// watchRotations checks the group's advertisement when messages of newer
// epochs arrive, and publishes a Rotation for each newer epoch it confirms.
func (g *Group) watchRotations(ctx context.Context, wg *sync.WaitGroup) {
	defer wg.Done()
	var told uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.rotKick:
		}
		info := g.Info()
		lctx, cancel := context.WithTimeout(ctx, protoTimeout)
		next, err := g.s.Lookup(lctx, info.ID)
		cancel()
		g.mu.Lock()
		current := g.cur.Epoch
		if err != nil || next.Epoch <= current {
			// Not confirmed: a later message of a newer epoch may try
			// again after the pause.
			g.ahead = current
		}
		g.mu.Unlock()
		if err == nil && next.Epoch > current && next.Epoch > told {
			told = next.Epoch
			g.rotations.Publish(Rotation{Epoch: next.Epoch})
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(rotationCheckEvery):
		}
	}
}
