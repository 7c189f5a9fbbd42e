package content

import (
	"errors"
	"strings"
	"testing"

	"lukechampine.com/blake3"

	"github.com/juxta-p2p/juxta/peer"
)

func testLink(t testing.TB) Link {
	id, err := peer.ParseID("12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf")
	if err != nil {
		t.Fatal(err)
	}
	return Link{
		ID: ID(blake3.Sum256([]byte("x"))), Size: 123456789, Name: "holiday photos.tar",
		Providers: []peer.Addr{{ID: id, Addrs: []string{"/ip4/127.0.0.1/tcp/4001"}}},
	}
}

func TestLinkRoundTrip(t *testing.T) {
	l := testLink(t)
	s := l.String()
	if !strings.HasPrefix(s, "juxtac1") {
		t.Fatalf("link %q", s)
	}
	got, err := ParseLink("  " + strings.ToUpper(s) + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != l.ID || got.Size != l.Size || got.Name != l.Name || len(got.Providers) != 1 ||
		got.Providers[0].ID != l.Providers[0].ID || got.Providers[0].Addrs[0] != l.Providers[0].Addrs[0] {
		t.Fatalf("round trip: %+v, want %+v", got, l)
	}
}

func TestLinkErrors(t *testing.T) {
	good := testLink(t).String()
	damaged := []byte(good)
	damaged[20] ^= 1
	if damaged[20] < 'a' || damaged[20] > 'z' {
		damaged[20] = 'q'
	}
	cases := map[string]error{
		"":                        ErrLinkEmpty,
		"juxta1abc":               ErrLinkPrefix,
		"juxtac":                  ErrLinkTruncated,
		"juxtac9aaaa":             ErrLinkVersion,
		"juxtac1!!!!":             ErrLinkEncoding,
		"juxtac1aa":               ErrLinkTruncated,
		string(damaged):           ErrLinkChecksum,
		strings.Repeat("a", 5000): ErrLinkTooLong,
	}
	for in, want := range cases {
		if _, err := ParseLink(in); !errors.Is(err, want) {
			t.Errorf("ParseLink(%.20q) = %v, want %v", in, err, want)
		}
	}
	// A valid checksum over a bad payload.
	p := []byte{1, 2, 3}
	sum := linkSum(p)
	bad := linkPrefix + "1" + strings.ToLower(b32.EncodeToString(append(p, sum[:]...)))
	if _, err := ParseLink(bad); !errors.Is(err, ErrLinkTruncated) {
		t.Errorf("short payload: %v", err)
	}
}

func FuzzParseLink(f *testing.F) {
	f.Add(testLink(f).String())
	f.Add("juxtac1")
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseLink(s)
		if err != nil {
			return
		}
		again, err := ParseLink(l.String())
		if err != nil || again.ID != l.ID || again.Size != l.Size || again.Name != l.Name {
			t.Fatalf("re-parse of %q: %+v, %v", s, again, err)
		}
	})
}
