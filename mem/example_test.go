package mem_test

import (
	"fmt"

	"github.com/reachvm/reachvm/mem"
)

// A code region and a library it calls must lie within rel32 reach of
// each other from both ends of the region.
func Example() {
	code, _ := mem.RangeOf(0x7f00_0000_0000, 1<<30)
	lib := uintptr(0x7f00_4000_0000)
	end, _ := mem.AlignUp[uintptr](0x7f00_0000_1234, mem.PageSize)
	fmt.Println(code, mem.ReachesAll(code, lib), mem.ReachesAll(code, lib+1<<30), mem.ProtRX)
	fmt.Printf("%#x\n", end)
	// Output:
	// [0x7f0000000000, 0x7f0040000000) true false r-x
	// 0x7f0000002000
}
