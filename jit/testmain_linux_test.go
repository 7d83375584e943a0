//go:build linux && amd64

package jit

import (
	"flag"
	"os"
	"runtime"
	"testing"
)

// A child the program tests start to run a program (TestProgramChild)
// runs it from TestMain, on the main goroutine, which this init holds on
// the process's main thread: where `reachvm run` runs its program, the
// thread the kernel offers a process-directed signal (a timer's SIGALRM)
// first, which the program then takes at once. Run from a test's
// goroutine, on another thread, such a signal reached the program only
// once whichever Go thread the kernel picked was scheduled and forwarded
// it: on a loaded machine TestSignalStorm's timer could reach none of
// its loop.
func init() { runtime.LockOSThread() }

func TestMain(m *testing.M) {
	flag.Parse()
	if path := os.Getenv("REACHVM_PROGRAM"); path != "" && flag.Lookup("test.run").Value.String() == "^TestProgramChild$" {
		programChild(path)
	}
	os.Exit(m.Run())
}
