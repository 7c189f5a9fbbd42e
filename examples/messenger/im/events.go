package im

import "github.com/juxta-p2p/juxta/peer"

// Event is one of the messenger's events; switch on the type.
type Event interface{ isEvent() }

// ContactRequest: someone asks to become a contact (accept with Accept).
type ContactRequest struct{ Contact Contact }

// ContactChanged: a contact's state, name or presence changed.
type ContactChanged struct{ Contact Contact }

// ContactRemoved: a contact was removed.
type ContactRemoved struct{ ID peer.ID }

// MessageAdded: a message was written (outgoing) or received (incoming).
type MessageAdded struct{ Message Message }

// MessageStatus: an outgoing message moved to sent, delivered or read.
type MessageStatus struct {
	ID     string
	Peer   peer.ID
	Status Status
}

// PresenceChanged: this user's own presence changed (Auto: by idling).
type PresenceChanged struct {
	State, Text string
	Auto        bool
}

// RoomMessage: a message in a group room.
type RoomMessage struct{ Message Message }

// RoomMember: a room member's presence changed.
type RoomMember struct {
	Room   string
	Name   string
	ID     peer.ID
	State  string
	Text   string
	Joined bool
}

// TransferProgress: a file transfer moved on.
type TransferProgress struct{ Transfer Transfer }

// Notice: something the user should know, in words.
type Notice struct{ Text string }

func (ContactRequest) isEvent()   {}
func (ContactChanged) isEvent()   {}
func (ContactRemoved) isEvent()   {}
func (MessageAdded) isEvent()     {}
func (MessageStatus) isEvent()    {}
func (PresenceChanged) isEvent()  {}
func (RoomMessage) isEvent()      {}
func (RoomMember) isEvent()       {}
func (TransferProgress) isEvent() {}
func (Notice) isEvent()           {}
