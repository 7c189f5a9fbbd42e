package content

import (
	"context"
	"time"

	"github.com/juxta-p2p/juxta/event"
	"github.com/juxta-p2p/juxta/peer"
)

// Event is what Subscribe delivers: Progress, for now.
type Event interface{ isEvent() }

// Op says what a Progress event reports on.
type Op int

const (
	// OpHash is Add or AddBytes hashing content.
	OpHash Op = iota
	// OpFetch is a download.
	OpFetch
)

func (o Op) String() string {
	if o == OpHash {
		return "hash"
	}
	return "fetch"
}

// PeerRate is one provider of a download with the rates measured since the
// previous Progress event, in bytes per second.
type PeerRate struct {
	Peer peer.ID
	Down float64
	// Bytes is what the peer has delivered to this download so far, over
	// every connection (in this run of Fetch).
	Bytes int64
	// Relayed is true when the connection to the peer goes through a relay.
	Relayed bool
}

// Progress reports an operation's progress, at most about every
// ProgressInterval per operation and once more when it ends (Done set).
type Progress struct {
	Op   Op
	ID   ID // zero while hashing: the ID is known only at the end
	Name string
	// Bytes of Total are done (hashed, or fetched and verified).
	Bytes, Total int64
	// Pieces of TotalPieces are verified (fetches only).
	Pieces, TotalPieces int
	// Peers are the providers of a fetch, with their rates.
	Peers []PeerRate
	// Rate is the overall rate in bytes per second, and ETA the time left at
	// that rate (0 when unknown).
	Rate float64
	ETA  time.Duration
	// Done is set on the last event of an operation; Err says how it ended.
	Done bool
	Err  error
}

func (Progress) isEvent() {}

// ProgressInterval is the least time between two Progress events of one
// operation (apart from the last).
const ProgressInterval = 200 * time.Millisecond

// Subscribe returns the service's events under juxta's one event contract:
// each subscriber has its own buffered channel (buffer, or a default when
// <= 0); publishing never blocks, and a full buffer drops the event for that
// subscriber only (Dropped counts them); events arrive in order; the channel
// closes when ctx ends, Cancel is called or the service closes.
func (s *Service) Subscribe(ctx context.Context, buffer int) *event.Subscription[Event] {
	return s.bus.Subscribe(ctx, buffer)
}

// meter turns a byte counter into a rate between two samples.
type meter struct {
	last  int64
	lastT time.Time
}

func (m *meter) sample(now time.Time, total int64) float64 {
	if m.lastT.IsZero() {
		m.last, m.lastT = total, now
		return 0
	}
	dt := now.Sub(m.lastT).Seconds()
	if dt <= 0 {
		return 0
	}
	r := float64(total-m.last) / dt
	m.last, m.lastT = total, now
	return r
}
