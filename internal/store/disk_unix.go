//go:build unix

package store

import (
	"golang.org/x/sys/unix"
)

// diskSpace is statDisk; tests replace it before opening a store.
var diskSpace = statDisk

// statDisk returns the free space (for an unprivileged writer) and the
// size of the filesystem holding dir, or of its nearest existing parent.
func statDisk(dir string) (free, total int64, err error) {
	for {
		var st unix.Statfs_t
		err = unix.Statfs(dir, &st)
		if err == nil {
			bsize := int64(st.Bsize) //nolint:unconvert // int32 on some systems
			return int64(st.Bavail) * bsize, int64(st.Blocks) * bsize, nil
		}
		parent := parentDir(dir)
		if parent == dir || err != unix.ENOENT {
			return 0, 0, err
		}
		dir = parent
	}
}
