package groups

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-msgio"

	"github.com/juxta-p2p/juxta/peer"
	"github.com/juxta-p2p/juxta/pipes"
)

// Two protocols enforce membership:
//
//   - authProtocol: a listener of a group pipe challenges the peer that opened a
//     stream to prove membership: in a password group with an HMAC over a fresh
//     nonce, both peer IDs and the group, keyed by a key derived from the
//     password (so the password never crosses the wire and a proof cannot be
//     replayed); in an invite group by presenting its credential (the libp2p
//     connection already authenticates the peer ID it names).
//   - keyProtocol: invite-group members fetch the group key from a member by
//     presenting their credential, and admins push a rotated key with the
//     signed revocation list to the remaining members.
const (
	authProtocol = "/juxta/group/1/auth"
	keyProtocol  = "/juxta/group/1/key"
	maxFrame     = 64 << 10
	protoTimeout = 10 * time.Second
	// provenFor is how long a checked membership proof is trusted.
	provenFor = time.Minute
)

type authReq struct {
	Group string `cbor:"1,keyasint"`
	Nonce []byte `cbor:"2,keyasint"`
}

type authResp struct {
	Proof []byte `cbor:"1,keyasint,omitempty"`
	Cred  []byte `cbor:"2,keyasint,omitempty"`
}

const (
	keyFetch uint8 = 1
	keyPush  uint8 = 2
)

type keyMsg struct {
	Op    uint8  `cbor:"1,keyasint"`
	Group string `cbor:"2,keyasint"`
	Cred  []byte `cbor:"3,keyasint,omitempty"`
	Epoch uint64 `cbor:"4,keyasint,omitempty"`
	Key   []byte `cbor:"5,keyasint,omitempty"`
	Rev   []byte `cbor:"6,keyasint,omitempty"`
	Err   string `cbor:"7,keyasint,omitempty"`
	Scope []byte `cbor:"8,keyasint,omitempty"` // the discovery scope's secret
}

func send(str network.Stream, v any) error {
	b, err := encMode.Marshal(v)
	if err != nil {
		return err
	}
	return msgio.NewVarintWriter(str).WriteMsg(b)
}

func recv(str network.Stream, v any) error {
	r := msgio.NewVarintReaderSize(str, maxFrame)
	b, err := r.ReadMsg()
	if err != nil {
		return err
	}
	defer r.ReleaseMsg(b)
	return decMode.Unmarshal(b, v)
}

func (s *Service) group(id string) *Group {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groups[id]
}

func (s *Service) openStream(ctx context.Context, id peer.ID, proto string) (network.Stream, error) {
	// Connected already (the usual case: a join's key holder, a member
	// challenged on its own stream): no dial, and peer.Connect's address
	// and hole-punching bookkeeping would only add to every exchange.
	if s.host.Network().Connectedness(lpeer.ID(id)) != network.Connected {
		if _, err := s.p.Connect(ctx, peer.Addr{ID: id}); err != nil {
			return nil, err
		}
	}
	str, err := s.host.NewStream(network.WithAllowLimitedConn(ctx, "juxta group"), lpeer.ID(id), protocol.ID(proto))
	if err != nil {
		return nil, err
	}
	if d, ok := ctx.Deadline(); ok {
		_ = str.SetDeadline(d)
	}
	return str, nil
}

// Authorize checks that remote is a member of the group: remote must prove it
// (a password proof, or a valid, unrevoked credential) over a short exchange,
// whose success is remembered for a while. Services scoped to the group call
// it before serving a peer, as the group's pipes do. It returns an error
// wrapping ErrNotMember (or the credential's error) when remote is not a
// member; an open group admits everyone.
func (g *Group) Authorize(ctx context.Context, remote peer.ID) error { return g.authorize(ctx, remote) }

// authorize is the group pipes' Authorize hook: it admits a stream from remote
// only if remote proves membership.
func (g *Group) authorize(ctx context.Context, remote peer.ID) error {
	info := g.Info()
	if info.Policy == PolicyOpen {
		return nil
	}
	g.mu.Lock()
	until, ok := g.proven[remote]
	g.mu.Unlock()
	if ok && time.Now().Before(until) {
		return nil
	}
	nonce := randomBytes(32)
	resp, err := g.challenge(ctx, info.ID, remote, nonce)
	if err != nil {
		// Once more on a fresh stream: the first may have gone out on a
		// connection the far side was closing just then (a QUIC stateless
		// reset, seen under load), and a member must not be turned away
		// for that. A peer that answers with a wrong proof is not asked
		// again.
		nonce = randomBytes(32)
		if resp, err = g.challenge(ctx, info.ID, remote, nonce); err != nil {
			return err
		}
	}
	switch info.Policy {
	case PolicyPassword:
		if !hmac.Equal(resp.Proof, proof(g.authKey(), info.ID, nonce, remote, g.s.p.ID())) {
			return fmt.Errorf("%w: %s does not know the password", ErrNotMember, remote.ShortString())
		}
	case PolicyInvite:
		if err := g.checkMember(remote, resp.Cred); err != nil {
			return err
		}
	}
	g.mu.Lock()
	// A proof checked against a password the group has since left is not
	// remembered (Rotate forgets the proofs it finds).
	if g.cur == nil || g.cur.Epoch == info.Epoch {
		g.proven[remote] = time.Now().Add(provenFor)
	}
	g.mu.Unlock()
	return nil
}

// challenge asks remote for proof of membership against nonce, over a new
// stream of its own.
func (g *Group) challenge(ctx context.Context, group string, remote peer.ID, nonce []byte) (authResp, error) {
	ctx, cancel := context.WithTimeout(ctx, protoTimeout)
	defer cancel()
	var resp authResp
	str, err := g.s.openStream(ctx, remote, authProtocol)
	if err != nil {
		return resp, fmt.Errorf("%w: %s did not answer the membership challenge: %v", ErrNotMember, remote.ShortString(), err)
	}
	defer str.Close()
	if err := send(str, authReq{Group: group, Nonce: nonce}); err != nil {
		str.Reset()
		return resp, fmt.Errorf("%w: %v", ErrNotMember, err)
	}
	if err := recv(str, &resp); err != nil {
		str.Reset()
		return resp, fmt.Errorf("%w: %s gave no proof: %v", ErrNotMember, remote.ShortString(), err)
	}
	return resp, nil
}

// checkMember verifies that raw is a valid, unexpired, unrevoked credential of
// this group naming id.
func (g *Group) checkMember(id peer.ID, raw []byte) error {
	g.mu.Lock()
	c, cached := g.creds[id]
	info := g.info
	rev := g.revoked
	g.mu.Unlock()
	if !cached || !slices.Equal(c.raw(), raw) {
		var err error
		if c, err = verifyCredential(raw, info); err != nil {
			return err
		}
		c.rawBytes = slices.Clone(raw)
	}
	if c.member != id {
		return fmt.Errorf("%w: credential names %s, not %s", ErrCredential, c.member, id)
	}
	if !time.Now().Before(c.expires) {
		return fmt.Errorf("%w: %s's credential expired on %s", ErrExpired, id.ShortString(), c.expires.UTC().Format(time.RFC3339))
	}
	if rev != nil && slices.Contains(rev.revoked, id) {
		return fmt.Errorf("%w: %s", ErrRevoked, id.ShortString())
	}
	g.mu.Lock()
	g.creds[id] = c
	g.mu.Unlock()
	return nil
}

func (s *Service) handleAuth(str network.Stream) {
	defer str.Close()
	_ = str.SetDeadline(time.Now().Add(protoTimeout))
	var req authReq
	if err := recv(str, &req); err != nil || len(req.Nonce) < 16 {
		str.Reset()
		return
	}
	g := s.group(req.Group)
	if g == nil {
		str.Reset()
		return
	}
	info := g.Info()
	var resp authResp
	switch info.Policy {
	case PolicyPassword:
		resp.Proof = proof(g.authKey(), info.ID, req.Nonce, s.p.ID(), peer.ID(str.Conn().RemotePeer()))
	case PolicyInvite:
		g.mu.Lock()
		resp.Cred = g.cred
		g.mu.Unlock()
	}
	if err := send(str, resp); err != nil {
		str.Reset()
	}
}

// discoveryScope is the scope of the group's discovery and pipe bindings. An
// open group's is its ID. A private group's derives from a secret only
// members hold (the password's keys, or the invite group's scope secret that
// comes with the group key), so that a non-member, who may know the group's
// ID, can neither read the group's advertisements nor find its members
// through them. A member that has no secret yet uses the ID.
func (g *Group) discoveryScope() string {
	var secret []byte
	switch g.info.Policy {
	case PolicyPassword:
		g.mu.Lock()
		scope := g.scope
		g.mu.Unlock()
		return "s" + hex.EncodeToString(scope[:16])
	case PolicyInvite:
		g.mu.Lock()
		secret = g.scopeKey
		g.mu.Unlock()
	}
	if len(secret) == 0 {
		return g.info.ID
	}
	return "s" + hex.EncodeToString(scopeSecret(secret, g.info.ID)[:16])
}

// installKey accepts a group key with its revocation list, which must be
// signed by an admin for the same epoch and must not name this peer.
func (g *Group) installKey(epoch uint64, key, revRaw []byte) error {
	if len(key) != 32 || epoch == 0 {
		return fmt.Errorf("%w: malformed key", ErrNoKey)
	}
	info := g.Info()
	rev, err := verifyRevocations(revRaw, &info)
	if err != nil {
		return err
	}
	if rev.Epoch != epoch {
		return fmt.Errorf("%w: revocation list of epoch %d with key %d", ErrCredential, rev.Epoch, epoch)
	}
	if h := sha256.Sum256(key); !hmac.Equal(h[:], rev.KeyHash) {
		return fmt.Errorf("%w: the key does not match the one its admin signed", ErrNoKey)
	}
	if slices.Contains(rev.revoked, g.s.p.ID()) {
		return ErrRevoked
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, known := g.keys[epoch]; !known {
		g.keys[epoch] = slices.Clone(key)
	}
	if epoch >= g.epoch {
		g.epoch = epoch
		g.revoked, g.revRaw = rev, slices.Clone(revRaw)
		for _, id := range rev.revoked {
			delete(g.proven, id)
		}
	}
	return nil
}

func (s *Service) handleKey(str network.Stream) {
	defer str.Close()
	_ = str.SetDeadline(time.Now().Add(protoTimeout))
	remote := peer.ID(str.Conn().RemotePeer())
	var req keyMsg
	if err := recv(str, &req); err != nil {
		str.Reset()
		return
	}
	g := s.group(req.Group)
	if g == nil || g.Info().Policy != PolicyInvite {
		_ = send(str, keyMsg{Err: ErrNotMember.Error()})
		return
	}
	switch req.Op {
	case keyFetch:
		if err := g.checkMember(remote, req.Cred); err != nil {
			msg := err.Error()
			if errors.Is(err, ErrRevoked) {
				msg = ErrRevoked.Error()
			}
			_ = send(str, keyMsg{Err: msg})
			return
		}
		g.mu.Lock()
		resp := keyMsg{Epoch: g.epoch, Key: g.keys[g.epoch], Rev: g.revRaw, Scope: g.scopeKey}
		g.mu.Unlock()
		_ = send(str, resp)
	case keyPush:
		if info := g.Info(); !info.isAdmin(remote) {
			_ = send(str, keyMsg{Err: ErrNotAdmin.Error()})
			return
		}
		if err := g.installKey(req.Epoch, req.Key, req.Rev); err != nil {
			_ = send(str, keyMsg{Err: err.Error()})
			return
		}
		_ = send(str, keyMsg{Epoch: req.Epoch})
	default:
		str.Reset()
	}
}

// Revoke removes member from an invite group: the member is added to the signed
// revocation list, the group key rotates, and the new key goes to the members
// online now (the others fetch it from any member later). The removed member
// can no longer open the group's pipes, its messages are dropped, and it cannot
// read messages sent after the rotation. Only the creator and admins may.
func (g *Group) Revoke(ctx context.Context, member peer.ID) error {
	info := g.Info()
	if info.Policy != PolicyInvite {
		return fmt.Errorf("%w: group %q is %s", ErrPolicy, info.Name, info.Policy)
	}
	if !info.isAdmin(g.s.p.ID()) {
		return ErrNotAdmin
	}
	g.mu.Lock()
	revoked := []peer.ID{}
	if g.revoked != nil {
		revoked = slices.Clone(g.revoked.revoked)
	}
	epoch := g.epoch + 1
	g.mu.Unlock()
	if !slices.Contains(revoked, member) {
		revoked = append(revoked, member)
	}
	key := randomBytes(32)
	revRaw, err := sealRevocations(g.s.key, info.ID, epoch, revoked, key)
	if err != nil {
		return err
	}
	if err := g.installKey(epoch, key, revRaw); err != nil {
		return err
	}
	var errs []error
	for _, m := range g.Members() {
		if m.ID == g.s.p.ID() || slices.Contains(revoked, m.ID) || m.State == Offline {
			continue
		}
		if err := g.pushKey(ctx, m.ID, epoch, key, revRaw); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", m.ID.ShortString(), err))
		}
	}
	if len(errs) > 0 {
		g.s.log.Debug("key push incomplete; those members fetch it later", "err", errors.Join(errs...))
	}
	return nil
}

func (g *Group) pushKey(ctx context.Context, to peer.ID, epoch uint64, key, revRaw []byte) error {
	ctx, cancel := context.WithTimeout(ctx, protoTimeout)
	defer cancel()
	str, err := g.s.openStream(ctx, to, keyProtocol)
	if err != nil {
		return err
	}
	defer str.Close()
	if err := send(str, keyMsg{Op: keyPush, Group: g.info.ID, Epoch: epoch, Key: key, Rev: revRaw}); err != nil {
		str.Reset()
		return err
	}
	var resp keyMsg
	if err := recv(str, &resp); err != nil {
		return err
	}
	if resp.Err != "" {
		return errors.New(resp.Err)
	}
	return nil
}

// propagateHooks seal, validate and open the group's propagated payloads.
func (g *Group) propagateHooks() pipes.PropagateHooks {
	switch g.info.Policy {
	case PolicyPassword:
		return pipes.PropagateHooks{Seal: g.sealPassword, Validate: g.validatePassword, Open: g.openPassword}
	case PolicyInvite:
		return pipes.PropagateHooks{Seal: g.sealInvite, Validate: g.validateInvite, Open: g.openInvite}
	}
	return pipes.PropagateHooks{}
}

func (g *Group) sealInvite(p []byte) ([]byte, error) {
	g.mu.Lock()
	epoch, key, cred := g.epoch, g.keys[g.epoch], g.cred
	g.mu.Unlock()
	if key == nil {
		return nil, ErrNoKey
	}
	return encrypt(key, g.info.ID, epoch, g.s.p.ID(), cred, p)
}

// validateInvite runs inside GossipSub: a message must carry a valid,
// unrevoked credential of its sender and, when its key is known, decrypt.
func (g *Group) validateInvite(from peer.ID, data []byte) bool {
	var s sealed
	if decMode.Unmarshal(data, &s) != nil {
		return false
	}
	if g.checkMember(from, s.Cred) != nil {
		return false
	}
	g.mu.Lock()
	key, current := g.keys[s.Epoch], g.epoch
	g.mu.Unlock()
	if key == nil {
		// A newer epoch than ours: a rotation we have not heard of yet. The
		// sender is a member in good standing; Open fetches the key. Only
		// the next epoch is plausible (an admin pushes each rotation), and
		// not while a fetch for it has just failed: a member claiming
		// epochs it has no key for cannot stall the others.
		return s.Epoch == current+1 && !g.keyMissing(s.Epoch)
	}
	_, err := decrypt(key, g.info.ID, from, &s)
	return err == nil
}

func (g *Group) openInvite(from peer.ID, data []byte) ([]byte, error) {
	var s sealed
	if err := decMode.Unmarshal(data, &s); err != nil {
		return nil, err
	}
	g.mu.Lock()
	key := g.keys[s.Epoch]
	g.mu.Unlock()
	if key == nil {
		if g.keyMissing(s.Epoch) {
			return nil, ErrNoKey
		}
		ctx, cancel := context.WithTimeout(g.s.ctx, futureKeyTimeout)
		err := g.fetchKey(ctx, []peer.ID{from}, s.Epoch, nil)
		cancel()
		if err != nil {
			g.markKeyMissing(s.Epoch)
			return nil, err
		}
		g.mu.Lock()
		key = g.keys[s.Epoch]
		g.mu.Unlock()
		if key == nil {
			return nil, ErrNoKey
		}
	}
	return decrypt(key, g.info.ID, from, &s)
}

// A message of a future epoch makes a member fetch that epoch's key from its
// sender. A sender that cannot hand it over costs the group one fetch of at
// most futureKeyTimeout per keyRetryAfter, not one per message.
const (
	futureKeyTimeout = 3 * time.Second
	keyRetryAfter    = time.Minute
)

// keyMissing reports whether a fetch of epoch's key failed recently.
func (g *Group) keyMissing(epoch uint64) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.missing == epoch && time.Since(g.missingAt) < keyRetryAfter
}

func (g *Group) markKeyMissing(epoch uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.missing, g.missingAt = epoch, time.Now()
}
