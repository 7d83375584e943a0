package sim

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// fileID returns the device (major<<8|minor, as /proc/self/maps shows it)
// and inode of the file st describes.
func fileID(st fs.FileInfo) (dev, inode uint64) {
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0
	}
	d := uint64(sys.Dev)
	return uint64(unix.Major(d))<<8 | uint64(unix.Minor(d)), sys.Ino
}
