// Package sim is an in-memory model of a process address space that
// implements osmem.OS under either Linux or Windows rules.
//
// It exists so that everything above osmem (aspacem, vmm, the strategy
// harness) can be tested quickly, deterministically and under conditions a
// real kernel will not produce on demand: a crowded or randomised layout, a
// Windows address space on a Linux host, an ENOMEM at exactly the fifth
// call. It stores no bytes: it tracks which pages are reserved, committed or
// mapped, with what protection, backed by what, and in which Windows
// allocation. Code that needs the memory's contents must run on a real
// backend.
//
// The rules it enforces are those of the kernels, measured where possible
// (the conformance suite in internal/osmem/osmemtest runs the same checks
// on the simulator and on the native backends):
//
//   - Linux: page granularity. Reserve places top-down below an mmap base,
//     as the kernel does; Exact is MAP_FIXED_NOREPLACE (EEXIST), Fixed is
//     MAP_FIXED (atomic replacement). Commit, Decommit and Protect are
//     mprotect: they fail with ENOMEM at the first unmapped page, having
//     already changed the pages below it, exactly like the kernel. Release
//     and Unmap are munmap: any page-aligned range, unmapped space
//     included.
//   - Windows: reservation and view bases on 64 KiB, sizes in pages. Hint
//     placement is bottom-up, a hint rounded down to 64 KiB. Nothing is
//     mapped over anything in use (ERROR_INVALID_ADDRESS, 487), Fixed is
//     not supported, a reservation is released only whole and from its
//     base (87 for a partial size, 487 for a non-base or a view), a view is
//     unmapped only whole from its base, Commit and Decommit stay within
//     one reservation and Protect within one allocation's committed pages
//     (487 otherwise), and a view of a shared object never gains access it
//     was mapped without (87). Where Wine 8.0 reports 87 and Windows 487,
//     the simulator reports Windows' number; the class is the same.
//
// Every mutating call can be made to fail on purpose (FailCall, FailFrom),
// with no effect on the state, so that callers' error paths can be tested
// call by call.
//
// An OS is safe for concurrent use.
package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

// Defaults for Options.
const (
	// LinuxLo is mmap_min_addr's usual value.
	LinuxLo = 0x10000
	// LinuxHi is the top of the 47-bit user address space (TASK_SIZE on
	// x86-64 without 5-level paging).
	LinuxHi = 0x7fff_ffff_f000
	// WindowsLo is the lowest address Windows hands out.
	WindowsLo = 0x10000
	// WindowsHi is the top of the x64 user address space, exclusive
	// (MmHighestUserAddress + 1, rounded to the granularity).
	WindowsHi = 0x7fff_ffff_0000
	// WindowsGranularity is the allocation granularity of Windows.
	WindowsGranularity = 64 << 10
	// DefaultPageSize is the page size under both rules.
	DefaultPageSize = 4 << 10
	// linuxStackGap is the gap the kernel leaves between the top of the
	// address space and the mmap base for the stack (the minimum, 128 MiB).
	linuxStackGap = 128 << 20
	// linuxMaxRandom is the largest random offset of the mmap base (28 bits
	// of pages on x86-64).
	linuxMaxRandom = 1 << 40
)

// Options configures a simulator. The zero value gives the defaults of the
// chosen rules.
type Options struct {
	// Lo and Hi bound the addresses the simulator hands out, [Lo, Hi),
	// rounded inwards to the granularity. Zero selects the default of the
	// rules (LinuxLo/LinuxHi, WindowsLo/WindowsHi); bounds that leave
	// nothing select both defaults. Small bounds make exhaustion easy to
	// reach.
	Lo, Hi uintptr
	// PageSize is the page size, a power of two; zero selects 4 KiB.
	PageSize uintptr
	// Granularity is the alignment of reservation and view bases under
	// Windows rules, a power of two and a multiple of PageSize; zero
	// selects 64 KiB. Linux rules always use the page size.
	Granularity uintptr
	// MmapBase is where Linux rules start the top-down search for Hint
	// placements (the kernel's mm->mmap_base). Zero, or a value outside
	// (Lo, Hi], derives it from the bounds the way the kernel does: 128 MiB
	// (at most an eighth of the space) below Hi, and, if Seed is not zero,
	// a further random page-aligned offset of up to 1 TiB (at most a
	// quarter of the space): ASLR.
	MmapBase uintptr
	// Seed seeds every random choice the simulator makes; 0 turns
	// randomisation off. Windows rules currently make none.
	Seed int64
}

// OS is a simulated address space. Create it with New.
type OS struct {
	// Immutable after New.
	rules    osmem.Rules
	name     string
	page     uintptr
	gran     uintptr
	lo, hi   uintptr
	mmapBase uintptr

	// mu guards everything below.
	mu sync.Mutex
	// sp holds every mapped page. Invariant: canonical (no two adjacent
	// mergeable segments); see Check for the rest.
	sp space
	// allocs holds, under Windows rules, every allocation (reservation or
	// view) by base. Invariant: each is exactly covered by the segments
	// whose base is its base. Empty under Linux rules.
	allocs map[uintptr]alloc
	// calls counts mutating calls, failed ones included.
	calls int
	// faults maps a call number (calls after the call is counted) to the
	// class it must fail with.
	faults map[int]error
	// failFrom, if not zero, is the first call number that fails with
	// failFromErr, and every later one too.
	failFrom    int
	failFromErr error
	// objects counts objects made, to give each a serial number.
	objects int
}

// alloc is a Windows allocation: a reservation (VirtualAlloc) or a view
// (MapViewOfFileEx).
type alloc struct {
	base, end uintptr
	view      bool
	// max bounds the protection of a view: Windows fixes a view's access
	// when it is mapped, and the native backend maps a view of a shared
	// object with only the access its protection needs (so that the
	// executable half of a W^X pair can never be made writable). ProtRWX
	// for reservations and file views. It is also the protection a page of
	// the view shows when a Commit through another view of a reserve
	// object commits it (the view's access, as Windows derives it).
	max osmem.Prot
	// obj and off are, for a view, the object mapped and the offset of
	// base in it; nil and 0 for reservations.
	obj *object
	off uint64
}

// New returns an empty simulated address space enforcing rules.
// Options that make no sense (bounds inverted or unaligned, sizes not
// powers of two) are replaced by the defaults, so that New never fails.
func New(rules osmem.Rules, opts Options) *OS {
	s := &OS{
		rules:  rules,
		page:   DefaultPageSize,
		sp:     newSpace(),
		allocs: make(map[uintptr]alloc),
		faults: make(map[int]error),
	}
	if pow2(opts.PageSize) {
		s.page = opts.PageSize
	}
	if rules == osmem.RulesWindows {
		s.name = "sim-windows"
		s.gran = WindowsGranularity
		if pow2(opts.Granularity) && opts.Granularity >= s.page {
			s.gran = opts.Granularity
		}
		s.gran = max(s.gran, s.page)
		s.lo, s.hi = WindowsLo, WindowsHi
	} else {
		s.rules = osmem.RulesLinux
		s.name = "sim-linux"
		s.gran = s.page
		s.lo, s.hi = LinuxLo, LinuxHi
	}
	if opts.Lo != 0 || opts.Hi != 0 {
		lo, hi := s.lo, s.hi
		if opts.Lo != 0 {
			lo, _ = mem.AlignUp(opts.Lo, s.gran)
		}
		if opts.Hi != 0 {
			hi = mem.AlignDown(opts.Hi, s.gran)
		}
		if lo != 0 && lo < hi {
			s.lo, s.hi = lo, hi
		}
	}
	if s.rules == osmem.RulesLinux {
		s.mmapBase = s.defaultMmapBase(opts)
	}
	return s
}

func pow2(x uintptr) bool { return x != 0 && x&(x-1) == 0 }

// defaultMmapBase computes the Linux mmap base the way the kernel's
// mmap_base() does, scaled down for small bounds.
func (s *OS) defaultMmapBase(opts Options) uintptr {
	if opts.MmapBase > s.lo && opts.MmapBase <= s.hi {
		return mem.AlignDown(opts.MmapBase, s.page)
	}
	span := s.hi - s.lo
	gap := min(linuxStackGap, mem.AlignDown(span/8, s.page))
	var rnd uintptr
	if opts.Seed != 0 {
		maxRnd := min(linuxMaxRandom, span/4) / s.page
		if maxRnd > 0 {
			r := rand.New(rand.NewPCG(uint64(opts.Seed), 0x5eed_0f_aa51))
			rnd = uintptr(r.Uint64N(uint64(maxRnd))) * s.page
		}
	}
	return s.hi - gap - rnd
}

// Name returns "sim-linux" or "sim-windows".
func (s *OS) Name() string { return s.name }

// Rules returns the rules the simulator enforces.
func (s *OS) Rules() osmem.Rules { return s.rules }

// PageSize returns the page size (4 KiB unless Options said otherwise).
func (s *OS) PageSize() uintptr { return s.page }

// Granularity returns the alignment of reservation and view bases.
func (s *OS) Granularity() uintptr { return s.gran }

// Bounds returns the range the simulator hands addresses out of.
func (s *OS) Bounds() (lo, hi uintptr) { return s.lo, s.hi }

// MmapBase returns where Linux rules start the top-down search for Hint
// placements; 0 under Windows rules.
func (s *OS) MmapBase() uintptr { return s.mmapBase }

func (s *OS) windows() bool { return s.rules == osmem.RulesWindows }

// OS error numbers the simulator reports.
const (
	eperm      = 1
	enoent     = 2
	ebadf      = 9
	enomem     = 12
	eexist     = 17
	einval     = 22
	eopnotsupp = 95

	winFileNotFound    = 2
	winAccessDenied    = 5
	winInvalidHandle   = 6
	winNotSupported    = 50
	winFileInvalid     = 1006
	winMappedAlignment = 1132
)

// fail builds the error of a failed operation.
func fail(op string, addr, size uintptr, class error, code uintptr, format string, args ...any) error {
	return &osmem.Error{Op: op, Addr: addr, Size: size, Class: class, Code: code, Detail: fmt.Sprintf(format, args...)}
}

// code returns the number the OS of s reports for class: what the real
// call that fails that way returns.
func (s *OS) code(class error) uintptr {
	w := s.windows()
	switch class {
	case osmem.ErrExists:
		if w {
			return osmem.WinErrorInvalidAddress
		}
		return eexist
	case osmem.ErrNoMemory:
		if w {
			return osmem.WinErrorNotEnoughMemory
		}
		return enomem
	case osmem.ErrInvalid:
		if w {
			return osmem.WinErrorInvalidParameter
		}
		return einval
	case osmem.ErrNotMapped:
		if w {
			return osmem.WinErrorInvalidAddress
		}
		return enomem
	case osmem.ErrNotSupported:
		if w {
			return winNotSupported
		}
		return eopnotsupp
	}
	return 0
}

// checkRange validates [addr, addr+size) for op: page aligned, non-empty,
// not overflowing, and below the top of the address space (what the
// native backends check before any system call, hence Code 0).
func (s *OS) checkRange(op string, addr, size uintptr) error {
	if err := osmem.CheckRange(op, addr, size, s.page); err != nil {
		return err
	}
	if addr+size > s.hi {
		return fail(op, addr, size, osmem.ErrInvalid, 0, "range beyond the user address space (%#x)", s.hi)
	}
	return nil
}

func checkProt(op string, addr, size uintptr, p osmem.Prot) error {
	if !p.Valid() {
		return fail(op, addr, size, osmem.ErrInvalid, 0, "unknown protection bits %#x", uint8(p))
	}
	return nil
}

// linuxState is the state Linux reports for a mapping: /proc/self/maps
// cannot tell a reservation from private anonymous PROT_NONE memory, and
// says nothing else is reserved.
func linuxState(typ osmem.Type, prot osmem.Prot, shared bool) osmem.State {
	if prot == osmem.ProtNone && typ == osmem.TypePrivate && !shared {
		return osmem.StateReserved
	}
	return osmem.StateCommitted
}

// Reserve claims size bytes of address space with no access.
//
// Under Linux rules a Hint of 0 places the range top-down below the mmap
// base (then bottom-up above it), like the kernel; a non-zero hint is used
// if the range there is free and elsewhere placed as for 0. Under Windows
// rules placement is bottom-up from Lo, and a non-zero hint is first
// rounded down to the granularity, as VirtualAlloc does; when it is in use
// the simulator, like the native backend, falls back to placing anywhere
// (VirtualAlloc itself would fail).
//
// An Exact or Fixed base must be granularity aligned (ErrInvalid, found
// before any system call, so Code 0), as the native backends require:
// VirtualAlloc would silently round it down, which is not "at addr". Under
// Linux rules so must a hint (the native backend checks it).
func (s *OS) Reserve(addr, size uintptr, mode osmem.Mode) (uintptr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "reserve"
	if err := s.enterLocked(op, addr, size); err != nil {
		return 0, err
	}
	base, err := s.placeLocked(op, addr, size, mode)
	if err != nil {
		return 0, err
	}
	g := seg{start: base, end: base + size, state: osmem.StateReserved, typ: osmem.TypePrivate}
	if s.windows() {
		g.base = base
		s.allocs[base] = alloc{base: base, end: base + size, max: osmem.ProtRWX}
	} else if mode == osmem.Fixed {
		s.sp.remove(base, base+size)
	}
	s.sp.insert(g)
	return base, nil
}

// placeLocked validates the range and mode of a Reserve or MapObject and
// returns where the new allocation goes. It changes nothing: for Fixed the
// caller removes what is in the way.
//
// Preconditions: s.mu is held.
func (s *OS) placeLocked(op string, addr, size uintptr, mode osmem.Mode) (uintptr, error) {
	if mode > osmem.Fixed {
		return 0, fail(op, addr, size, osmem.ErrInvalid, 0, "unknown mode %v", mode)
	}
	if mode == osmem.Fixed && s.windows() {
		return 0, fail(op, addr, size, osmem.ErrNotSupported, 0, "no MAP_FIXED under Windows rules")
	}
	if mode == osmem.Hint && s.windows() {
		addr = mem.AlignDown(addr, s.gran)
	}
	if err := s.checkRange(op, addr, size); err != nil {
		return 0, err
	}
	if addr%s.gran != 0 {
		// The native backends refuse an unaligned reservation base before
		// any call; MapViewOfFileEx fails with ERROR_MAPPED_ALIGNMENT.
		code := uintptr(0)
		if op == "map" {
			code = winMappedAlignment
		}
		return 0, fail(op, addr, size, osmem.ErrInvalid, code, "base not aligned to %#x", s.gran)
	}
	if mode == osmem.Hint {
		if addr != 0 && addr >= s.lo && !s.sp.overlaps(addr, addr+size) {
			return addr, nil
		}
		if a, ok := s.findLocked(size); ok {
			return a, nil
		}
		return 0, fail(op, addr, size, osmem.ErrNoMemory, s.code(osmem.ErrNoMemory), "no free range of %#x bytes", size)
	}
	if addr < s.lo {
		code := uintptr(0)
		if s.windows() {
			code = osmem.WinErrorInvalidParameter
		}
		return 0, fail(op, addr, size, osmem.ErrInvalid, code, "base below the lowest address %#x", s.lo)
	}
	if mode == osmem.Exact && s.sp.overlaps(addr, addr+size) {
		return 0, fail(op, addr, size, osmem.ErrExists, s.code(osmem.ErrExists), "range in use")
	}
	return addr, nil
}

// findLocked finds a free, granularity-aligned range of size bytes within
// the bounds: top-down below the mmap base then bottom-up above it under
// Linux rules, bottom-up under Windows rules.
//
// Preconditions: s.mu is held; size is a non-zero multiple of the page.
func (s *OS) findLocked(size uintptr) (uintptr, bool) {
	var at uintptr
	found := false
	up := func(x, y uintptr) bool {
		a, ok := mem.AlignUp(x, s.gran)
		if ok && a < y && y-a >= size {
			at, found = a, true
			return false
		}
		return true
	}
	if s.windows() {
		s.sp.gapsUp(s.lo, s.hi, up)
		return at, found
	}
	s.sp.gapsDown(s.lo, s.mmapBase, func(x, y uintptr) bool {
		if y-x >= size {
			at, found = y-size, true
			return false
		}
		return true
	})
	if !found {
		s.sp.gapsUp(s.mmapBase, s.hi, up)
	}
	return at, found
}

// Commit backs [addr, addr+size) with memory of protection prot.
//
// Under Linux rules it is mprotect (the native backend's Commit): every
// mapped page gets prot, and at the first unmapped page it fails with
// ErrNotMapped (ENOMEM) leaving the pages below it changed, as the kernel
// does. Under Windows rules the range must lie within one private
// reservation (ERROR_INVALID_ADDRESS otherwise); committed pages in it take
// the new protection too, as with VirtualAlloc(MEM_COMMIT).
func (s *OS) Commit(addr, size uintptr, prot osmem.Prot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "commit"
	if err := s.enterLocked(op, addr, size); err != nil {
		return err
	}
	if err := s.checkRange(op, addr, size); err != nil {
		return err
	}
	if err := checkProt(op, addr, size, prot); err != nil {
		return err
	}
	if !s.windows() {
		return s.mprotectLocked(op, addr, size, prot)
	}
	if a, ok := s.reserveViewLocked(addr); ok {
		return s.commitViewLocked(op, a, addr, size, prot)
	}
	if _, err := s.withinAllocLocked(op, addr, size, false); err != nil {
		return err
	}
	s.sp.update(addr, addr+size, func(g *seg) {
		g.state, g.prot = osmem.StateCommitted, prot
	})
	return nil
}

// Decommit returns the storage of [addr, addr+size), leaving it reserved.
//
// Under Linux rules it is mprotect(PROT_NONE) (followed in the native
// backend by madvise(MADV_DONTNEED), which changes nothing the simulator
// models), with mprotect's failure mode. Under Windows rules the range must
// lie within one private reservation; decommitting reserved pages is not an
// error, as with VirtualFree(MEM_DECOMMIT).
func (s *OS) Decommit(addr, size uintptr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "decommit"
	if err := s.enterLocked(op, addr, size); err != nil {
		return err
	}
	if err := s.checkRange(op, addr, size); err != nil {
		return err
	}
	if !s.windows() {
		return s.mprotectLocked(op, addr, size, osmem.ProtNone)
	}
	if _, ok := s.reserveViewLocked(addr); ok {
		return fail(op, addr, size, osmem.ErrNotSupported, osmem.WinErrorInvalidParameter, "section pages cannot be decommitted")
	}
	if _, err := s.withinAllocLocked(op, addr, size, false); err != nil {
		return err
	}
	s.sp.update(addr, addr+size, func(g *seg) {
		g.state, g.prot = osmem.StateReserved, osmem.ProtNone
	})
	return nil
}

// Protect changes the protection of [addr, addr+size).
//
// Under Linux rules it is mprotect, with its failure mode (see Commit).
// Under Windows rules, as with VirtualProtect, the range must lie within
// one allocation (reservation or view) and be wholly committed; otherwise
// it fails with ERROR_INVALID_ADDRESS and changes nothing. A view of a
// shared object cannot be given write or execute access it was not mapped
// with (ERROR_INVALID_PARAMETER).
func (s *OS) Protect(addr, size uintptr, prot osmem.Prot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "protect"
	if err := s.enterLocked(op, addr, size); err != nil {
		return err
	}
	if err := s.checkRange(op, addr, size); err != nil {
		return err
	}
	if err := checkProt(op, addr, size, prot); err != nil {
		return err
	}
	if !s.windows() {
		return s.mprotectLocked(op, addr, size, prot)
	}
	a, err := s.withinAllocLocked(op, addr, size, true)
	if err != nil {
		return err
	}
	if prot&^a.max != 0 {
		return fail(op, addr, size, osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "view mapped for at most %v", a.max)
	}
	s.sp.update(addr, addr+size, func(g *seg) { g.prot = prot })
	return nil
}

// mprotectLocked models mprotect(2): it walks the mappings from addr and
// changes each one's protection until it reaches end or a hole; a hole
// fails the call with ENOMEM, after the mappings before it have changed.
//
// Preconditions: s.mu is held; Linux rules; the range is checked.
func (s *OS) mprotectLocked(op string, addr, size uintptr, prot osmem.Prot) error {
	end := s.sp.mappedTo(addr, addr+size)
	if end > addr {
		s.sp.update(addr, end, func(g *seg) {
			g.prot = prot
			g.state = linuxState(g.typ, prot, g.shared)
		})
	}
	if end < addr+size {
		return fail(op, addr, size, osmem.ErrNotMapped, enomem, "page %#x not mapped", end)
	}
	return nil
}

// withinAllocLocked checks the Windows rule that [addr, addr+size) lies in
// one allocation, a private reservation unless views are allowed
// (committed true: Protect, which also needs every page committed), and
// returns it.
//
// Preconditions: s.mu is held; Windows rules; the range is checked.
func (s *OS) withinAllocLocked(op string, addr, size uintptr, committed bool) (alloc, error) {
	g, ok := s.sp.at(addr)
	if !ok {
		return alloc{}, fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "address not in an allocation")
	}
	a := s.allocs[g.base]
	if addr+size > a.end {
		return alloc{}, fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "range leaves the allocation [%#x, %#x)", a.base, a.end)
	}
	if a.view && !committed {
		return alloc{}, fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "range is in a view, not a reservation")
	}
	if committed {
		for _, h := range s.sp.in(addr, addr+size) {
			if h.state != osmem.StateCommitted {
				return alloc{}, fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "page %#x not committed", h.start)
			}
		}
		if g.state != osmem.StateCommitted {
			return alloc{}, fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "page %#x not committed", addr)
		}
	}
	return a, nil
}

// Release gives back address space.
//
// Under Linux rules it is munmap: any page-aligned range below the top of
// the address space, whatever is mapped there (views included), and
// unmapped space is not an error. Under Windows rules it is
// VirtualFree(MEM_RELEASE): addr must be the base of a reservation (not a
// view) and size its whole size; a non-base fails with
// ERROR_INVALID_ADDRESS, a wrong size with ERROR_INVALID_PARAMETER.
func (s *OS) Release(addr, size uintptr) error {
	return s.free("release", addr, size, false)
}

// free is Release (view false) and Unmap (view true): munmap under Linux
// rules; under Windows rules VirtualFree(MEM_RELEASE) or UnmapViewOfFile,
// which take only the base of the whole allocation of their kind. A
// non-base fails with ERROR_INVALID_ADDRESS, a size that is not the whole
// allocation with ERROR_INVALID_PARAMETER (UnmapViewOfFile would ignore
// it, but a caller's mistaken belief about what it unmaps is caught rather
// than acted on).
func (s *OS) free(op string, addr, size uintptr, view bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.enterLocked(op, addr, size); err != nil {
		return err
	}
	if err := s.checkRange(op, addr, size); err != nil {
		return err
	}
	if !s.windows() {
		s.sp.remove(addr, addr+size)
		return nil
	}
	kind := "reservation"
	if view {
		kind = "view"
	}
	a, ok := s.allocs[addr]
	if !ok || a.view != view {
		return fail(op, addr, size, osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "not the base of a %s", kind)
	}
	if size != a.end-a.base {
		return fail(op, addr, size, osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "size is not the whole %s (%#x)", kind, a.end-a.base)
	}
	s.dropLocked(a)
	return nil
}

// dropLocked removes a Windows allocation.
//
// Preconditions: s.mu is held; a is in s.allocs.
func (s *OS) dropLocked(a alloc) {
	s.sp.remove(a.base, a.end)
	delete(s.allocs, a.base)
}

// MapObject maps size bytes of obj from offset off.
//
// Placement follows Reserve. Under Linux rules the view may extend past the
// end of the object (mmap allows it; touching those pages would fault).
// Under Windows rules it may not (STATUS_INVALID_VIEW_SIZE, reported as
// ERROR_ACCESS_DENIED), an unaligned base or offset fails with
// ERROR_MAPPED_ALIGNMENT, a base in use with ERROR_INVALID_ADDRESS, and a
// view of a shared object can never be given more access than it was
// mapped with (its maximum, see Protect).
func (s *OS) MapObject(obj osmem.Object, off uint64, addr, size uintptr, prot osmem.Prot, mode osmem.Mode) (uintptr, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "map"
	if err := s.enterLocked(op, addr, size); err != nil {
		return 0, err
	}
	o, err := s.objectLocked(op, obj)
	if err != nil {
		return 0, err
	}
	if err := checkProt(op, addr, size, prot); err != nil {
		return 0, err
	}
	if off%uint64(s.gran) != 0 {
		code := uintptr(0)
		if s.windows() {
			code = winMappedAlignment
		}
		return 0, fail(op, addr, size, osmem.ErrInvalid, code, "offset %#x not aligned to %#x", off, s.gran)
	}
	if s.windows() {
		// Measured under Wine: even the rest of the object's last page is
		// beyond it, so a file whose size is not a multiple of the page
		// cannot have its last page mapped with an explicit size.
		if off >= o.size || uint64(size) > o.size-off {
			return 0, fail(op, addr, size, osmem.ErrInvalid, winAccessDenied, "view [%#x, +%#x) beyond the object's %#x bytes", off, size, o.size)
		}
	} else if off+uint64(size) < off {
		return 0, fail(op, addr, size, osmem.ErrInvalid, 0, "offset range overflows")
	}
	base, err := s.placeLocked(op, addr, size, mode)
	if err != nil {
		return 0, err
	}
	g := seg{start: base, end: base + size, typ: osmem.TypeMapped, prot: prot, shared: o.shared, obj: o, name: o.mapName(s.rules), off: off,
		dev: o.dev, inode: o.inode}
	if s.windows() {
		g.state = osmem.StateCommitted
		g.base = base
		a := alloc{base: base, end: base + size, view: true, max: osmem.ProtRWX, obj: o, off: off}
		if o.shared {
			// FILE_MAP_READ or FILE_MAP_WRITE, plus FILE_MAP_EXECUTE.
			a.max = osmem.ProtRead | prot&(osmem.ProtWrite|osmem.ProtExec)
		}
		s.allocs[base] = a
		if o.reserve {
			// The object's uncommitted pages are reserved in the view.
			s.insertReserveViewLocked(g, o)
			return base, nil
		}
	} else {
		g.state = linuxState(g.typ, prot, g.shared)
		if mode == osmem.Fixed {
			s.sp.remove(base, base+size)
		}
	}
	s.sp.insert(g)
	return base, nil
}

// Unmap removes a view. Under Linux rules it is munmap, exactly like
// Release; under Windows rules UnmapViewOfFile of a whole view (see free).
func (s *OS) Unmap(addr, size uintptr) error {
	return s.free("unmap", addr, size, true)
}

// Query returns the whole region containing addr, as both native backends
// do (the Windows one walks VirtualQuery back to the start of the run).
// Free space is reported as the free gap around addr, bounded by the
// neighbouring mappings or by 0 and the top of the address space. Under
// Windows rules an address at or above Hi fails with
// ERROR_INVALID_PARAMETER, as VirtualQuery does.
func (s *OS) Query(addr uintptr) (osmem.Region, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.windows() && addr >= s.hi {
		return osmem.Region{}, fail("query", addr, 0, osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "address beyond the user address space")
	}
	if g, ok := s.sp.at(addr); ok {
		return s.regionOf(&g, g.start, g.end), nil
	}
	r := osmem.Region{Start: 0, End: mem.AlignDown(^uintptr(0), s.page), State: osmem.StateFree}
	if p, ok := s.sp.prev(addr + 1); ok {
		r.Start = p.end
	}
	if n, ok := s.sp.next(addr); ok {
		r.End = n.start
	} else if addr < s.hi {
		r.End = s.hi
	}
	return r, nil
}

// Regions returns every non-free region intersecting [lo, hi), clipped to
// it, in address order. An empty or inverted range is ErrInvalid, as in the
// native backends.
func (s *OS) Regions(lo, hi uintptr) ([]osmem.Region, error) {
	if hi <= lo {
		return nil, fail("regions", lo, hi-lo, osmem.ErrInvalid, 0, "empty or inverted range")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []osmem.Region
	from := lo
	if g, ok := s.sp.at(lo); ok {
		from = g.start
	}
	s.sp.t.AscendRange(key(from), key(hi), func(g seg) bool {
		out = append(out, s.regionOf(&g, max(g.start, lo), min(g.end, hi)))
		return true
	})
	return out, nil
}

// Snapshot returns every region of the address space, in order.
func (s *OS) Snapshot() []osmem.Region {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.sp.all()
	out := make([]osmem.Region, len(all))
	for i := range all {
		out[i] = s.regionOf(&all[i], all[i].start, all[i].end)
	}
	return out
}

// regionOf converts g, clipped to [start, end).
func (s *OS) regionOf(g *seg, start, end uintptr) osmem.Region {
	r := osmem.Region{
		Start:     start,
		End:       end,
		State:     g.state,
		Type:      g.typ,
		Prot:      g.prot,
		Shared:    g.shared,
		AllocBase: g.base,
		Name:      g.name,
		Dev:       g.dev,
		Inode:     g.inode,
	}
	if !s.windows() {
		// As the native backend: the start of the whole mapping.
		r.AllocBase = g.start
	}
	if g.backed() {
		r.Offset = g.off + uint64(start-g.start)
	}
	return r
}

// Populate adds mappings made by someone else (the loader, libc, another
// thread): a realistic or randomised starting layout for tests. Regions
// are taken as they would come from Regions on a real system: Start, End,
// Prot, Shared, Name, Offset, Dev and Inode always; State, Type and
// AllocBase under Windows rules (regions with the same AllocBase form one
// allocation, which must start at AllocBase, be granularity aligned and
// contiguous; a TypeMapped or TypeImage allocation is a view). Under Linux
// rules State and Type are derived as the kernel's maps file would show
// them. The regions may lie outside Bounds (the vsyscall page does).
//
// Populate is all or nothing: it fails, changing nothing, if a region is
// malformed or overlaps another or an existing mapping. It is not a
// mutating call for fault injection.
func (s *OS) Populate(regions []osmem.Region) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	const op = "populate"
	segs := make([]seg, 0, len(regions))
	fresh := newSpace()
	for _, r := range regions {
		if err := osmem.CheckRange(op, r.Start, r.End-r.Start, s.page); err != nil || r.End <= r.Start {
			return fail(op, r.Start, r.End-r.Start, osmem.ErrInvalid, 0, "malformed region %+v", r)
		}
		if !r.Prot.Valid() || r.State > osmem.StateCommitted || r.Type > osmem.TypeImage {
			return fail(op, r.Start, r.End-r.Start, osmem.ErrInvalid, 0, "malformed region %+v", r)
		}
		if s.sp.overlaps(r.Start, r.End) || fresh.overlaps(r.Start, r.End) {
			return fail(op, r.Start, r.End-r.Start, osmem.ErrExists, 0, "region overlaps a mapping")
		}
		g := seg{start: r.Start, end: r.End, prot: r.Prot, shared: r.Shared, name: r.Name, off: r.Offset, dev: r.Dev, inode: r.Inode}
		if s.windows() {
			g.state, g.typ, g.base = r.State, r.Type, r.AllocBase
			if g.state == osmem.StateFree {
				return fail(op, r.Start, r.End-r.Start, osmem.ErrInvalid, 0, "free region")
			}
			if g.typ == osmem.TypeNone {
				g.typ = osmem.TypePrivate
			}
			if g.base == 0 {
				g.base = g.start
			}
			if g.state == osmem.StateReserved {
				g.prot = osmem.ProtNone
			}
		} else {
			g.typ = osmem.TypePrivate
			if g.inode != 0 || strings.HasPrefix(g.name, "/") {
				g.typ = osmem.TypeMapped
			}
			g.state = linuxState(g.typ, g.prot, g.shared)
		}
		if !g.backed() {
			g.off = 0
		}
		fresh.t.ReplaceOrInsert(g)
		segs = append(segs, g)
	}
	allocs := make(map[uintptr]alloc)
	if s.windows() {
		// Build the allocations, in address order, and check each is
		// contiguous, starts at its aligned base and does not interleave
		// with another.
		var cur *alloc
		for _, g := range fresh.all() {
			view := g.typ != osmem.TypePrivate
			if cur != nil && g.base == cur.base && g.start == cur.end && view == cur.view {
				cur.end = g.end
				allocs[cur.base] = *cur
				continue
			}
			if _, dup := allocs[g.base]; dup || g.start != g.base || g.base%s.gran != 0 || s.allocs[g.base] != (alloc{}) {
				return fail(op, g.start, g.end-g.start, osmem.ErrInvalid, 0, "allocation %#x not contiguous from its aligned base", g.base)
			}
			if view && g.state != osmem.StateCommitted {
				return fail(op, g.start, g.end-g.start, osmem.ErrInvalid, 0, "view not committed")
			}
			a := alloc{base: g.base, end: g.end, view: view, max: osmem.ProtRWX}
			allocs[a.base] = a
			cur = &a
		}
	}
	for base, a := range allocs {
		s.allocs[base] = a
	}
	for _, g := range segs {
		s.sp.insert(g)
	}
	return nil
}

// MapForeign adds one mapping made by someone else over [start, end):
// anonymous memory if name is "" or a pseudo-name such as "[heap]", a file
// view if name is a path (starts with "/"). Under Windows rules it is one
// private allocation (reserved if prot is ProtNone, committed otherwise)
// based at start. It is Populate for one region.
func (s *OS) MapForeign(start, end uintptr, prot osmem.Prot, name string) error {
	r := osmem.Region{Start: start, End: end, Prot: prot, Name: name, AllocBase: start,
		State: osmem.StateCommitted, Type: osmem.TypePrivate}
	if prot == osmem.ProtNone {
		r.State = osmem.StateReserved
	}
	return s.Populate([]osmem.Region{r})
}

// Check verifies the simulator's invariants and returns the first one
// broken, or nil: segments ordered, non-overlapping, page aligned and
// canonical; states, types and protections consistent with the rules; and
// under Windows rules every allocation aligned and exactly covered by its
// segments. Tests call it after every operation.
func (s *OS) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := s.sp.all()
	cover := make(map[uintptr]uintptr) // allocation base -> bytes covered
	for i := range all {
		g := &all[i]
		switch {
		case g.start >= g.end:
			return fmt.Errorf("sim: segment [%#x, %#x) empty or inverted", g.start, g.end)
		case g.start%s.page != 0 || g.end%s.page != 0:
			return fmt.Errorf("sim: segment [%#x, %#x) not page aligned", g.start, g.end)
		case !g.prot.Valid():
			return fmt.Errorf("sim: segment [%#x, %#x) has protection %#x", g.start, g.end, uint8(g.prot))
		case g.state != osmem.StateReserved && g.state != osmem.StateCommitted:
			return fmt.Errorf("sim: segment [%#x, %#x) has state %v", g.start, g.end, g.state)
		case g.typ == osmem.TypeNone || g.typ > osmem.TypeImage:
			return fmt.Errorf("sim: segment [%#x, %#x) has type %v", g.start, g.end, g.typ)
		case g.state == osmem.StateReserved && g.prot != osmem.ProtNone:
			return fmt.Errorf("sim: reserved segment [%#x, %#x) has protection %v", g.start, g.end, g.prot)
		case !g.backed() && g.off != 0:
			return fmt.Errorf("sim: anonymous segment [%#x, %#x) has offset %#x", g.start, g.end, g.off)
		}
		if i > 0 {
			p := &all[i-1]
			if p.end > g.start {
				return fmt.Errorf("sim: segments [%#x, %#x) and [%#x, %#x) overlap", p.start, p.end, g.start, g.end)
			}
			if mergeable(p, g) {
				return fmt.Errorf("sim: segments [%#x, %#x) and [%#x, %#x) not merged", p.start, p.end, g.start, g.end)
			}
		}
		if !s.windows() {
			if g.base != 0 {
				return fmt.Errorf("sim: linux segment [%#x, %#x) has allocation base %#x", g.start, g.end, g.base)
			}
			if want := linuxState(g.typ, g.prot, g.shared); g.state != want {
				return fmt.Errorf("sim: linux segment [%#x, %#x) is %v, want %v", g.start, g.end, g.state, want)
			}
			continue
		}
		a, ok := s.allocs[g.base]
		if !ok || g.start < a.base || g.end > a.end {
			return fmt.Errorf("sim: segment [%#x, %#x) outside its allocation %#x", g.start, g.end, g.base)
		}
		if a.view != (g.typ != osmem.TypePrivate) {
			return fmt.Errorf("sim: segment [%#x, %#x) of type %v in allocation %#x (view %v)", g.start, g.end, g.typ, a.base, a.view)
		}
		if a.view && g.state != osmem.StateCommitted && (g.obj == nil || !g.obj.reserve) {
			return fmt.Errorf("sim: view segment [%#x, %#x) not committed", g.start, g.end)
		}
		if a.view && g.obj != nil && g.obj.reserve {
			first := g.off / uint64(s.page)
			for i := range uint64((g.end - g.start) / s.page) {
				if g.obj.isCommitted(first+i) != (g.state == osmem.StateCommitted) {
					return fmt.Errorf("sim: view segment [%#x, %#x) is %v but page %#x of %v is not", g.start, g.end, g.state, (first+i)*uint64(s.page), g.obj)
				}
			}
		}
		cover[g.base] += g.end - g.start
	}
	if len(cover) != len(s.allocs) {
		return fmt.Errorf("sim: %d allocations but %d have segments", len(s.allocs), len(cover))
	}
	for base, a := range s.allocs {
		if a.base != base || base%s.gran != 0 || a.end <= base {
			return fmt.Errorf("sim: allocation [%#x, %#x) under key %#x malformed", a.base, a.end, base)
		}
		if cover[base] != a.end-a.base {
			return fmt.Errorf("sim: allocation [%#x, %#x) covered by %#x bytes of segments", a.base, a.end, cover[base])
		}
	}
	return nil
}
