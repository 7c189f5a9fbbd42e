package farm

import (
	"context"
	"encoding/hex"
	"errors"

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
// against the hash before it is used. Node's implementation is the content
// package, scoped to the farm's members.
type Blobs interface {
	// Put stores data and offers it to the farm's members.
	Put(ctx context.Context, data []byte) (Ref, error)
	// Get returns the blob ref, at most max bytes, from the local store or
	// from one of the hinted members.
	Get(ctx context.Context, ref Ref, max int64, hints []string) ([]byte, error)
}

// ErrNoBlob says no member offered the blob.
var ErrNoBlob = errors.New("farm: blob not found")
