package content

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

var boot struct {
	once sync.Once
	id   []byte
}

// bootID identifies this boot of the machine (the kernel's random boot_id):
// while it stays the same, what was written to a file without fsync is
// still there to read. Nil if it cannot be read.
func bootID() []byte {
	boot.once.Do(func() {
		b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
		if b = bytes.TrimSpace(b); err == nil && len(b) == 36 {
			boot.id = b
		}
	})
	return boot.id
}

// preallocate reserves the disk blocks of a part file of size bytes, keeping
// what it holds: the filesystem allocates once instead of as pieces arrive,
// and a disk too small fails the download before anything is fetched. A
// filesystem that cannot preallocate is not an error.
func preallocate(f *os.File, size int64) error {
	if size <= 0 {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = unix.Fallocate(int(fd), 0, 0, size) }); err != nil {
		return err
	}
	if errors.Is(ferr, unix.ENOSPC) || errors.Is(ferr, unix.EDQUOT) {
		return fmt.Errorf("reserve %d bytes for %s: %w", size, f.Name(), ferr)
	}
	return nil
}

// renameNoReplace renames oldpath to newpath, failing if newpath exists.
func renameNoReplace(oldpath, newpath string) error {
	err := unix.Renameat2(unix.AT_FDCWD, oldpath, unix.AT_FDCWD, newpath, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) { // not on this filesystem
		if _, err := os.Lstat(newpath); err == nil {
			return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrExist}
		}
		return os.Rename(oldpath, newpath)
	}
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: err}
	}
	return nil
}

// syncDir makes the names in dir durable (a rename, a new file). A
// filesystem that cannot fsync a directory is not an error.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTSUP) {
		return nil
	}
	return err
}
