package im

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/juxta-p2p/juxta/peer"
)

// What a contact's file offer may cost the receiver (SECURITY.md).
const (
	// MaxPartialFiles bounds unfinished incoming files kept for resuming;
	// an offer past it is refused until some finish or expire.
	MaxPartialFiles = 8
	// PartialTTL is how long an unfinished incoming file is kept for the
	// sender to resume it before it is deleted.
	PartialTTL = 24 * time.Hour
	// FreeSpaceReserve is the disk space a transfer must leave free.
	FreeSpaceReserve = 256 << 20
)

// errFinal marks a refusal the sender must not retry.
var (
	errNoSpace     = errors.New("not enough free disk space")
	errTooManyPart = errors.New("too many unfinished transfers")
)

var transferIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// validHeader checks a file header from a contact: the ID names the partial
// file, so it is plain; the name is sanitised later (safename.SafeName), but a
// name no file system takes (over 255 bytes, or with NUL) is refused outright.
func validHeader(h fileHeader) error {
	switch {
	case !transferIDPattern.MatchString(h.ID):
		return errors.New("bad transfer ID")
	case len(h.Name) == 0 || len(h.Name) > 255 || strings.ContainsRune(h.Name, 0):
		return errors.New("bad file name")
	case h.Size < 0 || h.Size > MaxFileSize:
		return fmt.Errorf("bad size %d", h.Size)
	case len(h.Content) != 32 || [32]byte(h.Content) == [32]byte{}:
		return errors.New("bad content ID")
	}
	return nil
}

// partialName is the unfinished file of transfer id in dir. The content
// service keeps its piece bitmap beside it (partialName + ".state").
func partialName(dir, id string) string { return filepath.Join(dir, "."+id+".part") }

// partialHeld returns how many bytes the unfinished file at part holds on
// disk (it is sparse: the content service writes pieces where they go), or
// -1 when there is none.
func partialHeld(part string) int64 {
	fi, err := os.Stat(part)
	if err != nil {
		return -1
	}
	if n, ok := allocated(fi); ok {
		return n
	}
	return fi.Size()
}

// admitPartial decides whether transfer id may keep an unfinished file of size
// bytes in dir, which holds have bytes of it (-1: none yet): it deletes
// partial files older than PartialTTL, then refuses a new one when
// MaxPartialFiles others are unfinished, or when the disk would be left with
// less than FreeSpaceReserve.
func admitPartial(dir, id string, size, have int64) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	others := 0
	for _, e := range entries {
		name := e.Name()
		state := strings.HasSuffix(name, ".part.state")
		if !strings.HasPrefix(name, ".") || !(strings.HasSuffix(name, ".part") || state) || strings.HasPrefix(name, "."+id+".part") {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if time.Since(fi.ModTime()) > PartialTTL {
			os.Remove(filepath.Join(dir, name))
			if !state {
				os.Remove(filepath.Join(dir, name+".state"))
			}
			continue
		}
		if !state {
			others++
		}
	}
	if have < 0 && others >= MaxPartialFiles {
		return fmt.Errorf("%w: %d waiting", errTooManyPart, others)
	}
	have = max(have, 0)
	if free, ok := freeSpace(dir); ok && free-(size-have) < FreeSpaceReserve {
		return fmt.Errorf("%w: %d bytes free, %d needed", errNoSpace, free, size-have+FreeSpaceReserve)
	}
	return nil
}

// sweepPartials deletes unfinished incoming files older than PartialTTL.
func sweepPartials(dir string) {
	_ = admitPartial(dir, "\x00", 0, 0) // "\x00": no transfer's files to spare

}

// senderTag is a short, file-name-safe tag of a sender's peer ID.
func senderTag(from peer.ID) string {
	h := sha256.Sum256([]byte(from))
	return hex.EncodeToString(h[:6]) + "-"
}
