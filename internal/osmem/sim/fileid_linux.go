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

// fstatFD returns the size of the file open as fd, whether it is a
// regular file, and its identity as fileID gives it.
func fstatFD(fd int) (size uint64, regular bool, dev, inode uint64, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return 0, false, 0, 0, err
	}
	return uint64(st.Size), st.Mode&unix.S_IFMT == unix.S_IFREG,
		uint64(unix.Major(st.Dev))<<8 | uint64(unix.Minor(st.Dev)), st.Ino, nil
}
