package bench

import (
	"os"
	"syscall"
)

// maxRSSKiB returns the peak resident set size of the process that ps
// describes, as wait4 reported it (ru_maxrss, in KiB on Linux).
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}
