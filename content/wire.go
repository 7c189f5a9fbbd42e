package content

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

// ProtocolID is the libp2p protocol of the content swarm. A downloader opens
// one stream per provider and content ID; the stream carries frames both ways:
//
//	type (1 byte) | length (4 bytes, big-endian) | payload (length bytes)
//
// The downloader sends hello, then requests and cancels; the provider answers
// with info (size and have-bitfield), the tree if asked, pieces, have-updates,
// choke and unchoke, or an error. Every frame is bounded by maxFrame.
const ProtocolID = "/juxta/content/1"

const (
	fHello   byte = 1 // id [32] | flags
	fInfo    byte = 2 // size u64 | bitfield
	fTree    byte = 3 // offset u32 | outboard bytes
	fRequest byte = 4 // piece u32
	fCancel  byte = 5 // piece u32
	fPiece   byte = 6 // piece u32 | data
	fHave    byte = 7 // piece u32
	fChoke   byte = 8
	fUnchoke byte = 9
	fError   byte = 10 // code | message
	// fInterested and fNotInterested say whether the downloader wants pieces
	// the provider has; the choker ranks only interested downloaders.
	fInterested    byte = 11
	fNotInterested byte = 12

	helloWantTree byte = 1

	frameHeader = 5
	// maxFrame bounds every frame's payload: a piece and its index.
	maxFrame = PieceSize + 4
	// maxErrorMsg bounds an error frame's message.
	maxErrorMsg = 256
)

// Error codes in error frames.
const (
	codeNotFound byte = 1
	codeDenied   byte = 2
	codeBusy     byte = 3
	codeStale    byte = 4
	codeProtocol byte = 5
)

var errFrame = fmt.Errorf("%w: malformed frame", ErrProtocol)

// remoteError is an error frame from a provider.
type remoteError struct {
	code byte
	msg  string
}

func (e *remoteError) Error() string { return "content: provider: " + e.msg }

func (e *remoteError) Unwrap() error {
	switch e.code {
	case codeNotFound:
		return ErrNotFound
	case codeDenied:
		return ErrDenied
	case codeBusy:
		return ErrBusy
	case codeStale:
		return ErrStale
	}
	return ErrProtocol
}

// readFrame reads one frame of at most limit bytes into buf (allocating when
// buf is too small) and checks its shape: the payload's length is valid for
// its type.
func readFrame(r *bufio.Reader, buf []byte, limit int) (byte, []byte, error) {
	var hdr [frameHeader]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > uint32(limit) {
		return 0, nil, fmt.Errorf("%w: type %d of %d bytes, limit %d", errFrame, hdr[0], n, limit)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	p := buf[:n]
	if _, err := io.ReadFull(r, p); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	if err := checkFrame(hdr[0], p); err != nil {
		return 0, nil, err
	}
	return hdr[0], p, nil
}

func checkFrame(typ byte, p []byte) error {
	ok := true
	switch typ {
	case fHello:
		ok = len(p) == 33
	case fInfo:
		ok = len(p) >= 8 && len(p)-8 <= (MaxSize/PieceSize+7)/8
	case fTree, fPiece:
		ok = len(p) >= 4
	case fRequest, fCancel, fHave:
		ok = len(p) == 4
	case fChoke, fUnchoke, fInterested, fNotInterested:
		ok = len(p) == 0
	case fError:
		ok = len(p) >= 1 && len(p) <= 1+maxErrorMsg
	default:
		return fmt.Errorf("%w: unknown type %d", errFrame, typ)
	}
	if !ok {
		return fmt.Errorf("%w: type %d with %d bytes", errFrame, typ, len(p))
	}
	return nil
}

// writeFrame writes a frame made of parts; it does not flush.
func writeFrame(w *bufio.Writer, typ byte, parts ...[]byte) error {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	var hdr [frameHeader]byte
	putHeader(hdr[:], typ, n)
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// putHeader writes a frame header of type typ and payload length n into b.
func putHeader(b []byte, typ byte, n int) {
	b[0] = typ
	binary.BigEndian.PutUint32(b[1:frameHeader], uint32(n))
}

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func getU32(p []byte) uint32 { return binary.BigEndian.Uint32(p) }

// bitfield is a piece set, one bit per piece, most significant bit first.
type bitfield []byte

func newBitfield(n int) bitfield    { return make(bitfield, (n+7)/8) }
func (b bitfield) has(i int) bool   { return b[i/8]&(0x80>>(i%8)) != 0 }
func (b bitfield) set(i int)        { b[i/8] |= 0x80 >> (i % 8) }
func (b bitfield) valid(n int) bool { return len(b) == (n+7)/8 && b.trailingClear(n) }
func (b bitfield) trailingClear(n int) bool {
	for i := n; i < len(b)*8; i++ {
		if b.has(i) {
			return false
		}
	}
	return true
}
