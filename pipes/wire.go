package pipes

import (
	"encoding/binary"
	"errors"
)

// The message pipe's frames, decoded apart from any connection so that they
// can be fuzzed (FuzzHelloFrame, FuzzPipeFrame).

// hello is the first frame of every message-pipe stream.
type hello struct {
	flags byte
	sid   [sidLen]byte
	recv  uint64 // the dialer's highest delivered sequence number
	win   window // the dialer's send window; zero from older peers
}

// window is a sender's MessageConfig.Window and WindowBytes, told to the
// receiver in the hello and its answer so that it acks before the sender
// runs out of room (ackDueLocked). Zero: not told (an older peer).
type window struct{ msgs, bytes int }

// maxToldWindow bounds the window values a peer may tell.
const maxToldWindow = 1 << 30

func appendWindow(b []byte, w window) []byte {
	b = binary.AppendUvarint(b, uint64(w.msgs))
	return binary.AppendUvarint(b, uint64(w.bytes))
}

// parseWindow decodes the optional window after a hello's or a hello
// answer's number; what is absent or malformed reads as not told.
func parseWindow(b []byte) window {
	m, n := binary.Uvarint(b)
	if n <= 0 {
		return window{}
	}
	v, k := binary.Uvarint(b[n:])
	if k <= 0 {
		return window{}
	}
	return window{int(min(m, maxToldWindow)), int(min(v, maxToldWindow))}
}

var errBadFrame = errors.New("pipes: malformed frame")

// parseHello decodes a hello frame: type | flags | sid | recvSeq
// (uvarint), then optionally the window (two uvarints), which older peers
// do not send.
func parseHello(b []byte) (hello, error) {
	var h hello
	if len(b) < 2+sidLen || b[0] != fHello {
		return h, errBadFrame
	}
	h.flags = b[1]
	copy(h.sid[:], b[2:2+sidLen])
	var n int
	if h.recv, n = binary.Uvarint(b[2+sidLen:]); n <= 0 {
		return h, errBadFrame
	}
	h.win = parseWindow(b[2+sidLen+n:])
	return h, nil
}

// parseFrame decodes a frame after the hello: its type, its number (a data
// frame's sequence number, an ack's cumulative count, a hello answer's
// receive count) and a data frame's payload, which aliases b.
func parseFrame(b []byte) (typ byte, n uint64, data []byte, err error) {
	if len(b) == 0 {
		return 0, 0, nil, errBadFrame
	}
	switch typ = b[0]; typ {
	case fData, fAck, fHelloAck:
		v, k := binary.Uvarint(b[1:])
		if k <= 0 {
			return typ, 0, nil, errBadFrame
		}
		if typ == fData {
			data = b[1+k:]
		}
		return typ, v, data, nil
	case fClose, fRefuse:
		return typ, 0, nil, nil
	}
	return typ, 0, nil, errBadFrame
}
