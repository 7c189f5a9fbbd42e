package main

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Issue 11, as a newcomer saw plain mode: peer IDs where names belong, hex
// message IDs on every state change, about 60 progress lines per file,
// duplicated contact lines, an offline->online flash after accepting, and
// commands that printed nothing.
func TestPlainModeQuietAndNamed(t *testing.T) {
	base := t.TempDir()
	alice := user(t, "alice", filepath.Join(base, "alice"))
	bob := user(t, "bob", filepath.Join(base, "bob"))

	// The request names the person, and the hint works as printed.
	alice.send("/add " + bob.invite() + " bob")
	hint := bob.waitFor(`^request: alice wants to be your contact; /accept (\S+)$`, patience)[1]
	if hint != "alice" {
		t.Fatalf("the hint says /accept %s, want /accept alice", hint)
	}
	bob.send("/accept " + hint)
	alice.waitFor(`^contact: bob is online$`, patience)
	bob.waitFor(`^contact: alice is online$`, patience)

	// A file: a handful of progress lines, the saved path on arrival.
	src := filepath.Join(t.TempDir(), "photos.bin")
	data := make([]byte, 24<<20)
	rand.Read(data)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	alice.send("/file bob " + src)
	saved := bob.waitFor(`^file photos\.bin from alice: done .* 100%, saved as (.+)$`, patience)[1]
	if got, err := os.ReadFile(saved); err != nil || len(got) != len(data) {
		t.Fatalf("the saved path %q does not hold the file: %v", saved, err)
	}
	alice.waitFor(`^file photos\.bin to bob: done`, patience)

	// A room invitation goes over the pipe: nothing to copy.
	alice.send("/room create club")
	alice.waitFor(`^created room #club$`, patience)
	alice.send("/room invite club bob")
	alice.waitFor(`^invited bob to #club$`, patience)
	bob.waitFor(`^invitation: alice invites you to #club; /room accept club$`, patience)
	bob.send("/room accept club")
	bob.waitFor(`^joined room #club$`, patience)

	alice.send("@bob got it?")
	alice.waitFor(`^delivered to bob: got it\?$`, patience)

	// Commands that used to print nothing.
	alice.send("/search no-such-words-anywhere")
	alice.waitFor(`^no message matches "no-such-words-anywhere"$`, patience)
	alice.send("/room who nowhere")
	alice.waitFor(`^error: you are not in room "nowhere"`, patience)
	alice.send("/status sleeping")
	alice.waitFor(`^error: .*unknown state "sleeping": use online, away, busy, dnd or invisible$`, patience)

	peerID := regexp.MustCompile(`12D3KooW|Qm[1-9A-HJ-NP-Za-km-z]{20,}|<peer\.ID`)
	hexID := regexp.MustCompile(`\b[0-9a-f]{16,}\b`)
	for _, p := range []*proc{alice, bob} {
		lines := p.snapshot()
		progress := 0
		for i, l := range lines {
			if i >= 3 && (peerID.MatchString(l) || hexID.MatchString(l)) { // the first lines show the user's own ID and invite
				t.Errorf("%s: an ID where a name belongs: %q", p.name, l)
			}
			if strings.HasPrefix(l, "file photos.bin") {
				progress++
			}
			if i > 0 && strings.HasPrefix(l, "contact: ") && l == lines[i-1] {
				t.Errorf("%s: the same contact line twice: %q", p.name, l)
			}
			if strings.HasPrefix(l, "contact: ") && strings.HasSuffix(l, " is offline") {
				t.Errorf("%s: a contact flashed offline after accepting: %q", p.name, l)
			}
		}
		// A state change or a 25% step each, and a line at most every
		// few seconds between steps: no more than a dozen on a slow machine.
		if progress > 12 {
			t.Errorf("%s: %d progress lines for one file", p.name, progress)
		}
		t.Logf("%s: %d progress lines", p.name, progress)
	}
	alice.quit()
	bob.quit()
}

// The messenger's super-peer takes -listen as juxta superpeer does (issue 11:
// one took -loopback, the other -listen).
func TestSuperPeerTakesListen(t *testing.T) {
	sp := start(t, "super-peer", "superpeer", "-listen", "127.0.0.1", "-port", "0", "-dir", t.TempDir())
	sp.waitFor(`^invite: juxta1\S+`, patience)
	sp.interrupt()
	bad := start(t, "bad", "superpeer", "-loopback", "-listen", "10.9.9.9", "-port", "0", "-dir", t.TempDir())
	bad.waitFor(`disagree`, patience)
}

// /room password in plain mode: the usage without a new password, a refusal
// in words for the same password, and the change itself.
func TestPlainRoomPassword(t *testing.T) {
	alice := user(t, "alice", filepath.Join(t.TempDir(), "alice"))
	alice.send("/room create den first-pw")
	alice.waitFor(`^created room #den$`, patience)
	alice.send("/room password den")
	alice.waitFor(`^usage: /room password ROOM NEWPASSWORD$`, patience)
	alice.send("/room password den first-pw")
	alice.waitFor(`^error: .*the new password is the current one$`, patience)
	alice.send("/room password den second-pw")
	alice.waitFor(`^room #den has its new password; members who do not have it are shut out$`, patience)
	alice.quit()
}
