package groups

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/juxta-p2p/juxta/peer"
)

// Policy is how a group admits members.
type Policy string

const (
	// PolicyOpen: anyone joins; payloads travel in the clear.
	PolicyOpen Policy = "open"
	// PolicyPassword: members prove they know the password without sending it;
	// payloads are encrypted with a key derived from it.
	PolicyPassword Policy = "password"
	// PolicyInvite: members hold a credential signed by the creator or an
	// admin; payloads are encrypted with a group key that rotates when a member
	// is removed.
	PolicyInvite Policy = "invite"
)

// Errors of the groups package.
var (
	ErrWrongPassword = errors.New("groups: wrong password")
	ErrCredential    = errors.New("groups: invalid credential")
	ErrExpired       = errors.New("groups: credential expired")
	ErrRevoked       = errors.New("groups: membership revoked")
	ErrNotMember     = errors.New("groups: not a member")
	ErrNotAdmin      = errors.New("groups: only the creator or an admin may do this")
	ErrNoKey         = errors.New("groups: no member could hand over the group key")
	ErrBadGroup      = errors.New("groups: invalid group advertisement")
	ErrPolicy        = errors.New("groups: wrong membership policy for this operation")
	ErrNotRotated    = errors.New("groups: the group has not moved to a new password")
)

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	if decMode, err = (cbor.DecOptions{MaxArrayElements: 4096, MaxMapPairs: 64, MaxNestedLevels: 6}).DecMode(); err != nil {
		panic(err)
	}
	record.RegisterType(&credential{})
	record.RegisterType(&revocations{})
}

// KDF parameters for password groups (argon2id). They travel in the group
// advertisement so that they can be raised later.
type kdfParams struct {
	Time    uint32 `cbor:"1,keyasint"`
	Memory  uint32 `cbor:"2,keyasint"` // KiB
	Threads uint8  `cbor:"3,keyasint"`
}

// Bounds on the KDF parameters a group advertisement may ask for: whoever
// joins runs argon2id with them, so the advertisement's author chooses the
// joiner's CPU time and memory. The maxima allow eight times OWASP's
// recommended cost; past them the advertisement is refused.
const (
	MaxKDFTime    = 16
	MaxKDFMemory  = 256 << 10 // KiB: 256 MiB
	MaxKDFThreads = 8
)

// sane reports whether p lies within the KDF bounds.
func (p kdfParams) sane() bool {
	return p.Time >= 1 && p.Time <= MaxKDFTime && p.Memory >= 8*1024 && p.Memory <= MaxKDFMemory &&
		p.Threads >= 1 && p.Threads <= MaxKDFThreads
}

// defaultKDF follows OWASP's argon2id minimum (19 MiB, 2 passes, 1 lane).
var defaultKDF = kdfParams{Time: 2, Memory: 19 * 1024, Threads: 1}

// passwordKeys are what a password derives; the password itself is never
// kept or sent.
type passwordKeys struct {
	master   []byte // argon2id of the password: the others derive from it
	verifier []byte // published in the group advertisement
	auth     []byte // proves membership in challenge-response
	msg      []byte // encrypts propagated payloads
}

func derivePassword(password string, groupID string, salt []byte, p kdfParams) passwordKeys {
	return keysFromMaster(argon2.IDKey([]byte(password), append(slices.Clone(salt), groupID...), p.Time, p.Memory, p.Threads, 32))
}

// keysFromMaster derives the password's keys from its argon2id output, which
// a saved State keeps in place of the password.
func keysFromMaster(master []byte) passwordKeys {
	return passwordKeys{
		master:   slices.Clone(master),
		verifier: mac(master, "juxta/group/verifier"),
		auth:     mac(master, "juxta/group/auth"),
		msg:      mac(master, "juxta/group/msg"),
	}
}

func mac(key []byte, parts ...string) []byte {
	h := hmac.New(sha256.New, key)
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}

// proof is a password member's answer to a challenge: it binds the nonce, the
// group and both peers, so it cannot be replayed to another verifier.
func proof(auth []byte, group string, nonce []byte, prover, verifier peer.ID) []byte {
	return mac(auth, "proof", group, string(nonce), string(prover), string(verifier))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// credential is an invite group's membership: a member's peer ID bound to the
// group until an expiry, signed by the creator or an admin.
type credential struct {
	Group    string    `cbor:"1,keyasint"`
	Member   []byte    `cbor:"2,keyasint"`
	Issuer   []byte    `cbor:"3,keyasint"`
	Expires  int64     `cbor:"4,keyasint"` // unix milliseconds
	Issued   int64     `cbor:"5,keyasint"`
	member   peer.ID   // decoded
	issuer   peer.ID   // decoded
	expires  time.Time // decoded
	rawBytes []byte    // the signed envelope it came from
}

func (c *credential) raw() []byte { return c.rawBytes }

func (*credential) Domain() string { return "juxta-group-credential" }
func (*credential) Codec() []byte  { return []byte("/juxta/group-cred/1") }
func (c *credential) MarshalRecord() ([]byte, error) {
	return encMode.Marshal(c)
}
func (c *credential) UnmarshalRecord(b []byte) error {
	if err := decMode.Unmarshal(b, c); err != nil {
		return err
	}
	var err error
	if c.member, err = peer.IDFromBytes(c.Member); err != nil {
		return err
	}
	if c.issuer, err = peer.IDFromBytes(c.Issuer); err != nil {
		return err
	}
	c.expires = time.UnixMilli(c.Expires)
	return nil
}

func issueCredential(key crypto.PrivKey, group string, member peer.ID, ttl time.Duration) ([]byte, error) {
	c, err := newCredential(key, group, member, ttl)
	if err != nil {
		return nil, err
	}
	return c.rawBytes, nil
}

// newCredential signs a credential for member and returns it decoded, as
// openCredential would, with the envelope it is in.
func newCredential(key crypto.PrivKey, group string, member peer.ID, ttl time.Duration) (*credential, error) {
	issuer, err := lpeer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	c := &credential{Group: group, Member: []byte(member), Issuer: []byte(issuer), Issued: now.UnixMilli(), Expires: now.Add(ttl).UnixMilli()}
	env, err := record.Seal(c, key)
	if err != nil {
		return nil, err
	}
	if c.rawBytes, err = env.Marshal(); err != nil {
		return nil, err
	}
	c.member, c.issuer, c.expires = member, peer.ID(issuer), time.UnixMilli(c.Expires)
	return c, nil
}

// verifyCredential checks a credential's signature, that its signer is its
// issuer and that the issuer may issue for info, and what it says. Expiry and
// revocation are checked by the caller, which knows the time and the list.
func verifyCredential(raw []byte, info *Info) (*credential, error) {
	c, err := openCredential(raw)
	if err != nil {
		return nil, err
	}
	if err := c.check(info); err != nil {
		return nil, err
	}
	return c, nil
}

// openCredential checks a credential's signature, made by the issuer it
// names; check then holds it against the group.
func openCredential(raw []byte) (*credential, error) {
	if len(raw) > 4096 {
		return nil, fmt.Errorf("%w: %d bytes", ErrCredential, len(raw))
	}
	var c credential
	env, err := record.ConsumeTypedEnvelope(raw, &c)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCredential, err)
	}
	if !lpeer.ID(c.issuer).MatchesPublicKey(env.PublicKey) {
		return nil, fmt.Errorf("%w: signed by someone other than its issuer", ErrCredential)
	}
	return &c, nil
}

// check holds an opened credential against the group it is for: its ID, and
// an issuer among the group's admins.
func (c *credential) check(info *Info) error {
	if c.Group != info.ID {
		return fmt.Errorf("%w: issued for group %q, not %q", ErrCredential, c.Group, info.ID)
	}
	if !info.isAdmin(c.issuer) {
		return fmt.Errorf("%w: issuer %s is not an admin of the group", ErrCredential, c.issuer)
	}
	return nil
}

// revocations is an invite group's list of removed members, signed by an
// admin. Epoch counts key rotations: the list of epoch N goes with key N.
type revocations struct {
	Group   string   `cbor:"1,keyasint"`
	Epoch   uint64   `cbor:"2,keyasint"`
	Revoked [][]byte `cbor:"3,keyasint"`
	Issuer  []byte   `cbor:"4,keyasint"`
	// KeyHash is SHA-256 of the epoch's group key: a member handing the key
	// on cannot substitute another.
	KeyHash []byte `cbor:"5,keyasint"`
	issuer  peer.ID
	revoked []peer.ID
}

func (*revocations) Domain() string { return "juxta-group-revocations" }
func (*revocations) Codec() []byte  { return []byte("/juxta/group-revocations/1") }
func (r *revocations) MarshalRecord() ([]byte, error) {
	return encMode.Marshal(r)
}
func (r *revocations) UnmarshalRecord(b []byte) error {
	if err := decMode.Unmarshal(b, r); err != nil {
		return err
	}
	var err error
	if r.issuer, err = peer.IDFromBytes(r.Issuer); err != nil {
		return err
	}
	r.revoked = r.revoked[:0]
	for _, b := range r.Revoked {
		id, err := peer.IDFromBytes(b)
		if err != nil {
			return err
		}
		r.revoked = append(r.revoked, id)
	}
	return nil
}

func sealRevocations(key crypto.PrivKey, group string, epoch uint64, revoked []peer.ID, groupKey []byte) ([]byte, error) {
	issuer, err := lpeer.IDFromPrivateKey(key)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(groupKey)
	r := &revocations{Group: group, Epoch: epoch, Issuer: []byte(issuer), KeyHash: h[:]}
	for _, id := range revoked {
		r.Revoked = append(r.Revoked, []byte(id))
	}
	env, err := record.Seal(r, key)
	if err != nil {
		return nil, err
	}
	return env.Marshal()
}

func verifyRevocations(raw []byte, info *Info) (*revocations, error) {
	var r revocations
	env, err := record.ConsumeTypedEnvelope(raw, &r)
	if err != nil {
		return nil, fmt.Errorf("%w: revocation list: %v", ErrCredential, err)
	}
	if !lpeer.ID(r.issuer).MatchesPublicKey(env.PublicKey) || !info.isAdmin(r.issuer) || r.Group != info.ID {
		return nil, fmt.Errorf("%w: revocation list not signed by an admin of this group", ErrCredential)
	}
	return &r, nil
}

// The out-of-band invite credential string: a prefix, then base32 of the group
// advertisement and the credential.
const credPrefix = "juxtagroup1"

type credBundle struct {
	GroupAd []byte `cbor:"1,keyasint"`
	Cred    []byte `cbor:"2,keyasint"`
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

func encodeCredString(groupAd, cred []byte) (string, error) {
	b, err := encMode.Marshal(credBundle{GroupAd: groupAd, Cred: cred})
	if err != nil {
		return "", err
	}
	return credPrefix + strings.ToLower(b32.EncodeToString(b)), nil
}

// MaxCredentialLen bounds a credential string.
const MaxCredentialLen = 16 << 10

func decodeCredString(s string) (credBundle, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxCredentialLen {
		return credBundle{}, fmt.Errorf("%w: %d characters, limit %d", ErrCredential, len(s), MaxCredentialLen)
	}
	if !strings.HasPrefix(strings.ToLower(s), credPrefix) {
		return credBundle{}, fmt.Errorf("%w: not a juxta group credential (it should start with %q)", ErrCredential, credPrefix)
	}
	raw, err := b32.DecodeString(strings.ToUpper(s[len(credPrefix):]))
	if err != nil {
		return credBundle{}, fmt.Errorf("%w: %v", ErrCredential, err)
	}
	var cb credBundle
	if err := decMode.Unmarshal(raw, &cb); err != nil || len(cb.GroupAd) == 0 || len(cb.Cred) == 0 {
		return credBundle{}, fmt.Errorf("%w: damaged credential string", ErrCredential)
	}
	return cb, nil
}

// sealed is a propagated payload of a password or invite group.
type sealed struct {
	Epoch uint64 `cbor:"1,keyasint"`
	Nonce []byte `cbor:"2,keyasint"`
	CT    []byte `cbor:"3,keyasint"`
	Cred  []byte `cbor:"4,keyasint,omitempty"` // invite groups: the sender's credential
	Time  int64  `cbor:"5,keyasint"`           // unix milliseconds, authenticated
}

// MaxMessageAge bounds how old (or how far ahead) a sealed message may be.
// GossipSub remembers message IDs for as long (see pipes), so a captured
// message cannot be replayed later either.
const MaxMessageAge = 10 * time.Minute

// encrypt seals payload with XChaCha20-Poly1305 under key. The group, the
// epoch, the sender and the time are authenticated as additional data, so a
// ciphertext replayed under another sender's ID, into another group or long
// after, does not open.
func encrypt(key []byte, group string, epoch uint64, sender peer.ID, cred, payload []byte) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	nonce := randomBytes(aead.NonceSize())
	now := time.Now().UnixMilli()
	return encMode.Marshal(sealed{Epoch: epoch, Nonce: nonce, CT: aead.Seal(nil, nonce, payload, sealAD(group, epoch, sender, now)), Cred: cred, Time: now})
}

func sealAD(group string, epoch uint64, sender peer.ID, t int64) []byte {
	return fmt.Appendf(nil, "juxta/group/%s/%d/%s/%d", group, epoch, sender, t)
}

func decrypt(key []byte, group string, sender peer.ID, s *sealed) ([]byte, error) {
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if len(s.Nonce) != aead.NonceSize() {
		return nil, errors.New("bad nonce")
	}
	if age := time.Since(time.UnixMilli(s.Time)); age > MaxMessageAge || age < -MaxMessageAge {
		return nil, fmt.Errorf("message dated %s ago, outside the %s window", age.Round(time.Second), MaxMessageAge)
	}
	return aead.Open(nil, s.Nonce, s.CT, sealAD(group, s.Epoch, sender, s.Time))
}
