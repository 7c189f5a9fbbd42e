package discovery

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/record"

	"github.com/juxta-p2p/juxta/peer"
)

// Well-known advertisement types. Applications define their own, such as
// "fileshare.file".
const (
	TypePeer  = "juxta.peer"
	TypePipe  = "juxta.pipe"
	TypeGroup = "juxta.group"
)

// Limits on advertisements. A receiver drops anything larger.
const (
	// MaxAdSize bounds a signed advertisement (the whole envelope), in bytes.
	MaxAdSize = 16 << 10
	// MaxAttrs bounds the number of indexed attributes.
	MaxAttrs = 32
	// MaxClockSkew is how far in the future an advertisement may be dated before
	// receivers drop it.
	MaxClockSkew = 5 * time.Minute

	// DefaultLifetime is how long an advertisement stays valid at its publisher
	// when Lifetime is zero.
	DefaultLifetime = 24 * time.Hour
	// DefaultExpiration is how long others may cache an advertisement when
	// Expiration is zero.
	DefaultExpiration = 15 * time.Minute
	// MaxExpiration caps how long a receiver caches an advertisement,
	// whatever it asks: a publisher keeps it alive by republishing, and nobody
	// can pin entries in others' caches for long.
	MaxExpiration = time.Hour
	// MaxLifetime bounds an advertisement's lifetime; longer ones are invalid.
	MaxLifetime = 30 * 24 * time.Hour
)

// The signature domain and payload type of juxta advertisements inside libp2p
// signed envelopes (core/record).
const (
	envelopeDomain = "juxta-advertisement"
)

var envelopeCodec = []byte("/juxta/adv/1")

// Advertisement describes a resource — a peer, a pipe, a group, a file — so that
// others can find it by what it is rather than where it is. It is signed by its
// publisher; receivers verify it and drop what is tampered, expired, future-dated
// or oversized.
type Advertisement struct {
	// Type says what is advertised: TypePeer, TypePipe, TypeGroup, or an
	// application type such as "fileshare.file".
	Type string
	// ID names the resource, unique per publisher and type.
	ID string
	// Scope is the group the advertisement belongs to; "" is the net group.
	// Queries see only advertisements of their own scope.
	Scope string
	// Attrs are the indexed attributes that queries match.
	Attrs map[string]string
	// Body is opaque to discovery.
	Body []byte
	// Lifetime is how long the advertisement is valid at its publisher, from
	// Issued. Zero means DefaultLifetime.
	Lifetime time.Duration
	// Expiration is how long others may cache it. A receiver keeps it for the
	// smaller of the remaining lifetime and the expiration. Zero means
	// DefaultExpiration.
	Expiration time.Duration

	// Set by Publish, and verified on receipt.

	// Publisher is the peer that signed it.
	Publisher peer.ID
	// Seq orders versions of one advertisement: a higher Seq replaces a lower.
	Seq uint64
	// Issued is when it was signed.
	Issued time.Time
}

// Key identifies an advertisement across versions.
type Key struct {
	Scope, Type, ID string
	Publisher       peer.ID
}

// Key returns the advertisement's identity across versions.
func (a *Advertisement) Key() Key {
	return Key{Scope: a.Scope, Type: a.Type, ID: a.ID, Publisher: a.Publisher}
}

// ValidUntil is the end of the advertisement's lifetime.
func (a *Advertisement) ValidUntil() time.Time { return a.Issued.Add(a.Lifetime) }

// wireAd is the canonical encoding: deterministic CBOR with integer keys.
type wireAd struct {
	Type       string            `cbor:"1,keyasint"`
	ID         string            `cbor:"2,keyasint"`
	Scope      string            `cbor:"3,keyasint,omitempty"`
	Attrs      map[string]string `cbor:"4,keyasint,omitempty"`
	Body       []byte            `cbor:"5,keyasint,omitempty"`
	Lifetime   int64             `cbor:"6,keyasint"` // milliseconds
	Expiration int64             `cbor:"7,keyasint"` // milliseconds
	Publisher  []byte            `cbor:"8,keyasint"`
	Seq        uint64            `cbor:"9,keyasint"`
	Issued     int64             `cbor:"10,keyasint"` // unix milliseconds
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxArrayElements:  MaxRefreshBatch,
		MaxMapPairs:       1024,
		MaxNestedLevels:   4,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	record.RegisterType(&adRecord{})
}

// adRecord adapts Advertisement to libp2p's record.Record.
type adRecord struct{ ad Advertisement }

func (*adRecord) Domain() string { return envelopeDomain }
func (*adRecord) Codec() []byte  { return envelopeCodec }

func (r *adRecord) MarshalRecord() ([]byte, error) {
	a := &r.ad
	return encMode.Marshal(wireAd{
		Type: a.Type, ID: a.ID, Scope: a.Scope, Attrs: a.Attrs, Body: a.Body,
		Lifetime: a.Lifetime.Milliseconds(), Expiration: a.Expiration.Milliseconds(),
		Publisher: []byte(a.Publisher), Seq: a.Seq, Issued: a.Issued.UnixMilli(),
	})
}

func (r *adRecord) UnmarshalRecord(b []byte) error {
	var w wireAd
	if err := decMode.Unmarshal(b, &w); err != nil {
		return err
	}
	// Canonical form only: what decodes must re-encode to the same bytes, so one
	// advertisement has exactly one signed representation.
	again, err := encMode.Marshal(w)
	if err != nil || !bytes.Equal(again, b) {
		return errors.New("advertisement is not in canonical form")
	}
	pub, err := peer.IDFromBytes(w.Publisher)
	if err != nil {
		return fmt.Errorf("publisher: %w", err)
	}
	r.ad = Advertisement{
		Type: w.Type, ID: w.ID, Scope: w.Scope, Attrs: w.Attrs, Body: w.Body,
		Lifetime: time.Duration(w.Lifetime) * time.Millisecond, Expiration: time.Duration(w.Expiration) * time.Millisecond,
		Publisher: peer.ID(pub), Seq: w.Seq, Issued: time.UnixMilli(w.Issued),
	}
	return nil
}

// validateShape checks the fields a publisher controls.
func (a *Advertisement) validateShape() error {
	switch {
	case a.Type == "":
		return fmt.Errorf("%w: empty type", ErrInvalid)
	case a.ID == "":
		return fmt.Errorf("%w: empty ID", ErrInvalid)
	case len(a.Attrs) > MaxAttrs:
		return fmt.Errorf("%w: %d attributes, limit %d", ErrInvalid, len(a.Attrs), MaxAttrs)
	case a.Lifetime < 0 || a.Expiration < 0:
		return fmt.Errorf("%w: negative lifetime or expiration", ErrInvalid)
	case a.Lifetime > MaxLifetime:
		return fmt.Errorf("%w: lifetime %s, limit %s", ErrInvalid, a.Lifetime, MaxLifetime)
	}
	return nil
}

// seal signs ad with key and returns the encoded envelope.
func seal(ad Advertisement, key crypto.PrivKey) ([]byte, error) {
	if err := ad.validateShape(); err != nil {
		return nil, err
	}
	env, err := record.Seal(&adRecord{ad: ad}, key)
	if err != nil {
		return nil, fmt.Errorf("discovery: sign: %w", err)
	}
	b, err := env.Marshal()
	if err != nil {
		return nil, fmt.Errorf("discovery: encode: %w", err)
	}
	if len(b) > MaxAdSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrOversized, len(b), MaxAdSize)
	}
	return b, nil
}

// Drop reasons, as counted in Stats.Dropped.
const (
	DropMalformed      = "malformed"
	DropBadSignature   = "bad-signature"
	DropWrongPublisher = "wrong-publisher"
	DropExpired        = "expired"
	DropFuture         = "future-dated"
	DropOversized      = "oversized"
	DropQuota          = "quota"
	DropRateLimited    = "rate-limited"
	DropScope          = "wrong-scope"
)

// rejection is a verification failure with the reason it is counted under.
type rejection struct {
	reason string
	err    error
}

func (r *rejection) Error() string { return r.err.Error() }
func (r *rejection) Unwrap() error { return r.err }

// reject builds a rejection that wraps ErrRejected and, when it is another
// sentinel, that one too.
func reject(reason string, sentinel error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if sentinel == ErrRejected {
		return &rejection{reason: reason, err: fmt.Errorf("%w: %s", ErrRejected, msg)}
	}
	return &rejection{reason: reason, err: fmt.Errorf("%w: %w: %s", ErrRejected, sentinel, msg)}
}

// dropReason returns the Stats reason of a verification error.
func dropReason(err error) string {
	var r *rejection
	if errors.As(err, &r) {
		return r.reason
	}
	return DropMalformed
}

// Verify decodes a signed advertisement and checks everything a receiver must:
// size, envelope signature, that the signer is the claimed publisher, shape,
// and time (neither expired nor dated in the future). The error wraps
// ErrRejected, and ErrOversized or ErrExpired where they apply. Every
// advertisement that arrives from the network goes through it.
func Verify(b []byte, now time.Time) (Advertisement, error) {
	ad, err := VerifyKept(b, now)
	if err != nil {
		return Advertisement{}, err
	}
	if !ad.ValidUntil().After(now) {
		return Advertisement{}, reject(DropExpired, ErrExpired, "lifetime ended %s", ad.ValidUntil().UTC().Format(time.RFC3339))
	}
	return ad, nil
}

// VerifyKept is Verify for an advertisement this peer kept itself (in saved
// state, or handed over inside a signed credential), not one that just
// arrived: it checks the size, the envelope signature, that the signer is the
// claimed publisher, the shape, and that it is not dated more than
// MaxClockSkew after now, but not that its lifetime lasts. The lifetime says
// how long others may treat the advertisement as current; it does not make a
// publisher's signature less authentic once it ends, and a saved
// advertisement would otherwise be lost to a user away for longer than it
// (a day, by default). What depends on it being current must look the newest
// version up (Find) and prefer the higher Seq. The error wraps ErrRejected,
// and ErrOversized where it applies.
func VerifyKept(b []byte, now time.Time) (Advertisement, error) {
	if len(b) > MaxAdSize {
		return Advertisement{}, reject(DropOversized, ErrOversized, "%d bytes, limit %d", len(b), MaxAdSize)
	}
	var r adRecord
	env, err := record.ConsumeTypedEnvelope(b, &r)
	if err != nil {
		if errors.Is(err, record.ErrInvalidSignature) {
			return Advertisement{}, reject(DropBadSignature, ErrRejected, "signature: %v", err)
		}
		return Advertisement{}, reject(DropMalformed, ErrRejected, "%v", err)
	}
	if !bytes.Equal(env.PayloadType, envelopeCodec) {
		return Advertisement{}, reject(DropMalformed, ErrRejected, "payload type %q", env.PayloadType)
	}
	ad := r.ad
	if !lpeer.ID(ad.Publisher).MatchesPublicKey(env.PublicKey) {
		signer, _ := lpeer.IDFromPublicKey(env.PublicKey)
		return Advertisement{}, reject(DropWrongPublisher, ErrRejected, "signed by %s, claims publisher %s", signer, ad.Publisher)
	}
	if err := ad.validateShape(); err != nil {
		return Advertisement{}, reject(DropMalformed, ErrRejected, "%v", err)
	}
	if ad.Issued.After(now.Add(MaxClockSkew)) {
		return Advertisement{}, reject(DropFuture, ErrRejected, "issued %s, %s ahead", ad.Issued.UTC().Format(time.RFC3339), ad.Issued.Sub(now).Round(time.Second))
	}
	return ad, nil
}

// peek decodes a signed advertisement without checking its signature: only
// to refuse cheaply what would be refused anyway once verified (a publisher
// over its quota). Nothing peeked is ever stored or handed on.
func peek(b []byte) (Advertisement, error) {
	if len(b) > MaxAdSize {
		return Advertisement{}, ErrOversized
	}
	env, err := record.UnmarshalEnvelope(b)
	if err != nil {
		return Advertisement{}, err
	}
	var r adRecord
	if err := r.UnmarshalRecord(env.RawPayload); err != nil {
		return Advertisement{}, err
	}
	return r.ad, nil
}

// cacheUntil applies JXTA's rule: a receiver keeps an advertisement for the
// smaller of its remaining lifetime and its expiration (capped at
// MaxExpiration).
func cacheUntil(ad *Advertisement, received time.Time) time.Time {
	end := received.Add(min(ad.Expiration, MaxExpiration))
	if v := ad.ValidUntil(); v.Before(end) {
		return v
	}
	return end
}

func cloneAd(a Advertisement) Advertisement {
	a.Attrs = maps.Clone(a.Attrs)
	a.Body = slices.Clone(a.Body)
	return a
}
