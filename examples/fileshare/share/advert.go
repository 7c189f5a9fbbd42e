package share

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"unicode"

	"github.com/juxta-p2p/juxta/discovery"
)

// AdType is the advertisement type of a shared file.
const AdType = "fileshare.file"

// Attributes of a file advertisement.
const (
	AttrName     = "name"     // the file's base name
	AttrKeywords = "keywords" // words from the name and the folders above it
	AttrSize     = "size"     // bytes, decimal
	AttrKind     = "kind"     // audio, video, image, document, archive, program, other
	AttrID       = "cid"      // the content ID
)

// Bounds on what a file advertisement carries.
const (
	maxAdName     = 1024
	maxKeywords   = 1024
	maxAdLink     = 8 << 10
	maxKeywordDir = 4 // folders above the file that give keywords
)

// ErrBadAd: a file advertisement is malformed.
var ErrBadAd = errors.New("share: malformed file advertisement")

// File describes one shared file as advertised.
type File struct {
	Name string // base name, as the sharer has it (unsanitised)
	Rel  string // path inside the shared folder, '/'-separated
	Size int64
	Kind string
	ID   string // content ID
	Link string // share link: the ID, size, name and provider hints
}

// Advertisement returns the file's advertisement in scope ("" for the net
// group). Its ID is the content ID, so one publisher advertises identical
// files once.
func (f File) Advertisement(scope string) discovery.Advertisement {
	name := f.Name
	if name == "" {
		name = path.Base(f.Rel)
	}
	kind := f.Kind
	if kind == "" {
		kind = KindOf(name)
	}
	return discovery.Advertisement{
		Type:  AdType,
		ID:    f.ID,
		Scope: scope,
		Attrs: map[string]string{
			AttrName:     clip(name, maxAdName),
			AttrKeywords: Keywords(f.Rel),
			AttrSize:     strconv.FormatInt(f.Size, 10),
			AttrKind:     kind,
			AttrID:       f.ID,
		},
		Body: []byte(f.Link),
	}
}

// ParseFile reads a file advertisement received from anyone. Name and Rel are
// returned as advertised: sanitise them (SafeName, Display) before use.
func ParseFile(ad discovery.Advertisement) (File, error) {
	if ad.Type != AdType {
		return File{}, fmt.Errorf("%w: type %q", ErrBadAd, ad.Type)
	}
	size, err := strconv.ParseInt(ad.Attrs[AttrSize], 10, 64)
	if err != nil || size < 0 {
		return File{}, fmt.Errorf("%w: size %q", ErrBadAd, ad.Attrs[AttrSize])
	}
	id := ad.Attrs[AttrID]
	if id == "" || id != ad.ID {
		return File{}, fmt.Errorf("%w: content ID %q does not match advertisement %q", ErrBadAd, id, ad.ID)
	}
	if len(ad.Body) > maxAdLink {
		return File{}, fmt.Errorf("%w: link of %d bytes", ErrBadAd, len(ad.Body))
	}
	f := File{Name: ad.Attrs[AttrName], Rel: ad.Attrs[AttrKeywords], Size: size, Kind: ad.Attrs[AttrKind], ID: id, Link: string(ad.Body)}
	switch f.Kind {
	case "audio", "video", "image", "document", "archive", "program", "other":
	default:
		f.Kind = KindOf(f.Name)
	}
	return f, nil
}

// Keywords returns the words of a shared file's path (its name and up to
// maxKeywordDir folders above it), lower-cased and separated by spaces, with
// the extension as a word of its own. Separators that Unicode word breaking
// keeps inside words ('_', '.') split words here.
func Keywords(rel string) string {
	parts := strings.Split(strings.ReplaceAll(rel, `\`, "/"), "/")
	if len(parts) > maxKeywordDir+1 {
		parts = parts[len(parts)-maxKeywordDir-1:]
	}
	seen := map[string]bool{}
	var words []string
	for _, p := range parts {
		for _, w := range strings.FieldsFunc(p, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsNumber(r) && !unicode.Is(unicode.Mn, r) && !unicode.Is(unicode.Mc, r)
		}) {
			w = strings.ToLower(w)
			if !seen[w] {
				seen[w] = true
				words = append(words, w)
			}
		}
	}
	return clip(strings.Join(words, " "), maxKeywords)
}

// clip cuts s to at most n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

var kinds = map[string]string{}

func init() {
	for kind, exts := range map[string]string{
		"audio":    "mp3 flac ogg oga opus wav m4a aac wma aiff ape mid midi",
		"video":    "mp4 mkv avi mov webm wmv flv m4v mpg mpeg ts 3gp",
		"image":    "jpg jpeg png gif webp bmp svg tif tiff heic raw psd",
		"document": "pdf txt md doc docx odt rtf epub mobi hwp hwpx xls xlsx ods ppt pptx odp csv html htm tex srt smi",
		"archive":  "zip tar gz tgz bz2 xz zst 7z rar alz egg",
		"program":  "exe msi dmg pkg deb rpm apk appimage iso jar wasm sh",
	} {
		for _, e := range strings.Fields(exts) {
			kinds[e] = kind
		}
	}
}

// KindOf guesses a file's kind from its extension: audio, video, image,
// document, archive, program or other.
func KindOf(name string) string {
	ext := strings.ToLower(strings.TrimPrefix(path.Ext(strings.ReplaceAll(name, `\`, "/")), "."))
	if k, ok := kinds[ext]; ok {
		return k
	}
	return "other"
}
