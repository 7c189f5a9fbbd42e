package peer

import (
	"bytes"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

// FuzzObserveReply: any answer from a super-peer's observe service; one that
// parses is a multiaddr that encodes back to its bytes.
func FuzzObserveReply(f *testing.F) {
	for _, s := range []string{"/ip4/203.0.113.7/tcp/4001", "/ip6/2001:db8::1/udp/4001/quic-v1", "/ip4/127.0.0.1/tcp/1"} {
		b := ma.StringCast(s).Bytes()
		f.Add(append([]byte{byte(len(b))}, b...))
	}
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := readObserveReply(bytes.NewReader(b))
		if err != nil {
			return
		}
		if !bytes.Equal(a.Bytes(), b[1:1+int(b[0])]) {
			t.Fatalf("reply %x read as %s", b, a)
		}
	})
}
