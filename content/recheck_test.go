package content

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// The resume tests play a power loss during a download: the state file
// claims pieces the part file never got. Pieces 0-5 are claimed, of which 2
// (zeros) and 4 (one bit flipped) never reached the disk; 6 and 7 were not
// fetched yet.
const (
	recheckPieces = 8
	recheckClaims = 6
)

// leaveResumable adds random content to a and writes what such a download
// of it leaves at dst, with the state file stamped by another boot (stamp
// true) or in the format without a stamp.
func leaveResumable(t *testing.T, a *node, seed uint64, stamp bool) (info Info, src, dst string) {
	t.Helper()
	src = writeRandom(t, t.TempDir(), "src", recheckPieces*PieceSize, seed)
	info, err := a.s.Add(testCtx(t), src)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst = filepath.Join(t.TempDir(), "dst")
	part := append([]byte(nil), data...)
	clear(part[2*PieceSize : 3*PieceSize])
	part[4*PieceSize+100] ^= 1
	clear(part[recheckClaims*PieceSize:])
	if err := os.WriteFile(dst+partSuffix, part, 0o644); err != nil {
		t.Fatal(err)
	}
	claimed := newBitfield(recheckPieces)
	for i := range recheckClaims {
		claimed.set(i)
	}
	state := stateBytes(info.ID, info.Size, claimed)[:stateHeader+recheckPieces]
	if stamp {
		state = append(state, "00000000-0000-4000-8000-000000000000"...)
	}
	if err := os.WriteFile(dst+stateSuffix, state, 0o644); err != nil {
		t.Fatal(err)
	}
	return info, src, dst
}

// A resumed download after another boot verifies what the state file claims
// and fetches the lost pieces again, instead of finishing a file with a
// hole in it; the provider is not blamed. Both ways a download gets its
// tree are covered: from the provider, and from the store of an earlier run
// (with a state file from before the boot stamp).
func TestResumeRechecksClaimedPieces(t *testing.T) {
	for _, c := range []struct {
		name             string
		stamp, treeSaved bool
	}{
		{"another boot, tree from the provider", true, false},
		{"no stamp, tree stored", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := testCtx(t)
			a := newNode(t, nil)
			info, src, dst := leaveResumable(t, a, 21, c.stamp)
			b := newNode(t, nil)
			if c.treeSaved {
				tr, err := a.s.st.loadTree(info.ID)
				if err == nil {
					err = b.s.st.saveTree(info.ID, tr)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			if _, err := b.s.Fetch(ctx, info.ID, dst, WithProviders(a.p.Addr()), OnlyProviders()); err != nil {
				t.Fatal(err)
			}
			sameFile(t, src, dst)
			// The two lost pieces and the two never fetched, each once; a
			// piece asked again after a stall on a loaded machine may add
			// one more.
			if got, want := a.s.Uploaded(), int64(4*PieceSize); got < want || got > want+PieceSize {
				t.Fatalf("provider sent %d bytes, want %d (4 pieces)", got, want)
			}
			if b.s.Banned(a.p.ID()) {
				t.Fatal("the provider was blamed for this disk's loss")
			}
		})
	}
}

// A recheck rewrites the state file before anything is fetched: the lost
// pieces unclaimed, and the stamp of this boot, so that the next resume in
// this boot trusts it without reading the part file again.
func TestRecheckRewritesStateFile(t *testing.T) {
	boot := bootID()
	if boot == nil {
		t.Skip("no boot ID on this system: every resume rechecks")
	}
	ctx := testCtx(t)
	a := newNode(t, nil)
	info, _, dst := leaveResumable(t, a, 22, true)
	tr, err := a.s.st.loadTree(info.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.s.Close()
	b := newNode(t, nil)
	if err := b.s.st.saveTree(info.ID, tr); err != nil {
		t.Fatal(err)
	}
	// No provider: the download checks what it has, then fails.
	if _, err := b.s.Fetch(ctx, info.ID, dst, OnlyProviders()); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("Fetch with no provider = %v, want ErrNoProviders", err)
	}
	state, err := os.ReadFile(dst + stateSuffix)
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{1, 1, 0, 1, 0, 1, 0, 0}
	if got := state[stateHeader : stateHeader+recheckPieces]; !bytes.Equal(got, want) {
		t.Fatalf("state file claims %v, want %v", got, want)
	}
	if got := state[stateHeader+recheckPieces:]; !bytes.Equal(got, boot) {
		t.Fatalf("state file stamped %q, want this boot's %q", got, boot)
	}
}
