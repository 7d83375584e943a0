package vmm

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// RemapApp resizes or moves the application mapping at old to newSize
// bytes (a multiple of the page), with its contents, as mremap does, and
// returns where it is then. mode says where, as mem.Remapper's Remap:
// mem.Exact in place only, mem.Hint in place if it can be grown there,
// else where the OS chooses, mem.Fixed at newAddr (whose range must be
// application memory or free, and not overlap old), replacing what is
// there.
//
// As under the kernel, shrinking in place unmaps old's tail whatever it
// holds (it must be application memory or free); growing or moving needs
// the part of old that is kept to be one mapping (mem.ErrNotMapped, the
// kernel's EFAULT, otherwise), which the OS checks. Either way old's first
// page must be application memory, and nothing but application memory
// changes: the OS grows in place only into space it has free and moves
// only to space it has free or, with Fixed, to the claimed range. The new
// pages take the attributes (and owner) of old's last page, a file view's
// offsets continuing. The backend must implement mem.Remapper
// (mem.ErrNotSupported otherwise).
func (v *VMM) RemapApp(old mem.Range, newSize uintptr, mode mem.Mode, newAddr uintptr) (mem.Range, error) {
	const op = "remap"
	bad := func(class error, format string, args ...any) (mem.Range, error) {
		return old, &AppError{Op: op, Range: old, Reason: fmt.Sprintf(format, args...), Err: class}
	}
	page := v.os.PageSize()
	if newSize == 0 || !mem.Aligned(newSize, page) {
		return bad(mem.ErrInvalid, "new size %#x zero or not a multiple of the page", newSize)
	}
	var dst mem.Range
	if mode == mem.Fixed {
		r, ok := mem.RangeOf(newAddr, newSize)
		if !ok || !mem.Aligned(newAddr, page) {
			return bad(mem.ErrInvalid, "new address %#x unaligned or overflowing", newAddr)
		}
		if r.Start < old.End && old.Start < r.End {
			return bad(mem.ErrInvalid, "new range %v overlaps the old one", r)
		}
		dst = r
	} else if mode != mem.Exact && mode != mem.Hint {
		return bad(mem.ErrInvalid, "unknown mode %v", mode)
	}
	if err := v.beginApp(op, old, "", false); err != nil {
		return old, err
	}
	defer v.endApp()
	if !v.app.coversLocked(mem.Range{Start: old.Start, End: old.Start + page}) {
		return bad(ErrNotApp, "%#x is not application memory", old.Start)
	}
	keep := old
	if newSize < old.Size() {
		keep.End = old.Start + newSize
		// The tail goes, as with ReleaseApp.
		var in *aspacem.Segment
		v.eachNonAppLocked(mem.Range{Start: keep.End, End: old.End}, func(s aspacem.Segment) bool {
			if s.Kind != aspacem.KindFree {
				in = &s
				return false
			}
			return true
		})
		if in != nil {
			return bad(ErrNotApp, "%v is not application memory", *in)
		}
	}
	shrink := mode != mem.Fixed && newSize <= old.Size()
	var segs []aspacem.Segment
	if !shrink {
		var err error
		if segs, err = v.requireAppLocked(op, keep, aspacem.KindReservation, aspacem.KindAnon, aspacem.KindFile, aspacem.KindShared); err != nil {
			return old, err
		}
	}
	var claimed []mem.Range
	if mode == mem.Fixed {
		owner := segs[len(segs)-1].Owner
		var err error
		if claimed, err = v.claimLocked(op, dst, owner); err != nil {
			return old, err
		}
	}
	got, err := mem.Remap(v.os, old.Start, old.Size(), newSize, mode, newAddr)
	if err != nil {
		errs := append([]error{&AppError{Op: op, Range: old, Err: err}}, v.unclaimLocked(claimed)...)
		// mremap changes nothing when it fails, but for a move whose
		// destination MAP_FIXED had already cleared: read both back.
		errs = append(errs, v.reconcileLocked(old))
		if mode == mem.Fixed {
			errs = append(errs, v.reconcileLocked(dst))
		}
		return old, errors.Join(errs...)
	}
	var errs []error
	record := func(s aspacem.Segment) {
		if err := v.space.Update(s); err != nil {
			errs = append(errs, err)
		}
	}
	free := func(r mem.Range) {
		if !r.Empty() {
			record(aspacem.Segment{Start: r.Start, End: r.End, Kind: aspacem.KindFree})
			v.app.removeLocked(r)
		}
	}
	// The tail unmapped: freed in aspacem (what of it was free stays so).
	free(mem.Range{Start: keep.End, End: old.End})
	if shrink {
		return mem.Range{Start: got, End: got + newSize}, errors.Join(errs...)
	}
	if got != old.Start {
		free(keep)
		for _, s := range segs {
			s.Start, s.End = got+(s.Start-old.Start), got+(s.End-old.Start)
			record(s)
		}
	}
	if newSize > keep.Size() {
		last := segs[len(segs)-1]
		s := last
		s.Start, s.End = got+keep.Size(), got+newSize
		if last.Name != "" {
			s.Offset = last.Offset + uint64(last.Size())
		}
		record(s)
	}
	r := mem.Range{Start: got, End: got + newSize}
	v.app.addLocked(r)
	return r, errors.Join(errs...)
}
