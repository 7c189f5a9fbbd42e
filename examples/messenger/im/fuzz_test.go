package im

import (
	"bytes"
	"crypto/rand"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/juxta-p2p/juxta/content/safename"
	"github.com/juxta-p2p/juxta/internal/attack"
	"github.com/juxta-p2p/juxta/peer"
)

// FuzzChatFrame decodes any chat frame and runs the checks applied to what a
// peer sends: the invite it names, the times it claims, the lengths kept.
func FuzzChatFrame(f *testing.F) {
	me := attack.Host(f)
	inv := peer.Invite{Peer: peer.Addr{ID: peer.ID(me.ID()), Addrs: []string{me.Addrs()[0].String()}}}.String()
	for _, fr := range []frame{
		{T: "hello", Name: "ann", BoxKey: make([]byte, 32), Invite: inv, Want: true},
		{T: "msg", ID: "0123", Text: "hi", Time: time.Now().UnixMilli(), Seq: 3},
		{T: "ack", IDs: []string{"a", "b"}}, {T: "presence", State: "away", Text: "lunch"},
	} {
		b, _ := enc.Marshal(fr)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr frame
		if dec.Unmarshal(b, &fr) != nil {
			return
		}
		if got := inviteOf(peer.ID(me.ID()), fr.Invite); got != "" && got != fr.Invite {
			t.Fatal("inviteOf changed an invite")
		}
		now := time.Now()
		if ts := clampTime(fr.Time, now); ts > now.UnixMilli() || ts < now.Add(-maxClockSkew).UnixMilli() {
			t.Fatalf("time %d clamped to %d", fr.Time, ts)
		}
		if len(trim(fr.Name, maxNameLen)) > maxNameLen {
			t.Fatal("trim")
		}
	})
}

// FuzzMailboxRequest runs any request against a mailbox server, as a
// depositor would.
func FuzzMailboxRequest(f *testing.F) {
	h := attack.Host(f)
	s, err := NewMailboxServer(h, f.TempDir(), MailboxLimits{MaxTotal: 8 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { s.Close() })
	for _, r := range []mbReq{
		{Op: mbDeposit, To: []byte(h.ID()), Items: []mbItem{{ID: "a", Blob: []byte("sealed")}}},
		{Op: mbFetch}, {Op: mbAck, IDs: []string{"a"}},
	} {
		b, _ := enc.Marshal(r)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req mbReq
		if len(b) > mailboxMaxRequest || dec.Unmarshal(b, &req) != nil {
			return
		}
		switch req.Op {
		case mbDeposit:
			_, _ = s.deposit(peer.ID(h.ID()), req)
		case mbFetch:
			items, _, _ := s.fetch(peer.ID(h.ID()))
			_ = s.ack(peer.ID(h.ID()), func() (ids []string) {
				for _, it := range items {
					ids = append(ids, it.ID)
				}
				return
			}())
		case mbAck:
			_ = s.ack(peer.ID(h.ID()), req.IDs)
		}
		if total, own := s.Usage(peer.ID(h.ID())); total < 0 || own < 0 || total > 8<<20 {
			t.Fatalf("usage %d %d", total, own)
		}
	})
}

// FuzzMailboxResponse decodes any response as a client does, and opens
// its items as sealed boxes.
func FuzzMailboxResponse(f *testing.F) {
	pub, priv, _ := box.GenerateKey(rand.Reader)
	var nonce [24]byte
	sealed := box.Seal(nil, []byte("frame"), &nonce, pub, priv)
	blob, _ := enc.Marshal(sealedItem{Nonce: nonce[:], Box: sealed})
	for _, r := range []mbResp{{Items: []mbItem{{ID: "a", From: []byte("x"), Blob: blob, Time: 1}}, More: true}, {Stored: 3, Err: "full"}} {
		b, _ := enc.Marshal(r)
		f.Add(b)
	}
	f.Add(blob)
	f.Fuzz(func(t *testing.T, b []byte) {
		var r mbResp
		if dec.Unmarshal(b, &r) == nil {
			for _, it := range r.Items {
				var s sealedItem
				if dec.Unmarshal(it.Blob, &s) == nil && len(s.Nonce) == 24 {
					copy(nonce[:], s.Nonce)
					_, _ = box.Open(nil, s.Box, &nonce, pub, priv)
				}
			}
		}
		var s sealedItem
		_ = dec.Unmarshal(b, &s)
	})
}

// FuzzFileHeader: any header; one that passes validHeader gives a name that
// stays inside the downloads folder.
func FuzzFileHeader(f *testing.F) {
	for _, h := range []fileHeader{{ID: "abc", Name: "photo.jpg", Size: 10, Content: bytes.Repeat([]byte{1}, 32)}, {ID: "x", Name: "..", Size: 0, Content: bytes.Repeat([]byte{2}, 32)}} {
		b, _ := enc.Marshal(h)
		f.Add(b)
	}
	r, _ := enc.Marshal(fileReply{Offset: 5, Err: "no", Final: true})
	f.Add(r)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		var rep fileReply
		if dec.Unmarshal(b, &rep) == nil && rep.Err != "" {
			_ = replyErr(rep)
		}
		var h fileHeader
		if dec.Unmarshal(b, &h) != nil || validHeader(h) != nil {
			return
		}
		name := safename.SafeName(h.Name)
		if p := filepath.Join(dir, name); filepath.Dir(p) != dir {
			t.Fatalf("name %q escapes as %q", h.Name, name)
		}
		if p := partialName(dir, senderTag("p")+h.ID); filepath.Dir(p) != dir {
			t.Fatalf("transfer ID %q escapes", h.ID)
		}
	})
}

// FuzzRoomFrame decodes any room message as the room reader does.
func FuzzRoomFrame(f *testing.F) {
	b, _ := enc.Marshal(roomFrame{ID: "1", Text: "hi all", Name: "ann", Time: time.Now().UnixMilli()})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var rf roomFrame
		if dec.Unmarshal(b, &rf) != nil {
			return
		}
		now := time.Now()
		if ts := clampTime(rf.Time, now); ts > now.UnixMilli() {
			t.Fatal("a room message dated in the future")
		}
	})
}
