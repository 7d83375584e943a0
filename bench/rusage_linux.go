package bench

import (
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxRSSKiB returns the peak resident set size of the process that ps
// describes, as wait4 reported it (ru_maxrss, in KiB on Linux).
func maxRSSKiB(ps *os.ProcessState) int64 {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

// exitText says how a process ended: "exit N" or "killed by SIGNAME".
func exitText(ps *os.ProcessState) string {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + unix.SignalName(ws.Signal())
	}
	return "exit " + strconv.Itoa(ps.ExitCode())
}
