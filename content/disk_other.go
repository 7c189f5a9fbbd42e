//go:build !linux

package content

import "os"

// startWriteback does nothing where sync_file_range does not exist: the
// fsync completing a download writes everything.
func startWriteback(f *os.File) {}

// preallocate does nothing where fallocate does not exist: blocks are
// allocated as pieces are written.
func preallocate(f *os.File, size int64) error { return nil }
