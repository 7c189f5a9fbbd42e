package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/juxta-p2p/juxta/netlab"
)

// natLab builds a super-peer on the simulated internet and a sharer and a
// downloader behind home routers of the given NAT types, with 25 ms WAN
// links; it starts the super-peer and the sharer (sharing a file of size
// bytes) and the downloader, and returns them with the file's SHA-256.
func natLab(t *testing.T, ctx context.Context, sharerNAT, dlNAT netlab.NAT, size int64) (sh, dl *proc, want [32]byte) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netlab needs root (network namespaces, netlink, nftables): run the tests as root, as CI does")
	}
	if testing.Short() {
		t.Skip("builds a lab")
	}
	wan := netlab.Link{Delay: 25 * time.Millisecond}
	lab, err := netlab.New(ctx, netlab.Spec{
		Routers: []netlab.RouterSpec{
			{Name: "sharer-home", NAT: sharerNAT, WAN: wan},
			{Name: "dl-home", NAT: dlNAT, WAN: wan},
		},
		Hosts: []netlab.HostSpec{
			{Name: "sp", Link: netlab.Link{Delay: 15 * time.Millisecond}},
			{Name: "sharer", Router: "sharer-home"},
			{Name: "dl", Router: "dl-home"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lab.Close() })
	base := t.TempDir()
	inLab := func(host, name string, args ...string) *proc {
		cmd := lab.Host(host).Command(ctx, binary, args...)
		return startCmd(t, name, cmd, func() error { return lab.Host(host).Start(ctx, cmd) })
	}
	sp := inLab("sp", "super-peer", "superpeer", "-port", "4001", "-dir", filepath.Join(base, "sp"))
	inv := sp.waitFor(`^invite: (juxta1\S+)`, time.Minute)[1]
	lib := filepath.Join(base, "lib")
	want = writeRandom(t, filepath.Join(lib, "Field recording at the lab.flac"), size, 9)
	sh = inLab("sharer", "sharer", "share", "-plain", "-no-mdns", "-name", "sharer", "-dir", filepath.Join(base, "sharer"), "-superpeer", inv, lib)
	sh.waitFor(`^published lib/Field recording`, 2*time.Minute)
	dl = inLab("dl", "downloader", "share", "-plain", "-no-mdns", "-name", "dl", "-dir", filepath.Join(base, "dl"), "-superpeer", inv)
	dl.waitFor(`^type help`, time.Minute)
	searchUntil(t, dl, "field recording", 2*time.Minute, hasName("Field recording at the lab.flac"))
	return sh, dl, want
}

// TestAcrossPortRestrictedNATs is acceptance 3a: a sharer and a downloader
// behind two port-restricted NATs, with a super-peer: the search goes through
// the super-peer's index and the transfer runs on a direct, hole-punched
// path.
func TestAcrossPortRestrictedNATs(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, dl, want := natLab(t, ctx, netlab.NATPortRestricted, netlab.NATPortRestricted, 6<<20)
	start := time.Now()
	dl.send("get 1")
	m := dl.waitFor(`^done Field recording at the lab\.flac size=\d+ path=(.*) from=(\S+)$`, 3*time.Minute)
	if fileSHA(t, m[1]) != want {
		t.Fatal("the downloaded file differs")
	}
	t.Logf("6 MiB across two port-restricted NATs in %s: %s", time.Since(start).Round(time.Millisecond), m[2])
	for id, path := range paths(m[2]) {
		if path != "direct" {
			t.Errorf("the transfer from %s ran %s; two port-restricted NATs allow a direct path", id, path)
		}
	}
}

// TestSymmetricNATThroughRelay is acceptance 3b: with the sharer behind a
// symmetric NAT no hole punch succeeds, so the transfer runs through the
// super-peer's relay, whose connections are reset every 4 MiB
// (peer.RelayLimits.ConnData); the download resumes across the resets and
// completes, or fails saying it was relay-only.
func TestSymmetricNATThroughRelay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	_, dl, want := natLab(t, ctx, netlab.NATSymmetric, netlab.NATPortRestricted, 6<<20)
	start := time.Now()
	dl.send("get 1")
	m := dl.waitFor(`^done Field recording at the lab\.flac size=\d+ path=(.*) from=(\S+)$|^failed Field recording at the lab\.flac: (.*)`, 6*time.Minute)
	if m[3] != "" {
		t.Fatalf("the relayed download failed: %s", m[3])
	}
	if fileSHA(t, m[1]) != want {
		t.Fatal("the downloaded file differs")
	}
	t.Logf("6 MiB from behind a symmetric NAT in %s: %s", time.Since(start).Round(time.Millisecond), m[2])
	for id, path := range paths(m[2]) {
		if path != "relayed" {
			t.Logf("note: the transfer from %s ended %s", id, path)
		}
	}
}
