//go:build unix

package farm

import "golang.org/x/sys/unix"

func diskFree(dir string) uint64 {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return 0
	}
	return st.Bavail * uint64(st.Bsize)
}
