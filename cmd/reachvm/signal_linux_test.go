//go:build linux && amd64

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/kernels"
)

// waitStatus runs cmd and returns its standard error and wait status.
func waitStatus(t *testing.T, cmd *exec.Cmd) (string, syscall.WaitStatus) {
	t.Helper()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return errb.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// TestRunKilled: a program that a signal's default action kills (here,
// one that sends itself the signal with no handler) kills `reachvm run`
// with the same signal, as the parent sees it in the wait status, core
// dump flag included; reachvm says which signal and where on one line of
// standard error, and nothing with -q.
func TestRunKilled(t *testing.T) {
	prog, err := kernels.Program("sig_basic", kernels.Exec)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, sig := range []syscall.Signal{syscall.SIGSEGV, syscall.SIGUSR1, syscall.SIGQUIT} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			arg := strconv.Itoa(int(sig))
			_, want := waitStatus(t, exec.Command(prog, "default", arg))
			if !want.Signaled() || want.Signal() != sig {
				t.Fatalf("natively: %v, want killed by %v", want, sig)
			}
			for _, quiet := range []bool{false, true} {
				args := []string{prog, "default", arg}
				if quiet {
					args = append([]string{"-q"}, args...)
				}
				cmd := exec.Command(os.Args[0], "-test.run=^TestRunChild$")
				cmd.Env = append(os.Environ(), "REACHVM_RUN_ARGS="+strings.Join(args, "\x1f"))
				stderr, got := waitStatus(t, cmd)
				if !got.Signaled() || got.Signal() != sig || got.CoreDump() != want.CoreDump() {
					t.Errorf("-q %v: reachvm ended %#x (signaled %v, signal %v, core %v), want killed by %v, core %v; stderr %q",
						quiet, uint32(got), got.Signaled(), got.Signal(), got.CoreDump(), sig, want.CoreDump(), stderr)
				}
				line := "killed by " + unix.SignalName(sig) + " at sig_basic-exec+0x"
				if quiet && stderr != "" {
					t.Errorf("-q: stderr %q, want nothing", stderr)
				}
				if !quiet && (strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, line)) {
					t.Errorf("stderr %q, want one line saying %q", stderr, line)
				}
			}
		})
	}
}

// TestRunOnMainThread: `reachvm run` runs the program on the process's
// main thread, the one the kernel offers a process-directed signal first
// (a timer's SIGALRM, a kill), so that the program takes it at once
// rather than after whichever of the Go runtime's threads got it was
// scheduled to forward it. Seen from outside: while cat waits to read
// its standard input, the thread in that read(0, ...) is the one whose
// id is the process's.
func TestRunOnMainThread(t *testing.T) {
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestRunChild$")
	cmd.Env = append(os.Environ(), "REACHVM_RUN_ARGS="+cat, "REACHVM_TEST_MIGRATE=1")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	reader := 0
	for deadline := time.Now().Add(30 * time.Second); reader == 0 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
		for _, task := range tasks {
			// /proc/PID/task/TID/syscall: the number of the call the
			// thread is blocked in, then its arguments.
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/syscall", pid, task.Name()))
			if f := strings.Fields(string(b)); err == nil && len(f) > 1 && f[0] == strconv.Itoa(unix.SYS_READ) && f[1] == "0x0" {
				reader, _ = strconv.Atoi(task.Name())
			}
		}
	}
	in.Write([]byte("done\n"))
	in.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("reachvm run cat: %v; output %q", err, out.String())
	}
	if out.String() != "done\n" {
		t.Errorf("output %q, want %q", out.String(), "done\n")
	}
	switch reader {
	case 0:
		t.Fatal("no thread of reachvm was seen reading its standard input")
	case pid:
	default:
		t.Errorf("cat read its standard input on thread %d, want the main thread %d", reader, pid)
	}
}
