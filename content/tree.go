package content

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"

	"lukechampine.com/blake3/bao"
	"lukechampine.com/blake3/guts"
)

// Content is cut into pieces of PieceSize bytes (the last may be shorter).
// Each piece is one Bao chunk group (2^8 BLAKE3 chunks of 1 KiB), so the
// outboard tree holds one 64-byte parent node per piece and a piece is
// verified on arrival with one BLAKE3 pass over it and a look-up of its
// chaining value, which the tree binds to the root.
const (
	PieceSize = 256 << 10
	baoGroup  = 8
	// MaxSize bounds the content this package moves: 64 GiB, 262,144 pieces,
	// a 16 MiB outboard tree.
	MaxSize = 64 << 30
)

func numPieces(size int64) int {
	if size <= 0 {
		return 1
	}
	return int((size + PieceSize - 1) / PieceSize)
}

func pieceLen(size int64, i int) int {
	off := int64(i) * PieceSize
	return int(min(PieceSize, size-off))
}

func outboardSize(size int64) int { return bao.EncodedSize(int(size), baoGroup, true) }

// tree is a verified outboard: the chaining value of every piece.
type tree struct {
	size     int64
	outboard []byte
	leaves   [][8]uint32
}

type bufferAt []byte

func (b bufferAt) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || int(off)+len(p) > len(b) {
		return 0, io.ErrShortWrite
	}
	return copy(b[off:], p), nil
}

type progressReader struct {
	ctx  context.Context
	r    io.Reader
	n    int64
	tick func(n int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.n += int64(n)
	if p.tick != nil && n > 0 {
		p.tick(p.n)
	}
	return n, err
}

// hashContent computes the ID and outboard tree of size bytes read from r.
// tick, if set, is called with the bytes hashed so far.
func hashContent(ctx context.Context, r io.Reader, size int64, tick func(int64)) (ID, *tree, error) {
	if size > MaxSize {
		return ID{}, nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, int64(MaxSize))
	}
	ob := make(bufferAt, outboardSize(size))
	pr := &progressReader{ctx: ctx, r: r, tick: tick}
	root, err := bao.Encode(ob, pr, size, baoGroup, true)
	if err != nil {
		return ID{}, nil, err
	}
	t, err := parseTree(ID(root), ob)
	if err != nil { // cannot happen for our own encoding
		return ID{}, nil, err
	}
	return ID(root), t, nil
}

// parseTree verifies an outboard against id and extracts the pieces' chaining
// values. The parents are checked top-down, so every leaf is bound to the root.
func parseTree(id ID, outboard []byte) (*tree, error) {
	if len(outboard) < 8 {
		return nil, fmt.Errorf("%w: tree of %d bytes", ErrBadData, len(outboard))
	}
	size := binary.LittleEndian.Uint64(outboard)
	if size > MaxSize {
		return nil, fmt.Errorf("%w: tree for %d bytes", ErrTooLarge, size)
	}
	if len(outboard) != outboardSize(int64(size)) {
		return nil, fmt.Errorf("%w: tree of %d bytes for content of %d", ErrBadData, len(outboard), size)
	}
	t := &tree{size: int64(size), outboard: outboard, leaves: make([][8]uint32, 0, numPieces(int64(size)))}
	rest := outboard[8:]
	var rec func(cv [8]uint32, n uint64, flags uint32) bool
	rec = func(cv [8]uint32, n uint64, flags uint32) bool {
		if n <= PieceSize {
			t.leaves = append(t.leaves, cv)
			return true
		}
		l, r := bytesToCV(rest[:32]), bytesToCV(rest[32:64])
		rest = rest[64:]
		if guts.ChainingValue(guts.ParentNode(l, r, &guts.IV, flags)) != cv {
			return false
		}
		mid := uint64(1) << (bits.Len64(n-1) - 1)
		return rec(l, mid, 0) && rec(r, n-mid, 0)
	}
	if !rec(bytesToCV(id[:]), size, guts.FlagRoot) {
		return nil, fmt.Errorf("%w: tree does not match %s", ErrBadData, id)
	}
	return t, nil
}

func (t *tree) pieces() int { return len(t.leaves) }

// verify reports whether data is piece i of the content.
func (t *tree) verify(i int, data []byte) bool {
	if i < 0 || i >= len(t.leaves) || len(data) != pieceLen(t.size, i) {
		return false
	}
	n := compressGroup(data, uint64(i)*(PieceSize/guts.ChunkSize))
	if len(t.leaves) == 1 {
		n.Flags |= guts.FlagRoot
	}
	return guts.ChainingValue(n) == t.leaves[i]
}

func bytesToCV(b []byte) (cv [8]uint32) {
	_ = b[31]
	for i := range cv {
		cv[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return cv
}

// compressGroup is bao's unexported function of the same name (MIT licence,
// lukechampine.com/blake3 v1.4.1), without its copy of every buffer: the
// BLAKE3 subtree node of one chunk group starting at chunk counter.
func compressGroup(p []byte, counter uint64) guts.Node {
	var stack [54 - guts.MaxSIMD][8]uint32
	var sc uint64
	pushSubtree := func(cv [8]uint32) {
		i := 0
		for sc&(1<<i) != 0 {
			cv = guts.ChainingValue(guts.ParentNode(stack[i], cv, &guts.IV, 0))
			i++
		}
		stack[i] = cv
		sc++
	}
	// Whole buffers are hashed in place, not copied (bao copies them); the
	// last one, full or not, is kept for the final node.
	const bufSize = guts.MaxSIMD * guts.ChunkSize
	for len(p) > bufSize {
		pushSubtree(guts.ChainingValue(guts.CompressBuffer((*[bufSize]byte)(p), bufSize, &guts.IV, counter+(sc*guts.MaxSIMD), 0)))
		p = p[bufSize:]
	}
	var last *[bufSize]byte
	if len(p) == bufSize {
		last = (*[bufSize]byte)(p)
	} else {
		last = new([bufSize]byte)
		copy(last[:], p)
	}
	n := guts.CompressBuffer(last, len(p), &guts.IV, counter+(sc*guts.MaxSIMD), 0)
	for i := bits.TrailingZeros64(sc); i < bits.Len64(sc); i++ {
		if sc&(1<<i) != 0 {
			n = guts.ParentNode(stack[i], guts.ChainingValue(n), &guts.IV, 0)
		}
	}
	return n
}
