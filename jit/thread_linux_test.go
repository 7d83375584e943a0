//go:build linux && amd64

package jit

import (
	"fmt"
	"os"
	"strings"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
)

// TestThreadPrograms runs the threads program's cases natively (ET_EXEC)
// and under reachvm (ET_EXEC and static PIE) and compares output and
// end (exit status or killing signal): threads made by raw clone with
// their own stacks and TLS (CLONE_SETTLS, read through %fs), the tid
// words of CLONE_PARENT_SETTID, CLONE_CHILD_SETTID and
// CLONE_CHILD_CLEARTID (a join waits on the latter's futex), a futex
// mutex over a shared counter, exit of one thread against exit_group
// (which ends threads spinning in translated code, sleeping in a futex
// wait and waiting in pause), the main thread exiting first (the status
// is the last thread's), tgkill to each thread (spinning, in a futex
// wait, in rt_sigsuspend) and kill to the process (the handler runs on
// the thread the signal was for, or on the one that does not block it),
// a thread's fault handled on that thread, a fatal fault in a thread,
// and code one thread runs changed by another: written (on a page
// write-protected for another thread's translation, by one or two
// threads at once) or replaced by a mapping.
func TestThreadPrograms(t *testing.T) {
	cases := [][]string{
		{"create", "4"}, {"tls", "4"}, {"mutex", "4", "20000"}, {"exit"}, {"group"}, {"mainexit"}, {"tgkill", "6"}, {"segv"}, {"fault"},
		{"spawn", "50"}, {"smc", "write"}, {"smc", "remap"}, {"smc", "race"},
	}
	matchNativeCases(t, "threads", cases)
	// Each thread's FS switched on entry and exit (where wrfsbase is not
	// enabled, the default translates FS-relative operands instead).
	ref := buildProgram(t, "threads", kern.Exec)
	for _, args := range [][]string{{"tls", "4"}, {"tgkill", "6"}, {"group"}, {"segv"}} {
		t.Run("arch_prctl/"+strings.Join(args, "_"), func(t *testing.T) {
			cmd := reachvmCmd(ref, false, args...)
			cmd.Env = append(cmd.Env, "REACHVM_PROGRAM_FS=arch_prctl")
			matchNative(t, ref, args, cmd)
		})
	}
}

// TestLibcThreads runs a static glibc program's threads (pthreads.c: 8
// threads, a mutex, a queue with condition variables, a barrier,
// thread-local variables, joins with results, pthread_kill) under
// reachvm, ET_EXEC and static PIE, and natively: the same output and
// status, run after run. glibc's pthread_create makes its thread with
// clone3 and joins it on the word CLONE_CHILD_CLEARTID clears. The runs
// are 2 a kind, 20 with REACHVM_SOAK=1.
func TestLibcThreads(t *testing.T) {
	runs := 2
	if os.Getenv("REACHVM_SOAK") != "" {
		runs = 20
	}
	for _, kind := range programKinds {
		prog := buildLibc(t, "pthreads", kind.name)
		want, wantCode := runNative(t, prog)
		for i := range runs {
			t.Run(fmt.Sprintf("%s/%d", kind.name, i), func(t *testing.T) {
				got, stderr, code := runProgram(t, prog, kind.name == kern.PIE)
				if code != wantCode || got != want {
					t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
				}
			})
		}
		// FS switched on each entry and exit, as where wrfsbase is.
		t.Run(kind.name+"/arch_prctl", func(t *testing.T) {
			env := []string{"REACHVM_PROGRAM_FS=arch_prctl"}
			if kind.name == kern.PIE {
				env = append(env, "REACHVM_PROGRAM_LOW=1")
			}
			got, stderr, code := runProgramEnv(t, prog, env, programTimeout)
			if code != wantCode || got != want {
				t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
			}
		})
	}
}
