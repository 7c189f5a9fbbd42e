package peer

import (
	"errors"
	"fmt"
	"strings"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ID is a peer's identity: the multihash of its public key, held as raw bytes.
// Its text form (String, MarshalText, ParseID) is the base58 form libp2p and
// IPFS print ("12D3KooW..."); its binary form (MarshalBinary) is the raw bytes.
// Both are the same as libp2p's peer.ID, so stored and wire data stay
// compatible. The zero ID is empty and invalid.
type ID string

// ErrBadID: a string or byte slice is not a valid peer ID.
var ErrBadID = errors.New("peer: invalid peer ID")

// ParseID reads an ID in its text form, as String prints it.
func ParseID(s string) (ID, error) {
	id, err := lpeer.Decode(strings.TrimSpace(s))
	if err != nil {
		return "", fmt.Errorf("%w: %q: %v", ErrBadID, s, err)
	}
	return ID(id), nil
}

// IDFromBytes reads an ID in its binary form, as MarshalBinary writes it.
func IDFromBytes(b []byte) (ID, error) {
	id, err := lpeer.IDFromBytes(b)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBadID, err)
	}
	return ID(id), nil
}

// String is the base58 text form; the empty ID prints as "".
func (id ID) String() string {
	if id == "" {
		return ""
	}
	return lpeer.ID(id).String()
}

// ShortString is an abbreviation for logs and displays where no name is
// known: "…" and the last eight characters of String ("…Fq9SMtNk"), which
// tell IDs apart (their first characters are the same for every Ed25519
// key). Short IDs print whole; the empty ID prints as "".
func (id ID) ShortString() string {
	s := id.String()
	if len(s) <= 10 {
		return s
	}
	return "…" + s[len(s)-8:]
}

// Validate reports whether the ID is a well-formed multihash.
func (id ID) Validate() error {
	if err := lpeer.ID(id).Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrBadID, err)
	}
	if _, err := lpeer.IDFromBytes([]byte(id)); err != nil {
		return fmt.Errorf("%w: %v", ErrBadID, err)
	}
	return nil
}

// MarshalText writes the text form.
func (id ID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText reads the text form.
func (id *ID) UnmarshalText(b []byte) error {
	v, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// MarshalBinary writes the raw bytes.
func (id ID) MarshalBinary() ([]byte, error) { return []byte(id), nil }

// UnmarshalBinary reads the raw bytes.
func (id *ID) UnmarshalBinary(b []byte) error {
	v, err := IDFromBytes(b)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// Addr is how to reach a peer: its ID, required, and hints. Addrs are
// multiaddr strings ("/ip4/192.0.2.7/udp/4001/quic-v1"); Relays are
// super-peers the peer keeps a relay reservation on, through which it can be
// reached when its own addresses fail. With no hints, Connect asks the DHT.
type Addr struct {
	ID     ID
	Addrs  []string
	Relays []Addr // each relay's own Relays are ignored
}

// String is the peer's ID followed by the number of hints, for logs.
func (a Addr) String() string {
	return fmt.Sprintf("%s (%d addrs, %d relays)", a.ID, len(a.Addrs), len(a.Relays))
}

// ParseAddr reads a peer given as an invite string, as a multiaddr ending in
// /p2p/<id>, or as a bare ID. It is how Config.SuperPeers entries are read.
func ParseAddr(s string) (Addr, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "/") {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return Addr{}, fmt.Errorf("%w: %q: %v", ErrInviteAddr, s, err)
		}
		ai, err := lpeer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return Addr{}, fmt.Errorf("%w: %q needs a /p2p/<id> part: %v", ErrInvitePeerID, s, err)
		}
		return fromAddrInfo(*ai), nil
	}
	if !strings.HasPrefix(strings.ToLower(s), invitePrefix) {
		if id, err := ParseID(s); err == nil {
			return Addr{ID: id}, nil
		}
	}
	inv, err := ParseInvite(s)
	if err != nil {
		return Addr{}, err
	}
	return inv.Peer, nil
}

// toLP and fromLP convert at the boundary with libp2p; both are free.
func toLP(id ID) lpeer.ID { return lpeer.ID(id) }

func fromAddrInfo(ai lpeer.AddrInfo) Addr {
	return Addr{ID: ID(ai.ID), Addrs: addrStrings(ai.Addrs)}
}

// addrInfo converts the ID and its own addresses; addresses that do not parse
// are skipped (Connect reports when none is left and there is nothing else).
func (a Addr) addrInfo() lpeer.AddrInfo {
	ai := lpeer.AddrInfo{ID: toLP(a.ID)}
	for _, s := range a.Addrs {
		if m, err := ma.NewMultiaddr(s); err == nil {
			ai.Addrs = append(ai.Addrs, m)
		}
	}
	return ai
}

func (a Addr) check() error {
	if err := a.ID.Validate(); err != nil {
		return err
	}
	for _, s := range a.Addrs {
		if _, err := ma.NewMultiaddr(s); err != nil {
			return fmt.Errorf("%w: %q: %v", ErrInviteAddr, s, err)
		}
	}
	for _, r := range a.Relays {
		if err := r.check(); err != nil {
			return fmt.Errorf("relay: %w", err)
		}
	}
	return nil
}

func addrStrings(as []ma.Multiaddr) []string {
	if as == nil {
		return nil
	}
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

func idsFromLP(ids []lpeer.ID) []ID {
	out := make([]ID, len(ids))
	for i, id := range ids {
		out[i] = ID(id)
	}
	return out
}
