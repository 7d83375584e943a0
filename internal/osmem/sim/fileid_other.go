//go:build !linux && !windows

package sim

import (
	"errors"
	"io/fs"
)

// fileID returns zeros: the host has no Linux device and inode numbers to
// report.
func fileID(fs.FileInfo) (dev, inode uint64) { return 0, 0 }

// fstatFD fails: descriptors are Linux's here.
func fstatFD(int) (size uint64, regular bool, dev, inode uint64, err error) {
	return 0, false, 0, 0, errors.New("no descriptors to examine on this host")
}
