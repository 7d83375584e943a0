package vmm

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// Populating: making committed pages present before their first use.
//
// A page of vmcode is touched first through a view it has no page-table
// entry in yet: under W^X, emitted code is written through the writable
// view (a fault that allocates the page) and then run from the executable
// view (a second fault that maps it there). A page fault costs several
// microseconds where the kernel runs paravirtualised, a madvise about one:
// populating a unit's next stretch before the jit writes into it turns a
// fault per page and view into a call per view.

// populater is implemented by backings that can populate pages: dual (W^X
// on Linux) and linear. The grid (Windows rules) has no such call and
// populates nothing.
type populater interface {
	// populate makes the pages of [addr, addr+size), committed with
	// protection prot in the executable view, present in the views
	// asked for.
	populate(addr, size uintptr, prot mem.Prot, views Views) error
}

// Views says which views of a slot's pages Populate makes them present
// in.
type Views uint8

const (
	// ViewOwn is the slot's own addresses (the executable view under
	// W^X): populated for writing where they are writable, else for
	// reading.
	ViewOwn Views = 1 << iota
	// ViewWritable is the writable view of W^X vmcode (VMM.Writable),
	// populated for writing; without W^X it is the slot's own view.
	ViewWritable
)

// Populate makes the committed pages [addr, addr+size) of the slot present
// in views, so that touching them first takes no page fault; the
// contents do not change. A code unit is written through its writable
// view and run from its own (ViewOwn|ViewWritable); data the jit keeps in
// a slot (a machine's context) is used at the slot's addresses only
// (ViewOwn). It is advice: where the OS cannot (a kernel before Linux
// 5.14, Windows, the simulator) it does nothing and returns nil. Pages
// that are not committed (reserved, or mapped with no access) are
// refused, before any call.
func (s *Slot) Populate(addr, size uintptr, views Views) error {
	if err := s.begin("populate", addr, size); err != nil {
		return err
	}
	defer s.v.life.RUnlock()
	var buf [segBuf]aspacem.Segment
	segs := s.v.space.AppendSegments(buf[:0], addr, addr+size)
	if err := s.requireIn(segs, "populate", addr, size, aspacem.KindAnon, aspacem.KindFile, aspacem.KindShared); err != nil {
		return err
	}
	for _, seg := range segs {
		if seg.Prot == mem.ProtNone {
			return fmt.Errorf("vmm: slot %q: populate [%#x, +%#x): [%#x, %#x) has no access", s.owner, addr, size, seg.Start, seg.End)
		}
	}
	p, ok := s.v.back.(populater)
	if !ok {
		return nil
	}
	for _, seg := range segs {
		lo, hi := max(seg.Start, addr), min(seg.End, addr+size)
		if err := p.populate(lo, hi-lo, seg.Prot, views); err != nil {
			if errors.Is(err, mem.ErrNotSupported) {
				return nil
			}
			return fmt.Errorf("vmm: slot %q: %w", s.owner, err)
		}
	}
	return nil
}

// populate populates the one view there is: for writing if it is
// writable, or if the writable view is asked for (which it then is).
func (l *linear) populate(addr, size uintptr, prot mem.Prot, views Views) error {
	if views == 0 {
		return nil
	}
	return mem.Populate(l.os, addr, size, prot&mem.ProtWrite != 0)
}

// populate populates the writable view first, which allocates the
// object's pages, then the executable view, which maps them. A file view
// in the range (a private library) has no writable view.
func (d *dual) populate(addr, size uintptr, prot mem.Prot, views Views) error {
	if err := d.live(); err != nil {
		return err
	}
	if views&ViewWritable != 0 {
		if _, rw := d.aliasState(addr, size); rw {
			if err := mem.Populate(d.os, d.alias(addr), size, true); err != nil {
				return fmt.Errorf("writable view: %w", err)
			}
		}
	}
	if views&ViewOwn == 0 {
		return nil
	}
	return mem.Populate(d.os, addr, size, prot&mem.ProtWrite != 0)
}
