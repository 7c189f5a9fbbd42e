package safename

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on names taken from advertisements.
const (
	// MaxNameBytes bounds a sanitised file name, extension included; most file
	// systems allow 255 bytes.
	MaxNameBytes = 200
	// maxExtBytes is the longest extension kept whole when a name is cut.
	maxExtBytes = 16
	// maxSuffix bounds the " (n)" suffixes tried before giving up.
	maxSuffix = 10_000
)

// ErrNoFreeName: every suffixed variant of a name is taken in the downloads
// folder.
var ErrNoFreeName = errors.New("safename: no free name in the downloads folder")

// SafeName turns a name from a remote advertisement into one safe to create in
// the downloads folder and to print: only its last path element is kept (so
// "../", "..\" and absolute paths cannot escape), control and format
// characters (NUL, escapes, bidi overrides) are dropped, characters that
// Windows forbids become '_', Unicode is composed (NFC), leading and trailing
// dots and spaces go, reserved device names get a prefix, and the result is
// cut to MaxNameBytes at a character boundary, keeping the extension. It never
// returns "", "." or "..".
func SafeName(name string) string {
	name = strings.ToValidUTF8(name, "")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	var b strings.Builder
	for _, r := range norm.NFC.String(name) {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r),
			unicode.Is(unicode.Co, r), r == '\u2028', r == '\u2029':
			continue
		case strings.ContainsRune(`<>:"|?*`, r):
			b.WriteRune('_')
		case unicode.IsSpace(r):
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	name = strings.Trim(b.String(), " .")
	name = strings.Join(strings.Fields(name), " ")
	if name == "" {
		return "file"
	}
	if reserved(name) {
		name = "_" + name
	}
	return cut(name, MaxNameBytes)
}

// reserved reports names that Windows treats as devices, whatever the
// extension.
func reserved(name string) bool {
	base := strings.ToUpper(strings.TrimSpace(strings.SplitN(name, ".", 2)[0]))
	switch base {
	case "CON", "PRN", "AUX", "NUL":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && base[3] >= '0' && base[3] <= '9' {
		return true
	}
	return false
}

// cut shortens name to at most max bytes at a rune boundary, keeping a short
// extension.
func cut(name string, max int) string {
	if len(name) <= max {
		return name
	}
	ext := filepath.Ext(name)
	if len(ext) > maxExtBytes || len(ext) == len(name) {
		ext = ""
	}
	stem := name[:len(name)-len(ext)]
	limit := max - len(ext)
	for limit > 0 && !utf8.RuneStart(stem[limit]) {
		limit--
	}
	return strings.TrimRight(stem[:limit], " .") + ext
}

// Display makes any string safe to print on one line of a terminal, at most
// max characters long: control and format characters (escapes, bidi
// overrides, newlines) are dropped and a long text ends in "…".
func Display(s string, max int) string {
	rs := make([]rune, 0, min(len(s), 4*max+4))
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
			continue
		}
		if len(rs) > max {
			break
		}
		rs = append(rs, r)
	}
	if max > 0 && len(rs) > max {
		rs = append(rs[:max-1], '…')
	}
	return string(rs)
}

// suffixed is name with " (n)" before its extension.
func suffixed(name string, n int) string {
	ext := filepath.Ext(name)
	if len(ext) > maxExtBytes || len(ext) == len(name) {
		ext = ""
	}
	suffix := fmt.Sprintf(" (%d)", n)
	stem := cut(strings.TrimSuffix(name, ext), MaxNameBytes-len(ext)-len(suffix))
	return stem + suffix + ext
}

// Place moves the finished file src into dir under SafeName(name), never
// overwriting: if the name is taken it adds " (1)", " (2)", ... before the
// extension. It returns the path it chose, which is always directly inside
// dir. src is removed once placed.
func Place(src, dir, name string) (string, error) {
	name = SafeName(name)
	for i := 0; i <= maxSuffix; i++ {
		n := name
		if i > 0 {
			n = suffixed(name, i)
		}
		dst := filepath.Join(dir, n)
		if filepath.Dir(dst) != filepath.Clean(dir) {
			return "", fmt.Errorf("safename: name %q escapes the downloads folder", n)
		}
		err := os.Link(src, dst) // fails if dst exists: never overwrites
		if err == nil {
			return dst, os.Remove(src)
		}
		if errors.Is(err, os.ErrExist) {
			continue
		}
		// No hard links here (another file system): copy into a file created
		// exclusively.
		if err := copyExclusive(src, dst); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return "", fmt.Errorf("safename: place %s: %w", n, err)
		}
		return dst, os.Remove(src)
	}
	return "", fmt.Errorf("%w: %s", ErrNoFreeName, name)
}

func copyExclusive(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(dst)
		return err
	}
	if err := out.Close(); err != nil {
		os.Remove(dst)
		return err
	}
	return nil
}
