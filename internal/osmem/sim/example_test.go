package sim_test

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
)

// Example shows the Windows rule reachvm's grid exists for, and a fault
// injected into the call that would map the object.
func Example() {
	s := sim.New(osmem.RulesWindows, sim.Options{})
	slot, _ := s.Reserve(0, 640<<10, osmem.Hint)
	obj, _ := s.CreateShared("code", 64<<10)

	// Nothing maps over a reservation on Windows...
	_, err := s.MapObject(obj, 0, slot, 64<<10, osmem.ProtRX, osmem.Exact)
	fmt.Println(errors.Is(err, osmem.ErrExists), osmem.Code(err))
	// ...and a reservation is released only whole.
	err = s.Release(slot, 64<<10)
	fmt.Println(errors.Is(err, osmem.ErrInvalid), osmem.Code(err))

	// Release the slot and map there; but make the map fail first.
	_ = s.Release(slot, 640<<10)
	s.FailCall(1, osmem.ErrNoMemory)
	_, err = s.MapObject(obj, 0, slot, 64<<10, osmem.ProtRX, osmem.Exact)
	fmt.Println(err)
	v, _ := s.MapObject(obj, 0, slot, 64<<10, osmem.ProtRX, osmem.Exact)
	r, _ := s.Query(v)
	fmt.Println(v == slot, r.Type, r.Prot, r.Shared, r.Name)
	// Output:
	// true 487
	// true 87
	// mem: map [0x10000, +0x10000): out of memory (os error 8): injected fault at call 6
	// true mapped r-x true code
}
