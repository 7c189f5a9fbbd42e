package content

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The index lives in Dir/index.db (bbolt): one record per stored ID, and the
// reverse map from a shared file's path to its ID. Outboard trees live in
// Dir/trees/<hex>, blobs added as bytes or fetched without a destination in
// Dir/blobs/<hex>.
var (
	bucketBlobs = []byte("blobs")
	bucketPaths = []byte("paths")
)

// record is what the index keeps per ID.
type record struct {
	Path  string `json:"path"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"` // UnixNano of the file when hashed
	Name  string `json:"name"`
	Owned bool   `json:"owned,omitempty"` // the file is in Dir/blobs and goes with Remove
	// Unsynced: a download recorded before its fsync (durable.go). Absent
	// in records written before the field existed, which were fsynced.
	Unsynced bool `json:"unsynced,omitempty"`
}

type store struct {
	dir string
	db  *bolt.DB
}

func openStore(dir string) (*store, error) {
	for _, d := range []string{dir, filepath.Join(dir, "trees"), filepath.Join(dir, "blobs")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("content: %w", err)
		}
	}
	db, err := bolt.Open(filepath.Join(dir, "index.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("content: open index: %w", err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketBlobs, bucketPaths} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("content: index: %w", err)
	}
	return &store{dir: dir, db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

func (s *store) treePath(id ID) string { return filepath.Join(s.dir, "trees", id.Hex()) }
func (s *store) blobPath(id ID) string { return filepath.Join(s.dir, "blobs", id.Hex()) }

func (s *store) get(id ID) (record, bool) {
	var r record
	var ok bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketBlobs).Get(id[:]); v != nil {
			ok = json.Unmarshal(v, &r) == nil
		}
		return nil
	})
	return r, ok
}

func (s *store) byPath(path string) (ID, bool) {
	var id ID
	var ok bool
	_ = s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketPaths).Get([]byte(path)); len(v) == len(id) {
			copy(id[:], v)
			ok = true
		}
		return nil
	})
	return id, ok
}

func (s *store) put(id ID, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketBlobs).Put(id[:], v); err != nil {
			return err
		}
		return tx.Bucket(bucketPaths).Put([]byte(r.Path), id[:])
	})
}

// markSynced clears the Unsynced flag of id's record, if it still names
// the file that was made durable (path and mtime): a record that was
// removed or replaced meanwhile is left alone.
func (s *store) markSynced(id ID, path string, mtime int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		v := b.Get(id[:])
		if v == nil {
			return nil
		}
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if !r.Unsynced || r.Path != path || r.MTime != mtime {
			return nil
		}
		r.Unsynced = false
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return b.Put(id[:], v)
	})
}

// replace writes r over id's record if that is still old: a record
// changed meanwhile (Remove, a newer download) is left alone.
func (s *store) replace(id ID, old, r record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if cur := b.Get(id[:]); cur == nil || !sameRecord(cur, old) {
			return nil
		}
		return b.Put(id[:], v)
	})
}

// deleteIf removes id's record if it is still old.
func (s *store) deleteIf(id ID, old record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		if cur := b.Get(id[:]); cur == nil || !sameRecord(cur, old) {
			return nil
		}
		if err := b.Delete(id[:]); err != nil {
			return err
		}
		p := tx.Bucket(bucketPaths)
		if cur := p.Get([]byte(old.Path)); cur != nil && ID(cur) == id {
			return p.Delete([]byte(old.Path))
		}
		return nil
	})
}

func sameRecord(v []byte, r record) bool {
	var cur record
	return json.Unmarshal(v, &cur) == nil && cur == r
}

// unsynced lists the records an earlier run left unsynced.
func (s *store) unsynced() (out []struct {
	id ID
	r  record
}) {
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
			var r record
			if len(k) == 32 && json.Unmarshal(v, &r) == nil && r.Unsynced {
				out = append(out, struct {
					id ID
					r  record
				}{ID(k), r})
			}
			return nil
		})
	})
	return out
}

func (s *store) delete(id ID) (record, error) {
	var r record
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketBlobs)
		v := b.Get(id[:])
		if v == nil {
			return ErrNotFound
		}
		if err := json.Unmarshal(v, &r); err != nil {
			return err
		}
		if err := b.Delete(id[:]); err != nil {
			return err
		}
		p := tx.Bucket(bucketPaths)
		if cur := p.Get([]byte(r.Path)); cur != nil && ID(cur) == id {
			return p.Delete([]byte(r.Path))
		}
		return nil
	})
	return r, err
}

func (s *store) list() []Info {
	var out []Info
	_ = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBlobs).ForEach(func(k, v []byte) error {
			var r record
			if len(k) == 32 && json.Unmarshal(v, &r) == nil {
				out = append(out, Info{ID: ID(k), Size: r.Size, Name: r.Name, Path: r.Path})
			}
			return nil
		})
	})
	return out
}

// loadTree reads and verifies the stored outboard of id.
func (s *store) loadTree(id ID) (*tree, error) {
	b, err := os.ReadFile(s.treePath(id))
	if err != nil {
		return nil, err
	}
	return parseTree(id, b)
}

func (s *store) saveTree(id ID, t *tree) error {
	return writeFileAtomic(s.treePath(id), t.outboard)
}

// fresh reports whether the recorded file is still what was hashed.
func (r record) fresh() error {
	fi, err := os.Stat(r.Path)
	if err != nil {
		return err
	}
	if fi.Size() != r.Size || fi.ModTime().UnixNano() != r.MTime {
		return fmt.Errorf("%w: %s", ErrStale, r.Path)
	}
	return nil
}

func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return errors.Join(err, os.Remove(tmp))
	}
	return nil
}
