package content

import "errors"

// Errors of the content service. Wrapped errors carry the operation and the
// content ID; errors.Is matches these.
var (
	// ErrNotFound: the ID is not stored here (Open, Remove, Stat), or a
	// provider does not have it.
	ErrNotFound = errors.New("content: not found")
	// ErrNoProviders: a fetch ran out of providers before it completed.
	ErrNoProviders = errors.New("content: no provider could deliver the content")
	// ErrBadData: a provider sent data that failed verification against the
	// content's hash tree.
	ErrBadData = errors.New("content: data failed verification")
	// ErrStale: a shared file changed on disk since it was hashed; Add it again.
	ErrStale = errors.New("content: file changed since it was added")
	// ErrTooLarge: content above MaxSize.
	ErrTooLarge = errors.New("content: content too large")
	// ErrBusy: the ID is already being fetched by this service.
	ErrBusy = errors.New("content: already being fetched")
	// ErrProtocol: a remote peer broke the content protocol.
	ErrProtocol = errors.New("content: protocol violation")
	// ErrDenied: the peer is not allowed (Config.Allow) or is banned.
	ErrDenied = errors.New("content: peer not allowed")
	// ErrStalled: a provider stopped sending the pieces asked of it.
	ErrStalled = errors.New("content: provider stalled")
	// ErrRelayOnly: the only providers left were reachable through a relay, and
	// the relay kept resetting the connection.
	ErrRelayOnly = errors.New("content: providers reachable only through a relay failed")

	// ErrBadID and the ErrLink… errors report malformed IDs and share links.
	ErrBadID         = errors.New("content: malformed content ID")
	ErrLinkEmpty     = errors.New("content: empty share link")
	ErrLinkPrefix    = errors.New("content: not a juxta share link")
	ErrLinkVersion   = errors.New("content: share link from an unknown version")
	ErrLinkEncoding  = errors.New("content: share link is not valid base32")
	ErrLinkChecksum  = errors.New("content: share link checksum mismatch")
	ErrLinkTruncated = errors.New("content: share link is truncated")
	ErrLinkTooLong   = errors.New("content: share link too long")
	ErrLinkField     = errors.New("content: share link has a malformed field")
)
