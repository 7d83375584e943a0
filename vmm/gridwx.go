package vmm

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// gridDual is vmcode made W^X under Windows rules (docs/ARCHITECTURE.md invariant 4):
// one pagefile-backed section of vmcode's size viewed twice. The writable
// view (the alias) is one view of the whole section, mapped where the OS
// chose when vmcode was made, so that the writable address of every byte
// of vmcode is at one constant offset for vmcode's life; it is PAGE_NOACCESS
// except over committed code units, where it is read-write. The
// executable views are mapped per code unit, at the unit's grid slots,
// through the grid's release-and-map-exact path (grid.mapFile: slot
// release, exact map, retries, lost slots), each showing the section's
// bytes at offset addr-base: Windows can map a view neither over a
// reservation nor over part of one, so vmcode cannot be one executable
// view from the start (MEM_RESERVE_PLACEHOLDER, which could, is not
// supported by Wine).
//
// So a code unit under W^X takes whole grid slots (ReserveUnit aligns it
// to fileAlign, VMM.unitAlign). Committing it opens its alias read-write,
// zeroes the slots an earlier unit held (a section keeps what was written
// to it) and maps its executable view; committing it again changes the
// executable view's protection. Releasing or decommitting it closes the
// alias, unmaps the executable view and re-reserves the slots
// (grid.reset), except that a released unit is kept idle, both views
// open, for the next unit of its range, within a bound (gridwx_idle.go:
// unit churn then costs no OS call). A commit of part of a unit is
// refused. Neither view is
// ever writable and executable at once: the alias is at most read-write,
// executable views have the unit's protection, which checkWX refuses to
// make read-write-execute (and which Windows would refuse to make writable
// anyway: a view's access is fixed when it is mapped).
//
// File slots (ReserveSlot) are the grid's, as without W^X: private file
// views, and anonymous commits (privload copies PE images into them, then
// protects them; never writable and executable at once either). gridDual
// tells the two apart by the grid slots code units hold (noteUnit).
//
// Cost: the section is SEC_RESERVE where the backend has it
// (mem.CreateSharedReserve: the native Windows backend and the simulator
// under Windows rules), so Windows charges the commit limit only for the
// slots code units have held, not for vmcode's 2 GiB: the alias starts
// reserved (inaccessible), and a unit's commit commits its slots' section
// pages through the alias (osmem's Commit of a view range), which makes
// them committed in the executable view too. Section pages cannot be
// decommitted (Windows' rule), so a freed unit's slots stay committed:
// reset discards their contents (mem.Discard: DiscardVirtualMemory, or
// MEM_RESET under Wine, which ignores it) and closes the alias over them
// (PAGE_NOACCESS); the next unit there re-opens it and zeroes what the
// discard left. The charge is therefore bounded by the high-water mark of
// the grid slots units held at once (slotSize each), plus nothing else;
// Charge reports it. A backend without reserve-only objects gets a
// SEC_COMMIT section (CreateShared), charged whole when it is created.
//
// Failure order (as in dual): a commit opens the alias before mapping the
// executable view, a reset closes it before unmapping; every alias change
// is recorded as soon as it is made, so a failure part way leaves aspacem
// exact and the operation can be repeated.
//
// aspacem: the alias is recorded by gridDual (owner OwnerVMCodeAlias,
// KindShared); executable views by the slots (committed), as KindShared
// with the section's offset; everything else by the grid.
type gridDual struct {
	// sharedAlias is the section and its writable view.
	sharedAlias
	// g and zero are immutable after newGridDual.
	g *grid
	// zero says the alias's bytes can be touched (the native backend; the
	// simulator models no memory).
	zero bool
	// reserve says the section is reserve-only: the alias's pages are
	// committed by commit, slot by slot, and never decommitted.
	reserve bool

	// mu guards units (the map; a unit's fields are changed only by the
	// operation on its slot, which the VMM serializes).
	mu sync.Mutex
	// units maps the base of each committed run of grid slots (a code
	// unit) to its record.
	units map[uintptr]*gridUnit
	// dirty has one bit per grid slot, set once a unit has held the slot:
	// the section may hold its bytes there, so the next commit zeroes
	// them. Fresh slots read zero (a pagefile-backed section starts
	// zeroed) and are not touched, so a unit costs only the pages its
	// code uses.
	dirty []uint64
	// unit has one bit per grid slot, set while a code unit (ReserveUnit)
	// holds the slot (noteUnit). Commits elsewhere (file slots: privload
	// copies PE images into committed pages) are anonymous, as on the
	// plain grid.
	unit []uint64
	// idle holds the bases of the idle units (gridwx_idle.go), in the
	// order they were released; idleSlots counts the grid slots they
	// take, at most idleMax (immutable after newGridDual; 0 keeps none).
	idle      []uintptr
	idleSlots int
	idleMax   int

	// gridGone records that release released the grid (see sharedAlias for the
	// other steps and the locking).
	gridGone bool
}

var (
	_ backing     = (*gridDual)(nil)
	_ viewBacking = (*gridDual)(nil)
	_ viewNotes   = (*gridDual)(nil)
)

// newGridBacking returns g itself, or g made W^X (newGridDual), as mode
// says. WXAuto turns W^X on; if the section or its writable view cannot be
// had, vmcode stays the plain grid and p's fallbacks say why.
//
// W^X is the default here too since the section is SEC_RESERVE: it costs
// commit charge only for the slots code units use (see gridDual). What it
// still costs that the Linux memfd does not is that every code unit takes
// whole 640 KiB grid slots.
//
// Preconditions: mode went through resolveWX.
func newGridBacking(g *grid, space *aspacem.Map, mode WXMode, p *Placement) (backing, error) {
	switch mode {
	case WXOn:
		return newGridDual(g, space)
	case WXOff:
		return g, nil
	case WXAuto:
		d, err := newGridDual(g, space)
		if err != nil {
			p.Fallbacks = append(p.Fallbacks, fmt.Sprintf("no W^X: %v", err))
			return g, nil
		}
		return d, nil
	}
	return nil, fmt.Errorf("unknown W^X mode %v", mode)
}

// newGridDual makes the grid g W^X: it creates the section, maps the
// alias of all of it read-write where the OS chooses and records the
// alias in space. On failure it leaves nothing of its own behind; the
// caller releases g.
func newGridDual(g *grid, space *aspacem.Map) (*gridDual, error) {
	o := g.os
	_, size := g.bounds()
	reserve := true
	obj, err := mem.CreateSharedReserve(o, SharedName, uint64(size))
	if errors.Is(err, mem.ErrNotSupported) {
		reserve = false
		obj, err = o.CreateShared(SharedName, uint64(size))
	}
	if err != nil {
		return nil, fmt.Errorf("creating the section: %w", err)
	}
	rw, err := o.MapObject(obj, 0, 0, size, mem.ProtRW, mem.Hint)
	if err != nil {
		_ = o.CloseObject(obj)
		return nil, fmt.Errorf("mapping the writable view: %w", err)
	}
	d := &gridDual{sharedAlias: sharedAlias{os: o, space: space, obj: obj, rw: rw}, g: g, zero: o == osmem.Native(), reserve: reserve,
		units: make(map[uintptr]*gridUnit), dirty: make([]uint64, (g.n+63)/64), unit: make([]uint64, (g.n+63)/64), idleMax: gridIdleMax}
	// The alias of a range is read-write only while a unit holds it. A
	// reserve-only section's alias is all reserved, inaccessible already
	// (and Protect would refuse it): it is only recorded.
	if reserve {
		err = d.recordAlias(g.base, size, mem.ProtNone)
	} else {
		err = d.setAlias(g.base, size, mem.ProtNone)
	}
	if err != nil {
		_ = o.Unmap(rw, size)
		_ = o.CloseObject(obj)
		return nil, err
	}
	return d, nil
}

func (d *gridDual) bounds() (uintptr, uintptr) { return d.g.bounds() }
func (d *gridDual) fileAlign() uintptr         { return d.g.fileAlign() }
func (d *gridDual) aliasBase() uintptr         { return d.rw }

func (d *gridDual) afterMap(addr, size uintptr) []aspacem.Segment { return d.g.afterMap(addr, size) }
func (d *gridDual) lostIn(addr, size uintptr) []mem.Range         { return d.g.lostIn(addr, size) }

// live refuses operations once release has started.
func (d *gridDual) live() error {
	if d.rwGone || d.gridGone || d.closed {
		return errors.New("vmm: W^X vmcode is being released")
	}
	return nil
}

// gridUnit is gridDual's record of one committed run of whole grid slots.
// Its fields are guarded by the operation on its slot, which the VMM
// serializes, and, for idle and prot, by gridDual.mu as well.
type gridUnit struct {
	size uintptr
	// exec says the executable view is mapped; rw that the alias of the
	// range is read-write (otherwise it is PROT_NONE, like the alias of
	// every range that is not a unit).
	exec, rw bool
	// idle says no slot holds the unit since its release: it is kept, both
	// views open, for the next unit of its range (gridwx_idle.go); prot
	// is its executable view's protection then.
	idle bool
	prot mem.Prot
}

// unitAt reports how [addr, addr+size) meets the recorded units: exact
// (a unit with its executable view mapped is exactly the range), or
// overlap (some unit meets it otherwise).
func (d *gridDual) unitAt(addr, size uintptr) (exact, overlap bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.units[addr]; ok && u.size == size {
		return u.exec, false
	}
	for a, u := range d.units {
		if a < addr+size && addr < a+u.size {
			return false, true
		}
	}
	return false, false
}

// wholeSlots checks that [addr, addr+size) is a run of whole grid slots.
func (d *gridDual) wholeSlots(op string, addr, size uintptr) error {
	g := d.g
	if err := g.check(op, addr, size); err != nil {
		return err
	}
	end := addr + size
	if (addr-g.base)%g.slotSize != 0 || ((end-g.base)%g.slotSize != 0 && end != g.base+g.size) {
		return gridErr(op, addr, size, mem.ErrInvalid, "W^X code must take whole grid slots (of %#x bytes from %#x)", g.slotSize, g.base)
	}
	return nil
}

// setAlias changes the alias of [addr, addr+size) to prot and records it.
func (d *gridDual) setAlias(addr, size uintptr, prot mem.Prot) error {
	off := addr - d.g.base
	if err := d.os.Protect(d.rw+off, size, prot); err != nil {
		return fmt.Errorf("vmm: W^X: protecting the writable view of [%#x, +%#x): %w", addr, size, err)
	}
	return d.recordAlias(addr, size, prot)
}

// openAlias makes the alias of [addr, addr+size) read-write and records
// it: for a reserve-only section a Commit through the alias, which commits
// the section's pages there (those of slots units held before are
// committed already, and only change protection); otherwise a Protect.
func (d *gridDual) openAlias(addr, size uintptr) error {
	if !d.reserve || d.allDirty(addr, size) {
		// Committed already (VirtualProtect is cheaper than a commit
		// over committed pages: half the cost of a unit's life under
		// Wine).
		return d.setAlias(addr, size, mem.ProtRW)
	}
	off := addr - d.g.base
	if err := d.os.Commit(d.rw+off, size, mem.ProtRW); err != nil {
		return fmt.Errorf("vmm: W^X: committing the writable view of [%#x, +%#x): %w", addr, size, err)
	}
	return d.recordAlias(addr, size, mem.ProtRW)
}

// allDirty reports whether every grid slot of [addr, addr+size) has been
// held by a unit: its section pages are committed.
func (d *gridDual) allDirty(addr, size uintptr) bool {
	g := d.g
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < addr+size; k++ {
		if d.dirty[k/64]&(1<<(k%64)) == 0 {
			return false
		}
	}
	return true
}

// Charge returns the bytes of the section that are committed: for a
// reserve-only section, the slots code units have held (what Windows
// charges against the commit limit), else the whole section.
func (d *gridDual) Charge() uintptr {
	_, size := d.g.bounds()
	if !d.reserve {
		return size
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var n uintptr
	for k := 0; k < d.g.n; k++ {
		if d.dirty[k/64]&(1<<(k%64)) != 0 {
			n += d.g.slotEnd(k) - d.g.slotAddr(k)
		}
	}
	return n
}

// recordAlias records the alias of [addr, addr+size) as having prot.
func (d *gridDual) recordAlias(addr, size uintptr, prot mem.Prot) error {
	off := addr - d.g.base
	seg := aspacem.Segment{Start: d.rw + off, End: d.rw + off + size, Kind: aspacem.KindShared, Prot: prot,
		Owner: OwnerVMCodeAlias, Name: SharedName, Offset: uint64(off)}
	if err := d.space.Update(seg); err != nil {
		return fmt.Errorf("vmm: recording the writable view: %w", err)
	}
	return nil
}

// commit opens the alias of [addr, addr+size) read-write, zeroes it (a
// section keeps what earlier units wrote) and maps the section's
// executable view with prot at the range's grid slots; or, for a unit
// that is exactly the range, changes its executable view's protection.
func (d *gridDual) commit(addr, size uintptr, prot mem.Prot) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := checkWX(addr, size, prot); err != nil {
		return err
	}
	switch all, none := d.inUnit(addr, size); {
	case none:
		// A file slot: anonymous memory, as on the plain grid.
		return d.g.commit(addr, size, prot)
	case !all:
		return gridErr("commit", addr, size, mem.ErrInvalid, "the range holds part of a code unit")
	}
	exact, overlap := d.unitAt(addr, size)
	switch {
	case exact:
		// An idle unit taken over is zeroed; it needs no OS call unless
		// its protection changes.
		if was, old := d.takeIdle(addr, size); was && old == prot {
			return nil
		}
		return d.g.protect(addr, size, prot)
	case overlap:
		d.mu.Lock()
		u, ok := d.units[addr]
		d.mu.Unlock()
		if !ok || u.size != size {
			return gridErr("commit", addr, size, mem.ErrInvalid, "the range holds part of a W^X unit")
		}
	}
	if err := d.wholeSlots("commit", addr, size); err != nil {
		return err
	}
	d.mu.Lock()
	u := d.units[addr]
	if u == nil {
		u = &gridUnit{size: size}
		d.units[addr] = u
	}
	d.mu.Unlock()
	if !u.rw {
		if err := d.openAlias(addr, size); err != nil {
			d.forget(addr, u)
			return err
		}
		u.rw = true
	}
	off := addr - d.g.base
	d.zeroDirty(addr, size)
	if err := d.g.mapFile(d.obj, uint64(off), addr, size, prot); err != nil {
		var lost *SlotLostError
		if errors.As(err, &lost) {
			// Slots someone else took are no longer vmcode's: record them
			// free (the rest stays reserved, as recorded).
			for _, seg := range d.g.reserved(addr, size) {
				if seg.Kind == aspacem.KindFree {
					if rerr := d.space.Update(seg); rerr != nil {
						return errors.Join(err, rerr)
					}
				}
			}
		}
		// Close the alias again; if that fails, it stays open (and so
		// recorded) for the next commit or reset.
		if aerr := d.setAlias(addr, size, mem.ProtNone); aerr == nil {
			u.rw = false
			d.forget(addr, u)
		}
		return err
	}
	u.exec = true
	return nil
}

// noteUnit marks the grid slots of [addr, addr+size) as held by a code
// unit, or no longer.
func (d *gridDual) noteUnit(addr, size uintptr, unit bool) {
	g := d.g
	if g.check("unit", addr, size) != nil {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < addr+size; k++ {
		if unit {
			d.unit[k/64] |= 1 << (k % 64)
		} else {
			d.unit[k/64] &^= 1 << (k % 64)
		}
	}
}

// inUnit reports whether [addr, addr+size) lies in code units' slots
// (all), or in none of them (none).
func (d *gridDual) inUnit(addr, size uintptr) (all, none bool) {
	g := d.g
	if g.check("unit", addr, size) != nil {
		return false, true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	all, none = true, true
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < addr+size; k++ {
		if d.unit[k/64]&(1<<(k%64)) != 0 {
			none = false
		} else {
			all = false
		}
	}
	return all, none
}

// zeroDirty zeroes, through the alias, the slots of [addr, addr+size)
// that earlier units held, and marks them all dirty: the unit about to be
// committed there may write them.
func (d *gridDual) zeroDirty(addr, size uintptr) {
	g := d.g
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := g.slotOf(addr); k < g.n && g.slotAddr(k) < addr+size; k++ {
		bit := uint64(1) << (k % 64)
		if d.dirty[k/64]&bit != 0 && d.zero {
			a := max(g.slotAddr(k), addr)
			e := min(g.slotEnd(k), addr+size)
			clear(rawmem.Bytes(d.rw+(a-g.base), e-a))
		}
		d.dirty[k/64] |= bit
	}
}

// forget drops the record of a unit with neither view open.
func (d *gridDual) forget(addr uintptr, u *gridUnit) {
	if u.exec || u.rw {
		return
	}
	d.mu.Lock()
	if d.units[addr] == u {
		delete(d.units, addr)
	}
	d.mu.Unlock()
}

// decommit unmaps the executable view of the unit that is exactly
// [addr, addr+size), re-reserves its slots and closes its alias; a range
// with no unit is already reserved.
func (d *gridDual) decommit(addr, size uintptr) error {
	if err := d.live(); err != nil {
		return err
	}
	d.mu.Lock()
	u, ok := d.units[addr]
	d.mu.Unlock()
	if ok && u.size == size {
		return d.tearDown(addr, size)
	}
	if _, overlap := d.unitAt(addr, size); overlap {
		return gridErr("decommit", addr, size, mem.ErrInvalid, "the range holds part of a W^X unit")
	}
	// Nothing of a unit is committed here: anonymous pages of a file slot,
	// or reservation.
	if err := d.g.check("decommit", addr, size); err != nil {
		return err
	}
	return d.g.decommit(addr, size)
}

// protect changes the protection of committed or mapped pages.
func (d *gridDual) protect(addr, size uintptr, prot mem.Prot) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := checkWX(addr, size, prot); err != nil {
		return err
	}
	return d.g.protect(addr, size, prot)
}

// mapFile maps a private file view into the grid, as without W^X.
func (d *gridDual) mapFile(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot) error {
	if err := d.live(); err != nil {
		return err
	}
	if err := checkWX(addr, size, prot); err != nil {
		return err
	}
	return d.g.mapFile(obj, off, addr, size, prot)
}

// reset is a slot's release: the code unit that is exactly the range is
// kept idle if it can be (keepIdle: no OS call); anything else is torn
// down.
func (d *gridDual) reset(addr, size uintptr) error {
	if err := d.live(); err != nil {
		return err
	}
	if d.keepIdle(addr, size) {
		return nil
	}
	return d.tearDown(addr, size)
}

// tearDown turns the range back into grid slot reservations. The alias of
// every unit in it is closed first, so that a failure there leaves the
// executable views as they were (and as recorded); then the grid unmaps
// the executable views and re-reserves their slots. If the grid fails
// part way, the units whose views are gone are recorded as what the grid
// now holds there, so that aspacem stays exact; a repeated reset finishes
// the job.
func (d *gridDual) tearDown(addr, size uintptr) error {
	if err := d.live(); err != nil {
		return err
	}
	type entry struct {
		a uintptr
		u *gridUnit
	}
	var in []entry
	d.mu.Lock()
	for a, u := range d.units {
		if a >= addr && a < addr+size {
			in = append(in, entry{a, u})
		}
	}
	d.mu.Unlock()
	for _, e := range in {
		if e.u.rw {
			if d.reserve {
				// The section's pages stay committed: give their
				// memory back if the OS will (advice only; the next
				// commit there zeroes them anyway).
				_ = mem.Discard(d.os, d.rw+(e.a-d.g.base), e.u.size)
			}
			if err := d.setAlias(e.a, e.u.size, mem.ProtNone); err != nil {
				return err
			}
			e.u.rw = false
		}
	}
	err := d.g.reset(addr, size)
	for _, e := range in {
		if e.u.exec && !d.g.viewMapped(e.a) {
			e.u.exec = false
			if err != nil {
				for _, seg := range d.g.reserved(e.a, e.u.size) {
					if rerr := d.space.Update(seg); rerr != nil {
						err = errors.Join(err, rerr)
					}
				}
			}
		}
		// An idle unit whose executable view is gone is no longer idle;
		// one whose teardown failed before stays idle, so that the next
		// take or Trim tears it down again.
		d.mu.Lock()
		if e.u.idle && !e.u.exec {
			d.unidleLocked(e.a, e.u)
		}
		d.mu.Unlock()
		d.forget(e.a, e.u)
	}
	return err
}

// reserved returns the grid's records of [addr, addr+size), and the
// executable views of the idle units there (which are not reserved, but
// are what a slot handed out or released there holds).
func (d *gridDual) reserved(addr, size uintptr) []aspacem.Segment {
	segs := d.g.reserved(addr, size)
	n := len(segs)
	if segs = d.idleSegments(segs, addr, size); len(segs) > n {
		slices.SortFunc(segs, func(a, b aspacem.Segment) int { return cmp.Compare(a.Start, b.Start) })
	}
	return segs
}

// committed returns the executable view of a committed code unit: the
// section viewed with prot at the offset of addr; nil for a file slot,
// whose committed pages are anonymous.
func (d *gridDual) committed(addr, size uintptr, prot mem.Prot) []aspacem.Segment {
	if _, none := d.inUnit(addr, size); none {
		return nil // anonymous memory of a file slot
	}
	return []aspacem.Segment{{Start: addr, End: addr + size, Kind: aspacem.KindShared, Prot: prot, Owner: OwnerVMCode,
		Name: SharedName, Offset: uint64(addr - d.g.base)}}
}

// release unmaps the alias (recording it free), releases the grid with
// every executable view, then closes the section. A failed step leaves
// the steps before it done and recorded; calling release again resumes.
func (d *gridDual) release() error {
	_, size := d.g.bounds()
	if err := d.unmapView(size); err != nil {
		return err
	}
	if !d.gridGone {
		if err := d.g.release(); err != nil {
			return err
		}
		d.gridGone = true
		d.mu.Lock()
		clear(d.units)
		d.idle, d.idleSlots = nil, 0
		d.mu.Unlock()
	}
	return d.closeObject()
}

// viewMapped reports whether a view of the grid's is mapped at addr.
func (g *grid) viewMapped(addr uintptr) bool {
	if addr < g.base || addr-g.base >= g.size {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	k := g.slotOf(addr)
	if g.slots[k].state != gridInView {
		return false
	}
	v := g.views[int(g.slots[k].view)]
	return v != nil && v.first == k && v.mapped
}

// SectionCharge reports, for W^X vmcode under Windows rules, the bytes of
// its section that are committed, which is what Windows charges against
// the commit limit for it: the grid slots code units have held with a
// reserve-only section (the default), all of vmcode with a SEC_COMMIT one.
// ok is false without W^X under Windows rules.
func (v *VMM) SectionCharge() (committed uintptr, ok bool) {
	d, ok := v.back.(*gridDual)
	if !ok {
		return 0, false
	}
	return d.Charge(), true
}
