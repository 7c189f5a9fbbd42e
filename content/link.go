package content

import (
	"bytes"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	ma "github.com/multiformats/go-multiaddr"

	"github.com/juxta-p2p/juxta/peer"
)

// A share link hands content to someone: a string to copy, paste or put in a
// QR code, carrying the content ID, its size and name, and a few providers
// (peer IDs with addresses) to ask first.
//
// Layout of the string, as peer invites:
//
//	"juxtac" | version ("1") | base32(payload | checksum)
//
// base32 is RFC 4648 without padding, in lower case; parsing ignores case and
// surrounding white space. The checksum is the first 4 bytes of SHA-256 over
// the version character and the payload. The payload is:
//
//	id (32 bytes) | uvarint size | uvarint len | name | n | (uvarint len | peer id | k | (uvarint len | addr)*k)*n
const (
	linkPrefix   = "juxtac"
	linkVersion  = '1'
	linkChecksum = 4

	// MaxLinkLen bounds a share link; longer input is refused unparsed.
	MaxLinkLen = 4096
	// MaxLinkProviders bounds the providers in a link.
	MaxLinkProviders = 4
	// MaxLinkAddrs bounds the addresses per provider in a link.
	MaxLinkAddrs = 8
	// MaxNameLen bounds the name in a link, in bytes.
	MaxNameLen = 255
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// Link is a parsed share link.
type Link struct {
	ID   ID
	Size int64
	// Name is a suggested file name (no directories); may be empty.
	Name string
	// Providers are peers to ask first; their addresses are hints.
	Providers []peer.Addr
}

// String encodes the link. Providers beyond MaxLinkProviders, addresses beyond
// MaxLinkAddrs and name bytes beyond MaxNameLen are left out.
func (l Link) String() string {
	p := append([]byte(nil), l.ID[:]...)
	p = binary.AppendUvarint(p, uint64(max(l.Size, 0)))
	name := truncName(l.Name)
	p = binary.AppendUvarint(p, uint64(len(name)))
	p = append(p, name...)
	provs := l.Providers
	if len(provs) > MaxLinkProviders {
		provs = provs[:MaxLinkProviders]
	}
	p = binary.AppendUvarint(p, uint64(len(provs)))
	for _, ai := range provs {
		id := []byte(ai.ID)
		p = binary.AppendUvarint(p, uint64(len(id)))
		p = append(p, id...)
		addrs := ai.Addrs
		if len(addrs) > MaxLinkAddrs {
			addrs = addrs[:MaxLinkAddrs]
		}
		p = binary.AppendUvarint(p, uint64(len(addrs)))
		for _, s := range addrs {
			a, err := ma.NewMultiaddr(s)
			if err != nil {
				continue // not an address: a hint lost, nothing else
			}
			b := a.Bytes()
			p = binary.AppendUvarint(p, uint64(len(b)))
			p = append(p, b...)
		}
	}
	sum := linkSum(p)
	p = append(p, sum[:]...)
	return linkPrefix + string(linkVersion) + strings.ToLower(b32.EncodeToString(p))
}

func truncName(s string) string {
	for len(s) > MaxNameLen {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return s
}

func linkSum(payload []byte) [linkChecksum]byte {
	h := sha256.New()
	h.Write([]byte{linkVersion})
	h.Write(payload)
	var out [linkChecksum]byte
	copy(out[:], h.Sum(nil))
	return out
}

// ParseLink decodes a share link. Each kind of damage has its own error, which
// errors.Is matches against the ErrLink… values.
func ParseLink(s string) (Link, error) {
	if len(s) > MaxLinkLen {
		return Link{}, fmt.Errorf("%w: %d characters, limit %d", ErrLinkTooLong, len(s), MaxLinkLen)
	}
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return Link{}, ErrLinkEmpty
	}
	if !strings.HasPrefix(s, linkPrefix) {
		return Link{}, fmt.Errorf("%w: it should start with %q", ErrLinkPrefix, linkPrefix)
	}
	rest := s[len(linkPrefix):]
	if rest == "" {
		return Link{}, fmt.Errorf("%w: nothing after the prefix", ErrLinkTruncated)
	}
	if rest[0] != linkVersion {
		return Link{}, fmt.Errorf("%w: version %q, this build reads %q", ErrLinkVersion, rest[0], linkVersion)
	}
	raw, err := b32.DecodeString(strings.ToUpper(rest[1:]))
	if err != nil {
		return Link{}, fmt.Errorf("%w: %v", ErrLinkEncoding, err)
	}
	if len(raw) <= linkChecksum {
		return Link{}, fmt.Errorf("%w: %d bytes", ErrLinkTruncated, len(raw))
	}
	payload, sum := raw[:len(raw)-linkChecksum], raw[len(raw)-linkChecksum:]
	if want := linkSum(payload); !bytes.Equal(sum, want[:]) {
		return Link{}, fmt.Errorf("%w: the link was damaged in copying", ErrLinkChecksum)
	}
	return decodeLink(payload)
}

func decodeLink(payload []byte) (Link, error) {
	r := &fieldReader{b: payload}
	var l Link
	id, err := r.take("content ID", 32)
	if err != nil {
		return Link{}, err
	}
	copy(l.ID[:], id)
	size, err := r.uvarint("size")
	if err != nil {
		return Link{}, err
	}
	if size > MaxSize {
		return Link{}, fmt.Errorf("%w: size %d above %d", ErrLinkField, size, int64(MaxSize))
	}
	l.Size = int64(size)
	name, err := r.bytes("name", MaxNameLen)
	if err != nil {
		return Link{}, err
	}
	if !utf8.Valid(name) || strings.ContainsAny(string(name), "/\\\x00") {
		return Link{}, fmt.Errorf("%w: name is not a plain UTF-8 file name", ErrLinkField)
	}
	l.Name = string(name)
	n, err := r.count("provider count", MaxLinkProviders)
	if err != nil {
		return Link{}, err
	}
	for i := range n {
		ai, err := r.addrInfo(fmt.Sprintf("provider %d", i))
		if err != nil {
			return Link{}, err
		}
		l.Providers = append(l.Providers, ai)
	}
	if len(r.b) != 0 {
		return Link{}, fmt.Errorf("%w: %d bytes after the last field", ErrLinkField, len(r.b))
	}
	return l, nil
}

type fieldReader struct{ b []byte }

func (r *fieldReader) uvarint(what string) (uint64, error) {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: %s", ErrLinkTruncated, what)
	}
	r.b = r.b[n:]
	return v, nil
}

func (r *fieldReader) take(what string, n int) ([]byte, error) {
	if len(r.b) < n {
		return nil, fmt.Errorf("%w: %s", ErrLinkTruncated, what)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, nil
}

func (r *fieldReader) bytes(what string, limit int) ([]byte, error) {
	n, err := r.uvarint(what + " length")
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%w: %s of %d bytes, limit %d", ErrLinkField, what, n, limit)
	}
	return r.take(what, int(n))
}

func (r *fieldReader) count(what string, limit int) (int, error) {
	n, err := r.uvarint(what)
	if err != nil {
		return 0, err
	}
	if n > uint64(limit) {
		return 0, fmt.Errorf("%w: %s %d, limit %d", ErrLinkField, what, n, limit)
	}
	return int(n), nil
}

func (r *fieldReader) addrInfo(what string) (peer.Addr, error) {
	idb, err := r.bytes(what+" ID", 128)
	if err != nil {
		return peer.Addr{}, err
	}
	id, err := peer.IDFromBytes(idb)
	if err != nil {
		return peer.Addr{}, fmt.Errorf("%w: %s ID: %v", ErrLinkField, what, err)
	}
	ai := peer.Addr{ID: id}
	k, err := r.count(what+" address count", MaxLinkAddrs)
	if err != nil {
		return peer.Addr{}, err
	}
	for j := range k {
		ab, err := r.bytes(fmt.Sprintf("%s address %d", what, j), 512)
		if err != nil {
			return peer.Addr{}, err
		}
		a, err := ma.NewMultiaddrBytes(ab)
		if err != nil {
			return peer.Addr{}, fmt.Errorf("%w: %s address %d: %v", ErrLinkField, what, j, err)
		}
		ai.Addrs = append(ai.Addrs, a.String())
	}
	return ai, nil
}
