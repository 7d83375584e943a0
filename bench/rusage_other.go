//go:build !linux

package bench

import "os"

// maxRSSKiB is 0 where wait4's rusage is not Linux's: the programs
// benchmark runs on Linux only.
func maxRSSKiB(*os.ProcessState) int64 { return 0 }
