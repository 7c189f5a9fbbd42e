package pipes

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func helloBytes(flags byte, sid [sidLen]byte, recv uint64) []byte {
	b := append([]byte{fHello, flags}, sid[:]...)
	return binary.AppendUvarint(b, recv)
}

// FuzzHelloFrame: any bytes as a hello; a hello that parses encodes back to
// the bytes it was read from (up to the varint's end).
func FuzzHelloFrame(f *testing.F) {
	var sid [sidLen]byte
	copy(sid[:], "0123456789abcdef")
	f.Add(helloBytes(helloReliable, sid, 0))
	f.Add(helloBytes(helloReliable|helloResume, sid, 1<<40))
	f.Add(helloBytes(0, sid, 7))
	f.Add([]byte{fHello})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b)
		if err != nil {
			return
		}
		enc := helloBytes(h.flags, h.sid, h.recv)
		if !bytes.HasPrefix(b, enc[:2+sidLen]) {
			t.Fatalf("hello %x parsed as %+v", b, h)
		}
	})
}

// FuzzPipeFrame: any bytes as a data, ack, close or refuse frame; a data
// frame's payload is what follows its sequence number.
func FuzzPipeFrame(f *testing.F) {
	f.Add(dataFrame(1, []byte("hello")))
	f.Add(dataFrame(1<<62, nil))
	f.Add(binary.AppendUvarint([]byte{fAck}, 300))
	f.Add(binary.AppendUvarint([]byte{fHelloAck}, 0))
	f.Add([]byte{fClose})
	f.Add([]byte{fRefuse})
	f.Add([]byte{fData, 0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, n, data, err := parseFrame(b)
		// The stream reader decodes the same frame, length-prefixed, the
		// same way, without the copy.
		wire := append(binary.AppendUvarint(nil, uint64(len(b))), b...)
		rtyp, rn, rdata, rerr := newFrameReader(bytes.NewReader(wire), 1<<20).nextFrame()
		if (err == nil) != (rerr == nil) || err == nil && (rtyp != typ || rn != n || !bytes.Equal(rdata, data)) {
			t.Fatalf("frame %x: parseFrame %d %d %x %v, frameReader %d %d %x %v", b, typ, n, data, err, rtyp, rn, rdata, rerr)
		}
		if err != nil {
			return
		}
		if typ == fData && !bytes.Equal(dataFrame(n, data), b) && len(binary.AppendUvarint(nil, n)) == len(b)-1-len(data) {
			t.Fatalf("data frame %x parsed as seq %d payload %x", b, n, data)
		}
	})
}
