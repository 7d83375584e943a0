package sim

import (
	"io/fs"
	"syscall"
)

// fileID returns zeros: Windows has no Linux device and inode numbers to
// report (the simulator's Linux rules show them in the map).
func fileID(fs.FileInfo) (dev, inode uint64) { return 0, 0 }

// fstatFD returns the size of the file whose handle is fd and whether it
// is a regular file, with the zero identity fileID gives here: the Linux
// rules' descriptor is a handle on this host.
func fstatFD(fd int) (size uint64, regular bool, dev, inode uint64, err error) {
	var info syscall.ByHandleFileInformation
	if err := syscall.GetFileInformationByHandle(syscall.Handle(fd), &info); err != nil {
		return 0, false, 0, 0, err
	}
	const notRegular = syscall.FILE_ATTRIBUTE_DIRECTORY | syscall.FILE_ATTRIBUTE_REPARSE_POINT
	return uint64(info.FileSizeHigh)<<32 | uint64(info.FileSizeLow), info.FileAttributes&notRegular == 0, 0, 0, nil
}
