package im

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fxamacker/cbor/v2"
	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/peer"
)

// Status is where a message is on its way.
type Status string

const (
	// Sending: written to disk, not yet handed to the network.
	Sending Status = "sending"
	// Sent: handed to a live pipe, or left in a super-peer mailbox.
	Sent Status = "sent"
	// Delivered: the recipient has stored it.
	Delivered Status = "delivered"
	// Read: the recipient has opened the chat.
	Read Status = "read"
	// Received: an incoming message.
	Received Status = "received"
)

var statusRank = map[Status]int{Sending: 0, Sent: 1, Delivered: 2, Read: 3}

// Message is one chat message, as kept in history.
type Message struct {
	ID     string    `cbor:"1,keyasint"`
	Peer   peer.ID   `cbor:"2,keyasint,omitempty"` // the other side; empty for room messages
	Out    bool      `cbor:"3,keyasint"`           // sent by this user
	Text   string    `cbor:"4,keyasint"`
	Time   time.Time `cbor:"5,keyasint"`
	Seq    uint64    `cbor:"6,keyasint"` // sender's order
	Status Status    `cbor:"7,keyasint"`
	Room   string    `cbor:"8,keyasint,omitempty"` // group room messages
	From   string    `cbor:"9,keyasint,omitempty"` // room messages: sender name
}

// ContactState is where a contact is in ICQ-style authorization.
type ContactState string

const (
	// Requested: this user asked; waiting for the other to accept.
	Requested ContactState = "requested"
	// Pending: the other asked; waiting for this user to accept.
	Pending ContactState = "pending"
	// Accepted: both agreed; chat is allowed.
	Accepted ContactState = "accepted"
)

// Contact is one entry of the buddy list.
type Contact struct {
	ID      peer.ID      `cbor:"1,keyasint"`
	Name    string       `cbor:"2,keyasint"` // the name they chose
	Petname string       `cbor:"3,keyasint,omitempty"`
	State   ContactState `cbor:"4,keyasint"`
	Invite  string       `cbor:"5,keyasint,omitempty"` // how to reach them
	BoxKey  []byte       `cbor:"6,keyasint,omitempty"` // their X25519 key, for the mailbox
	Since   int64        `cbor:"7,keyasint,omitempty"` // a request: when it came, unix ms
	// Presence, not persisted.
	Presence   string `cbor:"-"`
	StatusText string `cbor:"-"`
}

// Label is the petname, or the name, or a short ID.
func (c Contact) Label() string {
	switch {
	case c.Petname != "":
		return c.Petname
	case c.Name != "":
		return c.Name
	}
	return c.ID.ShortString()
}

var (
	bContacts = []byte("contacts")
	bMessages = []byte("messages") // key: peer | time | id
	bByID     = []byte("byid")     // id → messages key
	bMeta     = []byte("meta")
	bRooms    = []byte("rooms")
	bSending  = []byte("sending") // outgoing transfers, resumed after a restart
)

// store is the messenger's database: contacts, history and outbox in bbolt.
type store struct {
	db *bolt.DB
}

var enc, _ = cbor.CoreDetEncOptions().EncMode()
var dec, _ = cbor.DecOptions{MaxArrayElements: 1 << 16, MaxMapPairs: 1 << 10}.DecMode()

func openStore(dir string) (*store, error) {
	path := filepath.Join(dir, "messenger.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("messenger: open %s: %w (is another messenger using this directory?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bContacts, bMessages, bByID, bMeta, bRooms, bSending} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("messenger: prepare %s: %w", path, err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error {
	if s.db == nil { // a failed compact could not reopen it
		return nil
	}
	return s.db.Close()
}

// conv names a conversation: a contact's peer ID, or "#room".
func conv(m *Message) string {
	if m.Room != "" {
		return "#" + m.Room
	}
	return string(m.Peer)
}

func msgKey(m *Message) []byte {
	k := append([]byte(conv(m)), 0)
	k = binary.BigEndian.AppendUint64(k, uint64(m.Time.UnixNano()))
	return append(k, m.ID...)
}

// putMessage stores m (new or updated). A message whose ID is already stored
// is not stored twice: putMessage reports false. Updates only move status
// forward.
func (s *store) putMessage(m *Message) (isNew bool, err error) {
	err = s.db.Update(func(tx *bolt.Tx) error {
		ids, msgs := tx.Bucket(bByID), tx.Bucket(bMessages)
		if k := ids.Get([]byte(m.ID)); k != nil {
			var old Message
			if err := dec.Unmarshal(msgs.Get(k), &old); err != nil {
				return err
			}
			if m.Out && statusRank[m.Status] <= statusRank[old.Status] {
				*m = old
				return nil
			}
			if !m.Out {
				*m = old
				return nil
			}
			old.Status = m.Status
			*m = old
			v, err := enc.Marshal(old)
			if err != nil {
				return err
			}
			return msgs.Put(k, v)
		}
		isNew = true
		k := msgKey(m)
		v, err := enc.Marshal(m)
		if err != nil {
			return err
		}
		if err := msgs.Put(k, v); err != nil {
			return err
		}
		return ids.Put([]byte(m.ID), k)
	})
	return isNew, err
}

func (s *store) message(id string) (Message, bool) {
	var m Message
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		k := tx.Bucket(bByID).Get([]byte(id))
		if k == nil {
			return nil
		}
		found = dec.Unmarshal(tx.Bucket(bMessages).Get(k), &m) == nil
		return nil
	})
	return m, found
}

// history returns the last limit messages of conversation p (a peer ID, or
// "#room"), oldest first.
func (s *store) history(p string, limit int) []Message {
	var out []Message
	_ = s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bMessages).Cursor()
		prefix := append([]byte(p), 0)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var m Message
			if dec.Unmarshal(v, &m) == nil {
				out = append(out, m)
			}
		}
		return nil
	})
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

// search returns messages whose text contains q, case-insensitively.
func (s *store) search(q string) []Message {
	q = strings.ToLower(q)
	var out []Message
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bMessages).ForEach(func(_, v []byte) error {
			var m Message
			if dec.Unmarshal(v, &m) == nil && strings.Contains(strings.ToLower(m.Text), q) {
				out = append(out, m)
			}
			return nil
		})
	})
	slices.SortFunc(out, func(a, b Message) int { return a.Time.Compare(b.Time) })
	return out
}

// undelivered returns outgoing messages to p not yet delivered, in order.
func (s *store) undelivered(p peer.ID) []Message {
	var out []Message
	for _, m := range s.history(string(p), 0) {
		if m.Out && m.Room == "" && statusRank[m.Status] < statusRank[Delivered] {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(a, b Message) int {
		if a.Seq != b.Seq {
			if a.Seq < b.Seq {
				return -1
			}
			return 1
		}
		return a.Time.Compare(b.Time)
	})
	return out
}

func (s *store) putContact(c Contact) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		v, err := enc.Marshal(c)
		if err != nil {
			return err
		}
		return tx.Bucket(bContacts).Put([]byte(c.ID), v)
	})
}

func (s *store) deleteContact(id peer.ID) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bContacts).Delete([]byte(id)) })
}

func (s *store) contacts() []Contact {
	var out []Contact
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bContacts).ForEach(func(_, v []byte) error {
			var c Contact
			if dec.Unmarshal(v, &c) == nil {
				out = append(out, c)
			}
			return nil
		})
	})
	return out
}

func (s *store) contact(id peer.ID) (Contact, bool) {
	var c Contact
	found := false
	_ = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bContacts).Get([]byte(id))
		found = v != nil && dec.Unmarshal(v, &c) == nil
		return nil
	})
	return c, found
}

// nextSeq returns this user's next outgoing sequence number, persisted.
func (s *store) nextSeq() (uint64, error) {
	var n uint64
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bMeta)
		if v := b.Get([]byte("seq")); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		n++
		return b.Put([]byte("seq"), binary.BigEndian.AppendUint64(nil, n))
	})
	return n, err
}

func (s *store) meta(key string) []byte {
	var v []byte
	_ = s.db.View(func(tx *bolt.Tx) error {
		v = slices.Clone(tx.Bucket(bMeta).Get([]byte(key)))
		return nil
	})
	return v
}

func (s *store) setMeta(key string, v []byte) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bMeta).Put([]byte(key), v) })
}

// rooms: name → saved join information.
type savedRoom struct {
	Name    string `cbor:"1,keyasint"`
	GroupID string `cbor:"2,keyasint"`
	// LegacyPassword is a password room's password as versions before
	// this one kept it: read only to migrate it (migrateRooms), never
	// written.
	LegacyPassword string `cbor:"3,keyasint,omitempty"`
	Cred           string `cbor:"4,keyasint,omitempty"`
	GroupAd        []byte `cbor:"5,keyasint,omitempty"`
	// State is the room's groups.Group.State: with it the room comes back
	// after a restart even when no other member is online. A password
	// room's holds the key derived from the password, not the password.
	State []byte `cbor:"6,keyasint,omitempty"`
}

func (s *store) putRoom(r savedRoom) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		v, err := enc.Marshal(r)
		if err != nil {
			return err
		}
		return tx.Bucket(bRooms).Put([]byte(r.Name), v)
	})
}

func (s *store) deleteRoom(name string) error {
	return s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bRooms).Delete([]byte(name)) })
}

func (s *store) rooms() []savedRoom {
	var out []savedRoom
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bRooms).ForEach(func(_, v []byte) error {
			var r savedRoom
			if dec.Unmarshal(v, &r) == nil {
				out = append(out, r)
			}
			return nil
		})
	})
	return out
}

var errNoContact = errors.New("messenger: no such contact")
