package share

import (
	"context"
	"crypto/rand"
	"github.com/juxta-p2p/juxta/content/safename"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/juxta-p2p/juxta/discovery"
)

// testNode starts a node on loopback with mDNS off, closed with the test.
func testNode(t *testing.T, cfg Config) *Node {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	cfg.Loopback, cfg.NoMDNS = true, true
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	if len(cfg.SuperPeers) > 0 {
		if err := n.Peer().Ready(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func superPeerNode(t *testing.T) (*Node, []string) {
	sp := testNode(t, Config{SuperPeer: true})
	return sp, []string{sp.Invite()}
}

// searchFor searches until ok accepts the results.
func searchFor(t *testing.T, n *Node, words string, ok func([]Result) bool) []Result {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		rs, err := n.Search(context.Background(), words, nil)
		if err == nil && ok(rs) {
			return rs
		}
		if time.Now().After(deadline) {
			t.Fatalf("search %q: %d results, %v", words, len(rs), err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// TestHostileNames is acceptance 6: advertisements whose names hold "../",
// absolute paths, NUL, control characters, bidi overrides and 10 KB of text
// are shown safely and downloaded inside the downloads folder, never
// overwriting.
func TestHostileNames(t *testing.T) {
	_, sps := superPeerNode(t)
	evil := testNode(t, Config{Name: "evil", SuperPeers: sps})
	victimDir := t.TempDir()
	victim := testNode(t, Config{Name: "victim", SuperPeers: sps, Dir: filepath.Join(victimDir, "node")})
	ctx := context.Background()
	names := append([]string{"same.txt", "same.txt", "../same.txt"}, safename.Hostile...)
	names = append(names, strings.Repeat("\x1b[31m", 2000)+"x.mp3")
	for i, name := range names {
		data := make([]byte, 1000+i)
		rand.Read(data)
		info, err := evil.cs.AddBytes(ctx, "blob", data)
		if err != nil {
			t.Fatal(err)
		}
		ad := discovery.Advertisement{Type: AdType, ID: info.ID.String(), Body: []byte(evil.link(info.ID.String())),
			Attrs: map[string]string{AttrName: name, AttrKeywords: "hostile " + Keywords(name), AttrKind: "\x1b]0;pwned\x07", AttrID: info.ID.String()}}
		ad.Attrs[AttrSize] = strconv.Itoa(len(data))
		if _, err := evil.d.Publish(ctx, ad); err != nil {
			t.Logf("publish of %q refused by discovery itself: %v", Display(name, 30), err)
			continue
		}
	}
	rs := searchFor(t, victim, "hostile", func(rs []Result) bool { return len(rs) >= len(names)-3 })
	t.Logf("%d hostile advertisements found", len(rs))
	for _, r := range rs {
		if r.Name != SafeName(r.Name) || r.Name == "" || len(r.Name) > MaxNameBytes {
			t.Errorf("result name %q is not safe", r.Name)
		}
		for _, s := range []string{r.Name, r.Kind, r.Path} {
			if strings.ContainsFunc(s, func(c rune) bool { return unicode.IsControl(c) || unicode.Is(unicode.Cf, c) }) {
				t.Errorf("result field %q holds control or format characters", s)
			}
		}
		if _, err := victim.Get(ctx, r); err != nil {
			t.Fatalf("get %q: %v", r.Name, err)
		}
	}
	downloads := victim.Status().Folder
	for _, r := range rs {
		info, err := victim.Wait(ctx, r.ID)
		if err != nil || info.State != Done {
			t.Fatalf("download of %q: %+v %v", r.Name, info, err)
		}
		if filepath.Dir(info.Path) != downloads {
			t.Errorf("%q landed at %s, outside %s", r.Name, info.Path, downloads)
		}
	}
	ents, err := os.ReadDir(downloads)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(rs) {
		t.Errorf("%d files in the downloads folder for %d downloads: one was overwritten", len(ents), len(rs))
	}
	// Nothing was written beside the node's directory.
	outside, _ := os.ReadDir(victimDir)
	if len(outside) != 1 {
		t.Errorf("the victim's base holds %v", outside)
	}
}
