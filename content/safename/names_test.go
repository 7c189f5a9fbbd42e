package safename

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func TestSafeNameHostile(t *testing.T) {
	for _, in := range Hostile {
		out := SafeName(in)
		if out == "" || out == "." || out == ".." {
			t.Errorf("SafeName(%q) = %q", in, out)
		}
		if strings.ContainsAny(out, `/\<>:"|?*`) {
			t.Errorf("SafeName(%q) = %q keeps a separator or reserved character", clipQ(in), out)
		}
		if len(out) > MaxNameBytes || !utf8.ValidString(out) {
			t.Errorf("SafeName(%q): %d bytes, valid UTF-8 %v", clipQ(in), len(out), utf8.ValidString(out))
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
				t.Errorf("SafeName(%q) = %q keeps %U", clipQ(in), out, r)
			}
		}
		if reserved(out) {
			t.Errorf("SafeName(%q) = %q is a device name", in, out)
		}
	}
}

func clipQ(s string) string { return Display(s, 40) }

func TestSafeNameKeeps(t *testing.T) {
	for in, want := range map[string]string{
		"01 - 서른 즈음에.mp3":                 "01 - 서른 즈음에.mp3",
		"Jo\u0301ga.flac":                 "Jóga.flac", // composed
		"../music/song.mp3":               "song.mp3",
		"report (final).pdf":              "report (final).pdf",
		" .hidden. ":                      "hidden",
		"CON.txt":                         "_CON.txt",
		strings.Repeat("x", 300) + ".mp3": strings.Repeat("x", MaxNameBytes-4) + ".mp3",
	} {
		if got := SafeName(in); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDisplay(t *testing.T) {
	if got := Display("a\x1b[2Jb\u202ec\nd", 10); got != "a[2Jbcd" {
		t.Errorf("Display = %q", got)
	}
	if got := Display("abcdefgh", 5); got != "abcd…" {
		t.Errorf("Display = %q", got)
	}
	if got := Display("가나다", 3); got != "가나다" {
		t.Errorf("Display = %q", got)
	}
}

func TestPlaceNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	downloads := filepath.Join(dir, "downloads")
	if err := os.Mkdir(downloads, 0o755); err != nil {
		t.Fatal(err)
	}
	var placed []string
	for i, name := range append([]string{"song.mp3", "song.mp3", "../song.mp3", "/abs/song.mp3"}, Hostile...) {
		src := filepath.Join(dir, "tmp")
		if err := os.WriteFile(src, []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := Place(src, downloads, name)
		if err != nil {
			t.Fatalf("Place(%q): %v", clipQ(name), err)
		}
		if filepath.Dir(got) != downloads {
			t.Fatalf("Place(%q) = %s: outside the downloads folder", clipQ(name), got)
		}
		if _, err := os.Stat(src); !os.IsNotExist(err) {
			t.Errorf("source still there after Place: %v", err)
		}
		placed = append(placed, got)
	}
	for i, p := range placed {
		b, err := os.ReadFile(p)
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Errorf("%s holds %v (%v), want [%d]: a file was overwritten", p, b, err, i)
		}
	}
	if filepath.Base(placed[1]) != "song (1).mp3" || filepath.Base(placed[3]) != "song (3).mp3" {
		t.Errorf("suffixes: %q, %q", filepath.Base(placed[1]), filepath.Base(placed[3]))
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("something was written beside the downloads folder: %v", ents)
	}
}
