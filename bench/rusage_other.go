//go:build !linux

package bench

import (
	"os"
	"strconv"
)

// maxRSSKiB is 0 where wait4's rusage is not Linux's: the programs
// benchmark runs on Linux only.
func maxRSSKiB(*os.ProcessState) int64 { return 0 }

// exitText says how a process ended: "exit N", or as ps says.
func exitText(ps *os.ProcessState) string {
	if code := ps.ExitCode(); code >= 0 {
		return "exit " + strconv.Itoa(code)
	}
	return ps.String()
}
