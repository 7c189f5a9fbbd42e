package groups

import (
	"context"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// fuzzGroups builds, once per fuzzing process, a peer with a password group
// and an invite group, whose signed advertisements, credential, revocation
// list and sealed payloads seed the targets.
type fuzzFixture struct {
	pw, inv *Group
	cred    string
}

func fuzzSetup(f *testing.F) fuzzFixture {
	f.Helper()
	n := newNode(f, peer.TestConfig(), fastPresence)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pw, err := n.g.Create(ctx, Spec{Name: "fuzz pw", Policy: PolicyPassword, Password: "secret"})
	if err != nil {
		f.Fatal(err)
	}
	inv, err := n.g.Create(ctx, Spec{Name: "fuzz inv", Policy: PolicyInvite})
	if err != nil {
		f.Fatal(err)
	}
	cred, err := inv.Invite(n.p.ID(), time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	return fuzzFixture{pw, inv, cred}
}

func FuzzGroupInfo(f *testing.F) {
	fx := fuzzSetup(f)
	for _, g := range []*Group{fx.pw, fx.inv} {
		info := g.Info()
		f.Add(info.Raw())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := ParseInfo(b)
		if err != nil {
			return
		}
		if info.Policy == PolicyPassword && !info.kdf.sane() {
			t.Fatalf("parsed KDF parameters out of bounds: %+v", info.kdf)
		}
	})
}

func FuzzCredential(f *testing.F) {
	fx := fuzzSetup(f)
	fx.inv.mu.Lock()
	f.Add(fx.inv.cred)
	f.Add(fx.inv.revRaw)
	fx.inv.mu.Unlock()
	info := fx.inv.Info()
	f.Fuzz(func(t *testing.T, b []byte) {
		if c, err := verifyCredential(b, &info); err == nil && c.Group != info.ID {
			t.Fatalf("credential for %q accepted for %q", c.Group, info.ID)
		}
	})
}

func FuzzRevocations(f *testing.F) {
	fx := fuzzSetup(f)
	fx.inv.mu.Lock()
	f.Add(fx.inv.revRaw)
	f.Add(fx.inv.cred)
	fx.inv.mu.Unlock()
	info := fx.inv.Info()
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := verifyRevocations(b, &info); err == nil && r.Group != info.ID {
			t.Fatalf("revocations for %q accepted", r.Group)
		}
	})
}

func FuzzCredentialString(f *testing.F) {
	fx := fuzzSetup(f)
	f.Add(fx.cred)
	f.Add("juxtagroup1")
	f.Fuzz(func(t *testing.T, s string) {
		cb, err := decodeCredString(s)
		if err != nil {
			return
		}
		if len(cb.GroupAd) == 0 || len(cb.Cred) == 0 {
			t.Fatal("an empty bundle decoded")
		}
		_, _ = ParseInfo(cb.GroupAd)
	})
}

// FuzzSealedPayload runs the propagate hooks of both private groups on any
// payload from a member. Open is left out for future epochs, which would
// fetch a key over the network.
func FuzzSealedPayload(f *testing.F) {
	fx := fuzzSetup(f)
	me := fx.inv.s.p.ID()
	ph, ih := fx.pw.propagateHooks(), fx.inv.propagateHooks()
	for _, p := range [][]byte{[]byte("hello"), nil} {
		if b, err := ph.Seal(p); err == nil {
			f.Add(b)
		}
		if b, err := ih.Seal(p); err == nil {
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if ph.Validate(me, b) {
			if _, err := ph.Open(me, b); err != nil {
				t.Fatalf("validated password payload does not open: %v", err)
			}
		}
		var s sealed
		if decMode.Unmarshal(b, &s) != nil {
			return
		}
		fx.inv.mu.Lock()
		known := fx.inv.keys[s.Epoch] != nil
		fx.inv.mu.Unlock()
		if ih.Validate(me, b) && known {
			if _, err := ih.Open(me, b); err != nil {
				t.Fatalf("validated invite payload does not open: %v", err)
			}
		}
	})
}

// FuzzAuthKeyMessages decodes the membership protocols' frames and installs
// what a key push carries.
func FuzzAuthKeyMessages(f *testing.F) {
	fx := fuzzSetup(f)
	fx.inv.mu.Lock()
	push, _ := encMode.Marshal(keyMsg{Op: keyPush, Group: fx.inv.ID(), Epoch: fx.inv.epoch, Key: fx.inv.keys[fx.inv.epoch], Rev: fx.inv.revRaw})
	fetch, _ := encMode.Marshal(keyMsg{Op: keyFetch, Group: fx.inv.ID(), Cred: fx.inv.cred})
	fx.inv.mu.Unlock()
	req, _ := encMode.Marshal(authReq{Group: fx.inv.ID(), Nonce: randomBytes(32)})
	resp, _ := encMode.Marshal(authResp{Proof: randomBytes(32)})
	for _, b := range [][]byte{push, fetch, req, resp} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var ar authReq
		_ = decMode.Unmarshal(b, &ar)
		var as authResp
		if decMode.Unmarshal(b, &as) == nil && len(as.Cred) > 0 {
			_ = fx.inv.checkMember(fx.inv.s.p.ID(), as.Cred)
		}
		var km keyMsg
		if decMode.Unmarshal(b, &km) == nil && km.Op == keyPush {
			_ = fx.inv.installKey(km.Epoch, km.Key, km.Rev)
		}
	})
}

// FuzzPresenceMessage feeds any announcement to a group's member list.
func FuzzPresenceMessage(f *testing.F) {
	fx := fuzzSetup(f)
	for _, m := range []presenceMsg{{State: string(Online), Name: "ann", Seq: 1}, {State: string(Away), Text: "lunch", Seq: 2}} {
		b, _ := encMode.Marshal(m)
		f.Add(b)
	}
	from := peer.ID("\x00\x24fuzz-member")
	f.Fuzz(func(t *testing.T, b []byte) {
		fx.pw.presence.receive(from, b, time.Now())
		for _, m := range fx.pw.Members() {
			if len(m.Text) > 256 || len(m.Name) > 64 || m.State == Invisible {
				t.Fatalf("member listed as %+v", m)
			}
		}
	})
}
