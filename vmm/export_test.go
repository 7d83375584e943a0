package vmm

// SetGridIdleMax sets the bound on the grid slots idle code units hold in
// W^X vmcode on the grid (gridIdleMax; 0 keeps none), so that tests from
// package vmm_test reach both the release that keeps a unit idle and the
// one that tears it down. It reports false for any other vmcode.
//
// Preconditions: no unit has been released yet.
func SetGridIdleMax(v *VMM, n int) bool {
	d, ok := v.back.(*gridDual)
	if ok {
		d.idleMax = n
	}
	return ok
}

// GoHeapRange is goHeapRange, for the tests of package vmm_test.
var GoHeapRange = goHeapRange
