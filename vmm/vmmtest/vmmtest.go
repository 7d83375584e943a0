// Package vmmtest holds test helpers for code that uses vmm, as
// net/http/httptest does for net/http: vmm's own external tests and the
// packages above it (vmcode, privload, jit, ...). It sits just above vmm in
// the layering and is imported by tests only.
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
