package im

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	bolt "go.etcd.io/bbolt"

	"github.com/juxta-p2p/juxta/content"
	"github.com/juxta-p2p/juxta/peer"
)

// sendingFile is an outgoing transfer kept across restarts.
type sendingFile struct {
	ID   string  `cbor:"1,keyasint"`
	Peer peer.ID `cbor:"2,keyasint"`
	Path string  `cbor:"3,keyasint"`
	Size int64   `cbor:"4,keyasint"`
	// Content is the file's content ID (content.ID), shared while the
	// transfer lasts. Key 5 held a SHA-256 before; such a record does not
	// parse as an ID and is dropped on resume.
	Content []byte `cbor:"6,keyasint"`
}

func (s *store) putSending(f sendingFile) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		v, err := enc.Marshal(f)
		if err != nil {
			return err
		}
		return tx.Bucket(bSending).Put([]byte(f.ID), v)
	})
}

func (s *store) deleteSending(id string) {
	_ = s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bSending).Delete([]byte(id)) })
}

func (s *store) sendings() []sendingFile {
	var out []sendingFile
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bSending).ForEach(func(_, v []byte) error {
			var f sendingFile
			if dec.Unmarshal(v, &f) == nil {
				out = append(out, f)
			}
			return nil
		})
	})
	return out
}

// resumeSending restarts the transfers that were under way when the
// messenger stopped. The receiver kept its partial file (PartialTTL), so each
// goes on from the pieces it holds. A file that changed or went away
// meanwhile is dropped, with a notice saying so.
func (m *Messenger) resumeSending(ctx context.Context) {
	for _, f := range m.st.sendings() {
		c, ok := m.st.contact(f.Peer)
		name := filepath.Base(f.Path)
		if !ok || c.State != Accepted {
			m.st.deleteSending(f.ID)
			continue
		}
		if len(f.Content) != 32 { // saved by a version that sent by SHA-256
			m.st.deleteSending(f.ID)
			m.emit(Notice{Text: fmt.Sprintf("could not resume sending %s to %s after the upgrade; send it again with /file", name, c.Label())})
			continue
		}
		id := content.ID(f.Content)
		// Still shared and unchanged: nothing to hash. Otherwise the file
		// is hashed again, and must still be what was offered.
		_, err := m.cs.Stat(id)
		var now content.Info
		if errors.Is(err, content.ErrNotFound) || errors.Is(err, content.ErrStale) {
			if now, err = m.cs.Add(ctx, f.Path); err == nil && now.ID != id {
				err = content.ErrStale
			}
		}
		if err != nil {
			m.st.deleteSending(f.ID)
			m.unshare(id)
			if !now.ID.IsZero() && now.ID != id {
				m.unshare(now.ID)
			}
			why := "it changed"
			if !errors.Is(err, content.ErrStale) {
				why = "it cannot be read"
			}
			m.emit(Notice{Text: fmt.Sprintf("could not resume sending %s to %s: %s since; send it again with /file", name, c.Label(), why)})
			continue
		}
		t := &Transfer{ID: f.ID, Peer: f.Peer, Name: name, Size: f.Size, Out: true, State: "sending", Content: id.String(), Path: f.Path}
		m.emit(Notice{Text: fmt.Sprintf("resuming sending %s to %s", name, c.Label())})
		m.startSending(ctx, t, id)
	}
}
