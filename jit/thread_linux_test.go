//go:build linux && amd64

package jit

import (
	"strings"
	"testing"
)

// TestThreadPrograms runs the threads program's cases natively (ET_EXEC)
// and under reachvm (ET_EXEC and static PIE) and compares output and
// end (exit status or killing signal): threads made by raw clone with
// their own stacks, the tid words of CLONE_PARENT_SETTID,
// CLONE_CHILD_SETTID and CLONE_CHILD_CLEARTID (a join waits on the
// latter's futex), a futex mutex over a shared counter, exit of one
// thread against exit_group (which ends threads spinning in translated
// code and sleeping in a futex wait), the main thread exiting first (the
// status is the last thread's), tgkill to each thread and kill to the
// process (the handler runs on the thread the signal was for, or the one
// that does not block it), a fatal fault in a thread, and code one thread
// runs changed by another: written (on a page write-protected for
// another thread's translation, by one or two threads at once) or
// replaced by a mapping.
func TestThreadPrograms(t *testing.T) {
	ref := buildProgram(t, "threads", "exec")
	cases := [][]string{
		{"create", "4"}, {"tls", "4"}, {"mutex", "4", "20000"}, {"exit"}, {"group"}, {"mainexit"}, {"tgkill", "4"}, {"fault"},
		{"spawn", "50"}, {"smc", "write"}, {"smc", "remap"}, {"smc", "race"},
	}
	for _, kind := range programKinds {
		prog := buildProgram(t, "threads", kind.name)
		for _, args := range cases {
			t.Run(kind.name+"/"+strings.Join(args, "_"), func(t *testing.T) {
				want, _, wantSt := runCmd(t, nativeCmd(ref, args...))
				got, stderr, st := runCmd(t, reachvmCmd(prog, kind.name == "pie", args...))
				if st != wantSt || got != want {
					t.Errorf("under reachvm: %v, output:\n%s\nstderr: %s\nnatively: %v, output:\n%s", st, got, stderr, wantSt, want)
				}
			})
		}
	}
}
