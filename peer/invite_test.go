package peer

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	lpeer "github.com/libp2p/go-libp2p/core/peer"
)

func testID(t testing.TB) ID {
	t.Helper()
	_, pub, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	id, err := lpeer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return ID(id)
}

func sampleInvite(t testing.TB) Invite {
	return Invite{
		Peer: Addr{ID: testID(t), Addrs: []string{
			"/ip4/127.0.0.1/tcp/4001",
			"/ip4/127.0.0.1/udp/4001/quic-v1",
		}, Relays: []Addr{{ID: testID(t), Addrs: []string{"/ip4/127.0.0.2/udp/7000/quic-v1"}}}},
	}
}

func TestInviteRoundTrip(t *testing.T) {
	inv := sampleInvite(t)
	s := inv.String()
	if !strings.HasPrefix(s, "juxta1") {
		t.Fatalf("invite %q lacks prefix", s)
	}
	for _, form := range []string{s, strings.ToUpper(s), "  " + s + "\n"} {
		got, err := ParseInvite(form)
		if err != nil {
			t.Fatalf("ParseInvite(%q): %v", form, err)
		}
		if got.Peer.ID != inv.Peer.ID || len(got.Peer.Addrs) != 2 || got.Peer.Addrs[1] != inv.Peer.Addrs[1] {
			t.Fatalf("peer mismatch: %v", got.Peer)
		}
		if len(got.Peer.Relays) != 1 || got.Peer.Relays[0].ID != inv.Peer.Relays[0].ID {
			t.Fatalf("super-peer mismatch: %v", got.Peer.Relays)
		}
		if got.Pipe != "" {
			t.Fatalf("pipe %q from a version 1 invite", got.Pipe)
		}
	}
}

// reencode builds an invite string around an arbitrary payload with a valid
// checksum, to reach the errors behind the checksum.
func reencode(payload []byte) string {
	sum := inviteChecksum(inviteV1, payload)
	return "juxta1" + strings.ToLower(b32.EncodeToString(append(payload, sum[:]...)))
}

func TestParseInviteErrors(t *testing.T) {
	good := sampleInvite(t).String()
	id := []byte(testID(t))
	u := binary.AppendUvarint
	withID := func(rest ...byte) []byte {
		b := append(u(nil, uint64(len(id))), id...)
		return append(b, rest...)
	}

	flipped := []byte(good)
	if flipped[10] == 'a' {
		flipped[10] = 'b'
	} else {
		flipped[10] = 'a'
	}
	cases := []struct {
		name string
		in   string
		want error
	}{
		{"empty", "   ", ErrInviteEmpty},
		{"oversized", "juxta1" + strings.Repeat("a", MaxInviteLen), ErrInviteTooLong},
		{"prefix", "jxta1abc", ErrInvitePrefix},
		{"prefix only", "juxta", ErrInviteTruncated},
		{"version", "juxta9" + good[6:], ErrInviteVersion},
		{"encoding", good[:20] + "!" + good[21:], ErrInviteEncoding},
		{"checksum", string(flipped), ErrInviteChecksum},
		{"short body", "juxta1aaaa", ErrInviteTruncated},
		{"truncated field", reencode(u(nil, 200)), ErrInviteTruncated},
		{"bad peer id", reencode(append(u(nil, 3), 1, 2, 3)), ErrInvitePeerID},
		{"too many addrs", reencode(withID(byte(MaxInviteAddrs + 1))), ErrInviteTooMany},
		{"bad address", reencode(withID(1, 3, 0xff, 0xff, 0xff)), ErrInviteAddr},
		{"trailing", reencode(withID(0, 0, 7)), ErrInviteTrailing},
		{"unreachable", reencode(withID(0, 0)), ErrInviteUnreachable},
	}
	seen := map[string]string{}
	for _, c := range cases {
		_, err := ParseInvite(c.in)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: got %v, want %v", c.name, err, c.want)
			continue
		}
		if prev, dup := seen[err.Error()]; dup {
			t.Errorf("%s: same message as %s: %v", c.name, prev, err)
		}
		seen[err.Error()] = c.name
	}
	if len(seen) < 10 {
		t.Fatalf("only %d distinct errors", len(seen))
	}
}

func TestParseAddr(t *testing.T) {
	inv := sampleInvite(t)
	ai, err := ParseAddr(inv.String())
	if err != nil || ai.ID != inv.Peer.ID {
		t.Fatalf("from invite: %v %v", ai, err)
	}
	m := "/ip4/127.0.0.1/tcp/1/p2p/" + inv.Peer.ID.String()
	ai, err = ParseAddr(m)
	if err != nil || ai.ID != inv.Peer.ID || len(ai.Addrs) != 1 {
		t.Fatalf("from multiaddr: %v %v", ai, err)
	}
	if _, err := ParseAddr("/ip4/127.0.0.1/tcp/1"); !errors.Is(err, ErrInvitePeerID) {
		t.Fatalf("multiaddr without /p2p: %v", err)
	}
	if _, err := ParseAddr("/ip4/999.0.0.1/tcp/1"); !errors.Is(err, ErrInviteAddr) {
		t.Fatalf("bad multiaddr: %v", err)
	}
}

func FuzzParseInvite(f *testing.F) {
	f.Add(sampleInvite(f).String())
	f.Add("juxta1")
	f.Add("juxta1aaaaaaaa")
	f.Add("")
	f.Add(Invite{Peer: sampleInvite(f).Peer, Pipe: "chat"}.String())
	f.Fuzz(func(t *testing.T, s string) {
		inv, err := ParseInvite(s)
		if err != nil {
			return
		}
		// Whatever parses must re-encode to something that parses the same.
		again, err := ParseInvite(inv.String())
		if err != nil {
			t.Fatalf("re-encoded invite does not parse: %v", err)
		}
		if again.Peer.ID != inv.Peer.ID || len(again.Peer.Addrs) != len(inv.Peer.Addrs) || len(again.Peer.Relays) != len(inv.Peer.Relays) || again.Pipe != inv.Pipe {
			t.Fatalf("round trip changed the invite")
		}
	})
}

func TestInvitePipe(t *testing.T) {
	inv := sampleInvite(t)
	inv.Pipe = "chat"
	s := inv.String()
	if !strings.HasPrefix(s, "juxta2") {
		t.Fatalf("invite with a pipe %q is not version 2", s)
	}
	got, err := ParseInvite(s)
	if err != nil || got.Pipe != "chat" || got.Peer.ID != inv.Peer.ID || len(got.Peer.Relays) != 1 {
		t.Fatalf("ParseInvite: %+v, %v", got, err)
	}
	// A damaged pipe length reads as truncation, not as a pipe.
	payload := appendInfo(nil, inv.Peer)
	payload = binary.AppendUvarint(payload, 0)
	payload = binary.AppendUvarint(payload, 50)
	payload = append(payload, "chat"...)
	sum := inviteChecksum(inviteV2, payload)
	bad := "juxta2" + strings.ToLower(b32.EncodeToString(append(payload, sum[:]...)))
	if _, err := ParseInvite(bad); !errors.Is(err, ErrInviteTruncated) {
		t.Fatalf("bad pipe length: %v", err)
	}
	// A version 1 checksum does not validate a version 2 invite.
	if _, err := ParseInvite("juxta1" + s[6:]); !errors.Is(err, ErrInviteChecksum) {
		t.Fatalf("version swapped: %v", err)
	}
}

func TestParseIDAndMarshal(t *testing.T) {
	id := testID(t)
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(%s) = %s, %v", id, got, err)
	}
	if id.String() != lpeer.ID(id).String() {
		t.Fatalf("text form %s differs from libp2p's %s", id, lpeer.ID(id))
	}
	for _, bad := range []string{"", "not-an-id", "12D3KooW"} {
		if _, err := ParseID(bad); !errors.Is(err, ErrBadID) {
			t.Errorf("ParseID(%q): %v", bad, err)
		}
	}
	var back ID
	txt, _ := id.MarshalText()
	if err := back.UnmarshalText(txt); err != nil || back != id {
		t.Fatalf("text round trip: %s %v", back, err)
	}
	bin, _ := id.MarshalBinary()
	if string(bin) != string(id) {
		t.Fatal("binary form is not the raw multihash")
	}
	back = ""
	if err := back.UnmarshalBinary(bin); err != nil || back != id {
		t.Fatalf("binary round trip: %s %v", back, err)
	}
	if err := back.UnmarshalBinary([]byte{1, 2, 3}); !errors.Is(err, ErrBadID) {
		t.Fatalf("bad bytes: %v", err)
	}
	j, err := json.Marshal(map[ID]ID{id: id})
	if err != nil || !strings.Contains(string(j), id.String()) {
		t.Fatalf("JSON: %s %v", j, err)
	}
	if a, err := ParseAddr(" " + id.String()); err != nil || a.ID != id || len(a.Addrs) != 0 {
		t.Fatalf("ParseAddr(bare ID): %v %v", a, err)
	}
}
