package vmm

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/google/btree"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// Application memory.
//
// Everything outside vmcode and vmheap that reachvm maps on behalf of the
// application (a program loaded by jit, its brk area and stack, what it
// maps with mmap) is application memory, and the VMM makes and records it
// too, so that one component makes every OS memory call and every change
// reaches aspacem. The operations follow Linux rules: any page-aligned
// sub-range of application memory can be committed, protected,
// decommitted, replaced or released, whichever call made it.
//
// The VMM keeps its own record of which addresses are application memory
// (appMem.set), apart from the owner annotations in aspacem, which the
// caller chooses: an operation touches application memory only, so no
// application call can reach vmcode, vmheap, a slot or memory the VMM does
// not know about (the Go runtime's, a system library's). Free space (in
// aspacem) inside a range to release is skipped, as munmap skips holes;
// free space inside a range to replace (Fixed) is claimed first with an
// exact reservation, which the kernel refuses if it is in use after all.
//
// Every operation changes the kernel, then records the change in aspacem
// and in the set, and returns the first error. If the OS call fails, the
// pages it was to change are read back from the kernel (mem.OS.Regions)
// and recorded as they are: under Linux rules a failed mprotect or
// MAP_FIXED may have changed part of the range, and aspacem must keep
// matching the kernel (SyncCheck).
//
// Locking: every operation holds v.life for reading (so that Close cannot
// release application memory under a call in flight), then appMem.mu, then
// calls the OS and aspacem (whose lock is innermost). appMem.mu is never
// held together with v.mu. Holding appMem.mu across the OS call
// serialises the application's memory calls, as the kernel's mmap_lock
// does; lookups that do not change anything (IsApp) take it too, briefly.
// Lock order: v.life, then v.app.mu, then aspacem's.

// appMem is the VMM's record of application memory.
type appMem struct {
	// mu guards set and serialises the OS calls on application memory
	// with their recording.
	mu sync.Mutex
	// set holds the ranges of application memory, keyed by Start: page
	// aligned, non-empty, disjoint, and no two adjacent (adjacent ones are
	// merged). nil until the first reservation.
	set *btree.BTreeG[mem.Range]
}

func rangeLess(a, b mem.Range) bool { return a.Start < b.Start }

// addLocked records r as application memory.
//
// Preconditions: a.mu is held; r is non-empty.
func (a *appMem) addLocked(r mem.Range) {
	if a.set == nil {
		a.set = btree.NewG(8, rangeLess)
	}
	a.removeLocked(r)
	// Merge with a neighbour ending at r.Start and one starting at r.End.
	a.set.DescendLessOrEqual(mem.Range{Start: r.Start}, func(p mem.Range) bool {
		if p.End == r.Start {
			a.set.Delete(p)
			r.Start = p.Start
		}
		return false
	})
	if n, ok := a.set.Get(mem.Range{Start: r.End}); ok {
		a.set.Delete(n)
		r.End = n.End
	}
	a.set.ReplaceOrInsert(r)
}

// removeLocked forgets r: application memory no more.
//
// Preconditions: a.mu is held.
func (a *appMem) removeLocked(r mem.Range) {
	if a.set == nil || r.Empty() {
		return
	}
	var over []mem.Range
	a.walkSetLocked(r, func(x mem.Range) { over = append(over, x) })
	for _, x := range over {
		a.set.Delete(x)
		if x.Start < r.Start {
			a.set.ReplaceOrInsert(mem.Range{Start: x.Start, End: r.Start})
		}
		if x.End > r.End {
			a.set.ReplaceOrInsert(mem.Range{Start: r.End, End: x.End})
		}
	}
}

// walkSetLocked calls fn on every range of the set that overlaps r,
// unclipped, in order.
//
// Preconditions: a.mu is held.
func (a *appMem) walkSetLocked(r mem.Range, fn func(mem.Range)) {
	if a.set == nil {
		return
	}
	first := r.Start
	a.set.DescendLessOrEqual(mem.Range{Start: r.Start}, func(p mem.Range) bool {
		if p.End > r.Start {
			first = p.Start
		}
		return false
	})
	a.set.AscendRange(mem.Range{Start: first}, mem.Range{Start: r.End}, func(p mem.Range) bool {
		fn(p)
		return true
	})
}

// coversLocked reports whether r lies wholly in application memory.
//
// Preconditions: a.mu is held.
func (a *appMem) coversLocked(r mem.Range) bool {
	next := r.Start
	a.walkSetLocked(r, func(p mem.Range) {
		if p.Start <= next && p.End > next {
			next = p.End
		}
	})
	return next >= r.End
}

// ErrNotApp is the class of errors of application-memory operations on
// addresses that are not application memory: vmcode, vmheap, anything
// else the VMM owns, or memory it did not map (the Go runtime's).
var ErrNotApp = errors.New("not application memory")

// AppError describes a refused or failed application-memory operation.
type AppError struct {
	// Op is the operation: "reserve", "map", "commit", "protect",
	// "decommit", "release", "remap".
	Op string
	// Range is the range asked for.
	Range mem.Range
	// Reason says what was wrong, naming what is in the way (a segment
	// as aspacem records it) when that is the reason.
	Reason string
	// Err is the underlying class or OS error: ErrNotApp, mem.ErrInvalid,
	// or the *mem.Error the OS returned.
	Err error
}

func (e *AppError) Error() string {
	s := fmt.Sprintf("vmm: application %s %v", e.Op, e.Range)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Err.
func (e *AppError) Unwrap() error { return e.Err }

// checkOwner validates an owner annotation before any OS call, so that
// aspacem cannot refuse the record afterwards.
func checkOwner(owner string) error {
	switch {
	case owner == "":
		return errors.New("empty owner")
	case len(owner) > 256:
		return fmt.Errorf("owner of %d bytes, more than 256", len(owner))
	case !utf8.ValidString(owner) || strings.IndexFunc(owner, unicode.IsControl) >= 0:
		return fmt.Errorf("owner %q is not printable UTF-8", owner)
	}
	return nil
}

// beginApp validates an operation on application memory and holds v
// open and v.app.mu; end with v.endApp. page-aligned r is required unless
// hint (a Hint placement's address, which only needs to be aligned for
// the OS, and is rounded down).
func (v *VMM) beginApp(op string, r mem.Range, owner string, needOwner bool) error {
	bad := func(class error, format string, args ...any) error {
		return &AppError{Op: op, Range: r, Reason: fmt.Sprintf(format, args...), Err: class}
	}
	if v.os.Rules() != mem.RulesLinux {
		return bad(mem.ErrNotSupported, "application memory follows Linux rules, and the backend %s does not", v.os.Name())
	}
	page := v.os.PageSize()
	switch {
	case !r.WellFormed() || r.Empty():
		return bad(mem.ErrInvalid, "empty or inverted range")
	case !mem.Aligned(r.Start, page) || !mem.Aligned(r.End, page):
		return bad(mem.ErrInvalid, "not aligned to the page (%#x)", page)
	}
	if needOwner {
		if err := checkOwner(owner); err != nil {
			return bad(mem.ErrInvalid, "%v", err)
		}
	}
	if err := v.acquire(); err != nil {
		return err
	}
	v.app.mu.Lock()
	return nil
}

// endApp undoes a successful beginApp.
func (v *VMM) endApp() {
	v.app.mu.Unlock()
	v.life.RUnlock()
}

// appRange returns [addr, addr+size) for op, or an *AppError if it
// overflows.
func appRange(op string, addr, size uintptr) (mem.Range, error) {
	r, ok := mem.RangeOf(addr, size)
	if !ok {
		return mem.Range{Start: addr, End: addr}, &AppError{Op: op, Range: mem.Range{Start: addr, End: addr}, Reason: fmt.Sprintf("size %#x overflows the address space", size), Err: mem.ErrInvalid}
	}
	return r, nil
}

// ReserveApp reserves size bytes of address space (a multiple of the
// page) for application memory annotated owner, with no access, and
// returns the range. mode says where: mem.Hint near addr (0: anywhere;
// rounded down to the page), mem.Exact at addr or not at all (ErrExists if
// anything is there), mem.Fixed at addr replacing the application memory
// there (see Fixed in the package comment on application memory: anything
// else in the range fails with ErrExists and changes nothing).
func (v *VMM) ReserveApp(addr, size uintptr, mode mem.Mode, owner string) (mem.Range, error) {
	return v.mapApp("reserve", addr, size, mode, owner, func(at uintptr, m mem.Mode) (uintptr, error) {
		return v.os.Reserve(at, size, m)
	}, func(r mem.Range) aspacem.Segment {
		return aspacem.Segment{Start: r.Start, End: r.End, Kind: aspacem.KindReservation, Owner: owner}
	}, nil)
}

// MapAppAnon maps size bytes of zeroed, private anonymous memory with
// protection prot for the application, placed as ReserveApp places: an
// anonymous mmap. A failure leaves nothing behind.
func (v *VMM) MapAppAnon(addr, size uintptr, prot mem.Prot, mode mem.Mode, owner string) (mem.Range, error) {
	if !prot.Valid() {
		return mem.Range{}, &AppError{Op: "map", Range: mem.Range{Start: addr, End: addr}, Reason: fmt.Sprintf("unknown protection bits %#x", uint8(prot)), Err: mem.ErrInvalid}
	}
	return v.mapApp("map", addr, size, mode, owner, func(at uintptr, m mem.Mode) (uintptr, error) {
		got, err := v.os.Reserve(at, size, m)
		if err != nil {
			return 0, err
		}
		if err := v.os.Commit(got, size, prot); err != nil {
			if m == mem.Fixed {
				// What was there is gone: the range stays reserved,
				// which mapApp reads back and records.
				return 0, err
			}
			if rerr := v.os.Release(got, size); rerr != nil {
				return 0, errors.Join(err, rerr)
			}
			return 0, err
		}
		return got, nil
	}, func(r mem.Range) aspacem.Segment {
		return aspacem.Segment{Start: r.Start, End: r.End, Kind: aspacem.KindAnon, Prot: prot, Owner: owner}
	}, nil)
}

// MapAppFile maps size bytes of the file at path from offset off (a
// multiple of the page), private and copy-on-write, with protection prot,
// placed as ReserveApp places; the file's pages past its end read as
// zeros up to the page and fault beyond, as with mmap. The file is open
// only during the call; the mapping is recorded under path, which must be
// the name the kernel shows for it (an absolute path) for SyncCheck to
// agree.
func (v *VMM) MapAppFile(path string, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode, owner string) (mem.Range, error) {
	return v.mapAppObject(path, off, addr, size, prot, mode, owner, aspacem.KindFile, func() (mem.Object, error) {
		return v.os.OpenFile(path)
	})
}

// MapAppObject is MapAppFile for a file the caller holds open as obj
// (VMM.FileObject of a file it has examined already, a loader that parsed
// its headers): the view is of that file, whatever its path names by
// then. The caller keeps obj, and closes it (OS().CloseObject) once it
// has mapped what it needs: the views stay. The mapping is recorded under
// obj.Name(), which must be the name the kernel shows for it (an absolute
// path with no symbolic link in it) for SyncCheck to agree.
func (v *VMM) MapAppObject(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode, owner string) (mem.Range, error) {
	if obj == nil || obj.Shared() {
		return mem.Range{}, &AppError{Op: "map", Range: mem.Range{Start: addr, End: addr}, Reason: "not a file object (VMM.FileObject)", Err: mem.ErrInvalid}
	}
	return v.mapAppObjectKept(obj.Name(), off, addr, size, prot, mode, owner, aspacem.KindFile, obj, nil)
}

// MapAppSharedFile maps size bytes of the regular file open as the
// descriptor fd from offset off (a multiple of the page), shared
// (MAP_SHARED: writes go to the file and show in every view of it), with
// protection prot, placed as ReserveApp places. A writable view needs fd
// open for writing (the OS refuses it otherwise: mem.ErrNotSupported,
// EACCES). The caller keeps fd; the VMM uses a duplicate of it for the
// call only. The mapping is recorded as KindShared under name, which must
// be the name the kernel shows for it (the file's path, as
// /proc/self/fd/FD reads) for SyncCheck to agree. The backend must
// implement mem.SharedFileOpener (mem.ErrNotSupported otherwise).
func (v *VMM) MapAppSharedFile(fd int, name string, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode, owner string) (mem.Range, error) {
	return v.mapAppObject(name, off, addr, size, prot, mode, owner, aspacem.KindShared, func() (mem.Object, error) {
		return mem.OpenSharedFile(v.os, fd, name)
	})
}

// mapAppObject is the common path of MapAppFile and MapAppSharedFile:
// check prot and off, open the object with open under mapApp's locks, map
// size bytes of it from off, and record the view as kind (KindFile:
// private; KindShared: shared) with the object's name and identity. name
// only says which file in errors. The object is closed before returning,
// whatever happened.
func (v *VMM) mapAppObject(name string, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode, owner string, kind aspacem.Kind, open func() (mem.Object, error)) (mem.Range, error) {
	return v.mapAppObjectKept(name, off, addr, size, prot, mode, owner, kind, nil, open)
}

// mapAppObjectKept is mapAppObject, or with kept (and open nil) the view
// of an object the caller keeps and closes itself.
func (v *VMM) mapAppObjectKept(name string, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode, owner string, kind aspacem.Kind, kept mem.Object, open func() (mem.Object, error)) (mem.Range, error) {
	if !prot.Valid() || off%uint64(v.os.PageSize()) != 0 {
		return mem.Range{}, &AppError{Op: "map", Range: mem.Range{Start: addr, End: addr}, Reason: fmt.Sprintf("protection %#x or offset %#x of %s", uint8(prot), off, name), Err: mem.ErrInvalid}
	}
	obj := kept
	defer func() {
		if obj != nil && obj != kept {
			// Closing changes no mapping: a view made from obj stays
			// valid and recorded whatever close says, so its error
			// would only make a caller drop a mapping it holds.
			_ = v.os.CloseObject(obj)
		}
	}()
	var openObj func() error
	if kept == nil {
		openObj = func() error {
			var err error
			obj, err = open()
			return err
		}
	}
	return v.mapApp("map", addr, size, mode, owner, func(at uintptr, m mem.Mode) (uintptr, error) {
		return v.os.MapObject(obj, off, at, size, prot, m)
	}, func(r mem.Range) aspacem.Segment {
		seg := aspacem.Segment{Start: r.Start, End: r.End, Kind: kind, Prot: prot, Owner: owner, Name: obj.Name(), Offset: off, Shared: kind == aspacem.KindShared}
		if id, ok := obj.(mem.FileIdentity); ok {
			seg.Dev, seg.Inode = id.FileID()
		}
		return seg
	}, openObj)
}

// mapApp is the common path of ReserveApp, MapAppAnon and MapAppFile:
// validate, hold the locks, claim the free parts of a Fixed range, call
// do, record what it made as seg describes it. open, if set, runs under
// the locks before do (opening a file).
func (v *VMM) mapApp(op string, addr, size uintptr, mode mem.Mode, owner string,
	do func(at uintptr, m mem.Mode) (uintptr, error), seg func(mem.Range) aspacem.Segment, open func() error) (mem.Range, error) {
	page := v.os.PageSize()
	if mode == mem.Hint {
		// A hint the OS cannot honour is no hint, as mmap ignores it.
		addr = mem.AlignDown(addr, page)
		lo, hi := v.os.Bounds()
		if end, ok := mem.RangeOf(addr, size); !ok || addr < lo || end.End > hi {
			addr = 0
		}
	}
	r, err := appRange(op, addr, size)
	if err != nil {
		return r, err
	}
	if mode == mem.Hint && addr == 0 {
		// Validated with a stand-in: the OS chooses the address.
		if err := v.beginApp(op, mem.Range{Start: page, End: page + size}, owner, true); err != nil {
			return r, err
		}
	} else if err := v.beginApp(op, r, owner, true); err != nil {
		return r, err
	}
	defer v.endApp()
	if mode != mem.Hint && mode != mem.Exact && mode != mem.Fixed {
		return r, &AppError{Op: op, Range: r, Reason: fmt.Sprintf("unknown mode %v", mode), Err: mem.ErrInvalid}
	}
	if open != nil {
		if err := open(); err != nil {
			return r, &AppError{Op: op, Range: r, Err: err}
		}
	}
	var claimed []mem.Range
	if mode == mem.Fixed {
		if claimed, err = v.claimLocked(op, r, owner); err != nil {
			return r, err
		}
	}
	got, err := do(addr, mode)
	if err != nil {
		err = &AppError{Op: op, Range: r, Err: err}
		if mode != mem.Fixed {
			return r, err
		}
		// Give back what was claimed for the call, then read back the
		// rest: MAP_FIXED may have unmapped the range before failing.
		errs := append([]error{err}, v.unclaimLocked(claimed)...)
		errs = append(errs, v.reconcileLocked(r))
		return r, errors.Join(errs...)
	}
	r = mem.Range{Start: got, End: got + size}
	if err := v.space.Update(seg(r)); err != nil {
		// Never happens after beginApp's checks; undo rather than leave
		// an unrecorded mapping.
		if mode != mem.Fixed {
			if rerr := v.os.Release(got, size); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return r, &AppError{Op: op, Range: r, Reason: "recording", Err: err}
	}
	v.app.addLocked(r)
	return r, nil
}

// claimLocked prepares r for a Fixed operation: every part of it must be
// application memory or free in aspacem; the free parts are reserved
// exactly (the kernel refuses them if aspacem is out of date and something
// is there) and recorded as owner's application memory, and returned. On
// error nothing has changed.
//
// Preconditions: v.app.mu is held.
func (v *VMM) claimLocked(op string, r mem.Range, owner string) ([]mem.Range, error) {
	var free []mem.Range
	var bad *aspacem.Segment
	v.eachNonAppLocked(r, func(s aspacem.Segment) bool {
		if s.Kind != aspacem.KindFree {
			bad = &s
			return false
		}
		free = append(free, mem.Range{Start: s.Start, End: s.End})
		return true
	})
	if bad != nil {
		return nil, &AppError{Op: op, Range: r, Reason: fmt.Sprintf("%v is in the way", *bad), Err: errors.Join(ErrNotApp, mem.ErrExists)}
	}
	for i, f := range free {
		if _, err := v.os.Reserve(f.Start, f.Size(), mem.Exact); err != nil {
			errs := []error{&AppError{Op: op, Range: r, Reason: fmt.Sprintf("claiming %v, free in aspacem", f), Err: err}}
			return nil, errors.Join(append(errs, v.unclaimLocked(free[:i])...)...)
		}
		if err := v.space.Update(aspacem.Segment{Start: f.Start, End: f.End, Kind: aspacem.KindReservation, Owner: owner}); err != nil {
			return nil, err
		}
		v.app.addLocked(f)
	}
	return free, nil
}

// unclaimLocked undoes claimLocked for the ranges claimed: each is
// released to the OS and recorded free again, no longer application
// memory. A range the OS will not release stays as it was; the errors
// say which.
//
// Preconditions: v.app.mu is held.
func (v *VMM) unclaimLocked(claimed []mem.Range) []error {
	var errs []error
	for _, c := range claimed {
		if err := v.os.Release(c.Start, c.Size()); err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, v.space.Update(aspacem.Segment{Start: c.Start, End: c.End, Kind: aspacem.KindFree}))
		v.app.removeLocked(c)
	}
	return errs
}

// eachNonAppLocked calls fn on aspacem's segments, clipped, of the parts of
// r that are not application memory, until fn returns false.
//
// Preconditions: v.app.mu is held.
func (v *VMM) eachNonAppLocked(r mem.Range, fn func(aspacem.Segment) bool) {
	next := r.Start
	stop := false
	visit := func(lo, hi uintptr) {
		if stop || lo >= hi {
			return
		}
		for _, s := range v.space.Segments(lo, hi) {
			if !fn(s) {
				stop = true
				return
			}
		}
	}
	v.app.walkSetLocked(r, func(p mem.Range) {
		visit(next, max(p.Start, r.Start))
		next = max(next, p.End)
	})
	visit(next, r.End)
}

// requireAppLocked checks that r is wholly application memory whose
// segments are all of kinds, and returns them (clipped to r).
//
// Preconditions: v.app.mu is held.
func (v *VMM) requireAppLocked(op string, r mem.Range, kinds ...aspacem.Kind) ([]aspacem.Segment, error) {
	if !v.app.coversLocked(r) {
		var what string
		v.eachNonAppLocked(r, func(s aspacem.Segment) bool {
			what = s.String()
			return false
		})
		return nil, &AppError{Op: op, Range: r, Reason: what + " is not application memory", Err: ErrNotApp}
	}
	segs := v.space.Segments(r.Start, r.End)
	for _, s := range segs {
		ok := false
		for _, k := range kinds {
			ok = ok || s.Kind == k
		}
		if !ok {
			return nil, &AppError{Op: op, Range: r, Reason: fmt.Sprintf("%v is %s, want one of %v", s, s.Kind, kinds), Err: mem.ErrNotMapped}
		}
	}
	return segs, nil
}

// CommitApp backs the reserved pages of r with zeroed memory of
// protection prot (and re-protects pages already committed). r must be
// application memory holding no file view.
func (v *VMM) CommitApp(r mem.Range, prot mem.Prot) error {
	return v.changeApp("commit", r, prot, []aspacem.Kind{aspacem.KindReservation, aspacem.KindAnon},
		func() error { return v.os.Commit(r.Start, r.Size(), prot) },
		func(s aspacem.Segment) aspacem.Segment { s.Kind, s.Prot = aspacem.KindAnon, prot; return s })
}

// ProtectApp changes the protection of r, application memory that is
// all committed or mapped (privately or shared) (reserved pages fail with mem.ErrNotMapped, as
// mprotect fails on unmapped ones).
func (v *VMM) ProtectApp(r mem.Range, prot mem.Prot) error {
	return v.changeApp("protect", r, prot, []aspacem.Kind{aspacem.KindAnon, aspacem.KindFile, aspacem.KindShared},
		func() error { return v.os.Protect(r.Start, r.Size(), prot) },
		func(s aspacem.Segment) aspacem.Segment { s.Prot = prot; return s })
}

// DecommitApp drops the pages of r, application memory holding no file
// view, and leaves them reserved.
func (v *VMM) DecommitApp(r mem.Range) error {
	return v.changeApp("decommit", r, mem.ProtNone, []aspacem.Kind{aspacem.KindReservation, aspacem.KindAnon},
		func() error { return v.os.Decommit(r.Start, r.Size()) },
		func(s aspacem.Segment) aspacem.Segment {
			return aspacem.Segment{Start: s.Start, End: s.End, Kind: aspacem.KindReservation, Owner: s.Owner}
		})
}

// changeApp is the common path of CommitApp, ProtectApp and DecommitApp.
func (v *VMM) changeApp(op string, r mem.Range, prot mem.Prot, kinds []aspacem.Kind, do func() error, after func(aspacem.Segment) aspacem.Segment) error {
	if !prot.Valid() {
		return &AppError{Op: op, Range: r, Reason: fmt.Sprintf("unknown protection bits %#x", uint8(prot)), Err: mem.ErrInvalid}
	}
	if err := v.beginApp(op, r, "", false); err != nil {
		return err
	}
	defer v.endApp()
	segs, err := v.requireAppLocked(op, r, kinds...)
	if err != nil {
		return err
	}
	if err := do(); err != nil {
		return errors.Join(&AppError{Op: op, Range: r, Err: err}, v.reconcileLocked(r))
	}
	for _, s := range segs {
		if err := v.space.Update(after(s)); err != nil {
			return &AppError{Op: op, Range: r, Reason: "recording", Err: err}
		}
	}
	return nil
}

// ReleaseApp unmaps the application memory in r: reservations, committed
// memory and file views alike. Parts of r that aspacem records free are
// skipped, as munmap skips holes; any other memory in r (vmcode, vmheap,
// the Go runtime's) fails the call with ErrNotApp before anything changes.
func (v *VMM) ReleaseApp(r mem.Range) error {
	if err := v.beginApp("release", r, "", false); err != nil {
		return err
	}
	defer v.endApp()
	var bad *aspacem.Segment
	v.eachNonAppLocked(r, func(s aspacem.Segment) bool {
		if s.Kind != aspacem.KindFree {
			bad = &s
			return false
		}
		return true
	})
	if bad != nil {
		return &AppError{Op: "release", Range: r, Reason: fmt.Sprintf("%v is not application memory", *bad), Err: ErrNotApp}
	}
	var parts []mem.Range
	v.app.walkSetLocked(r, func(p mem.Range) { parts = append(parts, p.Intersect(r)) })
	for _, p := range parts {
		if err := v.os.Release(p.Start, p.Size()); err != nil {
			return errors.Join(&AppError{Op: "release", Range: r, Err: err}, v.reconcileLocked(p))
		}
		if err := v.space.Update(aspacem.Segment{Start: p.Start, End: p.End, Kind: aspacem.KindFree}); err != nil {
			return &AppError{Op: "release", Range: r, Reason: "recording", Err: err}
		}
		v.app.removeLocked(p)
	}
	return nil
}

// IsApp reports whether [addr, addr+size) lies wholly in application
// memory.
func (v *VMM) IsApp(addr, size uintptr) bool {
	r, ok := mem.RangeOf(addr, size)
	if !ok || r.Empty() {
		return false
	}
	v.app.mu.Lock()
	defer v.app.mu.Unlock()
	return v.app.coversLocked(r)
}

// OverlapsApp reports whether [addr, addr+size) holds any application
// memory.
func (v *VMM) OverlapsApp(addr, size uintptr) bool {
	r, ok := mem.RangeOf(addr, size)
	if !ok || r.Empty() {
		return false
	}
	v.app.mu.Lock()
	defer v.app.mu.Unlock()
	found := false
	v.app.walkSetLocked(r, func(mem.Range) { found = true })
	return found
}

// Refresh re-reads the kernel's view of the memory the VMM does not own
// into aspacem (aspacem.Map.Refresh with the VMM's OS), for callers that
// describe what lies at an address (an error message, a code map).
func (v *VMM) Refresh() error { return v.space.Refresh(v.os) }

// reconcileLocked reads the kernel's view of r, application memory an OS
// call failed on, and records it: the pages the call changed before it
// failed, or the mapping MAP_FIXED dropped. Pages the kernel shows free
// stop being application memory.
//
// Preconditions: v.app.mu is held; r lies in application memory (or was
// claimed for it).
func (v *VMM) reconcileLocked(r mem.Range) error {
	regions, err := v.os.Regions(r.Start, r.End)
	if err != nil {
		return fmt.Errorf("vmm: reading back %v after a failed call: %w", r, err)
	}
	var errs []error
	for _, old := range v.space.Segments(r.Start, r.End) {
		owner := old.Owner
		if owner == "" {
			owner = "app"
		}
		next := old.Start
		record := func(s aspacem.Segment) {
			if err := v.space.Update(s); err != nil {
				errs = append(errs, err)
			}
		}
		for _, k := range regions {
			lo, hi := max(k.Start, old.Start), min(k.End, old.End)
			if lo >= hi || k.State == mem.StateFree {
				continue
			}
			if lo > next {
				record(aspacem.Segment{Start: next, End: lo, Kind: aspacem.KindFree})
				v.app.removeLocked(mem.Range{Start: next, End: lo})
			}
			s := aspacem.Segment{Start: lo, End: hi, Owner: owner, Prot: k.Prot & mem.ProtRWX}
			switch {
			case k.Shared:
				s.Kind, s.Name, s.Offset, s.Shared, s.Dev, s.Inode = aspacem.KindShared, k.Name, k.Offset, true, k.Dev, k.Inode
			case k.Name != "":
				s.Kind, s.Name, s.Offset, s.Dev, s.Inode = aspacem.KindFile, k.Name, k.Offset, k.Dev, k.Inode
				if old.Kind == aspacem.KindFile {
					s.Name = old.Name
				}
			case s.Prot == mem.ProtNone && old.Kind == aspacem.KindReservation:
				s.Kind = aspacem.KindReservation
			default:
				s.Kind = aspacem.KindAnon
			}
			record(s)
			next = hi
		}
		if next < old.End {
			record(aspacem.Segment{Start: next, End: old.End, Kind: aspacem.KindFree})
			v.app.removeLocked(mem.Range{Start: next, End: old.End})
		}
	}
	return errors.Join(errs...)
}

// closeApp releases every piece of application memory left, for Close.
//
// Preconditions: v.life is held for writing.
func (v *VMM) closeApp() error {
	v.app.mu.Lock()
	defer v.app.mu.Unlock()
	if v.app.set == nil {
		return nil
	}
	var parts []mem.Range
	v.app.set.Ascend(func(p mem.Range) bool {
		parts = append(parts, p)
		return true
	})
	for _, p := range parts {
		if err := v.os.Release(p.Start, p.Size()); err != nil {
			return fmt.Errorf("vmm: releasing application memory %v: %w", p, err)
		}
		if err := v.space.Update(aspacem.Segment{Start: p.Start, End: p.End, Kind: aspacem.KindFree}); err != nil {
			return fmt.Errorf("vmm: recording the release of application memory %v: %w", p, err)
		}
		v.app.removeLocked(p)
	}
	return nil
}
