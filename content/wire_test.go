package content

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

func frameBytes(typ byte, parts ...[]byte) []byte {
	var b bytes.Buffer
	w := bufio.NewWriter(&b)
	writeFrame(w, typ, parts...)
	w.Flush()
	return b.Bytes()
}

func TestFrameBounds(t *testing.T) {
	// A header announcing more than the limit is refused before the payload
	// is read or allocated.
	hdr := []byte{fPiece, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(hdr[1:], maxFrame+1)
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(hdr)), nil, maxFrame); !errors.Is(err, errFrame) {
		t.Fatalf("oversized frame: %v", err)
	}
	binary.BigEndian.PutUint32(hdr[1:], 100)
	if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(hdr)), nil, 16); !errors.Is(err, errFrame) {
		t.Fatalf("frame above the caller's limit: %v", err)
	}
	for _, bad := range [][]byte{
		frameBytes(fHello, make([]byte, 10)),
		frameBytes(fRequest, make([]byte, 5)),
		frameBytes(fChoke, []byte{1}),
		frameBytes(fError),
		frameBytes(99),
	} {
		if _, _, err := readFrame(bufio.NewReader(bytes.NewReader(bad)), nil, maxFrame); !errors.Is(err, errFrame) {
			t.Fatalf("frame %x: %v", bad[:5], err)
		}
	}
	good := frameBytes(fRequest, u32(7))
	typ, p, err := readFrame(bufio.NewReader(bytes.NewReader(good)), nil, maxFrame)
	if err != nil || typ != fRequest || getU32(p) != 7 {
		t.Fatalf("request frame: %d %x %v", typ, p, err)
	}
}

func FuzzFrameDecoder(f *testing.F) {
	f.Add(frameBytes(fHello, make([]byte, 33)))
	f.Add(append(frameBytes(fInfo, make([]byte, 9)), frameBytes(fPiece, u32(0), []byte("abc"))...))
	f.Add(frameBytes(fError, []byte{codeNotFound}, []byte("nope")))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bufio.NewReader(bytes.NewReader(b))
		buf := make([]byte, 64)
		for {
			typ, p, err := readFrame(r, buf, 1<<16)
			if err != nil {
				return
			}
			if len(p) > 1<<16 {
				t.Fatalf("frame of %d bytes above the limit", len(p))
			}
			if checkFrame(typ, p) != nil {
				t.Fatal("readFrame returned a frame checkFrame refuses")
			}
			switch typ {
			case fRequest, fCancel, fHave, fPiece, fTree:
				_ = getU32(p)
			case fInfo:
				_ = binary64(p)
				_ = bitfield(p[8:]).valid(len(p[8:]) * 8)
			case fError:
				_ = (&remoteError{code: p[0], msg: string(p[1:])}).Error()
			}
		}
	})
}
