package sim

import "github.com/reachvm/reachvm/internal/osmem"

// Reserve-only shared objects (osmem.SharedReserver) under Windows rules:
// a pagefile-backed section created SEC_RESERVE. What the simulator
// enforces was measured under Wine 8.0 and matches Microsoft's
// documentation of SEC_RESERVE: a view's uncommitted pages are reserved
// (Protect fails with 487); Commit through a view commits the section's
// pages in every view, with the protection asked in that view (87 if the
// view was mapped without it) and with their own access in the others;
// committed section pages cannot be decommitted (87).

// insertReserveViewLocked inserts the view g of the reserve object o, one
// segment per run of pages committed or not.
//
// Preconditions: s.mu is held; Windows rules; g is a new view of o.
func (s *OS) insertReserveViewLocked(g seg, o *object) {
	page := uint64(s.page)
	for a := g.start; a < g.end; {
		c := o.isCommitted((g.off + uint64(a-g.start)) / page)
		e := a + s.page
		for e < g.end && o.isCommitted((g.off+uint64(e-g.start))/page) == c {
			e += s.page
		}
		r := g
		r.start, r.end, r.off = a, e, g.off+uint64(a-g.start)
		if !c {
			r.state, r.prot = osmem.StateReserved, osmem.ProtNone
		}
		s.sp.insert(r)
		a = e
	}
}

// reserveViewLocked returns the allocation holding addr if it is a view of
// a reserve object.
//
// Preconditions: s.mu is held; Windows rules.
func (s *OS) reserveViewLocked(addr uintptr) (alloc, bool) {
	g, ok := s.sp.at(addr)
	if !ok {
		return alloc{}, false
	}
	a := s.allocs[g.base]
	return a, a.view && a.obj != nil && a.obj.reserve
}

// commitViewLocked commits [addr, addr+size) of the view a of a reserve
// object: the object's pages there become committed in every view of it.
//
// Preconditions: s.mu is held; Windows rules; the range is checked and
// starts in a.
func (s *OS) commitViewLocked(op string, a alloc, addr, size uintptr, prot osmem.Prot) error {
	if addr+size > a.end {
		return fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "range leaves the view [%#x, %#x)", a.base, a.end)
	}
	if prot&^a.max != 0 {
		return fail(op, addr, size, osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "view mapped for at most %v", a.max)
	}
	o := a.obj
	lo := a.off + uint64(addr-a.base)
	hi := lo + uint64(size)
	for i := lo / uint64(s.page); i < hi/uint64(s.page); i++ {
		o.committed[i/64] |= 1 << (i % 64)
	}
	s.sp.update(addr, addr+size, func(g *seg) { g.state, g.prot = osmem.StateCommitted, prot })
	for _, v := range s.allocs {
		if !v.view || v.obj != o || v.base == a.base {
			continue
		}
		vlo, vhi := v.off, v.off+uint64(v.end-v.base)
		x, y := max(lo, vlo), min(hi, vhi)
		if x >= y {
			continue
		}
		s.sp.update(v.base+uintptr(x-vlo), v.base+uintptr(y-vlo), func(g *seg) {
			if g.state == osmem.StateReserved {
				g.state, g.prot = osmem.StateCommitted, v.max
			}
		})
	}
	return nil
}

// Discard drops the contents of committed pages (osmem.Discarder). The
// simulator holds no contents, so under Windows rules it only checks, as
// VirtualAlloc(MEM_RESET) would, that the range is committed within one
// allocation; under Linux rules it fails with ErrNotSupported, as the
// native Linux backend has no Discard. It changes nothing the simulator
// models and is not a mutating call for fault injection.
func (s *OS) Discard(addr, size uintptr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "discard"
	if !s.windows() {
		return fail(op, addr, size, osmem.ErrNotSupported, 0, "no discard under Linux rules")
	}
	if err := s.checkRange(op, addr, size); err != nil {
		return err
	}
	_, err := s.withinAllocLocked(op, addr, size, true)
	return err
}
