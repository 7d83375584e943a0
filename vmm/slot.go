package vmm

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// Slot is a range of vmcode handed to one user, a private library image or
// a code-cache unit. It starts out reserved; its user maps a file over it,
// commits and protects pages in it, and releases it, which turns the whole
// range back into reservation and returns it to vmcode.
//
// A Slot's methods are safe for concurrent use with other slots; calls on
// one slot must not race with its Release. After Release, or after its
// VMM's Close (which releases every slot with vmcode), every method that
// touches memory fails with an error wrapping ErrClosed; Base, Size and
// Owner keep returning the slot's bounds and name.
type Slot struct {
	v *VMM
	// base, size and owner are immutable. owner annotates the slot's
	// segments in aspacem ("privlib libdemo.so", "fcache").
	base, size uintptr
	owner      string
	// files is set for slots that may hold file views (ReserveSlot);
	// units (ReserveUnit) may not. Immutable.
	files bool
}

// ReserveSlot carves a range of at least size bytes out of vmcode for
// owner, able to hold file views: aligned to, and a multiple of, the
// backing's file alignment (the granularity on Linux, a grid slot on
// Windows). The slot starts reserved.
func (v *VMM) ReserveSlot(size uintptr, owner string) (*Slot, error) {
	return v.reserveSlot(0, size, owner, v.back.fileAlign(), true)
}

// ReserveSlotAt is ReserveSlot at exactly addr, which must be free vmcode
// aligned to the backing's file alignment (DynamoRIO's
// heap_reserve_for_external_mapping, exact address first).
func (v *VMM) ReserveSlotAt(addr, size uintptr, owner string) (*Slot, error) {
	if addr == 0 {
		return nil, fmt.Errorf("vmm: slot for %q: address 0", owner)
	}
	return v.reserveSlot(addr, size, owner, v.back.fileAlign(), true)
}

// ReserveUnit carves a granularity-aligned range of at least size bytes
// out of vmcode for emitted code. Units never hold file views, so on the
// Windows grid they need not take whole grid slots, except under W^X,
// where a unit's executable view is a section view (unitAlign).
func (v *VMM) ReserveUnit(size uintptr, owner string) (*Slot, error) {
	return v.reserveSlot(0, size, owner, v.unitAlign(), false)
}

// reserveSlot allocates [addr, addr+size) (addr 0: anywhere) aligned to
// align and records it.
func (v *VMM) reserveSlot(addr, size uintptr, owner string, align uintptr, files bool) (*Slot, error) {
	if size == 0 || size > v.codeSize {
		return nil, fmt.Errorf("vmm: slot for %q: size %#x is zero or larger than vmcode (%#x)", owner, size, v.codeSize)
	}
	// align need not be a power of two: the grid's slot is 640 KiB.
	size = (size + align - 1) / align * align
	if addr%align != 0 {
		return nil, fmt.Errorf("vmm: slot for %q: address %#x not aligned to %#x", owner, addr, align)
	}
	if err := v.acquireNew(); err != nil {
		return nil, fmt.Errorf("vmm: slot for %q: %w", owner, err)
	}
	defer v.life.RUnlock()
	base := addr
	if addr == 0 {
		var err error
		if base, err = v.code.alloc(OwnerVMCode, size, align); err != nil {
			return nil, err
		}
	} else if err := v.code.allocAt(OwnerVMCode, addr, size); err != nil {
		return nil, err
	}
	s := &Slot{v: v, base: base, size: size, owner: owner, files: files}
	if t, ok := v.back.(slotTaker); ok {
		if err := t.take(base, size, !files); err != nil {
			_ = v.code.release(OwnerVMCode, base, size)
			return nil, fmt.Errorf("vmm: slot for %q: %w", owner, err)
		}
	}
	if err := v.recordPages(base, size, owner, false, mem.ProtNone); err != nil {
		_ = v.code.release(OwnerVMCode, base, size)
		return nil, err
	}
	if !files {
		v.noteUnit(base, size, true)
	}
	v.mu.Lock()
	v.slots[s] = struct{}{}
	v.mu.Unlock()
	return s, nil
}

// Base returns the slot's first address.
func (s *Slot) Base() uintptr { return s.base }

// Size returns the slot's size in bytes.
func (s *Slot) Size() uintptr { return s.size }

// Owner returns the annotation the slot's segments carry.
func (s *Slot) Owner() string { return s.owner }

// begin validates [addr, addr+size) for op and holds the VMM open; the
// caller must call s.v.life.RUnlock when it returns nil. It fails with an
// error wrapping ErrClosed once the slot is released or its VMM closed.
func (s *Slot) begin(op string, addr, size uintptr) error {
	if err := s.check(op, addr, size); err != nil {
		return err
	}
	if err := s.v.acquire(); err != nil {
		return fmt.Errorf("vmm: slot %q at %#x: %s: %w", s.owner, s.base, op, err)
	}
	s.v.mu.Lock()
	_, live := s.v.slots[s]
	s.v.mu.Unlock()
	if !live {
		s.v.life.RUnlock()
		return fmt.Errorf("vmm: slot %q at %#x: %s after the slot was released: %w", s.owner, s.base, op, ErrClosed)
	}
	return nil
}

// check validates that [addr, addr+size) is a page-aligned part of the slot.
func (s *Slot) check(op string, addr, size uintptr) error {
	if err := mem.CheckRange(op, addr, size, s.v.os.PageSize()); err != nil {
		return fmt.Errorf("vmm: slot %q: %w", s.owner, err)
	}
	if addr < s.base || addr-s.base > s.size || size > s.size-(addr-s.base) {
		return fmt.Errorf("vmm: slot %q: %s [%#x, +%#x) leaves the slot [%#x, +%#x)", s.owner, op, addr, size, s.base, s.size)
	}
	return nil
}

// MapFile maps size bytes of obj from offset off at addr, private and
// copy-on-write, replacing the slot's reservation there atomically.
func (s *Slot) MapFile(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot) error {
	if !s.files {
		return fmt.Errorf("vmm: slot %q: a code unit cannot hold file views; use ReserveSlot", s.owner)
	}
	if err := s.begin("map", addr, size); err != nil {
		return err
	}
	defer s.v.life.RUnlock()
	if err := s.v.back.mapFile(obj, off, addr, size, prot); err != nil {
		err = fmt.Errorf("vmm: slot %q: mapping %s: %w", s.owner, obj.Name(), err)
		var lost *SlotLostError
		if errors.As(err, &lost) {
			// Part of the slot now belongs to someone else: record what the
			// backing still holds there, and free nothing of it.
			for _, seg := range s.v.back.reserved(addr, size) {
				if seg.Kind == aspacem.KindReservation {
					seg.Owner = s.owner
				}
				if rerr := s.record(seg); rerr != nil {
					return errors.Join(err, rerr)
				}
			}
		}
		return err
	}
	seg := aspacem.Segment{Start: addr, End: addr + size, Kind: aspacem.KindFile, Prot: prot, Owner: s.owner, Name: obj.Name(), Offset: off}
	if id, ok := obj.(mem.FileIdentity); ok {
		seg.Dev, seg.Inode = id.FileID()
	}
	if err := s.record(seg); err != nil {
		return err
	}
	if n, ok := s.v.back.(viewNotes); ok {
		for _, seg := range n.afterMap(addr, size) {
			if err := s.record(seg); err != nil {
				return err
			}
		}
	}
	return nil
}

// viewNotes is implemented by backings whose file views need more
// bookkeeping than the view itself: the grid, where a view leaves a free
// gap up to the next granule and where slots can be lost to another
// allocator in the window between release and map.
type viewNotes interface {
	// afterMap returns the segments to record after a view of
	// [addr, addr+size) is mapped, beyond the view.
	afterMap(addr, size uintptr) []aspacem.Segment
	// lostIn returns the parts of [addr, addr+size) lost for good.
	lostIn(addr, size uintptr) []mem.Range
}

// Commit backs [addr, addr+size) of the slot with zeroed memory. The range
// must hold no file view: committing is for reserved pages (and re-protects
// pages already committed).
func (s *Slot) Commit(addr, size uintptr, prot mem.Prot) error {
	if err := s.begin("commit", addr, size); err != nil {
		return err
	}
	defer s.v.life.RUnlock()
	if err := s.require("commit", addr, size, aspacem.KindReservation, aspacem.KindAnon, aspacem.KindShared); err != nil {
		return err
	}
	if err := s.v.back.commit(addr, size, prot); err != nil {
		return fmt.Errorf("vmm: slot %q: %w", s.owner, err)
	}
	return s.v.recordPages(addr, size, s.owner, true, prot)
}

// Decommit drops the contents of committed pages in [addr, addr+size) and
// leaves them reserved. The range must hold no file view.
func (s *Slot) Decommit(addr, size uintptr) error {
	if err := s.begin("decommit", addr, size); err != nil {
		return err
	}
	defer s.v.life.RUnlock()
	if err := s.require("decommit", addr, size, aspacem.KindReservation, aspacem.KindAnon, aspacem.KindShared); err != nil {
		return err
	}
	if err := s.v.back.decommit(addr, size); err != nil {
		return fmt.Errorf("vmm: slot %q: %w", s.owner, err)
	}
	return s.v.recordPages(addr, size, s.owner, false, mem.ProtNone)
}

// Protect changes the protection of [addr, addr+size) of the slot, all of
// which must be committed or mapped: reserved pages have no storage to
// protect (and on Linux mprotect would silently make them accessible).
func (s *Slot) Protect(addr, size uintptr, prot mem.Prot) error {
	if err := s.begin("protect", addr, size); err != nil {
		return err
	}
	defer s.v.life.RUnlock()
	// The segments are read once, for the check and for the record: the
	// backing changes no segment of the slot's range, and the slot's
	// user does not change the range it protects concurrently.
	var buf [segBuf]aspacem.Segment
	segs := s.v.space.AppendSegments(buf[:0], addr, addr+size)
	if err := s.requireIn(segs, "protect", addr, size, aspacem.KindAnon, aspacem.KindFile, aspacem.KindShared); err != nil {
		return err
	}
	if err := s.v.back.protect(addr, size, prot); err != nil {
		return fmt.Errorf("vmm: slot %q: %w", s.owner, err)
	}
	for _, seg := range segs {
		seg.Prot = prot
		if err := s.record(seg); err != nil {
			return err
		}
	}
	return nil
}

// segBuf is the size of the buffers on the stack that the slot's and the
// backings' operations read segments into: a slot holds a handful
// (a library's segments), so that reading them allocates nothing.
const segBuf = 8

// require checks that every page of [addr, addr+size) is, in aspacem, one
// of kinds and owned by this slot.
func (s *Slot) require(op string, addr, size uintptr, kinds ...aspacem.Kind) error {
	var buf [segBuf]aspacem.Segment
	return s.requireIn(s.v.space.AppendSegments(buf[:0], addr, addr+size), op, addr, size, kinds...)
}

// requireIn is require on segs, the segments of [addr, addr+size).
func (s *Slot) requireIn(segs []aspacem.Segment, op string, addr, size uintptr, kinds ...aspacem.Kind) error {
	for _, seg := range segs {
		ok := seg.Owner == s.owner
		if ok {
			ok = false
			for _, k := range kinds {
				ok = ok || seg.Kind == k
			}
		}
		if !ok {
			return fmt.Errorf("vmm: slot %q: %s [%#x, +%#x): [%#x, %#x) is %s (owner %q), want one of %v",
				s.owner, op, addr, size, seg.Start, seg.End, seg.Kind, seg.Owner, append([]aspacem.Kind(nil), kinds...))
		}
	}
	return nil
}

func (s *Slot) record(seg aspacem.Segment) error {
	if err := s.v.space.Update(seg); err != nil {
		return fmt.Errorf("vmm: slot %q: recording %#x-%#x: %w", s.owner, seg.Start, seg.End, err)
	}
	return nil
}

// Release turns the whole slot back into vmcode reservation and returns it
// to the allocator. Releasing a slot twice, or after its VMM closed (which
// released it with vmcode), fails with an error wrapping ErrClosed; of two
// concurrent Releases one succeeds.
func (s *Slot) Release() error {
	v := s.v
	if err := s.begin("release", s.base, s.size); err != nil {
		return err
	}
	defer v.life.RUnlock()
	// Claim the slot: a concurrent Release now finds it released.
	v.mu.Lock()
	_, live := v.slots[s]
	delete(v.slots, s)
	v.mu.Unlock()
	if !live {
		return fmt.Errorf("vmm: slot %q at %#x: release after the slot was released: %w", s.owner, s.base, ErrClosed)
	}
	if err := v.back.reset(s.base, s.size); err != nil {
		v.mu.Lock()
		v.slots[s] = struct{}{}
		v.mu.Unlock()
		return fmt.Errorf("vmm: slot %q: re-reserving: %w", s.owner, err)
	}
	if !s.files {
		v.noteUnit(s.base, s.size, false)
	}
	for _, seg := range v.back.reserved(s.base, s.size) {
		if err := v.space.Update(seg); err != nil {
			return fmt.Errorf("vmm: slot %q: %w", s.owner, err)
		}
	}
	// Return the slot to the allocator, except what was lost: those
	// addresses stay allocated, to no one, for vmcode's life.
	start := s.base
	if n, ok := v.back.(viewNotes); ok {
		for _, r := range n.lostIn(s.base, s.size) {
			if r.Start > start {
				if err := v.code.release(OwnerVMCode, start, r.Start-start); err != nil {
					return err
				}
			}
			start = r.End
		}
	}
	if end := s.base + s.size; end > start {
		return v.code.release(OwnerVMCode, start, end-start)
	}
	return nil
}
