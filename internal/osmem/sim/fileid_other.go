//go:build !linux

package sim

import "io/fs"

// fileID returns zeros: the host has no Linux device and inode numbers to
// report.
func fileID(fs.FileInfo) (dev, inode uint64) { return 0, 0 }
