package strategy

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/mem"
)

// Default sizes of the strategies (DynamoRIO's figures for its options): what a
// zero size field selects.
const (
	// DefaultRegion is the region of every strategy but F and linux-near:
	// the full rel32 window.
	DefaultRegion = 2 << 30
	// DefaultSlot is the slot of D's and E's grids: ten 64 KiB granules.
	DefaultSlot = 640 << 10
	// DefaultEGrid is E's grid at the top of its region: 102 slots of
	// DefaultSlot (DynamoRIO's "100 of 640 KiB").
	DefaultEGrid = 64 << 20
	// DefaultFRegion is F's region: DynamoRIO's Windows vmcode.
	DefaultFRegion = 512 << 20
)

// DefaultPref is the preferred base of a 64-bit Windows DLL (/BASE
// default 0x180000000), where A puts its region unless told otherwise, so
// that libraries rebased from there (as DynamoRIO gives its client
// libraries distinct preferred bases) load unrelocated.
const DefaultPref = 0x1_8000_0000

// placeTries bounds the maps a strategy tries for one library (or grid
// run) before it gives up after lost races.
const placeTries = 3

// A is DynamoRIO's option A (Windows): it picks the region without
// reserving it, loads the init libraries into it (at their preferred base
// when it falls inside), then reserves every piece around them and keeps
// the list to free at exit. After init the region is all reservations and
// views: nothing more can be mapped reachably (DynamoRIO: "would not work
// with post-init dr_map_file"). Between Setup and EndInit the whole region
// lies unreserved, and any other thread may allocate into it.
type A struct {
	base
	// Size is the region's size, a multiple of the allocation
	// granularity; 0 selects DefaultRegion.
	Size uintptr
	// Near is where A tries to put the region first, so that libraries
	// land at their preferred bases (a granularity-aligned address); 0
	// selects DefaultPref. If the range there is taken, the OS picks.
	Near  uintptr
	fl    *freeList
	init  bool
	views map[uintptr]uintptr // view base -> size
	pcs   [][2]uintptr        // reservations made by EndInit
}

// Name returns "A".
func (s *A) Name() string { return "A" }

// Rules returns mem.RulesWindows.
func (s *A) Rules() mem.Rules { return mem.RulesWindows }

// Setup picks the region, at Near if it is free, without reserving it.
func (s *A) Setup(o mem.OS) error {
	s.os = o
	size := orDefault(s.Size, DefaultRegion)
	// The region starts at the preferred bases if they are free, else
	// wherever the OS has room (then every library relocates).
	lo, err := o.Reserve(orDefault(s.Near, DefaultPref), size, mem.Exact)
	if err == nil {
		err = o.Release(lo, size)
	} else {
		lo, err = pickRange(o, size)
	}
	if err != nil {
		return err
	}
	s.lo, s.hi = lo, lo+size
	s.fl = newFreeList(s.lo, s.hi)
	s.views = map[uintptr]uintptr{}
	s.init = true
	return nil
}

// Place maps lib into the unreserved region, at its preferred base if that
// lies inside and is free, else first fit; after EndInit it returns
// ErrUnsupported.
func (s *A) Place(lib Lib, post bool) (View, error) {
	if !s.init {
		return View{}, ErrUnsupported
	}
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	for try := 0; try < placeTries; try++ {
		at, ok := uintptr(0), false
		if lib.Pref >= s.lo && lib.Pref+size <= s.hi && s.fl.take(lib.Pref, lib.Pref+size) {
			at, ok = lib.Pref, true
		} else {
			at, ok = s.fl.alloc(size, s.os.Granularity(), false)
		}
		if !ok {
			return View{}, ErrUnsupported
		}
		// The whole region lies unreserved during init.
		s.window(at, at+size)
		v, err := s.mapLib(lib, at, size, mem.Exact)
		if err == nil {
			s.views[v] = size
			return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
		}
		if !errors.Is(err, mem.ErrExists) {
			s.fl.free(at, at+size)
			return View{}, err
		}
		s.losses++ // someone else took it: never ours again
	}
	return View{}, ErrUnsupported
}

// EndInit reserves every free piece of the region, one reservation each.
// A piece someone else took meanwhile is a lost race, not an error.
func (s *A) EndInit() error {
	s.init = false
	for _, r := range s.fl.r {
		if _, err := s.os.Reserve(r[0], r[1]-r[0], mem.Exact); err != nil {
			if errors.Is(err, mem.ErrExists) {
				s.losses++
				continue
			}
			return err
		}
		s.pcs = append(s.pcs, r)
	}
	s.fl = newFreeList(0, 0)
	s.fl.r = nil
	return nil
}

// Unload unmaps v; after init it reserves the hole again.
func (s *A) Unload(v View) error {
	if err := s.os.Unmap(v.Addr, v.Size); err != nil {
		return err
	}
	delete(s.views, v.Addr)
	if s.init {
		s.fl.free(v.Addr, v.Addr+v.Size)
		return nil
	}
	s.keepHole(&s.pcs, v.Addr, v.Addr+v.Size)
	return nil
}

// Teardown releases every piece and unmaps every view.
func (s *A) Teardown() error {
	err := releasePieces(s.os, s.pcs, s.views)
	s.pcs, s.views = nil, nil
	return err
}

// B is DynamoRIO's option B (Windows): it keeps one region for code and
// gives up on reachable libraries. They go wherever the OS puts them
// (their preferred base if free), which may be out of reach: Place never
// returns ErrUnsupported, and its views must be checked with
// View.Distance.
type B struct {
	base
	// Size is the region's size; 0 selects DefaultRegion.
	Size uintptr
	// views maps each view still placed to its size, for Teardown.
	views map[uintptr]uintptr
}

// Name returns "B".
func (s *B) Name() string { return "B" }

// Rules returns mem.RulesWindows.
func (s *B) Rules() mem.Rules { return mem.RulesWindows }

// Setup reserves the region wherever the OS puts it.
func (s *B) Setup(o mem.OS) error {
	s.os = o
	s.views = map[uintptr]uintptr{}
	size := orDefault(s.Size, DefaultRegion)
	lo, err := o.Reserve(0, size, mem.Hint)
	s.lo, s.hi = lo, lo+size
	return err
}

// Place maps lib wherever the OS puts it, asking for its preferred base.
func (s *B) Place(lib Lib, post bool) (View, error) {
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	v, err := s.mapLib(lib, lib.Pref, size, mem.Hint)
	if err != nil {
		return View{}, err
	}
	s.views[v] = size
	return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
}

// EndInit does nothing: B has nothing to claim.
func (s *B) EndInit() error { return nil }

// Unload unmaps v.
func (s *B) Unload(v View) error {
	if err := s.os.Unmap(v.Addr, v.Size); err != nil {
		return err
	}
	delete(s.views, v.Addr)
	return nil
}

// Teardown releases the region and unmaps every view still placed,
// wherever the OS put it.
func (s *B) Teardown() error {
	err := releasePieces(s.os, [][2]uintptr{{s.lo, s.hi}}, s.views)
	s.views = nil
	return err
}

// C is DynamoRIO's option C (Windows): it packs the init libraries down
// from the top of the unreserved region (each at a non-preferred base, so
// each pays relocation), then reserves everything below them as one
// reservation. Like A, nothing can be placed after init, and the region
// lies unreserved until EndInit.
type C struct {
	base
	// Size is the region's size; 0 selects DefaultRegion.
	Size  uintptr
	top   uintptr // lowest packed library
	init  bool
	views map[uintptr]uintptr
	pcs   [][2]uintptr
}

// Name returns "C".
func (s *C) Name() string { return "C" }

// Rules returns mem.RulesWindows.
func (s *C) Rules() mem.Rules { return mem.RulesWindows }

// Setup picks the region where the OS has room, without reserving it.
func (s *C) Setup(o mem.OS) error {
	s.os = o
	size := orDefault(s.Size, DefaultRegion)
	lo, err := pickRange(o, size)
	if err != nil {
		return err
	}
	s.lo, s.hi, s.top, s.init = lo, lo+size, lo+size, true
	s.views = map[uintptr]uintptr{}
	return nil
}

// Place maps lib just below the libraries placed before it; after EndInit
// it returns ErrUnsupported.
func (s *C) Place(lib Lib, post bool) (View, error) {
	if !s.init {
		return View{}, ErrUnsupported
	}
	size, err := viewSize(lib, s.os.Granularity())
	if err != nil {
		return View{}, err
	}
	for try := 0; try < placeTries; try++ {
		if s.top-s.lo < size {
			return View{}, ErrUnsupported
		}
		at := s.top - size
		s.window(at, at+size)
		v, err := s.mapLib(lib, at, size, mem.Exact)
		if err == nil {
			s.top = at
			s.views[v] = size
			return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
		}
		if !errors.Is(err, mem.ErrExists) {
			return View{}, err
		}
		s.losses++
		s.top = at // skip what was taken
	}
	return View{}, ErrUnsupported
}

// EndInit reserves the region below the libraries as one reservation.
func (s *C) EndInit() error {
	s.init = false
	if s.top == s.lo {
		return nil
	}
	if _, err := s.os.Reserve(s.lo, s.top-s.lo, mem.Exact); err != nil {
		return fmt.Errorf("C: reserving below the libraries: %w", err)
	}
	s.pcs = append(s.pcs, [2]uintptr{s.lo, s.top})
	return nil
}

// Unload unmaps v; after init it reserves the hole again.
func (s *C) Unload(v View) error {
	if err := s.os.Unmap(v.Addr, v.Size); err != nil {
		return err
	}
	delete(s.views, v.Addr)
	if s.init {
		return nil // the packing cursor does not go back
	}
	s.keepHole(&s.pcs, v.Addr, v.Addr+v.Size)
	return nil
}

// Teardown releases the reservations and unmaps every view.
func (s *C) Teardown() error {
	err := releasePieces(s.os, s.pcs, s.views)
	s.pcs, s.views = nil, nil
	return err
}

// slot states of a grid.
const (
	slotFree uint8 = iota // reserved, unused
	slotUsed              // released, under a view
	slotLost              // taken by someone else
)

// gridPart is the grid of D and E: consecutive reservations of one slot
// size; a library of s bytes releases ceil(s/slot) consecutive slots,
// maps there and re-reserves the tail of the last slot. It mirrors
// vmm/grid.go, which vmm does not expose as a strategy.
type gridPart struct {
	*base
	lo   uintptr
	slot uintptr
	st   []uint8
	// views maps a view base to its slot run and tail reservation.
	views map[uintptr]gridView
}

type gridView struct {
	k0, k    int
	size     uintptr
	tail     uintptr // 0 if none
	tailSize uintptr
}

func (g *gridPart) n() int                { return len(g.st) }
func (g *gridPart) addr(k int) uintptr    { return g.lo + uintptr(k)*g.slot }
func (g *gridPart) end(k0, k int) uintptr { return g.addr(k0 + k) }

func (g *gridPart) setup(lo uintptr, n int) error {
	g.lo, g.st, g.views = lo, make([]uint8, n), map[uintptr]gridView{}
	for k := range g.st {
		if _, err := g.os.Reserve(g.addr(k), g.slot, mem.Exact); err != nil {
			for j := 0; j < k; j++ {
				_ = g.os.Release(g.addr(j), g.slot)
			}
			return fmt.Errorf("grid slot %d: %w", k, err)
		}
	}
	return nil
}

func (g *gridPart) place(lib Lib) (View, error) {
	gran := g.os.Granularity()
	size, err := viewSize(lib, gran)
	if err != nil {
		return View{}, err
	}
	k := int((size + g.slot - 1) / g.slot)
	for try := 0; try < placeTries; try++ {
		k0 := -1
		for i, run := 0, 0; i < g.n(); i++ {
			if g.st[i] != slotFree {
				run = 0
				continue
			}
			if run++; run == k {
				k0 = i - k + 1
				break
			}
		}
		if k0 < 0 {
			return View{}, ErrUnsupported
		}
		// Each release opens a window: the hole grows slot by slot until
		// the map (counted per OS call, as windowOS counts vmm's).
		for i := k0; i < k0+k; i++ {
			if err := g.os.Release(g.addr(i), g.slot); err != nil {
				return View{}, err
			}
			g.st[i] = slotUsed
			g.window(g.addr(i), g.addr(i)+g.slot)
		}
		at := g.addr(k0)
		v, err := g.mapLib(lib, at, size, mem.Exact)
		if err != nil {
			if !errors.Is(err, mem.ErrExists) {
				return View{}, err
			}
			g.losses++
			for i := k0; i < k0+k; i++ {
				if _, err := g.os.Reserve(g.addr(i), g.slot, mem.Exact); err != nil {
					g.st[i] = slotLost
				} else {
					g.st[i] = slotFree
				}
			}
			continue
		}
		gv := gridView{k0: k0, k: k, size: size}
		if e := g.end(k0, k); at+size < e {
			if _, err := g.os.Reserve(at+size, e-at-size, mem.Exact); err == nil {
				gv.tail, gv.tailSize = at+size, e-at-size
			} else {
				g.losses++
			}
		}
		g.views[v] = gv
		return View{Lib: lib, Addr: v, Size: size, Relocated: relocated(lib, v)}, nil
	}
	return View{}, ErrUnsupported
}

func (g *gridPart) unload(v View) error {
	gv, ok := g.views[v.Addr]
	if !ok {
		return fmt.Errorf("grid: no view at %#x", v.Addr)
	}
	delete(g.views, v.Addr)
	if err := g.os.Unmap(v.Addr, gv.size); err != nil {
		return err
	}
	if gv.tail != 0 {
		if err := g.os.Release(gv.tail, gv.tailSize); err != nil {
			return err
		}
	}
	g.window(g.addr(gv.k0), g.end(gv.k0, gv.k))
	for i := gv.k0; i < gv.k0+gv.k; i++ {
		if _, err := g.os.Reserve(g.addr(i), g.slot, mem.Exact); err != nil {
			g.st[i] = slotLost
			g.losses++
		} else {
			g.st[i] = slotFree
		}
	}
	return nil
}

func (g *gridPart) teardown() error {
	var errs []error
	for a, gv := range g.views {
		errs = append(errs, g.os.Unmap(a, gv.size))
		if gv.tail != 0 {
			errs = append(errs, g.os.Release(gv.tail, gv.tailSize))
		}
	}
	for k, st := range g.st {
		if st == slotFree {
			errs = append(errs, g.os.Release(g.addr(k), g.slot))
		}
	}
	g.views, g.st = nil, nil
	return errors.Join(errs...)
}

// D is DynamoRIO's option D (Windows): it reserves the whole region as a
// grid of Slot-sized reservations (reachvm's choice, vmm/grid.go, which
// VMM measures): libraries of any size fit, at init or after, at the price
// of one reservation per slot. A library releases a run of consecutive
// slots, maps over it and reserves the rest of its last slot again; each
// release is a race window.
type D struct {
	base
	// Size is the region's size (rounded down to a multiple of Slot); 0
	// selects DefaultRegion.
	Size uintptr
	// Slot is the grid's slot, a multiple of the allocation granularity;
	// 0 selects DefaultSlot.
	Slot uintptr
	g    gridPart
}

// Name returns "D".
func (s *D) Name() string { return "D" }

// Rules returns mem.RulesWindows.
func (s *D) Rules() mem.Rules { return mem.RulesWindows }

// Setup reserves the region, one reservation per slot.
func (s *D) Setup(o mem.OS) error {
	s.os = o
	size, slot := orDefault(s.Size, DefaultRegion), orDefault(s.Slot, DefaultSlot)
	size -= size % slot
	lo, err := pickRange(o, size)
	if err != nil {
		return err
	}
	s.lo, s.hi = lo, lo+size
	s.g = gridPart{base: &s.base, slot: slot}
	return s.g.setup(lo, int(size/slot))
}

// Place maps lib over the lowest run of free slots long enough for it.
func (s *D) Place(lib Lib, post bool) (View, error) { return s.g.place(lib) }

// EndInit does nothing: the grid is claimed from Setup on.
func (s *D) EndInit() error { return nil }

// Unload unmaps v and reserves its slots again.
func (s *D) Unload(v View) error { return s.g.unload(v) }

// Teardown unmaps every view and releases every slot.
func (s *D) Teardown() error { return s.g.teardown() }

// E is DynamoRIO's option E (Windows): it reserves the bulk of the region
// once and only its top Grid bytes as slots, which libraries and
// reachable maps share (100 of 640 KiB in DynamoRIO's proposal); placement works as
// in D's grid.
type E struct {
	base
	// Size is the region's size; 0 selects DefaultRegion.
	Size uintptr
	// Slot is the grid's slot, a multiple of the allocation granularity;
	// 0 selects DefaultSlot.
	Slot uintptr
	// Grid is the size of the grid at the top of the region (rounded down
	// to a multiple of Slot), less than Size; 0 selects DefaultEGrid.
	Grid uintptr
	g    gridPart
	bulk uintptr
}

// Name returns "E".
func (s *E) Name() string { return "E" }

// Rules returns mem.RulesWindows.
func (s *E) Rules() mem.Rules { return mem.RulesWindows }

// Setup reserves the bulk as one reservation and the grid slot by slot.
func (s *E) Setup(o mem.OS) error {
	s.os = o
	size, slot, grid := orDefault(s.Size, DefaultRegion), orDefault(s.Slot, DefaultSlot), orDefault(s.Grid, DefaultEGrid)
	grid -= grid % slot
	lo, err := pickRange(o, size)
	if err != nil {
		return err
	}
	s.lo, s.hi = lo, lo+size
	s.bulk, _ = mem.AlignUp(size-grid, o.Granularity()) // size-grid < size: no overflow
	if _, err := o.Reserve(lo, s.bulk, mem.Exact); err != nil {
		return err
	}
	s.g = gridPart{base: &s.base, slot: slot}
	if err := s.g.setup(lo+s.bulk, int((size-s.bulk)/slot)); err != nil {
		_ = o.Release(lo, s.bulk)
		return err
	}
	return nil
}

// Place maps lib over the lowest run of free grid slots long enough for
// it.
func (s *E) Place(lib Lib, post bool) (View, error) { return s.g.place(lib) }

// EndInit does nothing: the region is claimed from Setup on.
func (s *E) EndInit() error { return nil }

// Unload unmaps v and reserves its slots again.
func (s *E) Unload(v View) error { return s.g.unload(v) }

// Teardown unmaps every view and releases the grid and the bulk.
func (s *E) Teardown() error {
	return errors.Join(s.g.teardown(), s.os.Release(s.lo, s.bulk))
}

// F is DynamoRIO's option F (Windows), what DynamoRIO ships: it keeps a
// smaller region (512 MiB) and places libraries outside it, by searching
// the OS's free space for a hole within reach of the whole region,
// nearest first. The closer the region is to 2 GiB, the less reachable
// space is left: at 2 GiB, none. Between the search and the map the hole
// is a race window.
type F struct {
	nearPlacer
	// Size is the region's size; 0 selects DefaultFRegion.
	Size uintptr
}

// Name returns "F".
func (s *F) Name() string { return "F" }

// Rules returns mem.RulesWindows.
func (s *F) Rules() mem.Rules { return mem.RulesWindows }

// Setup reserves the region wherever the OS puts it.
func (s *F) Setup(o mem.OS) error {
	return s.setup(o, orDefault(s.Size, DefaultFRegion))
}

func orDefault(v, d uintptr) uintptr {
	if v == 0 {
		return d
	}
	return v
}

// keepHole re-reserves [lo, hi) after an unloaded library left it, as A
// and C do once init is over: the range lies free in between (a window,
// and a loss if someone else takes it). A kept hole is appended to pcs.
func (b *base) keepHole(pcs *[][2]uintptr, lo, hi uintptr) {
	b.window(lo, hi)
	if _, err := b.os.Reserve(lo, hi-lo, mem.Exact); err != nil {
		b.losses++
		return
	}
	*pcs = append(*pcs, [2]uintptr{lo, hi})
}

// releasePieces tears down A's and C's region: every reservation piece
// and every library view still in it.
func releasePieces(o mem.OS, pcs [][2]uintptr, views map[uintptr]uintptr) error {
	var errs []error
	for _, p := range pcs {
		errs = append(errs, o.Release(p[0], p[1]-p[0]))
	}
	for a, n := range views {
		errs = append(errs, o.Unmap(a, n))
	}
	return errors.Join(errs...)
}
