package peer

import (
	"context"
	"time"

	"github.com/juxta-p2p/juxta/event"
)

// Path is how this peer is connected to another.
type Path int

const (
	// PathNone: not connected.
	PathNone Path = iota
	// PathRelayed: only through a relay (a "limited" connection).
	PathRelayed
	// PathDirect: at least one direct connection, dialled or hole-punched.
	PathDirect
)

func (p Path) String() string {
	switch p {
	case PathRelayed:
		return "relayed"
	case PathDirect:
		return "direct"
	}
	return "none"
}

// Event is one of ReachabilityChanged, PeerConnected, PeerDisconnected,
// PathChanged, RelaysChanged and HolePunch. Switch on the concrete type.
type Event interface{ isEvent() }

// ReachabilityChanged: this peer's view of its own reachability changed.
type ReachabilityChanged struct{ Reachability Reachability }

// PeerConnected: the first connection to Peer opened, over Path.
type PeerConnected struct {
	Peer ID
	Path Path
}

// PeerDisconnected: the last connection to Peer closed.
type PeerDisconnected struct{ Peer ID }

// PathChanged: the best connection to Peer changed between relayed and direct,
// typically relayed → direct after a hole punch.
type PathChanged struct {
	Peer     ID
	From, To Path
}

// RelaysChanged: the set of relays holding a reservation for this peer changed.
type RelaysChanged struct{ Relays []ID }

// HolePunch reports the end of one hole-punch attempt with Peer.
type HolePunch struct {
	Peer    ID
	Success bool
	Elapsed time.Duration
	Attempt int    // 1 for the first try; retries count up
	Err     string // empty on success
}

func (ReachabilityChanged) isEvent() {}
func (PeerConnected) isEvent()       {}
func (PeerDisconnected) isEvent()    {}
func (PathChanged) isEvent()         {}
func (RelaysChanged) isEvent()       {}
func (HolePunch) isEvent()           {}

// Subscribe returns a subscription to this peer's events, with room for
// buffer events (event.DefaultBuffer if buffer <= 0).
//
// The delivery contract is package event's, the same for every juxta event
// stream: the subscriber drains C; events arrive in the order they happened;
// the peer never blocks on a subscriber, so when the buffer is full further
// events are dropped for it and counted by Dropped, and Peer.Status gives the
// current state to resynchronise from. C is closed when ctx is done, when
// Cancel is called, or when the peer closes.
func (p *Peer) Subscribe(ctx context.Context, buffer int) *event.Subscription[Event] {
	return p.events.Subscribe(ctx, buffer)
}
