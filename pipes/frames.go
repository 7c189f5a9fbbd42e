package pipes

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	pool "github.com/libp2p/go-buffer-pool"
)

// Message-pipe frames on the wire are go-msgio's varint framing: a uvarint
// length, then that many bytes (type | uvarint number | payload, see
// parseFrame). This file reads and writes them without go-msgio's extra
// copies: a sent message is copied once, into a pooled frame buffer that
// also serves as its resend copy, and a received message is read straight
// into a pooled buffer of its own that Recv hands out without copying it
// again (and Release gives back).

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

// nextFrame reads the next frame after the hello and decodes it as
// parseFrame does. A data frame's payload is read straight into a pooled
// buffer of its own, which Recv hands out and Release gives back.
func (f *frameReader) nextFrame() (typ byte, n uint64, data []byte, err error) {
	size, err := binary.ReadUvarint(f.br)
	if err != nil {
		return 0, 0, nil, err
	}
	if size > uint64(f.max) {
		return 0, 0, nil, fmt.Errorf("%w: %d bytes, limit %d", errFrameTooLarge, size, f.max)
	}
	if size == 0 {
		return 0, 0, nil, errBadFrame
	}
	// The type and number: at most 1+MaxVarintLen64 bytes, within the
	// frame and the read buffer.
	hdr, err := f.br.Peek(min(int(size), 1+binary.MaxVarintLen64))
	if err != nil {
		return 0, 0, nil, unexpectedEOF(err)
	}
	if typ = hdr[0]; typ != fData {
		b := make([]byte, size)
		if _, err := io.ReadFull(f.br, b); err != nil {
			return 0, 0, nil, unexpectedEOF(err)
		}
		return parseFrame(b)
	}
	v, k := binary.Uvarint(hdr[1:])
	if k <= 0 {
		return typ, 0, nil, errBadFrame
	}
	_, _ = f.br.Discard(1 + k) // peeked: cannot fail
	payload := int(size) - 1 - k
	if payload == 0 {
		return typ, v, []byte{}, nil
	}
	data = pool.Get(payload)
	if _, err := io.ReadFull(f.br, data); err != nil {
		pool.Put(data)
		return 0, 0, nil, unexpectedEOF(err)
	}
	return typ, v, data, nil
}

// unexpectedEOF is err, but an end of stream inside a frame.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
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
