package peer

import "errors"

// Errors of the peer package. Invite errors are listed in invite.go.
var (
	// ErrBadKey: the identity key file exists but cannot be read or decoded. The
	// error names the file; the file is left as it is.
	ErrBadKey = errors.New("peer: identity key file is unreadable or corrupt")
	// ErrBadConfig: a Config field holds a value that cannot be used.
	ErrBadConfig = errors.New("peer: bad config")
	// ErrNoAddrs: no address is known for a peer and peer routing found none.
	ErrNoAddrs = errors.New("peer: no address known for peer")
	// ErrNoPublicSuperPeer: no connected super-peer has a public address, so
	// this peer cannot learn its own public address and cannot hole-punch.
	ErrNoPublicSuperPeer = errors.New("peer: no connected super-peer with a public address")
	// ErrNotJuxtaSuperPeer: the connected super-peers lack juxta's protocols
	// (SuperPeerProtocols), as a stock libp2p relay does: relaying works,
	// routing and discovery through them do not.
	ErrNotJuxtaSuperPeer = errors.New("peer: super-peer is not a juxta super-peer")
)
