package farm

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"lukechampine.com/blake3"
)

// Ref names a blob (a wasm module, a large input) by its BLAKE3-256 hash,
// the same naming as the content package's content.ID.
type Ref [32]byte

// RefOf returns the reference of data.
func RefOf(data []byte) Ref { return Ref(blake3.Sum256(data)) }

// IsZero reports whether r is the zero reference.
func (r Ref) IsZero() bool { return r == Ref{} }

func (r Ref) String() string { return hex.EncodeToString(r[:]) }

// Blobs moves modules and large data between farm members by reference. A
// member Puts what it offers; any member Gets it by reference, verified
// against the hash before it is used. The farm uses this interface only, so
// the transport behind it is one change.
type Blobs interface {
	// Put stores data and offers it to the farm's members.
	Put(ctx context.Context, data []byte) (Ref, error)
	// Get returns the blob ref, at most max bytes, from the local store or
	// from one of the hinted members.
	Get(ctx context.Context, ref Ref, max int64, hints []string) ([]byte, error)
}

// ErrNoBlob says no member offered the blob.
var ErrNoBlob = errors.New("farm: blob not found")

// diskBlobs keeps blobs as files named by their reference.
type diskBlobs struct {
	dir string
	mu  sync.Mutex // serialises writes
}

func newDiskBlobs(dir string) (*diskBlobs, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("farm: blobs: %w", err)
	}
	return &diskBlobs{dir: dir}, nil
}

func (d *diskBlobs) path(r Ref) string { return filepath.Join(d.dir, r.String()) }

func (d *diskBlobs) put(data []byte) (Ref, error) {
	r := RefOf(data)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, err := os.Stat(d.path(r)); err == nil {
		return r, nil
	}
	tmp, err := os.CreateTemp(d.dir, "tmp-*")
	if err != nil {
		return r, fmt.Errorf("farm: blobs: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), d.path(r))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return r, fmt.Errorf("farm: blobs: %w", err)
	}
	return r, nil
}

// get reads a local blob and checks it against its name.
func (d *diskBlobs) get(r Ref, max int64) ([]byte, error) {
	fi, err := os.Stat(d.path(r))
	if err != nil {
		return nil, ErrNoBlob
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%w: blob %s is %d bytes (at most %d)", ErrTooLarge, r, fi.Size(), max)
	}
	b, err := os.ReadFile(d.path(r))
	if err != nil {
		return nil, fmt.Errorf("farm: blobs: %w", err)
	}
	if RefOf(b) != r {
		os.Remove(d.path(r))
		return nil, fmt.Errorf("farm: blob %s is corrupt on disk; removed", r)
	}
	return b, nil
}
