package strategy

import (
	"errors"

	"github.com/reachvm/reachvm/mem"
)

// DefaultNearAnchor is the size of the code allocation linux-near keeps
// libraries near (LinuxNear.Anchor): Frida's first code page block.
const DefaultNearAnchor = 64 << 10

// linuxRegion is the common part of the strategies that reserve one region
// and hand out pieces of it.
type linuxRegion struct {
	base
	// Size is the region's size, a multiple of the page size; 0 selects
	// DefaultRegion.
	Size  uintptr
	fl    *freeList
	views map[uintptr]uintptr
}

// Rules returns mem.RulesLinux.
func (s *linuxRegion) Rules() mem.Rules { return mem.RulesLinux }

// EndInit does nothing: the region is claimed from Setup on.
func (s *linuxRegion) EndInit() error { return nil }

func (s *linuxRegion) setup(o mem.OS) error {
	s.os = o
	size := orDefault(s.Size, DefaultRegion)
	lo, err := o.Reserve(0, size, mem.Hint)
	if err != nil {
		return err
	}
	s.lo, s.hi = lo, lo+size
	s.fl = newFreeList(s.lo, s.hi)
	s.views = map[uintptr]uintptr{}
	return nil
}
func (s *linuxRegion) teardown() error {
	var errs []error
	for a, n := range s.views {
		if a < s.lo || a >= s.hi {
			errs = append(errs, s.os.Unmap(a, n))
		}
	}
	s.views = nil
	// One munmap takes the region with every view in it.
	return errors.Join(append(errs, s.os.Release(s.lo, s.hi-s.lo))...)
}

// LinuxFixed is reachvm's Linux vmcode (as VMM measures it under Linux
// rules): one reservation, libraries mapped over it with MAP_FIXED, first
// fit, and unmapped by re-reserving with MAP_FIXED. The range never lies
// free: no race window, at init or after.
type LinuxFixed struct{ linuxRegion }

// Name returns "linux-fixed".
func (s *LinuxFixed) Name() string { return "linux-fixed" }

// Setup reserves the region wherever the kernel puts it.
func (s *LinuxFixed) Setup(o mem.OS) error { return s.setup(o) }

// Teardown unmaps the region, with every view in it, and the views
// outside it (LinuxSpill's).
func (s *LinuxFixed) Teardown() error { return s.teardown() }

// Place maps lib over the lowest free piece of the region that fits.
func (s *LinuxFixed) Place(lib Lib, post bool) (View, error) {
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	at, ok := s.fl.alloc(size, s.os.Granularity(), false)
	if !ok {
		return View{}, ErrUnsupported
	}
	v, err := s.mapLib(lib, at, size, mem.Fixed)
	if err != nil {
		s.fl.free(at, at+size)
		return View{}, err
	}
	s.views[v] = size
	return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
}

// Unload reserves v's range again over the view.
func (s *LinuxFixed) Unload(v View) error {
	if _, err := s.os.Reserve(v.Addr, v.Size, mem.Fixed); err != nil {
		return err
	}
	delete(s.views, v.Addr)
	s.fl.free(v.Addr, v.Addr+v.Size)
	return nil
}

// LinuxMunmap is the racy way: munmap the piece of the reservation, then
// map the library there without MAP_FIXED. Between the two the addresses
// are free and any thread's mmap may take them; a piece taken is lost to
// the region for good, and the library tries the next one.
type LinuxMunmap struct {
	linuxRegion
	// lostRanges are the pieces of the region other threads took.
	lostRanges [][2]uintptr
}

// Name returns "linux-munmap".
func (s *LinuxMunmap) Name() string { return "linux-munmap" }

// Setup reserves the region wherever the kernel puts it.
func (s *LinuxMunmap) Setup(o mem.OS) error { return s.setup(o) }

// Place releases the lowest free piece of the region that fits and maps
// lib there.
func (s *LinuxMunmap) Place(lib Lib, post bool) (View, error) {
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	for try := 0; try < placeTries; try++ {
		at, ok := s.fl.alloc(size, s.os.Granularity(), false)
		if !ok {
			return View{}, ErrUnsupported
		}
		if err := s.os.Release(at, size); err != nil {
			return View{}, err
		}
		s.window(at, at+size)
		v, err := s.mapLib(lib, at, size, mem.Exact)
		if err == nil {
			s.views[v] = size
			return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
		}
		if !errors.Is(err, mem.ErrExists) {
			return View{}, err
		}
		// Lost: re-reserve what is still free of the piece, page by run;
		// what the other thread took is no longer the region's.
		s.losses++
		s.reclaim(at, at+size)
	}
	return View{}, ErrUnsupported
}

// reclaim re-reserves the free runs of [lo, hi) and records the rest as
// lost: the region has a hole it does not own any more. The allocator
// never hands out [lo, hi) again.
func (s *LinuxMunmap) reclaim(lo, hi uintptr) {
	regs, err := s.os.Regions(lo, hi)
	if err != nil {
		return
	}
	prev := lo
	for _, r := range append(regs, mem.Region{Start: hi, End: hi}) {
		if r.Start > prev {
			_, _ = s.os.Reserve(prev, r.Start-prev, mem.Exact)
		}
		if r.End > r.Start {
			s.lostRanges = append(s.lostRanges, [2]uintptr{r.Start, r.End})
		}
		prev = max(prev, r.End)
	}
}

// Unload unmaps v and reserves its range again: a window, in which the
// range can be lost.
func (s *LinuxMunmap) Unload(v View) error {
	if err := s.os.Unmap(v.Addr, v.Size); err != nil {
		return err
	}
	delete(s.views, v.Addr)
	s.window(v.Addr, v.Addr+v.Size)
	if _, err := s.os.Reserve(v.Addr, v.Size, mem.Exact); err != nil {
		s.losses++
		s.reclaim(v.Addr, v.Addr+v.Size)
		return nil
	}
	s.fl.free(v.Addr, v.Addr+v.Size)
	return nil
}

// Teardown releases the region around the holes lost to others: a
// munmap of the whole range would unmap their memory too.
func (s *LinuxMunmap) Teardown() error {
	if len(s.lostRanges) == 0 {
		return s.teardown()
	}
	var errs []error
	for a, n := range s.views {
		if a < s.lo || a >= s.hi {
			errs = append(errs, s.os.Unmap(a, n))
		}
	}
	s.views = nil
	keep := newFreeList(s.lo, s.hi)
	for _, r := range s.lostRanges {
		keep.take(r[0], r[1])
	}
	for _, r := range keep.r {
		errs = append(errs, s.os.Release(r[0], r[1]-r[0]))
	}
	s.lostRanges = nil
	return errors.Join(errs...)
}

// LinuxNear keeps no region: each library is placed by searching free
// space within reach of one code allocation, its anchor, nearest first
// (Frida's gum_memory_allocate_near). Between the search and the map the
// hole is a race window.
type LinuxNear struct {
	nearPlacer
	// Anchor is the size of the code allocation, which Region returns; 0
	// selects DefaultNearAnchor.
	Anchor uintptr
}

// Name returns "linux-near".
func (s *LinuxNear) Name() string { return "linux-near" }

// Rules returns mem.RulesLinux.
func (s *LinuxNear) Rules() mem.Rules { return mem.RulesLinux }

// Setup reserves the anchor wherever the kernel puts it.
func (s *LinuxNear) Setup(o mem.OS) error {
	return s.setup(o, orDefault(s.Anchor, DefaultNearAnchor))
}

// nearPlacer is what F and linux-near share: reserve one region, then
// place every library, at init or after, by searching free space within
// reach of all of it, and unmap it on unload. The two differ only in the
// region's size and the rules they run under.
type nearPlacer struct {
	base
	// views maps each placed library's address to its size.
	views map[uintptr]uintptr
}

func (s *nearPlacer) setup(o mem.OS, size uintptr) error {
	s.os = o
	s.views = map[uintptr]uintptr{}
	lo, err := o.Reserve(0, size, mem.Hint)
	s.lo, s.hi = lo, lo+size
	return err
}

// Place maps lib in the free hole within reach of the region nearest to
// it (F, LinuxNear).
func (s *nearPlacer) Place(lib Lib, post bool) (View, error) {
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	v, err := s.nearSearch(lib, size)
	if err != nil {
		return View{}, err
	}
	s.views[v] = size
	return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
}

// EndInit does nothing: placement is the same before and after init.
func (s *nearPlacer) EndInit() error { return nil }

// Unload unmaps v.
func (s *nearPlacer) Unload(v View) error {
	delete(s.views, v.Addr)
	return s.os.Unmap(v.Addr, v.Size)
}

// Teardown unmaps every view and releases the region.
func (s *nearPlacer) Teardown() error {
	var errs []error
	for a, n := range s.views {
		errs = append(errs, s.os.Unmap(a, n))
	}
	return errors.Join(append(errs, s.os.Release(s.lo, s.hi-s.lo))...)
}

// LinuxSpill is DynamoRIO's Linux behaviour: place inside the region with
// MAP_FIXED, as LinuxFixed, while it has room, and spill to wherever the
// OS puts a map once it is full, which may be out of reach: its views
// must be checked with View.Distance.
type LinuxSpill struct {
	LinuxFixed
	// Spills counts libraries placed outside the region so far.
	Spills int
}

// Name returns "linux-spill".
func (s *LinuxSpill) Name() string { return "linux-spill" }

// Place maps lib inside the region if it fits, else wherever the kernel
// puts it.
func (s *LinuxSpill) Place(lib Lib, post bool) (View, error) {
	v, err := s.LinuxFixed.Place(lib, post)
	if !errors.Is(err, ErrUnsupported) {
		return v, err
	}
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	a, err := s.mapLib(lib, 0, size, mem.Hint)
	if err != nil {
		return View{}, err
	}
	s.Spills++
	s.views[a] = size
	return View{Lib: lib, Addr: a, Size: size, Relocated: relocated(lib, a)}, nil
}

// Unload reserves v's range again if it lies in the region, else unmaps
// it.
func (s *LinuxSpill) Unload(v View) error {
	if v.Addr >= s.lo && v.Addr < s.hi {
		return s.LinuxFixed.Unload(v)
	}
	delete(s.views, v.Addr)
	return s.os.Unmap(v.Addr, v.Size)
}
