package vmm

import (
	"fmt"
	"slices"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// Idle views: what makes code-unit churn on W^X vmcode under Windows rules
// cheap (docs/ARCHITECTURE.md, "Windows under Wine").
//
// Tearing a released unit down (close its alias, discard its pages, unmap
// its executable view, re-reserve its slots) and building the next one up
// again costs a dozen OS calls, and under Wine a VirtualProtect or
// VirtualQuery of a view of a SEC_RESERVE section costs 150-300 us
// (measured), while the pages the alias closed and reopened fault in again
// on the next unit's zeroing (160 faults a slot): 5.7-7.0 ms a unit,
// against 0.17 ms without W^X, and 28-37 us with idle units
// (BenchmarkGridUnits; docs/ARCHITECTURE.md, "Windows under Wine").
// So a released unit is kept as it is instead, up to gridIdleMax slots
// of them: its executable view stays mapped with its protection, its alias
// stays read-write, and its bytes are overwritten with int3 (0xcc)
// through the alias, so that a stale jump into it traps at once. The next
// unit of exactly its range takes it over (zeroing it through the alias:
// a memclr of present pages) with no OS call at all; any other use of its
// slots (a file slot, a unit of another size, Trim, Close) tears it down
// first, as a release did before.
//
// W^X holds throughout: the executable view is never writable, the alias
// never executable. The commit charge does not change either: the
// section's pages of a slot stay committed once a unit has held it
// (gridDual.dirty), idle or not.
//
// aspacem records an idle unit's executable view as the section's view,
// owned by OwnerGridIdle; the alias as it is, read-write.

// OwnerGridIdle annotates, in aspacem, the executable view of a released
// code unit that W^X vmcode on the grid keeps for the next unit of its
// size.
const OwnerGridIdle = "idle code view"

// gridIdleMax bounds the grid slots idle units hold: their pages stay
// resident (a slot's 640 KiB once zeroed and refilled), so at most 2.5
// MiB, about what a code cache freeing and reallocating a few units at a
// time reuses.
const gridIdleMax = 4

// gridIdleFill is what an idle unit is filled with: int3.
const gridIdleFill = 0xcc

// keepIdle reports whether the release of the unit [addr, addr+size) can
// keep it idle, and then marks it idle and fills it (on the native
// backend) with gridIdleFill. A unit can be kept when both its views are
// open, its executable view has one protection throughout (aspacem says
// which), and the idle units' slots stay within d.idleMax.
func (d *gridDual) keepIdle(addr, size uintptr) bool {
	var buf [segBuf]aspacem.Segment
	segs := d.space.AppendSegments(buf[:0], addr, addr+size)
	if len(segs) == 0 || segs[0].Kind != aspacem.KindShared {
		return false
	}
	prot := segs[0].Prot
	for _, s := range segs {
		if s.Kind != aspacem.KindShared || s.Prot != prot {
			return false
		}
	}
	n := d.slotsOf(addr, size)
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.units[addr]
	if !ok || u.size != size || !u.exec || !u.rw {
		return false
	}
	if u.idle {
		return true // taken over by a unit that never committed it
	}
	if d.idleSlots+n > d.idleMax {
		return false
	}
	if d.zero {
		fill(rawmem.Bytes(d.rw+(addr-d.g.base), size), gridIdleFill)
	}
	u.idle, u.prot = true, prot
	d.idleSlots += n
	d.idle = append(d.idle, addr)
	return true
}

// fill sets every byte of b to c.
func fill(b []byte, c byte) {
	if len(b) == 0 {
		return
	}
	b[0] = c
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// slotsOf counts the grid slots [addr, addr+size) touches.
func (d *gridDual) slotsOf(addr, size uintptr) int {
	return d.g.slotOf(addr+size-1) - d.g.slotOf(addr) + 1
}

// takeIdle ends the idle state of the unit exactly at [addr, addr+size),
// if it is idle, for a unit committing it: the unit's bytes are zeroed
// through the alias (the commit's contract). It reports whether the unit
// was idle and its executable view's protection then.
func (d *gridDual) takeIdle(addr, size uintptr) (was bool, prot mem.Prot) {
	d.mu.Lock()
	u, ok := d.units[addr]
	if !ok || u.size != size || !u.idle {
		d.mu.Unlock()
		return false, 0
	}
	d.unidleLocked(addr, u)
	prot = u.prot
	d.mu.Unlock()
	d.zeroDirty(addr, size)
	return true, prot
}

// unidleLocked ends the idle state of the unit u at a.
//
// Preconditions: d.mu is held; u is idle.
func (d *gridDual) unidleLocked(a uintptr, u *gridUnit) {
	u.idle = false
	d.idleSlots -= d.slotsOf(a, u.size)
	if i := slices.Index(d.idle, a); i >= 0 {
		d.idle = slices.Delete(d.idle, i, i+1)
	}
}

// idleIn returns the bases of the idle units that meet [addr,
// addr+size), in address order.
func (d *gridDual) idleIn(addr, size uintptr) []uintptr {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []uintptr
	for _, a := range d.idle {
		if u := d.units[a]; a < addr+size && addr < a+u.size {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}

// take prepares [addr, addr+size), just handed out by the VMM, for a new
// slot: idle units there are torn down, except one that is exactly the
// range of a new code unit (unit), which the unit takes over. Torn-down
// units are recorded as grid reservations, so that aspacem stays exact
// whatever the caller records next.
func (d *gridDual) take(addr, size uintptr, unit bool) error {
	for _, a := range d.idleIn(addr, size) {
		d.mu.Lock()
		u := d.units[a]
		d.mu.Unlock()
		if unit && a == addr && u.size == size && u.exec && u.rw {
			continue
		}
		if err := d.evict(a, u); err != nil {
			return err
		}
	}
	return nil
}

// evict tears down the idle unit u at a, as a release without idle views
// does, and records its slots as the grid's reservations.
func (d *gridDual) evict(a uintptr, u *gridUnit) error {
	err := d.tearDown(a, u.size)
	for _, seg := range d.g.reserved(a, u.size) {
		if rerr := d.space.Update(seg); rerr != nil {
			return fmt.Errorf("vmm: recording an idle code view torn down: %w", rerr)
		}
	}
	if err != nil {
		return fmt.Errorf("vmm: tearing down the idle code view at %#x: %w", a, err)
	}
	return nil
}

// trim tears down every idle unit.
func (d *gridDual) trim() error {
	for _, a := range d.idleIn(d.g.base, d.g.size) {
		d.mu.Lock()
		u := d.units[a]
		d.mu.Unlock()
		if err := d.evict(a, u); err != nil {
			return err
		}
	}
	return nil
}

// idleSegments appends to segs the records of the idle units' executable
// views that meet [addr, addr+size), clipped to it.
func (d *gridDual) idleSegments(segs []aspacem.Segment, addr, size uintptr) []aspacem.Segment {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, a := range d.idle {
		if u := d.units[a]; a < addr+size && addr < a+u.size {
			s, e := max(a, addr), min(a+u.size, addr+size)
			segs = append(segs, aspacem.Segment{Start: s, End: e, Kind: aspacem.KindShared, Prot: u.prot,
				Owner: OwnerGridIdle, Name: SharedName, Offset: uint64(s - d.g.base)})
		}
	}
	return segs
}

// idleBytes returns the bytes of vmcode idle units hold.
func (d *gridDual) idleBytes() uintptr {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n uintptr
	for _, a := range d.idle {
		n += d.units[a].size
	}
	return n
}
