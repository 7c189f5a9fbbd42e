package peer

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// An invite is how a peer is handed to someone else: a short string to copy, paste
// or put in a QR code. It carries the peer's ID, its addresses as hints, and the
// super-peers through which it can be found or relayed.
//
// Layout of the string:
//
//	"juxta" | version (one character, "1") | base32(payload | checksum)
//
// base32 is RFC 4648 without padding, written in lower case; parsing ignores case
// and surrounding white space, so an upper-case QR code round-trips. The checksum
// is the first 4 bytes of SHA-256 over the version character and the payload. The
// payload is a sequence of uvarint-prefixed fields:
//
//	id | n | addr*n | m | (id | k | addr*k)*m
const (
	invitePrefix  = "juxta"
	inviteVersion = '1'
	checksumLen   = 4

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
	// Peer is the invited peer; its ID is required, its addresses are hints.
	Peer AddrInfo
	// SuperPeers are super-peers the invited peer uses; a receiver may use them
	// to find or relay to the peer when its own addresses do not work.
	SuperPeers []AddrInfo
}

// String encodes the invite. It panics only if the invite holds more addresses or
// super-peers than an invite may carry; use Peer.Invite, which trims them.
func (inv Invite) String() string {
	var p []byte
	p = appendInfo(p, inv.Peer)
	p = binary.AppendUvarint(p, uint64(len(inv.SuperPeers)))
	for _, sp := range inv.SuperPeers {
		p = appendInfo(p, sp)
	}
	sum := inviteChecksum(p)
	p = append(p, sum[:]...)
	return invitePrefix + string(inviteVersion) + strings.ToLower(b32.EncodeToString(p))
}

func appendInfo(p []byte, ai AddrInfo) []byte {
	id := []byte(ai.ID)
	p = binary.AppendUvarint(p, uint64(len(id)))
	p = append(p, id...)
	p = binary.AppendUvarint(p, uint64(len(ai.Addrs)))
	for _, a := range ai.Addrs {
		b := a.Bytes()
		p = binary.AppendUvarint(p, uint64(len(b)))
		p = append(p, b...)
	}
	return p
}

func inviteChecksum(payload []byte) [checksumLen]byte {
	h := sha256.New()
	h.Write([]byte{inviteVersion})
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
	if rest[0] != inviteVersion {
		return Invite{}, fmt.Errorf("%w: version %q, this build reads %q", ErrInviteVersion, rest[0], inviteVersion)
	}
	raw, err := b32.DecodeString(strings.ToUpper(rest[1:]))
	if err != nil {
		return Invite{}, fmt.Errorf("%w: %v", ErrInviteEncoding, err)
	}
	if len(raw) <= checksumLen {
		return Invite{}, fmt.Errorf("%w: %d bytes", ErrInviteTruncated, len(raw))
	}
	payload, sum := raw[:len(raw)-checksumLen], raw[len(raw)-checksumLen:]
	want := inviteChecksum(payload)
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
		inv.SuperPeers = append(inv.SuperPeers, sp)
	}
	if len(r.b) != 0 {
		return Invite{}, fmt.Errorf("%w: %d bytes after the last field", ErrInviteTrailing, len(r.b))
	}
	if len(inv.Peer.Addrs) == 0 && len(inv.SuperPeers) == 0 {
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

func (r *inviteReader) info(what string) (AddrInfo, error) {
	idb, err := r.bytes(what + " ID")
	if err != nil {
		return AddrInfo{}, err
	}
	id, err := lpeer.IDFromBytes(idb)
	if err != nil {
		return AddrInfo{}, fmt.Errorf("%w: %s: %v", ErrInvitePeerID, what, err)
	}
	n, err := r.count(what+" address count", MaxInviteAddrs)
	if err != nil {
		return AddrInfo{}, err
	}
	ai := AddrInfo{ID: id}
	for i := range n {
		b, err := r.bytes(fmt.Sprintf("%s address %d", what, i))
		if err != nil {
			return AddrInfo{}, err
		}
		a, err := ma.NewMultiaddrBytes(b)
		if err != nil {
			return AddrInfo{}, fmt.Errorf("%w: %s address %d: %v", ErrInviteAddr, what, i, err)
		}
		ai.Addrs = append(ai.Addrs, a)
	}
	return ai, nil
}

// ParseAddrInfo reads a peer given either as an invite string or as a multiaddr
// ending in /p2p/<id>. It is how Config.SuperPeers entries are read.
func ParseAddrInfo(s string) (AddrInfo, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return AddrInfo{}, fmt.Errorf("%w: %q: %v", ErrInviteAddr, s, err)
		}
		ai, err := lpeer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return AddrInfo{}, fmt.Errorf("%w: %q needs a /p2p/<id> part: %v", ErrInvitePeerID, s, err)
		}
		return *ai, nil
	}
	inv, err := ParseInvite(s)
	if err != nil {
		return AddrInfo{}, err
	}
	return inv.Peer, nil
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
