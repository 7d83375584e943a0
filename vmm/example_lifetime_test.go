package vmm_test

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// cache is an embedder's own object living in a VMM's memory: a slot it
// releases when closed.
type cache struct {
	slot    *vmm.Slot
	untrack func()
	closed  bool
}

func (c *cache) Close() error {
	if c.closed {
		return fmt.Errorf("cache: %w", vmm.ErrClosed)
	}
	c.closed = true
	c.untrack()
	return c.slot.Release()
}

// An embedder's object registers with Track when it is made, so that the
// VMM's Close closes it, in stage order, before releasing vmcode; using it
// afterwards fails with ErrClosed instead of touching released memory.
func ExampleVMM_Track() {
	v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesLinux, sim.Options{}), VMCodeSize: 1 << 20})
	if err != nil {
		panic(err)
	}
	s, err := v.ReserveSlot(0x1000, "cache")
	if err != nil {
		panic(err)
	}
	c := &cache{slot: s}
	if c.untrack, err = v.Track(vmm.StageData, "cache", c.Close); err != nil {
		panic(err)
	}
	fmt.Println("tracked:", v.Dependents())
	fmt.Println("close:", v.Close())
	fmt.Println("cache closed by the VMM:", c.closed)
	err = s.Commit(s.Base(), 0x1000, mem.ProtRW)
	fmt.Println("commit after close is ErrClosed:", errors.Is(err, vmm.ErrClosed))
	_, err = v.Track(vmm.StageData, "late", c.Close)
	fmt.Println("track after close is ErrClosed:", errors.Is(err, vmm.ErrClosed))
	// Output:
	// tracked: [cache]
	// close: <nil>
	// cache closed by the VMM: true
	// commit after close is ErrClosed: true
	// track after close is ErrClosed: true
}
