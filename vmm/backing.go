package vmm

import (
	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// backing is what vmcode is made of, and the one place that knows how the
// OS's rules shape it: a single reservation (linear, Linux rules), a grid
// of separate reservations (Windows rules, grid.go), or either dual-mapped
// for W^X. Slot does the bookkeeping (aspacem, the allocator) and asks the
// backing to change the pages.
//
// Preconditions for every method: the range lies inside vmcode, is page
// aligned, and belongs to one slot; the caller holds the VMM's life lock
// for reading (release: for writing). Different slots never overlap, so
// calls on different slots may run concurrently.
type backing interface {
	// bounds returns vmcode: [base, base+size).
	bounds() (base, size uintptr)
	// fileAlign is the alignment and size multiple of a slot that will
	// hold a file view: the granularity, or the grid's slot size.
	fileAlign() uintptr
	// mapFile maps size bytes of obj from off at addr, private
	// copy-on-write, where the range is reserved.
	mapFile(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot) error
	// commit backs reserved (or committed) pages with zeroed memory.
	commit(addr, size uintptr, prot mem.Prot) error
	// decommit returns committed pages to reservation.
	decommit(addr, size uintptr) error
	// protect changes the protection of committed or mapped pages.
	protect(addr, size uintptr, prot mem.Prot) error
	// reset turns [addr, addr+size), whatever is in it, back into
	// reservation.
	reset(addr, size uintptr) error
	// reserved returns the segments aspacem records for reserved, unused
	// vmcode in [addr, addr+size): one [vmcode] reservation, or one per
	// grid slot.
	reserved(addr, size uintptr) []aspacem.Segment
	// release gives all of vmcode back to the OS. On failure it changes
	// nothing and may be called again.
	release() error
}

// linear is vmcode as one reservation: Linux rules, where a file view
// replaces part of a reservation atomically (MAP_FIXED) and any page range
// can be re-reserved. Under Windows rules it still serves units of emitted
// code (commit and decommit inside one reservation) but cannot hold file
// views: those need the grid.
type linear struct {
	os         mem.OS
	base, size uintptr
}

// newLinear reserves size bytes at addr (exactly, if exact) or where the
// OS chooses.
func newLinear(os mem.OS, addr, size uintptr, mode mem.Mode) (*linear, error) {
	base, err := os.Reserve(addr, size, mode)
	if err != nil {
		return nil, err
	}
	return &linear{os: os, base: base, size: size}, nil
}

func (l *linear) bounds() (uintptr, uintptr) { return l.base, l.size }
func (l *linear) fileAlign() uintptr         { return l.os.Granularity() }

func (l *linear) mapFile(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot) error {
	_, err := l.os.MapObject(obj, off, addr, size, prot, mem.Fixed)
	return err
}

func (l *linear) commit(addr, size uintptr, prot mem.Prot) error {
	return l.os.Commit(addr, size, prot)
}

func (l *linear) decommit(addr, size uintptr) error { return l.os.Decommit(addr, size) }

func (l *linear) protect(addr, size uintptr, prot mem.Prot) error {
	return l.os.Protect(addr, size, prot)
}

// reset re-reserves the range: under Linux rules one MAP_FIXED PROT_NONE
// mapping replaces whatever is there atomically. Windows cannot map over
// anything, but a linear vmcode there holds only committed pages (file
// views need the grid), and decommitting them leaves the range reserved.
func (l *linear) reset(addr, size uintptr) error {
	if l.os.Rules() == mem.RulesWindows {
		return l.os.Decommit(addr, size)
	}
	_, err := l.os.Reserve(addr, size, mem.Fixed)
	return err
}

func (l *linear) reserved(addr, size uintptr) []aspacem.Segment {
	return []aspacem.Segment{{Start: addr, End: addr + size, Kind: aspacem.KindReservation, Owner: OwnerVMCode}}
}

// release gives the reservation back; under Linux rules one munmap takes
// every file view and committed page in it along.
func (l *linear) release() error { return l.os.Release(l.base, l.size) }
