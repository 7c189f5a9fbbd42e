package share

import (
	"errors"
	"strings"
	"testing"
)

func TestKeywords(t *testing.T) {
	for in, want := range map[string]string{
		"Music/김광석/다시 부르기/01 - 서른 즈음에.mp3": "music 김광석 다시 부르기 01 서른 즈음에 mp3",
		"Blue_Monday-01.MP3":   "blue monday 01 mp3",
		"a/b/c/d/e/f/song.ogg": "c d e f song ogg",
		"Jo\u0301ga.flac":      "jo\u0301ga flac",
	} {
		if got := Keywords(in); got != want {
			t.Errorf("Keywords(%q) = %q, want %q", in, got, want)
		}
	}
	if k := Keywords(strings.Repeat("word ", 2000)); len(k) > maxKeywords {
		t.Errorf("keywords of %d bytes", len(k))
	}
}

func TestKindOf(t *testing.T) {
	for name, want := range map[string]string{
		"a.MP3": "audio", "b.mkv": "video", "c.jpeg": "image", "회의록.hwp": "document",
		"d.tar.gz": "archive", "e.iso": "program", "f": "other", "g.xyz": "other", `x\y.png`: "image",
	} {
		if got := KindOf(name); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestAdvertisementRoundTrip(t *testing.T) {
	f := File{Name: "01 - 밤편지.mp3", Rel: "아이유/Palette/01 - 밤편지.mp3", Size: 1234, ID: "bafkrtest", Link: "juxtafile1xyz"}
	ad := f.Advertisement("group-1")
	if ad.Type != AdType || ad.ID != f.ID || ad.Scope != "group-1" || ad.Attrs[AttrKind] != "audio" {
		t.Fatalf("advertisement %+v", ad)
	}
	if !strings.Contains(ad.Attrs[AttrKeywords], "아이유") || !strings.Contains(ad.Attrs[AttrKeywords], "palette") {
		t.Errorf("keywords %q", ad.Attrs[AttrKeywords])
	}
	got, err := ParseFile(ad)
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != f.Name || got.Size != f.Size || got.ID != f.ID || got.Link != f.Link || got.Kind != "audio" {
		t.Errorf("parsed %+v", got)
	}
}

func TestParseFileRejects(t *testing.T) {
	good := File{Name: "a.mp3", Size: 1, ID: "id1"}.Advertisement("")
	for name, mutate := range map[string]func(a *map[string]string){
		"negative size": func(a *map[string]string) { (*a)[AttrSize] = "-5" },
		"bad size":      func(a *map[string]string) { (*a)[AttrSize] = "1e9" },
		"id mismatch":   func(a *map[string]string) { (*a)[AttrID] = "other" },
		"no id":         func(a *map[string]string) { delete(*a, AttrID) },
	} {
		ad := good
		attrs := map[string]string{}
		for k, v := range good.Attrs {
			attrs[k] = v
		}
		mutate(&attrs)
		ad.Attrs = attrs
		if _, err := ParseFile(ad); !errors.Is(err, ErrBadAd) {
			t.Errorf("%s: err %v, want ErrBadAd", name, err)
		}
	}
	bad := good
	bad.Type = "other"
	if _, err := ParseFile(bad); !errors.Is(err, ErrBadAd) {
		t.Errorf("wrong type: %v", err)
	}
	bad = good
	bad.Body = make([]byte, maxAdLink+1)
	if _, err := ParseFile(bad); !errors.Is(err, ErrBadAd) {
		t.Errorf("huge link: %v", err)
	}
	bad = good
	bad.Attrs = map[string]string{AttrSize: "1", AttrID: "id1", AttrKind: "\x1b[31mevil", AttrName: "x.png"}
	if f, err := ParseFile(bad); err != nil || f.Kind != "image" {
		t.Errorf("unknown kind: %+v %v", f, err)
	}
}
