package im

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"github.com/juxta-p2p/juxta/internal/leaktest"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	lpeer "github.com/libp2p/go-libp2p/core/peer"
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

func TestFileTransferResumesAfterDrop(t *testing.T) {
	size := int64(100 << 20)
	if testing.Short() {
		size = 8 << 20
	}
	a, b := open(t, "alice"), open(t, "bob")
	friends(t, a, b)
	src := filepath.Join(t.TempDir(), "big.bin")
	f, err := os.Create(src)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.CopyN(io.MultiWriter(f, h), rand.Reader, size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := h.Sum(nil)

	sub := a.Subscribe(context.Background())
	defer sub.Cancel()
	tr, err := a.SendFile(context.Background(), b.ID(), src)
	if err != nil {
		t.Fatal(err)
	}
	// Drop every connection between them once a third is through.
	dropped := false
	deadline := time.After(3 * time.Minute)
	var last Transfer
	for last.State != "done" {
		select {
		case ev := <-sub.C:
			tp, ok := ev.(TransferProgress)
			if !ok || tp.Transfer.ID != tr.ID {
				continue
			}
			last = tp.Transfer
			if last.State == "failed" {
				t.Fatalf("transfer failed: %s", last.Err)
			}
			if !dropped && last.Done > size/3 {
				dropped = true
				for _, c := range a.Peer().Libp2p().Host.Network().ConnsToPeer(lpeer.ID(b.ID())) {
					c.Close()
				}
			}
		case <-deadline:
			t.Fatalf("transfer stuck at %d of %d (%s)", last.Done, size, last.State)
		}
	}
	if !dropped {
		t.Fatal("the connection was never dropped")
	}
	var got Transfer
	eventually(t, patience, "the receiver to finish", func() bool {
		for _, x := range b.Transfers() {
			if x.ID == tr.ID && x.State == "done" {
				got = x
				return true
			}
		}
		return false
	})
	sum, err := fileSHA256(got.Path)
	if err != nil {
		t.Fatal(err)
	}
	if string(sum) != string(want) {
		t.Fatal("received file's hash does not match")
	}
	if fi, _ := os.Stat(got.Path); fi.Size() != size {
		t.Fatalf("received %d bytes", fi.Size())
	}
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
