//go:build !linux

package content

import (
	"io/fs"
	"os"
)

// bootID is nil where the boot cannot be told: a resumed download verifies
// the pieces its state file claims every time.
func bootID() []byte { return nil }

// preallocate does nothing where fallocate does not exist: blocks are
// allocated as pieces are written.
func preallocate(f *os.File, size int64) error { return nil }

// renameNoReplace renames oldpath to newpath, failing if newpath exists
// (checked first: not atomic here).
func renameNoReplace(oldpath, newpath string) error {
	if _, err := os.Lstat(newpath); err == nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
	}
	return os.Rename(oldpath, newpath)
}

// syncDir makes the names in dir durable where the system allows fsync on
// a directory; elsewhere (Windows) it does nothing.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
