//go:build linux

package vmm_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestRandomOpsNative runs 1,000 random operations on the real kernel and
// compares aspacem with /proc/self/maps after every one.
func TestRandomOpsNative(t *testing.T) {
	path := tempFile(t, filePages*4096)
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	base, size := v.VMCode()
	obj, err := v.OS().OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.OS().CloseObject(obj)
	r := &opRunner{v: v, rng: rand.New(rand.NewPCG(1, 2)), obj: obj, page: v.OS().PageSize()}
	failed := 0
	for i := 0; i < 1000; i++ {
		desc, err := r.step()
		if badOp(desc, err) {
			t.Fatalf("op %d %s: %v", i, desc, err)
		}
		if err != nil {
			failed++
		}
		vmmtest.SyncCheck(t, v, fmt.Sprintf("after op %d (%s, err %v)", i, desc, err))
	}
	t.Logf("1000 ops, %d refused, %d slots live, %d segments in the map", failed, len(r.slots), v.Space().Len())
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothingOwned(t, v, base, size, "after Close")
}
