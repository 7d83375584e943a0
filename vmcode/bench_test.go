package vmcode_test

import (
	"runtime"
	"strconv"
	"testing"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// BenchmarkUnitWrite measures Unit.Write of a 4-byte patch (a rel32 link,
// the jit's most frequent write) and of a 256-byte fragment, against a
// plain copy to the same writable address: the baseline, which is what
// Write cost before it held the unit's lock so that a Close on another
// goroutine cannot unmap the unit under it.
func BenchmarkUnitWrite(b *testing.B) {
	if runtime.GOOS != "linux" && runtime.GOOS != "windows" {
		b.Skip("native units need Linux or Windows")
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	u, err := vmcode.New(v).Alloc(4096)
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{4, 256} {
		src := make([]byte, n)
		b.Run("copy/"+strconv.Itoa(n), func(b *testing.B) {
			dst := rawmem.Bytes(u.Writable(), uintptr(n))
			for i := 0; i < b.N; i++ {
				copy(dst, src)
			}
		})
		b.Run("unit/"+strconv.Itoa(n), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if err := u.Write(0, src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
