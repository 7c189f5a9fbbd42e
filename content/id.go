package content

import (
	"encoding/hex"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// ID names content by its BLAKE3 hash: the root of the content's Bao tree,
// equal to the plain BLAKE3-256 of the bytes (what b3sum prints). It prints as
// a CIDv1 with the raw codec and a blake3 multihash ("bafkr4…").
type ID [32]byte

// String returns the ID as a CID in base32.
func (id ID) String() string { return id.CID().String() }

// CID returns the ID as a CIDv1 (raw codec, blake3 multihash).
func (id ID) CID() cid.Cid {
	h, _ := mh.Encode(id[:], mh.BLAKE3) // cannot fail: the code is known
	return cid.NewCidV1(cid.Raw, h)
}

// Hex returns the hash in hexadecimal, as b3sum prints it.
func (id ID) Hex() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is the zero ID.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses a CID as String prints it (any multibase), or 64 hex digits.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) == 64 {
		if b, err := hex.DecodeString(s); err == nil {
			copy(id[:], b)
			return id, nil
		}
	}
	c, err := cid.Decode(s)
	if err != nil {
		return ID{}, fmt.Errorf("%w: %q: %v", ErrBadID, s, err)
	}
	return IDFromCID(c)
}

// IDFromCID converts a blake3 CID to an ID.
func IDFromCID(c cid.Cid) (ID, error) {
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return ID{}, fmt.Errorf("%w: %v", ErrBadID, err)
	}
	if d.Code != mh.BLAKE3 || len(d.Digest) != 32 {
		return ID{}, fmt.Errorf("%w: hash %s of %d bytes, want blake3 of 32", ErrBadID, d.Name, len(d.Digest))
	}
	var id ID
	copy(id[:], d.Digest)
	return id, nil
}

// MarshalText encodes the ID as its CID string.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText parses a CID string.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}
