//go:build linux && amd64

package rawsig

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestChild is not a test: run by the tests below in a child process
// (RAWSIG_CHILD set to "die N" or "stop N"), it takes signal N's default
// action.
func TestChild(t *testing.T) {
	what, arg := os.Getenv("RAWSIG_CHILD"), os.Getenv("RAWSIG_SIG")
	if what == "" {
		t.Skip("a helper for the rawsig tests")
	}
	sig, _ := strconv.Atoi(arg)
	// No core file from the test.
	unix.Setrlimit(unix.RLIMIT_CORE, &unix.Rlimit{})
	var err error
	if what == "die" {
		err = Die(unix.Signal(sig))
	} else {
		err = Stop(unix.Signal(sig))
	}
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(3)
	}
	os.Exit(7)
}

func child(what string, sig syscall.Signal) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestChild$")
	cmd.Env = append(os.Environ(), "RAWSIG_CHILD="+what, "RAWSIG_SIG="+strconv.Itoa(int(sig)))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// TestDie: Die kills the process with the signal, even one the Go
// runtime handles itself (SIGSEGV, which it would turn into a crash
// report and exit status 2) or ignores unasked (SIGUSR1).
func TestDie(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGUSR1, syscall.SIGTERM} {
		err := child("die", sig).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%v: %v, want the child killed", sig, err)
		}
		ws := ee.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != sig {
			t.Errorf("%v: wait status %#x, want killed by %v", sig, uint32(ws), sig)
		}
	}
	if err := Die(0); err == nil {
		t.Error("Die(0) did not fail")
	}
}

// TestStop: Stop stops the process with the signal, and returns once it
// is continued.
func TestStop(t *testing.T) {
	cmd := child("stop", syscall.SIGTSTP)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer syscall.Kill(pid, syscall.SIGKILL)
	var ws syscall.WaitStatus
	if _, err := syscall.Wait4(pid, &ws, syscall.WUNTRACED, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Stopped() || ws.StopSignal() != syscall.SIGTSTP {
		t.Fatalf("wait status %#x, want stopped by SIGTSTP", uint32(ws))
	}
	syscall.Kill(pid, syscall.SIGCONT)
	if _, err := syscall.Wait4(pid, &ws, 0, nil); err != nil {
		t.Fatal(err)
	}
	if !ws.Exited() || ws.ExitStatus() != 7 {
		t.Errorf("after SIGCONT: wait status %#x, want exit 7", uint32(ws))
	}
}
