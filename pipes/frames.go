package pipes

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Message-pipe frames on the wire are go-msgio's varint framing: a uvarint
// length, then that many bytes (type | uvarint number | payload, see
// parseFrame). This file reads and writes them without go-msgio's extra
// copies: a sent message is copied once, into a frame buffer that also
// serves as its resend copy, and a received frame is read straight into a
// buffer of its own that Recv hands out without copying it again.

// maxHeader bounds the bytes before a data frame's payload: the length, the
// type and the sequence number.
const maxHeader = 2*binary.MaxVarintLen64 + 1

// readBufSize is the read-ahead of a message-pipe stream: a run of small
// frames costs one stream read instead of three per frame (go-msgio reads a
// varint length a byte at a time).
const readBufSize = 4 << 10

var errFrameTooLarge = errors.New("pipes: frame larger than MaxMessage")

// frameReader reads varint-framed frames of at most max bytes.
type frameReader struct {
	br  *bufio.Reader
	max int
}

func newFrameReader(r io.Reader, max int) *frameReader {
	return &frameReader{br: bufio.NewReaderSize(r, readBufSize), max: max}
}

// next returns the next frame in a new buffer the caller owns. A length over
// the bound fails before anything is allocated.
func (f *frameReader) next() ([]byte, error) {
	n, err := binary.ReadUvarint(f.br)
	if err != nil {
		return nil, err
	}
	if n > uint64(f.max) {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, n, f.max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f.br, b); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// frameBuf copies data into b (len(b) = maxHeader+len(data)) behind room for
// the header, for sealFrame, and returns b.
func frameBuf(b, data []byte) []byte {
	copy(b[maxHeader:], data)
	return b
}

// sealFrame writes the header (length, typ, n) into the room frameBuf left and
// returns the frame, ready to write: a suffix of b.
func sealFrame(b []byte, typ byte, n uint64) []byte {
	data := len(b) - maxHeader
	inner := 1 + uvarintLen(n)
	start := maxHeader - inner - uvarintLen(uint64(inner+data))
	k := start + binary.PutUvarint(b[start:], uint64(inner+data))
	b[k] = typ
	binary.PutUvarint(b[k+1:], n)
	return b[start:]
}

// smallFrame is a frame with no payload: an ack, a hello answer, a close or a
// refusal.
func smallFrame(typ byte, n uint64, withN bool) []byte {
	inner := []byte{typ}
	if withN {
		inner = binary.AppendUvarint(inner, n)
	}
	return append(binary.AppendUvarint(make([]byte, 0, maxHeader), uint64(len(inner))), inner...)
}

// writeFrame writes one whole frame built by appendFrame.
func writeFrame(w io.Writer, typ byte, payload []byte) error {
	_, err := w.Write(appendFrame(nil, typ, payload))
	return err
}

// appendFrame appends a frame of type typ whose body after the type byte is
// payload (used for the hello, whose body is not a number and data).
func appendFrame(dst []byte, typ byte, payload []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(1+len(payload)))
	dst = append(dst, typ)
	return append(dst, payload...)
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}
