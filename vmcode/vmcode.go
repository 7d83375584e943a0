// Package vmcode hands out units of vmcode for emitted code: the code
// cache's fragments and the routines the jit emits. Every unit lies inside
// vmcode, so code in one unit reaches code in any other, and every private
// library, with a rel32 displacement.
//
// Code is encoded for a unit's executable address (Exec), written through
// its writable address (Writable, or Write) and run from Exec. Under W^X
// (vmm.Config.WX, on by default where the platform allows) the two are
// different views of the same memory, DynamoRIO's and QEMU's split-wx:
// Exec is read-execute from the moment the unit is allocated and Writable
// read-write until it is freed, so no page is ever both, and writing code
// costs no protection change. Without W^X they are the same pages, written
// read-write and flipped to read-execute by Seal.
package vmcode

import (
	"fmt"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
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

// WX reports whether units are W^X: executable and writable at different
// addresses.
func (c *Code) WX() bool { return c.v.WX() }

// Unit is a run of committed vmcode pages for emitted code. Its methods
// must not be called concurrently with each other; different units are
// independent.
type Unit struct {
	slot *vmm.Slot
	// rw is the writable address of the unit's first byte: Exec() plus
	// the VMM's constant offset under W^X, Exec() otherwise.
	rw uintptr
	// wx is set when the unit's writable and executable views differ.
	wx bool
	// sealed is set by Seal.
	sealed bool
}

// Alloc returns a unit of at least size bytes, rounded up to the
// allocation granularity (under W^X on Windows, to the 640 KiB grid slot:
// each unit's executable view is a view of vmcode's section mapped at its
// own grid slots), ready to be written. Under W^X its executable
// view is read-execute and its writable view read-write; otherwise it is
// read-write until Seal.
func (c *Code) Alloc(size uintptr) (*Unit, error) {
	s, err := c.v.ReserveUnit(size, OwnerFcache)
	if err != nil {
		return nil, err
	}
	wx := c.v.WX()
	prot := mem.ProtRW
	if wx {
		prot = mem.ProtRX
	}
	if err := s.Commit(s.Base(), s.Size(), prot); err != nil {
		if rerr := s.Release(); rerr != nil {
			return nil, fmt.Errorf("%w (and releasing the unit: %v)", err, rerr)
		}
		return nil, err
	}
	rw, _ := c.v.Writable(s.Base())
	return &Unit{slot: s, rw: rw, wx: wx}, nil
}

// Exec returns the address code in the unit runs at: what its code is
// encoded for.
func (u *Unit) Exec() uintptr { return u.slot.Base() }

// Writable returns the address the unit's bytes are written at. Under W^X
// it stays writable for the unit's whole life, so that code can be patched
// in place (linking exits) while it runs; without W^X it is Exec and
// writable only until Seal.
func (u *Unit) Writable() uintptr { return u.rw }

// Size returns the unit's size in bytes.
func (u *Unit) Size() uintptr { return u.slot.Size() }

// Write copies b to offset off of the unit through its writable view. It
// fails after Seal in both modes, so that code that works with W^X off
// works with it on and the other way round.
func (u *Unit) Write(off uintptr, b []byte) error {
	if u.sealed {
		return fmt.Errorf("vmcode: unit at %#x is sealed", u.Exec())
	}
	if off > u.Size() || uintptr(len(b)) > u.Size()-off {
		return fmt.Errorf("vmcode: write of %d bytes at offset %#x leaves the unit (%#x bytes)", len(b), off, u.Size())
	}
	if len(b) == 0 {
		return nil
	}
	copy(osmem.Bytes(u.rw+off, uintptr(len(b))), b)
	return nil
}

// Seal ends writing: from here on the unit runs and Write refuses. Without
// W^X it makes the pages read-execute (one mprotect); under W^X they
// already are, and Seal makes no system call.
func (u *Unit) Seal() error {
	if u.sealed {
		return nil
	}
	if !u.wx {
		if err := u.slot.Protect(u.slot.Base(), u.slot.Size(), mem.ProtRX); err != nil {
			return err
		}
	}
	u.sealed = true
	return nil
}

// Free returns the unit's pages to vmcode. Without W^X the memory goes
// back to the kernel at once; under W^X up to 1 MiB of freed units stay in
// the shared object, inaccessible from both views, so that the next Alloc
// over them costs a memclr instead of two page faults (vmm.VMM.Trim gives
// them back).
func (u *Unit) Free() error { return u.slot.Release() }
