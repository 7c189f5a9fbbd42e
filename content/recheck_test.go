package content

import (
	"os"
	"path/filepath"
	"testing"
)

// TestResumeRechecksClaimedPieces plays a power loss during a download: the
// state file claims pieces the part file never got. The resumed download
// verifies what the state file claims and fetches the lost pieces again,
// instead of finishing a file with a hole in it.
func TestResumeRechecksClaimedPieces(t *testing.T) {
	const pieces = 8
	ctx := testCtx(t)
	a := newNode(t, nil)
	src := writeRandom(t, t.TempDir(), "src", pieces*PieceSize, 21)
	info, err := a.s.Add(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	// What the disk held: pieces 0-5 claimed, of which 2 and 4 never
	// reached it (zeros, and a piece with one byte gone); 6 and 7 not yet
	// fetched.
	dst := filepath.Join(t.TempDir(), "dst")
	part := append([]byte(nil), data...)
	clear(part[2*PieceSize : 3*PieceSize])
	part[4*PieceSize+100] ^= 1
	clear(part[6*PieceSize:])
	if err := os.WriteFile(dst+partSuffix, part, 0o644); err != nil {
		t.Fatal(err)
	}
	claimed := newBitfield(pieces)
	for i := range 6 {
		claimed.set(i)
	}
	if err := writeState(dst+stateSuffix, info.ID, info.Size, claimed); err != nil {
		t.Fatal(err)
	}

	b := newNode(t, nil)
	if _, err := b.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
		t.Fatal(err)
	}
	sameFile(t, src, dst)
	// The two lost pieces and the two never fetched, each once; a piece
	// asked again after a stall on a loaded machine may add one more.
	if got, want := a.s.Uploaded(), int64(4*PieceSize); got < want || got > want+PieceSize {
		t.Fatalf("provider sent %d bytes, want %d (4 pieces)", got, want)
	}
	if b.s.Banned(a.p.ID()) {
		t.Fatal("the provider was blamed for this disk's loss")
	}
}
