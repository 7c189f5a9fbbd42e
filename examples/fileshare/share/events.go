package share

// Event is something the node reports, under juxta's one event contract
// (see peer.Peer.Subscribe): each subscriber has its own buffer, a full buffer
// drops events for that subscriber only, and Status resynchronises.
type Event interface{ isEvent() }

// Indexed reports hashing progress over the shared folders: Done of Total
// files waiting to be hashed and published so far.
type Indexed struct{ Done, Total int }

// Published: a shared file was advertised (new or changed).
type Published struct{ Name, Rel, ID, Group string }

// Withdrawn: a shared file was removed, renamed away or changed; its
// advertisement was withdrawn.
type Withdrawn struct{ Name, Rel, ID, Group string }

// DownloadEnded: a download finished or failed; Info.State says which.
type DownloadEnded struct{ Info DownloadInfo }

// Pinned: this volunteer took a copy of a pinned file so that the group keeps
// K online holders, or dropped one.
type Pinned struct {
	Group, ID, Name string
	Dropped         bool
}

// Notice is a line of information for the user.
type Notice struct{ Text string }

func (Indexed) isEvent()       {}
func (Published) isEvent()     {}
func (Withdrawn) isEvent()     {}
func (DownloadEnded) isEvent() {}
func (Pinned) isEvent()        {}
func (Notice) isEvent()        {}
