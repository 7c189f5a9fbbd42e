package discovery

import "errors"

// Errors of the discovery package.
var (
	// ErrInvalid: an advertisement or query is missing a required field or
	// breaks a limit.
	ErrInvalid = errors.New("discovery: invalid advertisement or query")
	// ErrRejected: a received advertisement failed verification (tampered,
	// wrong signer, malformed, future-dated). Stats counts each by reason.
	ErrRejected = errors.New("discovery: advertisement rejected")
	// ErrOversized: an advertisement is larger than MaxAdSize.
	ErrOversized = errors.New("discovery: advertisement too large")
	// ErrExpired: an advertisement's lifetime has ended.
	ErrExpired = errors.New("discovery: advertisement expired")
	// ErrNotFound: no advertisement matches.
	ErrNotFound = errors.New("discovery: not found")
	// ErrRateLimited: the remote peer refused the request under its rate limit.
	ErrRateLimited = errors.New("discovery: rate limited by remote peer")
	// ErrNotSuperPeer: a publish or flush was sent to a peer that keeps no index.
	ErrNotSuperPeer = errors.New("discovery: remote peer is not a super-peer")
	// ErrQuota: the super-peer's index refused the advertisement (quota or
	// capacity).
	ErrQuota = errors.New("discovery: index quota exceeded")
	// ErrRemote: the remote peer answered with an error.
	ErrRemote = errors.New("discovery: remote error")
)
