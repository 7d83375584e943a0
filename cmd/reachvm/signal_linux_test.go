//go:build linux && amd64

package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

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
