package share

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRate(t *testing.T) {
	for in, want := range map[string]int64{
		"": 0, "0": 0, "off": 0, "none": 0, "512": 512, "512K": 512 << 10, "2M": 2 << 20, "1.5MB/s": 3 << 19,
		"2 MiB": 2 << 20, "1g": 1 << 30, "100kbps": 100 << 10, " 3m ": 3 << 20,
	} {
		got, err := ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"fast", "-1M", "2X", "1e3", "M", "99999999T", "2000G"} {
		if _, err := ParseRate(in); err == nil {
			t.Errorf("ParseRate(%q) succeeded", in)
		}
	}
}

func TestLoadSettings(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, ConfigFile)
	cfg := Config{Caps: Caps{Up: 1}}
	if err := LoadSettings(p, &cfg); err != nil || cfg.Caps.Up != 1 {
		t.Fatalf("a missing file: %v, %+v", err, cfg)
	}
	os.WriteFile(p, []byte("# caps\nup = 2M\n down=512K # comment\npeer-up = 256K\npeer-down = off\nshare-downloads = false\n"), 0o600)
	if err := LoadSettings(p, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Caps != (Caps{Up: 2 << 20, Down: 512 << 10, PeerUp: 256 << 10}) || !cfg.NoShareDownloads {
		t.Errorf("settings %+v", cfg)
	}
	for name, text := range map[string]string{
		"no equals":   "up 2M\n",
		"unknown key": "speed = 2M\n",
		"bad rate":    "up = fast\n",
		"bad bool":    "share-downloads = maybe\n",
		"too large":   strings.Repeat("# padding\n", 8000),
	} {
		os.WriteFile(p, []byte(text), 0o600)
		err := LoadSettings(p, &Config{})
		if !errors.Is(err, ErrConfig) {
			t.Errorf("%s: err %v, want ErrConfig", name, err)
		}
	}
	os.WriteFile(p, []byte("up = fast\n"), 0o600)
	if err := LoadSettings(p, &Config{}); err == nil || !strings.Contains(err.Error(), ConfigFile+":1") {
		t.Errorf("the error should name the file and line: %v", err)
	}
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1536: "1.5 KiB", 5 << 20: "5.0 MiB", 3 << 30: "3.0 GiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	if FormatRate(0) != "off" || FormatRate(2048) != "2.0 KiB/s" {
		t.Errorf("FormatRate: %q %q", FormatRate(0), FormatRate(2048))
	}
}
