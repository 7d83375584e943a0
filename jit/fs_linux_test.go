package jit

import (
	"strings"
	"testing"
)

// TestProgramFS runs fsbase natively (ET_EXEC) and under reachvm (ET_EXEC
// and static PIE): the program's FS is its own, set with arch_prctl, kept
// across system calls and a signal handler, read back with ARCH_GET_FS,
// with the kernel's errors; and reading %fs before setting it faults as
// natively (the base is 0), where Go's thread pointer used to answer.
func TestProgramFS(t *testing.T) {
	ref := buildProgram(t, "fsbase", "exec")
	for _, kind := range programKinds {
		prog := buildProgram(t, "fsbase", kind.name)
		for _, args := range [][]string{{}, {"unset"}} {
			t.Run(kind.name+"/"+strings.Join(append([]string{"set"}, args...), "_"), func(t *testing.T) {
				want, _, wantSt := runCmd(t, nativeCmd(ref, args...))
				got, stderr, st := runCmd(t, reachvmCmd(prog, kind.name == "pie", args...))
				if st != wantSt || got != want {
					t.Errorf("under reachvm: %v, output:\n%s\nstderr: %s\nnatively: %v, output:\n%s", st, got, stderr, wantSt, want)
				}
			})
		}
	}
}
