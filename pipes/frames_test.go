package pipes

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/libp2p/go-msgio"
)

// dataFrame is a data frame's body (after its length), as sealFrame builds it.
func dataFrame(seq uint64, data []byte) []byte {
	f := sealFrame(frameBuf(make([]byte, maxHeader+len(data)), data), fData, seq)
	_, k := binary.Uvarint(f)
	return f[k:]
}

// TestFramesMatchMsgio: frames written here read back with go-msgio, the
// framing older peers use, and go-msgio's frames read back here, so that the
// wire format is unchanged.
func TestFramesMatchMsgio(t *testing.T) {
	var wire bytes.Buffer
	payloads := [][]byte{nil, []byte("x"), bytes.Repeat([]byte("ab"), 100), make([]byte, 70000)}
	seqs := []uint64{0, 1, 127, 128, 1 << 40, 1<<64 - 1}
	for _, p := range payloads {
		for _, seq := range seqs {
			wire.Write(sealFrame(frameBuf(make([]byte, maxHeader+len(p)), p), fData, seq))
		}
	}
	wire.Write(smallFrame(fAck, 300, true))
	wire.Write(smallFrame(fClose, 0, false))
	wire.Write(appendFrame(nil, fHello, []byte{1, 2, 3}))
	r := msgio.NewVarintReaderSize(bytes.NewReader(wire.Bytes()), 1<<20)
	for _, p := range payloads {
		for _, seq := range seqs {
			b, err := r.ReadMsg()
			if err != nil {
				t.Fatal(err)
			}
			typ, n, data, err := parseFrame(b)
			if err != nil || typ != fData || n != seq || !bytes.Equal(data, p) {
				t.Fatalf("data frame (seq %d, %d bytes) read back as type %d seq %d, %d bytes, err %v", seq, len(p), typ, n, len(data), err)
			}
		}
	}
	for _, want := range [][]byte{binary.AppendUvarint([]byte{fAck}, 300), {fClose}, {fHello, 1, 2, 3}} {
		b, err := r.ReadMsg()
		if err != nil || !bytes.Equal(b, want) {
			t.Fatalf("read %x (%v), want %x", b, err, want)
		}
	}

	// And the other way: msgio's frames through frameReader.
	wire.Reset()
	w := msgio.NewVarintWriter(&wire)
	for _, p := range payloads {
		if err := w.WriteMsg(append([]byte{fData, 5}, p...)); err != nil {
			t.Fatal(err)
		}
	}
	fr := newFrameReader(bytes.NewReader(wire.Bytes()), 1<<20)
	for _, p := range payloads {
		b, err := fr.next()
		if err != nil || !bytes.Equal(b, append([]byte{fData, 5}, p...)) {
			t.Fatalf("frameReader: %d bytes (%v), want %d", len(b), err, 2+len(p))
		}
	}
	if _, err := fr.next(); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

// TestFrameReaderBounds: a length over the bound fails before any allocation
// of that size, and a frame cut short is an unexpected EOF, not a message;
// for both of frameReader's reads (next for the hello, nextFrame after it).
func TestFrameReaderBounds(t *testing.T) {
	reads := map[string]func(r *frameReader) error{
		"next":      func(r *frameReader) error { _, err := r.next(); return err },
		"nextFrame": func(r *frameReader) error { _, _, _, err := r.nextFrame(); return err },
	}
	for name, read := range reads {
		huge := binary.AppendUvarint(nil, 1<<62)
		if err := read(newFrameReader(bytes.NewReader(huge), 1<<20)); !errors.Is(err, errFrameTooLarge) {
			t.Fatalf("%s: length 2^62: %v, want errFrameTooLarge", name, err)
		}
		over := binary.AppendUvarint(nil, 1<<20+1)
		if err := read(newFrameReader(bytes.NewReader(over), 1<<20)); !errors.Is(err, errFrameTooLarge) {
			t.Fatalf("%s: length bound+1: %v, want errFrameTooLarge", name, err)
		}
		for _, cut := range [][]byte{
			append(binary.AppendUvarint(nil, 100), make([]byte, 99)...),
			append(binary.AppendUvarint(nil, 100), dataFrame(7, make([]byte, 90))...),
			binary.AppendUvarint(nil, 100),
		} {
			if err := read(newFrameReader(bytes.NewReader(cut), 1<<20)); err != io.ErrUnexpectedEOF {
				t.Fatalf("%s: cut frame %x: %v, want io.ErrUnexpectedEOF", name, cut, err)
			}
		}
		bad := bytes.Repeat([]byte{0xff}, 11) // a varint that overflows
		if err := read(newFrameReader(bytes.NewReader(bad), 1<<20)); err == nil {
			t.Fatalf("%s: overflowing length accepted", name)
		}
	}
}
