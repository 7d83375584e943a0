// Package vmcode hands out units of vmcode for emitted code: the code
// cache's fragments and the routines the jit emits. Every unit lies inside
// vmcode, so code in one unit reaches code in any other, and every private
// library, with a rel32 displacement.
//
// Code is written through a unit's writable view and run from its
// executable address. In this first version the two are the same pages,
// flipped from read-write to read-execute by Seal; the W^X dual mapping of
// DESIGN.md section 4 keeps the addresses apart and the API unchanged.
package vmcode

import (
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/vmm"
)

// OwnerFcache annotates code-cache units in aspacem.
const OwnerFcache = "fcache"

// Code allocates units from a VMM's vmcode.
type Code struct {
	v *vmm.VMM
}

// New returns a unit allocator over v's vmcode.
func New(v *vmm.VMM) *Code { return &Code{v: v} }

// VMM returns the VMM the units come from.
func (c *Code) VMM() *vmm.VMM { return c.v }

// Unit is a run of committed vmcode pages for emitted code.
type Unit struct {
	slot *vmm.Slot
	// sealed is set once the unit is executable and no longer writable.
	sealed bool
}

// Alloc returns a writable unit of at least size bytes.
func (c *Code) Alloc(size uintptr) (*Unit, error) {
	s, err := c.v.ReserveSlot(size, OwnerFcache)
	if err != nil {
		return nil, err
	}
	if err := s.Commit(s.Base(), s.Size(), osmem.ProtRW); err != nil {
		if rerr := s.Release(); rerr != nil {
			return nil, fmt.Errorf("%w (and releasing the unit: %v)", err, rerr)
		}
		return nil, err
	}
	return &Unit{slot: s}, nil
}

// Exec returns the address code in the unit runs at.
func (u *Unit) Exec() uintptr { return u.slot.Base() }

// Size returns the unit's size in bytes.
func (u *Unit) Size() uintptr { return u.slot.Size() }

// Write copies b to offset off of the unit through its writable view.
func (u *Unit) Write(off uintptr, b []byte) error {
	if u.sealed {
		return fmt.Errorf("vmcode: unit at %#x is sealed", u.Exec())
	}
	if off > u.Size() || uintptr(len(b)) > u.Size()-off {
		return fmt.Errorf("vmcode: write of %d bytes at offset %#x leaves the unit (%#x bytes)", len(b), off, u.Size())
	}
	copy(osmem.Bytes(u.slot.Base()+off, uintptr(len(b))), b)
	return nil
}

// Seal makes the unit executable and read-only: from here on it can run but
// not be written.
func (u *Unit) Seal() error {
	if u.sealed {
		return nil
	}
	if err := u.slot.Protect(u.slot.Base(), u.slot.Size(), osmem.ProtRX); err != nil {
		return err
	}
	u.sealed = true
	return nil
}

// Free returns the unit's pages to vmcode.
func (u *Unit) Free() error { return u.slot.Release() }
