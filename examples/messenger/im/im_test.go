package im

import (
	"context"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	leaktest.VerifyTestMain(m)
}

func open(t *testing.T, name string, extra ...func(*Config)) *Messenger {
	t.Helper()
	cfg := Config{Dir: filepath.Join(t.TempDir(), name), Name: name, Loopback: true, NoMDNS: true, AutoAway: -1, Heartbeat: time.Second}
	for _, f := range extra {
		f(&cfg)
	}
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// patience bounds every wait for an event: generous, since a loaded 2-core
// machine takes minutes where an idle one takes a second.
const patience = 4 * time.Minute

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// friends makes a and b accepted contacts, connected.
func friends(t *testing.T, a, b *Messenger) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.AddContact(ctx, b.Invite(), "b"); err != nil {
		t.Fatal(err)
	}
	eventually(t, patience, "the request", func() bool {
		c, err := b.Contact(a.ID().String())
		return err == nil && c.State == Pending
	})
	if err := b.Accept(ctx, a.ID()); err != nil {
		t.Fatal(err)
	}
	eventually(t, patience, "both accepted and online", func() bool {
		ca, err1 := a.Contact(b.ID().String())
		cb, err2 := b.Contact(a.ID().String())
		return err1 == nil && err2 == nil && ca.State == Accepted && cb.State == Accepted && ca.Presence == "online" && cb.Presence == "online"
	})
}

func TestFileTransferRefusesStrangers(t *testing.T) {
	a, b := open(t, "alice"), open(t, "bob")
	src := filepath.Join(t.TempDir(), "x.txt")
	os.WriteFile(src, []byte("hi"), 0o600)
	if _, err := a.SendFile(context.Background(), b.ID(), src); err == nil {
		t.Fatal("sent a file to a non-contact")
	}
}

func TestMailboxBounds(t *testing.T) {
	sp := open(t, "sp", func(c *Config) { c.SuperPeer = true })
	p := open(t, "alice")
	ctx := context.Background()
	if _, err := p.Peer().Connect(ctx, sp.Peer().Addr()); err != nil {
		t.Fatal(err)
	}
	to := []byte(p.ID())
	big := mbItem{ID: "big", Blob: make([]byte, MailboxMaxItem+1)}
	if _, err := mailboxCall(ctx, p.Peer().Libp2p().Host, sp.ID(), mbReq{Op: mbDeposit, To: to, Items: []mbItem{big}}); err == nil {
		t.Fatal("oversized item stored")
	}
	if _, err := mailboxCall(ctx, p.Peer().Libp2p().Host, sp.ID(), mbReq{Op: mbDeposit, To: []byte("nonsense"), Items: []mbItem{{ID: "x", Blob: []byte("y")}}}); err == nil {
		t.Fatal("bad recipient accepted")
	}
	item := mbItem{ID: "one", Blob: make([]byte, 1024)}
	if r, err := mailboxCall(ctx, p.Peer().Libp2p().Host, sp.ID(), mbReq{Op: mbDeposit, To: to, Items: []mbItem{item}}); err != nil || r.Stored != 1 {
		t.Fatalf("deposit: %v %+v", err, r)
	}
	// Only the recipient fetches: here alice deposited to herself.
	r, err := mailboxCall(ctx, p.Peer().Libp2p().Host, sp.ID(), mbReq{Op: mbFetch})
	if err != nil || len(r.Items) != 1 || string(r.Items[0].From) != string(p.ID()) {
		t.Fatalf("fetch: %v %+v", err, r)
	}
	if _, err := mailboxCall(ctx, p.Peer().Libp2p().Host, sp.ID(), mbReq{Op: mbAck, IDs: []string{"one"}}); err != nil {
		t.Fatal(err)
	}
	if n := sp.Mailbox().Count(p.ID()); n != 0 {
		t.Fatalf("acknowledged item still stored (%d)", n)
	}
	// A recipient's box is bounded.
	items := make([]mbItem, 0, 80)
	for i := range 80 {
		items = append(items, mbItem{ID: string(rune('a'+i%26)) + time.Now().String()[:0] + string(rune('A'+i/26)), Blob: make([]byte, MailboxMaxItem)})
	}
	_, err = mailboxCall(ctx, p.Peer().Libp2p().Host, sp.ID(), mbReq{Op: mbDeposit, To: to, Items: items})
	if err == nil {
		t.Fatal("a mailbox over its byte bound accepted everything")
	}
	if n := sp.Mailbox().Count(p.ID()); n*MailboxMaxItem > MailboxMaxBytes {
		t.Fatalf("mailbox holds %d items of %d bytes, bound %d", n, MailboxMaxItem, MailboxMaxBytes)
	}
}
