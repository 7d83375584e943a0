package strategy_test

import (
	"fmt"

	"github.com/reachvm/reachvm/bench/strategy"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

// linux-fixed, reachvm's Linux vmcode, on a simulated Linux address
// space: the library goes into the region with MAP_FIXED, so it is within
// reach of every byte of it, and no race window ever opens.
func Example() {
	o := sim.New(mem.RulesLinux, sim.Options{Seed: 1})
	st, ok := strategy.New("linux-fixed")
	if !ok {
		panic("no linux-fixed")
	}
	if err := st.Setup(o); err != nil {
		panic(err)
	}
	region := st.Region()
	lo, hi := region.Start, region.End
	v, err := st.Place(strategy.Lib{Name: "libclient.so", Size: 1740 << 10}, true)
	if err != nil {
		panic(err)
	}
	fmt.Printf("region: %d MiB\n", (hi-lo)>>20)
	fmt.Printf("%s: %d KiB at region+%#x, reachable: %v\n",
		v.Lib.Name, v.Size>>10, v.Addr-lo, v.Reachable(region))
	windows, losses := st.Races()
	fmt.Printf("race windows %d, lost %d\n", windows, losses)
	if err := st.Teardown(); err != nil {
		panic(err)
	}
	// Output:
	// region: 2048 MiB
	// libclient.so: 1740 KiB at region+0x0, reachable: true
	// race windows 0, lost 0
}

// D, DynamoRIO's grid option, with a smaller region than the default, on a
// simulated Windows address space: dbghelp (1.7 MiB) releases three
// consecutive 640 KiB slots, is mapped over them, and the rest of the
// third slot is reserved again. Each released slot was a race window.
func ExampleD() {
	o := sim.New(mem.RulesWindows, sim.Options{Seed: 1})
	st := &strategy.D{Size: 64 << 20}
	if err := st.Setup(o); err != nil {
		panic(err)
	}
	region := st.Region()
	lo, hi := region.Start, region.End
	v, err := st.Place(strategy.Lib{Name: "dbghelp.dll", Size: 1740 << 10, Pref: strategy.DefaultPref}, true)
	if err != nil {
		panic(err)
	}
	fmt.Printf("region: %d slots of %d KiB\n", (hi-lo)/strategy.DefaultSlot, strategy.DefaultSlot>>10)
	fmt.Printf("%s: %d KiB at slot %d, relocated: %v, reachable: %v\n",
		v.Lib.Name, v.Size>>10, (v.Addr-lo)/strategy.DefaultSlot, v.Relocated, v.Reachable(region))
	tail, _ := o.Query(v.Addr + v.Size)
	fmt.Printf("tail: %d KiB reserved up to slot %d\n", (tail.End-tail.Start)>>10, (tail.End-lo)/strategy.DefaultSlot)
	windows, _ := st.Races()
	fmt.Printf("race windows: %d\n", windows)
	if err := st.Teardown(); err != nil {
		panic(err)
	}
	// Output:
	// region: 102 slots of 640 KiB
	// dbghelp.dll: 1792 KiB at slot 0, relocated: true, reachable: true
	// tail: 128 KiB reserved up to slot 3
	// race windows: 3
}
