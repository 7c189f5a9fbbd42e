package im

import (
	"cmp"
	"slices"

	"github.com/juxta-p2p/juxta/peer"
)

// What a stranger can make this messenger keep or do (SECURITY.md).
const (
	// MaxPendingRequests bounds contact requests from strangers that wait
	// for this user's answer; further requests are dropped until the user
	// accepts or removes some.
	MaxPendingRequests = 64
	// maxNameLen bounds a display name a peer sends.
	maxNameLen = 64
)

// inviteOf returns inv when it is a well-formed invite (peer.MaxInviteLen at
// most) that names id, else "": a peer cannot make this user keep, or dial,
// addresses filed under another peer's name.
func inviteOf(id peer.ID, inv string) string {
	if inv == "" || len(inv) > peer.MaxInviteLen {
		return ""
	}
	parsed, err := peer.ParseInvite(inv)
	if err != nil || parsed.Peer.ID != id {
		return ""
	}
	return inv
}

// pendingRequests counts contact requests waiting for this user.
func (m *Messenger) pendingRequests() int {
	n := 0
	for _, c := range m.st.contacts() {
		if c.State == Pending {
			n++
		}
	}
	return n
}

// makeRoomForRequest keeps pending requests under MaxPendingRequests by
// dropping the oldest: a flood of strangers cannot block an honest request
// for good, as the honest requester asks again on every connection.
func (m *Messenger) makeRoomForRequest() {
	var pending []Contact
	for _, c := range m.st.contacts() {
		if c.State == Pending {
			pending = append(pending, c)
		}
	}
	if len(pending) < MaxPendingRequests {
		return
	}
	slices.SortFunc(pending, func(a, b Contact) int { return cmp.Compare(a.Since, b.Since) })
	for _, c := range pending[:len(pending)-MaxPendingRequests+1] {
		if m.st.deleteContact(c.ID) == nil {
			m.emit(ContactRemoved{ID: c.ID})
		}
	}
}

// dialable says whether connectLoop dials c: only peers this user chose.
// A stranger's request (Pending) is never dialled, so a request cannot make
// this peer dial the addresses the stranger put in its invite.
func dialable(c Contact) bool {
	return c.State == Accepted || c.State == Requested
}
