// Package vmmtest holds test helpers shared by vmm and the packages above
// it.
package vmmtest

import (
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// SyncCheck compares aspacem's record of what v owns with v's OS (the
// kernel, or a simulator) and fails t on any difference, reporting each
// mismatch prefixed by when. A failed check stops the test: what follows
// would be built on a wrong map.
//
// Preconditions: called on the test's goroutine (it may call t.FailNow).
func SyncCheck(t testing.TB, v *vmm.VMM, when string) {
	t.Helper()
	mism, err := v.Space().SyncCheck(v.OS())
	if err != nil {
		t.Fatalf("%s: sync check: %v", when, err)
	}
	for _, m := range mism {
		t.Errorf("%s: sync mismatch: %v", when, m)
	}
	if len(mism) > 0 {
		t.FailNow()
	}
}
