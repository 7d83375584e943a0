//go:build linux && amd64

package jit

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBlockStartExits runs blocks whose first instruction is a system call
// or a trapping instruction (the blockstart program: a syscall right
// before int3, ud2 or an invalid opcode, two syscalls in a row, a syscall
// reached only by a taken branch and at a loop's head), as ET_EXEC and
// static PIE, with superblocks and with one basic block a fragment. Such
// an exit's target is its own fragment's start: bound back to the
// fragment, it ran it forever. Each run has a timeout. The system calls
// must run as natively; a trap must end the run naming the instruction's
// bytes, or with the native signal once faults are delivered.
func TestBlockStartExits(t *testing.T) {
	cases := []struct {
		mode string
		// sig is the signal the native run dies of, bytes the trapping
		// instruction's (0 and "" for a run that exits).
		sig   unix.Signal
		bytes string
	}{
		{"int3", unix.SIGTRAP, "(cc)"},
		{"ud2", unix.SIGILL, "(0f 0b)"},
		{"bad", unix.SIGILL, "(06)"},
		{"twice", 0, ""},
		{"branch", 0, ""},
	}
	for _, kind := range programKinds {
		prog := buildProgram(t, "blockstart", kind.name)
		for _, c := range cases {
			want, wantStatus := runNativeStatus(t, prog, c.mode)
			if c.sig != 0 && (!wantStatus.Signaled() || wantStatus.Signal() != c.sig) {
				t.Fatalf("%s %s natively: status %v, want death by %v", kind.name, c.mode, wantStatus, c.sig)
			}
			for _, maxBlocks := range []string{"0", "1"} {
				name := fmt.Sprintf("%s %s max-blocks %s", kind.name, c.mode, maxBlocks)
				out, stderr, code := runProgramEnv(t, prog, []string{"REACHVM_PROGRAM_MAX_BLOCKS=" + maxBlocks}, 20*time.Second, c.mode)
				if out != want {
					t.Errorf("%s: output %q, want %q (stderr %q)", name, out, want, stderr)
				}
				switch {
				case c.sig == 0:
					if code != wantStatus.ExitStatus() {
						t.Errorf("%s: status %d, want %d (stderr %q)", name, code, wantStatus.ExitStatus(), stderr)
					}
				case strings.Contains(stderr, "unsupported instruction at "):
					if code != 111 || !strings.Contains(stderr, c.bytes+": ") {
						t.Errorf("%s: status %d, stderr %q: want the run to fail naming the bytes %s", name, code, stderr, c.bytes)
					}
				default:
					// Faults delivered: the default action names the
					// signal.
					if code != 111 || !strings.Contains(stderr, "killed by "+unix.SignalName(c.sig)) {
						t.Errorf("%s: status %d, stderr %q: want the run to end with %v", name, code, stderr, c.sig)
					}
				}
			}
		}
	}
}

// runNativeStatus runs path natively, with runNative's environment and a
// timeout, and returns its output and wait status (which tells a death by
// a signal from an exit).
func runNativeStatus(t *testing.T, path string, args ...string) (string, syscall.WaitStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = []string{"RV=yes", "HOME=/"}
	out, err := cmd.Output()
	if ctx.Err() != nil {
		t.Fatalf("%s %q natively: still running after 20s", path, args)
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), cmd.ProcessState.Sys().(syscall.WaitStatus)
}
