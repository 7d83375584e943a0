package vmm

import (
	"fmt"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// viewBacking is implemented by backings whose committed vmcode is not
// anonymous memory but a view of a shared object (dual, for W^X). Other
// backings (linear, the grid) commit anonymous memory.
type viewBacking interface {
	// committed returns the segments aspacem records for [addr,
	// addr+size) committed with prot, Owner to be set by the slot; nil
	// if the range is committed anonymous memory there (gridDual's file
	// slots).
	committed(addr, size uintptr, prot mem.Prot) []aspacem.Segment
}

// recordPages records [addr, addr+size), part of a slot of owner, as
// committed with prot or, if !committed, reserved: in the backing's terms
// (anonymous memory and reservations, or the shared object's view under
// W^X).
func (v *VMM) recordPages(addr, size uintptr, owner string, committed bool, prot mem.Prot) error {
	var segs []aspacem.Segment
	if !committed {
		segs = v.back.reserved(addr, size)
	} else {
		if vb, ok := v.back.(viewBacking); ok {
			segs = vb.committed(addr, size, prot)
		}
		if segs == nil {
			segs = []aspacem.Segment{{Start: addr, End: addr + size, Kind: aspacem.KindAnon, Prot: prot}}
		}
	}
	for _, seg := range segs {
		if seg.Kind != aspacem.KindFree { // a grid slot lost to someone else
			seg.Owner = owner
		}
		if err := v.space.Update(seg); err != nil {
			return fmt.Errorf("vmm: slot %q: recording %#x-%#x: %w", owner, seg.Start, seg.End, err)
		}
	}
	return nil
}

// wxBacking is implemented by the W^X backings: dual (Linux rules) and
// gridDual (Windows rules).
type wxBacking interface {
	backing
	// aliasBase returns the writable view's base: the writable address
	// of vmcode's first byte.
	aliasBase() uintptr
}

// alias returns the writable view's base under W^X.
func (v *VMM) alias() (uintptr, bool) {
	if w, ok := v.back.(wxBacking); ok {
		return w.aliasBase(), true
	}
	return 0, false
}

// unitAlign is the alignment of a code unit: the granularity, or under
// W^X on the Windows grid the grid slot, since a unit's executable view
// there is a section view mapped at its own grid slots.
func (v *VMM) unitAlign() uintptr {
	if _, ok := v.back.(*gridDual); ok {
		return v.back.fileAlign()
	}
	return v.os.Granularity()
}

// unitNoter is implemented by backings that treat code units (ReserveUnit)
// differently from file-capable slots (ReserveSlot): gridDual, where a
// unit's committed pages are the section's views and a file slot's are
// anonymous memory, as on the plain grid.
type unitNoter interface {
	// noteUnit records that [addr, addr+size) is (unit) or is no longer
	// (!unit) a code unit: reserved, or reset by a release.
	noteUnit(addr, size uintptr, unit bool)
}

// noteUnit tells the backing, if it cares, that [addr, addr+size) became
// or stopped being a code unit.
func (v *VMM) noteUnit(addr, size uintptr, unit bool) {
	if n, ok := v.back.(unitNoter); ok {
		n.noteUnit(addr, size, unit)
	}
}

// slotTaker is implemented by backings that keep something of released
// slots for reuse (gridDual's idle code views), which a slot handed out
// over them must first take over or tear down.
type slotTaker interface {
	// take prepares [addr, addr+size), just handed out, for a slot: a code
	// unit (unit) or a file-capable slot. On failure the range is still
	// recorded exactly, and the VMM returns it to the allocator.
	take(addr, size uintptr, unit bool) error
}

// WX reports whether vmcode is W^X: mapped twice, executable at vmcode and
// writable at a constant offset elsewhere (see WXMode).
func (v *VMM) WX() bool {
	_, ok := v.alias()
	return ok
}

// Writable returns the address at which the byte of vmcode at exec is
// written: exec plus the constant offset of the writable view under W^X,
// exec itself otherwise. It reports false if exec is not in vmcode. The
// address is writable only while exec's page is committed (under W^X: not
// reserved, not a file view; otherwise: committed with write access).
//
// Emitted code is encoded for exec (its rel32 displacements are relative
// to where it runs) and its bytes stored at Writable(exec).
func (v *VMM) Writable(exec uintptr) (uintptr, bool) {
	if !v.InVMCode(exec, 1) {
		return 0, false
	}
	if rw, ok := v.alias(); ok {
		return exec - v.codeBase + rw, true
	}
	return exec, true
}

// Executable is the inverse of Writable: the vmcode address the writable
// address rw shows. It reports false if rw is in neither the writable view
// (under W^X) nor vmcode (otherwise).
func (v *VMM) Executable(rw uintptr) (uintptr, bool) {
	if base, ok := v.alias(); ok {
		if rw < base || rw-base >= v.codeSize {
			return 0, false
		}
		return rw - base + v.codeBase, true
	}
	if !v.InVMCode(rw, 1) {
		return 0, false
	}
	return rw, true
}

// WritableView returns the writable view's bounds under W^X, or vmcode's
// otherwise: [base, base+size).
func (v *VMM) WritableView() (base, size uintptr) {
	if rw, ok := v.alias(); ok {
		return rw, v.codeSize
	}
	return v.codeBase, v.codeSize
}

// Trim gives back to the kernel the pages that released slots left in W^X
// vmcode's shared object for reuse: at most 1 MiB, kept so that a code
// cache freeing and reallocating units costs no page fault (see dual); on
// the Windows grid, the idle code views of released units (at most four
// grid slots, see gridDual), torn down as a release without them would.
// Without W^X it does nothing: a released slot's pages go at once.
func (v *VMM) Trim() error {
	if err := v.acquire(); err != nil {
		return err
	}
	defer v.life.RUnlock()
	var err error
	switch d := v.back.(type) {
	case *dual:
		err = d.trim()
	case *gridDual:
		err = d.trim()
	}
	if err != nil {
		return fmt.Errorf("vmm: trimming vmcode: %w", err)
	}
	return nil
}

// Trimmable returns the bytes Trim would give back: 0 once the VMM is
// closed.
func (v *VMM) Trimmable() uintptr {
	if err := v.acquire(); err != nil {
		return 0
	}
	defer v.life.RUnlock()
	switch d := v.back.(type) {
	case *dual:
		return d.freedBytes()
	case *gridDual:
		return d.idleBytes()
	}
	return 0
}
