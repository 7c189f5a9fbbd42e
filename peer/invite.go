package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	ma "github.com/multiformats/go-multiaddr"
)

// An invite is how a peer is handed to someone else: a short string to copy, paste
// or put in a QR code. It carries the peer's ID, its addresses as hints, and the
// super-peers through which it can be found or relayed.
//
// Layout of the string:
//
//	"juxta" | version (one character, "1" or "2") | base32(payload | checksum)
//
// base32 is RFC 4648 without padding, written in lower case; parsing ignores case
// and surrounding white space, so an upper-case QR code round-trips. The checksum
// is the first 4 bytes of SHA-256 over the version character and the payload. The
// payload is a sequence of uvarint-prefixed fields:
//
//	id | n | addr*n | m | (id | k | addr*k)*m             version 1
//	id | n | addr*n | m | (id | k | addr*k)*m | pipe      version 2
//
// Version 2 adds a pipe name (uvarint length, UTF-8). An invite without a
// pipe is written as version 1, so that older builds still read it.
const (
	invitePrefix = "juxta"
	inviteV1     = '1'
	inviteV2     = '2'
	checksumLen  = 4

	// MaxInvitePipe bounds the pipe name inside an invite, in bytes.
	MaxInvitePipe = 256

	// MaxInviteLen bounds the invite string; longer input is refused unparsed.
	MaxInviteLen = 4096
	// MaxInviteAddrs bounds the addresses per peer inside an invite.
	MaxInviteAddrs = 16
	// MaxInviteSuperPeers bounds the super-peers inside an invite.
	MaxInviteSuperPeers = 8
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Invite is a parsed invite.
type Invite struct {
	// Peer is the invited peer: its ID is required, its addresses are hints,
	// and its Relays are the super-peers it uses, through which a receiver can
	// find or relay to it when its own addresses do not work.
	Peer Addr
	// Pipe optionally names a pipe the invited peer listens on, so that one
	// string is enough to dial it (juxta.Node.Dial).
	Pipe string
}

// String encodes the invite. Addresses that are not valid multiaddrs are left
// out. It panics only if the invite holds more addresses or super-peers than an
// invite may carry, or a longer pipe name; use Peer.Invite, which trims them.
func (inv Invite) String() string {
	if len(inv.Pipe) > MaxInvitePipe {
		panic("peer: invite pipe name too long")
	}
	var p []byte
	p = appendInfo(p, inv.Peer)
	p = binary.AppendUvarint(p, uint64(len(inv.Peer.Relays)))
	for _, sp := range inv.Peer.Relays {
		p = appendInfo(p, sp)
	}
	version := byte(inviteV1)
	if inv.Pipe != "" {
		version = inviteV2
		p = binary.AppendUvarint(p, uint64(len(inv.Pipe)))
		p = append(p, inv.Pipe...)
	}
	sum := inviteChecksum(version, p)
	p = append(p, sum[:]...)
	return invitePrefix + string(version) + strings.ToLower(b32.EncodeToString(p))
}

func appendInfo(p []byte, a Addr) []byte {
	id := []byte(a.ID)
	p = binary.AppendUvarint(p, uint64(len(id)))
	p = append(p, id...)
	ai := a.addrInfo()
	p = binary.AppendUvarint(p, uint64(len(ai.Addrs)))
	for _, a := range ai.Addrs {
		b := a.Bytes()
		p = binary.AppendUvarint(p, uint64(len(b)))
		p = append(p, b...)
	}
	return p
}

func inviteChecksum(version byte, payload []byte) [checksumLen]byte {
	h := sha256.New()
	h.Write([]byte{version})
	h.Write(payload)
	var out [checksumLen]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ParseInvite decodes an invite string. Each kind of damage has its own error,
// which errors.Is matches against the ErrInvite… values.
func ParseInvite(s string) (Invite, error) {
	if len(s) > MaxInviteLen {
		return Invite{}, fmt.Errorf("%w: %d characters, limit %d", ErrInviteTooLong, len(s), MaxInviteLen)
	}
	s = strings.TrimSpace(s)
	if s == "" {
		return Invite{}, ErrInviteEmpty
	}
	low := strings.ToLower(s)
	if !strings.HasPrefix(low, invitePrefix) {
		return Invite{}, fmt.Errorf("%w: it should start with %q", ErrInvitePrefix, invitePrefix)
	}
	rest := low[len(invitePrefix):]
	if rest == "" {
		return Invite{}, fmt.Errorf("%w: nothing after the prefix", ErrInviteTruncated)
	}
	version := rest[0]
	if version != inviteV1 && version != inviteV2 {
		return Invite{}, fmt.Errorf("%w: version %q, this build reads %q and %q", ErrInviteVersion, version, inviteV1, inviteV2)
	}
	raw, err := b32.DecodeString(strings.ToUpper(rest[1:]))
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInviteEncoding, err)
	}
	if len(raw) <= checksumLen {
		return Invite{}, fmt.Errorf("%w: %d bytes", ErrInviteTruncated, len(raw))
	}
	payload, sum := raw[:len(raw)-checksumLen], raw[len(raw)-checksumLen:]
	want := inviteChecksum(version, payload)
	if !bytes.Equal(sum, want[:]) {
		return Invite{}, fmt.Errorf("%w: the invite was damaged in copying", ErrInviteChecksum)
	}
	r := &inviteReader{b: payload}
	var inv Invite
	if inv.Peer, err = r.info("peer"); err != nil {
		return Invite{}, err
	}
	n, err := r.count("super-peer count", MaxInviteSuperPeers)
	if err != nil {
		return Invite{}, err
	}
	for i := range n {
		sp, err := r.info(fmt.Sprintf("super-peer %d", i))
		if err != nil {
			return Invite{}, err
		}
		inv.Peer.Relays = append(inv.Peer.Relays, sp)
	}
	if version == inviteV2 {
		pipe, err := r.bytes("pipe name")
		if err != nil {
			return Invite{}, err
		}
		if len(pipe) > MaxInvitePipe || len(pipe) == 0 {
			return Invite{}, fmt.Errorf("%w: pipe name of %d bytes, limit %d", ErrInviteTooMany, len(pipe), MaxInvitePipe)
		}
		inv.Pipe = string(pipe)
	}
	if len(r.b) != 0 {
		return Invite{}, fmt.Errorf("%w: %d bytes after the last field", ErrInviteTrailing, len(r.b))
	}
	if len(inv.Peer.Addrs) == 0 && len(inv.Peer.Relays) == 0 {
		return Invite{}, ErrInviteUnreachable
	}
	return inv, nil
}

type inviteReader struct{ b []byte }

func (r *inviteReader) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: reading %s", ErrInviteTruncated, what)
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *inviteReader) bytes(what string) ([]byte, error) {
	n, err := r.uvarint(what)
	if err != nil {
		return nil, err
	}
	if n > uint64(len(r.b)) {
		return nil, fmt.Errorf("%w: %s needs %d bytes, %d left", ErrInviteTruncated, what, n, len(r.b))
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out, nil
}

func (r *inviteReader) count(what string, limit int) (int, error) {
	n, err := r.uvarint(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("%w: %s is %d, limit %d", ErrInviteTooMany, what, n, limit)
	}
	return int(n), nil
}

func (r *inviteReader) info(what string) (Addr, error) {
	idb, err := r.bytes(what + " ID")
	if err != nil {
		return Addr{}, err
	}
	id, err := IDFromBytes(idb)
	if err != nil {
		return Addr{}, fmt.Errorf("%w: %s: %v", ErrInvitePeerID, what, err)
	}
	n, err := r.count(what+" address count", MaxInviteAddrs)
	if err != nil {
		return Addr{}, err
	}
	a := Addr{ID: id}
	for i := range n {
		b, err := r.bytes(fmt.Sprintf("%s address %d", what, i))
		if err != nil {
			return Addr{}, err
		}
		m, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return Addr{}, fmt.Errorf("%w: %s address %d: %v", ErrInviteAddr, what, i, err)
		}
		a.Addrs = append(a.Addrs, m.String())
	}
	return a, nil
}

// errors returned by ParseInvite; each names one kind of damage.
var (
	ErrInviteEmpty       = errors.New("peer: invite is empty")
	ErrInviteTooLong     = errors.New("peer: invite is too long")
	ErrInvitePrefix      = errors.New("peer: not a juxta invite")
	ErrInviteVersion     = errors.New("peer: invite version is not supported")
	ErrInviteEncoding    = errors.New("peer: invite has characters outside base32")
	ErrInviteChecksum    = errors.New("peer: invite checksum does not match")
	ErrInviteTruncated   = errors.New("peer: invite is truncated")
	ErrInvitePeerID      = errors.New("peer: invite holds an invalid peer ID")
	ErrInviteAddr        = errors.New("peer: invite holds an invalid address")
	ErrInviteTooMany     = errors.New("peer: invite lists too many entries")
	ErrInviteTrailing    = errors.New("peer: invite has trailing data")
	ErrInviteUnreachable = errors.New("peer: invite has no addresses and no super-peers")
)
