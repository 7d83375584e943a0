package vmcode_test

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// Closing a Code closes what tracked it (here a stand-in for a jit
// machine), then frees its units; closing the VMM would do both too.
func ExampleCode_Close() {
	v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesLinux, sim.Options{}), VMCodeSize: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	c := vmcode.New(v)
	u, err := c.Alloc(4096)
	if err != nil {
		panic(err)
	}
	if _, err := c.Track("runner", func() error { fmt.Println("runner closed first"); return nil }); err != nil {
		panic(err)
	}
	fmt.Println("close:", c.Close())
	fmt.Println("free after close is ErrClosed:", errors.Is(u.Free(), vmm.ErrClosed))
	_, err = c.Alloc(4096)
	fmt.Println("alloc after close is ErrClosed:", errors.Is(err, vmcode.ErrClosed))
	// Output:
	// runner closed first
	// close: <nil>
	// free after close is ErrClosed: true
	// alloc after close is ErrClosed: true
}
