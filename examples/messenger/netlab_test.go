package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
	"github.com/juxta-p2p/juxta/peer"
)

// Two laptops behind different home NATs, with a super-peer on the simulated
// internet, add each other by invite and chat; their connection goes direct
// (both NATs map endpoint-independently, so the hole punch succeeds).
func TestChatAcrossHomeNATs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root (network namespaces, netlink, nftables): run the tests as root, as CI does")
	}
	if testing.Short() {
		t.Skip("builds a lab")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	wan := netlab.Link{Delay: 25 * time.Millisecond}
	lab, err := netlab.New(ctx, netlab.Spec{
		Routers: []netlab.RouterSpec{
			{Name: "alice-home", NAT: netlab.NATPortRestricted, WAN: wan},
			{Name: "bob-home", NAT: netlab.NATPortRestricted, WAN: wan},
		},
		Hosts: []netlab.HostSpec{
			{Name: "sp", Link: netlab.Link{Delay: 15 * time.Millisecond}},
			{Name: "alice", Router: "alice-home"},
			{Name: "bob", Router: "bob-home"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	base := t.TempDir()
	inLab := func(host, name string, args ...string) *proc {
		cmd := lab.Host(host).Command(ctx, binary, args...)
		return startCmd(t, name, cmd, func() error { return lab.Host(host).Start(ctx, cmd) })
	}
	sp := inLab("sp", "super-peer", "superpeer", "-port", "4001", "-dir", filepath.Join(base, "sp"))
	spInvite := sp.waitFor(`^invite: (juxta1\S+)`, patience)[1]
	alice := inLab("alice", "alice", "-plain", "-no-mdns", "-name", "alice", "-dir", filepath.Join(base, "alice"), "-superpeer", spInvite)
	bob := inLab("bob", "bob", "-plain", "-no-mdns", "-name", "bob", "-dir", filepath.Join(base, "bob"), "-superpeer", spInvite)
	befriendInvite(t, alice, bob, "alice", "bob")

	alice.send("@bob hello across two NATs")
	bob.waitFor(`^msg from alice: hello across two NATs$`, patience)
	bob.send("@alice and back")
	alice.waitFor(`^msg from bob: and back$`, patience)

	deadline := time.Now().Add(patience)
	rx := regexp.MustCompile(`^path to bob: (\w+)`)
	for {
		alice.send("/path bob")
		time.Sleep(300 * time.Millisecond)
		var last string
		for _, l := range alice.snapshot() {
			if m := rx.FindStringSubmatch(l); m != nil {
				last = m[1]
			}
		}
		if last == "direct" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice and bob stayed %q; two port-restricted NATs allow a direct path", last)
		}
	}
	alice.send("@bob now direct")
	bob.waitFor(`^msg from alice: now direct$`, patience)
}

// befriendInvite makes a and b contacts using the invite b prints on /invite
// once it carries a relay address: b's relay reservation may come after its
// start (and the invite printed then), later still on a loaded machine.
func befriendInvite(t *testing.T, a, b *proc, aName, bName string) {
	t.Helper()
	rx := regexp.MustCompile(`^invite: (juxta1\S+)`)
	deadline := time.Now().Add(patience)
	var inv string
	for n := 2; ; n++ {
		b.send("/invite")
		b.waitCount(`^invite: juxta1`, n, patience)
		for _, l := range b.snapshot() {
			if m := rx.FindStringSubmatch(l); m != nil {
				inv = m[1] // the last one
			}
		}
		if relayed(t, inv) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's invite carried no relay address within %v", bName, patience)
		}
		time.Sleep(300 * time.Millisecond)
	}
	a.send("/add " + inv + " " + bName)
	m := b.waitFor(`^request: \S+ wants to be your contact; /accept (\S+)`, patience)
	b.send("/accept " + m[1])
	a.waitFor(`^contact: `+bName+` is online`, patience)
	b.waitFor(`^contact: `+aName+` is online`, patience)
}

// relayed reports whether an invite carries a circuit (relay) address.
func relayed(t *testing.T, inv string) bool {
	t.Helper()
	pi, err := peer.ParseInvite(inv)
	if err != nil {
		t.Fatalf("invite %q: %v", inv, err)
	}
	for _, a := range pi.Peer.Addrs {
		if strings.Contains(a, "/p2p-circuit") {
			return true
		}
	}
	return false
}
