package share

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// Config configures a file-sharing node. Dir is required; the zero value of
// everything else is a LAN sharer with no rate caps that shares downloads
// onward.
type Config struct {
	// Dir keeps the identity, the share index and unfinished downloads.
	Dir string
	// Downloads is where finished files land. Default Dir/downloads.
	Downloads string
	// Name is the display name others see.
	Name string
	// SuperPeers are invites of super-peers: the index for searches beyond the
	// LAN, and relays across NATs.
	SuperPeers []string
	// SuperPeer runs this node as a super-peer (index and relay, no shares).
	SuperPeer bool
	// Loopback listens on 127.0.0.1 only (tests, demos on one machine).
	Loopback bool
	// NoMDNS turns LAN discovery off.
	NoMDNS bool
	// Port is a fixed port to listen on (0: any).
	Port int
	// Flood also floods searches among connected peers (Gnutella), and
	// forwards others' flooded searches.
	Flood bool
	// NoShareDownloads stops finished downloads from being shared onward.
	NoShareDownloads bool
	// Caps are the rate caps.
	Caps Caps
	// Settle is how long a changed file must be quiet before it is re-hashed
	// and re-published. Default 200 ms.
	Settle time.Duration
	Logger *slog.Logger
}

// Caps are rate caps in bytes per second; 0 means none.
type Caps struct {
	Up, Down         int64 // all peers together
	PeerUp, PeerDown int64 // each peer
}

// Names of the settings in a config file.
const (
	keyUp       = "up"
	keyDown     = "down"
	keyPeerUp   = "peer-up"
	keyPeerDown = "peer-down"
	keyShare    = "share-downloads"
)

// ConfigFile is the name of the optional settings file in Dir.
const ConfigFile = "fileshare.conf"

// maxConfigFile bounds the settings file.
const maxConfigFile = 64 << 10

// ErrConfig: the settings file or a setting is malformed.
var ErrConfig = errors.New("share: bad setting")

// LoadSettings reads the settings file at path into cfg: lines of
// "key = value", '#' comments, keys up, down, peer-up and peer-down (rates
// such as 512K, 2M, 1.5MB/s; 0 or "off" for no cap) and share-downloads
// (true/false). A missing file is not an error. Values already set in cfg are
// overridden; flags are applied after, so they win.
func LoadSettings(path string, cfg *Config) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("share: settings: %w", err)
	}
	defer f.Close()
	return parseSettings(io.LimitReader(f, maxConfigFile+1), path, cfg)
}

func parseSettings(r io.Reader, name string, cfg *Config) error {
	sc := bufio.NewScanner(r)
	n, total := 0, 0
	for sc.Scan() {
		n++
		total += len(sc.Bytes()) + 1
		if total > maxConfigFile {
			return fmt.Errorf("%w: %s is larger than %d bytes", ErrConfig, name, maxConfigFile)
		}
		line := strings.TrimSpace(sc.Text())
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = strings.TrimSpace(line[:i])
		}
		if line == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return fmt.Errorf("%w: %s:%d: want key = value", ErrConfig, name, n)
		}
		if err := cfg.Set(strings.TrimSpace(k), strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("%s:%d: %w", name, n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrConfig, name, err)
	}
	return nil
}

// Set applies one setting by name, as in the settings file.
func (c *Config) Set(key, value string) error {
	switch strings.ToLower(key) {
	case keyUp, keyDown, keyPeerUp, keyPeerDown:
		r, err := ParseRate(value)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConfig, key, err)
		}
		*map[string]*int64{keyUp: &c.Caps.Up, keyDown: &c.Caps.Down, keyPeerUp: &c.Caps.PeerUp, keyPeerDown: &c.Caps.PeerDown}[strings.ToLower(key)] = r
	case keyShare:
		b, err := strconv.ParseBool(value)
		if err != nil {
			return fmt.Errorf("%w: %s: %q is not true or false", ErrConfig, key, value)
		}
		c.NoShareDownloads = !b
	default:
		return fmt.Errorf("%w: unknown setting %q (known: up, down, peer-up, peer-down, share-downloads)", ErrConfig, key)
	}
	return nil
}

// ParseRate reads a rate in bytes per second: a number with an optional unit
// K, M or G (powers of 1024; "KB", "KiB", "K/s" and "KB/s" alike), or "0",
// "off", "none" for no cap.
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	switch t {
	case "", "0", "off", "none", "unlimited":
		return 0, nil
	}
	t = strings.TrimSuffix(strings.TrimSuffix(t, "/s"), "ps")
	i := strings.IndexFunc(t, func(r rune) bool { return !unicode.IsDigit(r) && r != '.' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult := map[string]float64{"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
		"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if mult == 0 || err != nil || v < 0 || v*mult > 1<<40 {
		return 0, fmt.Errorf("%q is not a rate such as 512K or 2M", s)
	}
	return int64(v * mult), nil
}

// FormatRate prints a rate for people: "off", "512 KiB/s", "2.0 MiB/s".
func FormatRate(r int64) string {
	if r <= 0 {
		return "off"
	}
	return FormatBytes(r) + "/s"
}

// FormatBytes prints a size for people: "932 B", "12.5 KiB", "3.2 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
