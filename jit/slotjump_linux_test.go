//go:build linux && amd64

package jit

import (
	"errors"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
)

// TestSlotBranches runs the slots program (calls through the PLT, or with
// -fno-plt through the GOT, and through a function pointer the program
// changes every 1000 rounds) natively and under reachvm: with branches
// through slots gone on through behind a guard, with vmcode anywhere
// (64-bit targets, slots out of RIP-relative reach) and low (near the
// program), with the flag-free guard of Options.StrictFlags, and, as the
// baseline, without (Options.NoSlotBranches). The same output every way;
// the guards are there where they can be. Bound eagerly and lazily
// (where the PLT slot changes at the first call), as an ET_EXEC and as a
// PIE. The pointer's changes make guards miss, to a fragment that starts
// at the call; one that went on through there too would loop on its own
// guard, and the run would not end.
func TestSlotBranches(t *testing.T) {
	hasInterp(t)
	modes := []struct {
		name string
		env  []string
		// some: some branches must have been gone on through; none:
		// none may have been.
		some, none bool
	}{
		{"guard", nil, true, false},
		{"guard-low", []string{"REACHVM_PROGRAM_LOW=1"}, true, false},
		{"strict-low", []string{"REACHVM_PROGRAM_LOW=1", "REACHVM_PROGRAM_STRICT_FLAGS=1"}, true, false},
		{"off", []string{"REACHVM_PROGRAM_NO_SLOT_BRANCHES=1"}, false, true},
	}
	for _, kind := range programKinds {
		for _, link := range []struct{ name, flag string }{{"plt-lazy", "-Wl,-z,lazy"}, {"plt-now", "-Wl,-z,now"}, {"no-plt", "-fno-plt"}} {
			t.Run(kind.name+"/"+link.name, func(t *testing.T) {
				prog, err := kern.Dynamic("slots", kind.name, link.flag)
				if errors.Is(err, kern.ErrNoCompiler) {
					t.Skip(err)
				}
				if err != nil {
					t.Fatal(err)
				}
				want, wantCode := runNative(t, prog, "5000")
				for _, mode := range modes {
					env := append([]string{"REACHVM_PROGRAM_STATS=1"}, mode.env...)
					got, stderr, code := runProgramEnv(t, prog, env, programTimeout, "5000")
					if code != wantCode || got != want {
						t.Fatalf("%s: status %d, output %q, stderr %s; want status %d, output %q", mode.name, code, got, stderr, wantCode, want)
					}
					n := statField(t, stderr, "SlotBranches")
					if mode.some && n == 0 || mode.none && n != 0 {
						t.Errorf("%s: %d branches through slots gone on through", mode.name, n)
					}
				}
			})
		}
	}
}
