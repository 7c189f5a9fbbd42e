package content

import (
	"bytes"
	"context"
	"math/rand/v2"
	"testing"

	"lukechampine.com/blake3"
)

func randBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b9))
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func TestTreeVerifiesEveryPiece(t *testing.T) {
	for _, n := range []int{0, 1, 1024, PieceSize - 1, PieceSize, PieceSize + 1, 3*PieceSize + 77, 8 * PieceSize} {
		data := randBytes(n, uint64(n))
		id, tr, err := hashContent(context.Background(), bytes.NewReader(data), int64(n), nil)
		if err != nil {
			t.Fatal(n, err)
		}
		if want := blake3.Sum256(data); id != ID(want) {
			t.Fatalf("size %d: ID %x is not BLAKE3 %x", n, id, want)
		}
		if tr.pieces() != numPieces(int64(n)) {
			t.Fatalf("size %d: %d pieces, want %d", n, tr.pieces(), numPieces(int64(n)))
		}
		for i := range tr.pieces() {
			p := data[i*PieceSize : i*PieceSize+pieceLen(int64(n), i)]
			if !tr.verify(i, p) {
				t.Fatalf("size %d: piece %d rejected", n, i)
			}
			if len(p) > 0 {
				bad := bytes.Clone(p)
				bad[len(bad)/2] ^= 1
				if tr.verify(i, bad) {
					t.Fatalf("size %d: flipped piece %d accepted", n, i)
				}
			}
			if tr.pieces() > 1 && tr.verify((i+1)%tr.pieces(), p) && pieceLen(int64(n), (i+1)%tr.pieces()) == len(p) {
				t.Fatalf("size %d: piece %d accepted at another index", n, i)
			}
		}
		// A tampered tree is refused.
		if len(tr.outboard) > 8 {
			ob := bytes.Clone(tr.outboard)
			ob[len(ob)-1] ^= 1
			if _, err := parseTree(id, ob); err == nil {
				t.Fatalf("size %d: tampered tree accepted", n)
			}
		}
		if _, err := parseTree(ID{1}, tr.outboard); err == nil && n > PieceSize {
			t.Fatalf("size %d: tree accepted for another ID", n)
		}
	}
}

func TestIDString(t *testing.T) {
	id := ID(blake3.Sum256([]byte("hello")))
	s := id.String()
	if s[:6] != "bafkr4" {
		t.Fatalf("CID %s does not start with bafkr4", s)
	}
	back, err := ParseID(s)
	if err != nil || back != id {
		t.Fatalf("ParseID(%s) = %v, %v", s, back, err)
	}
	if back, err := ParseID(id.Hex()); err != nil || back != id {
		t.Fatalf("ParseID(hex) = %v, %v", back, err)
	}
	if _, err := ParseID("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"); err == nil {
		t.Fatal("a sha2 CID parsed as a content ID")
	}
	if _, err := ParseID("nonsense"); err == nil {
		t.Fatal("nonsense parsed")
	}
}
