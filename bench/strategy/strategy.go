package strategy

import (
	"errors"
	"fmt"
	"sort"

	"github.com/reachvm/reachvm/mem"
)

// Lib is one library or reachable file map to place.
type Lib struct {
	// Name labels the library (its file name, or a DynamoRIO library name);
	// strategies name the object they map after it.
	Name string
	// Size is its mapped size in bytes, > 0. Strategies round it up to the
	// OS's allocation granularity.
	Size uintptr
	// Pref is its preferred base, 0 for none (ELF shared objects are
	// position-independent). A library mapped anywhere else pays
	// relocation (View.Relocated).
	Pref uintptr
}

// View is a placed library, as Place returns it and Unload takes it back.
type View struct {
	// Lib is the library placed.
	Lib Lib
	// Addr is the view's base and Size its length: Lib.Size rounded up to
	// the OS's allocation granularity, so Size >= Lib.Size.
	Addr, Size uintptr
	// Relocated is set when Lib has a preferred base and Addr is not it.
	Relocated bool
}

// Range returns the addresses the view covers: [Addr, Addr+Size).
func (v View) Range() mem.Range { return mem.Range{Start: v.Addr, End: v.Addr + v.Size} }

// Distance returns the largest distance between a byte of region and a
// byte of v (last bytes inclusive, so that a library inside a 2 GiB region
// is within reach). v is reachable from the region, and the region from
// v, by rel32 if Distance is at most mem.Rel32Max, that is if
// v.Reachable(region).
func (v View) Distance(region mem.Range) uint64 {
	a := int64(v.Addr+v.Size-1) - int64(region.Start)
	b := int64(region.End-1) - int64(v.Addr)
	return uint64(max(a, b, -a, -b))
}

// Reachable reports whether every byte of v is rel32-reachable from every
// byte of region, and every byte of region from v: the reach rule of
// package mem (mem.ReachesAll) applied to v's first and last bytes.
func (v View) Reachable(region mem.Range) bool {
	return v.Size != 0 && mem.ReachesAll(region, v.Addr) && mem.ReachesAll(region, v.Addr+v.Size-1)
}

// ErrUnsupported is returned (possibly wrapped) by Place when the strategy
// has no way to place the library reachably at that point: A and C after
// init, F and linux-near when no hole within reach is left, the grids when
// no run of free slots is long enough. These are the strategies' defining
// weaknesses; other errors come from the OS.
var ErrUnsupported = errors.New("strategy: no reachable placement")

// Strategy is one way of keeping client libraries and reachable file maps
// within rel32 reach of a code region. Every implementation goes through
// the same life cycle on one goroutine: Setup, Place during init, EndInit,
// Place after init, Unload and Place again, and finally Teardown. A
// Strategy is used once: after Teardown it must not be set up again.
//
// A strategy makes every OS call through the mem.OS given to Setup, so
// that a caller measuring it (package bench wraps the OS in a counting
// decorator) sees its whole cost.
type Strategy interface {
	// Name is the strategy's key, as New takes it: "A".."F",
	// "linux-fixed", "vmm-grid", ...
	Name() string
	// Rules are the OS rules it is written for: it runs on an mem.OS
	// with these rules only.
	Rules() mem.Rules
	// Setup claims the region on o (A and C only pick it, and claim it
	// at EndInit). On error nothing is left to tear down.
	Setup(o mem.OS) error
	// Region bounds the code region libraries must reach, and be reached
	// from, fixed from Setup on. linux-near's region is only
	// its anchor, the one code allocation it keeps libraries near.
	Region() mem.Range
	// Place maps lib; post says that init is over. The view lies within
	// reach of the whole region (View.Reachable), except under B and linux-spill, which
	// give no guarantee and may return a view out of reach (see
	// View.Distance). When no reachable place is left, Place returns
	// ErrUnsupported.
	Place(lib Lib, post bool) (View, error)
	// EndInit marks the end of initialisation (A and C reserve around the
	// libraries now). An error wrapping mem.ErrExists means the OS
	// refused part of the region (something else holds it): a failed
	// set-up, after which only Teardown may be called.
	EndInit() error
	// Unload unmaps v, a view Place returned, and gives its space back
	// to the region.
	Unload(v View) error
	// Teardown releases everything the strategy owns: the region and
	// every view still placed. What an intruder took is left alone.
	Teardown() error
	// SetIntruder installs the "other thread", a measurement hook: fn is
	// called in every window in which addresses the strategy is about to
	// use lie free, with the free range, and may allocate there; the
	// strategy must notice and cope. Call it before Setup; nil removes it.
	SetIntruder(fn func(free mem.Range))
	// Races reports the race windows opened and the races lost (addresses
	// found taken by someone else) so far.
	Races() (windows, losses int)
}

// makers lists every strategy, Windows first, in the order Names returns
// them. make builds one whose code region is region bytes (0 selects the
// default); sized is false for a strategy with no region to size, whose
// make ignores it.
var makers = []struct {
	name  string
	sized bool
	make  func(region uintptr) Strategy
}{
	{"A", true, func(n uintptr) Strategy { return &A{Size: n} }},
	{"B", true, func(n uintptr) Strategy { return &B{Size: n} }},
	{"C", true, func(n uintptr) Strategy { return &C{Size: n} }},
	{"D", true, func(n uintptr) Strategy { return &D{Size: n} }},
	{"E", true, func(n uintptr) Strategy { return &E{Size: n} }},
	{"F", true, func(n uintptr) Strategy { return &F{Size: n} }},
	{"vmm-grid", true, func(n uintptr) Strategy { return newVMMSized(mem.RulesWindows, n) }},
	{"linux-fixed", true, func(n uintptr) Strategy { s := &LinuxFixed{}; s.Size = n; return s }},
	{"linux-munmap", true, func(n uintptr) Strategy { s := &LinuxMunmap{}; s.Size = n; return s }},
	// linux-near reserves no region: it keeps a small anchor and places
	// each library near it.
	{"linux-near", false, func(uintptr) Strategy { return &LinuxNear{} }},
	{"linux-spill", true, func(n uintptr) Strategy { s := &LinuxSpill{}; s.Size = n; return s }},
	{"vmm-linear", true, func(n uintptr) Strategy { return newVMMSized(mem.RulesLinux, n) }},
}

func newVMMSized(rules mem.Rules, size uintptr) Strategy {
	s := NewVMM(rules)
	s.Size = size
	return s
}

// Names returns the names of every strategy New knows, Windows first (A to
// F, then vmm-grid), then the Linux ones (linux-fixed, linux-munmap,
// linux-near, linux-spill, then vmm-linear). The slice is the caller's.
func Names() []string {
	out := make([]string, len(makers))
	for i, m := range makers {
		out[i] = m.name
	}
	return out
}

// New returns a fresh strategy with default sizes, and false if name is
// not one of Names. To choose other sizes, build the implementation's
// type instead (&D{Slot: 1 << 20}), or use NewRegion.
func New(name string) (Strategy, bool) {
	for _, m := range makers {
		if m.name == name {
			return m.make(0), true
		}
	}
	return nil, false
}

// NewRegion returns a fresh strategy whose code region is size bytes,
// other sizes left at their defaults; false if name is not one of Names
// or names a strategy without a region to size (linux-near).
func NewRegion(name string, size uintptr) (Strategy, bool) {
	for _, m := range makers {
		if m.name == name && m.sized {
			return m.make(size), true
		}
	}
	return nil, false
}

// base holds what every strategy shares: the OS, the region, the race
// hook and counters.
type base struct {
	os       mem.OS
	lo, hi   uintptr
	intruder func(free mem.Range)
	windows  int
	losses   int
	// hidden lists ranges nearSearch failed to map that no query showed
	// taken (see nearSearch); kept for the strategy's life, so that each
	// costs one lost try, not one per library.
	hidden [][2]uintptr
}

// Region returns the region's bounds (Strategy.Region).
func (b *base) Region() mem.Range { return mem.Range{Start: b.lo, End: b.hi} }

// SetIntruder installs the other thread (Strategy.SetIntruder).
func (b *base) SetIntruder(fn func(free mem.Range)) { b.intruder = fn }

// Races returns the race windows and losses so far (Strategy.Races).
func (b *base) Races() (int, int) { return b.windows, b.losses }

// window records that [lo, hi) lies free while the strategy still means to
// use it, and lets the intruder in.
func (b *base) window(lo, hi uintptr) {
	b.windows++
	if b.intruder != nil {
		b.intruder(mem.Range{Start: lo, End: hi})
	}
}

// viewSize returns lib's size rounded up to the allocation granularity
// gran: the size of its view.
func viewSize(lib Lib, gran uintptr) (uintptr, error) {
	n, ok := mem.AlignUp(lib.Size, gran)
	if !ok {
		return 0, fmt.Errorf("strategy: library %q: size %#x overflows when rounded up to the granularity %#x", lib.Name, lib.Size, gran)
	}
	return n, nil
}

// mapLib creates the library's object, maps it at addr with mode and
// closes the object (the view keeps it alive), as a loader maps an image.
func (b *base) mapLib(lib Lib, addr, size uintptr, mode mem.Mode) (uintptr, error) {
	obj, err := b.os.CreateShared(lib.Name, uint64(size))
	if err != nil {
		return 0, err
	}
	v, err := b.os.MapObject(obj, 0, addr, size, mem.ProtRX, mode)
	if cerr := b.os.CloseObject(obj); err == nil && cerr != nil {
		_ = b.os.Unmap(v, size)
		return 0, cerr
	}
	return v, err
}

// pickRange finds (without keeping) a free range of size bytes: the
// search-from-OS step of A and C, which leave the region unreserved while
// libraries are loaded.
func pickRange(o mem.OS, size uintptr) (uintptr, error) {
	a, err := o.Reserve(0, size, mem.Hint)
	if err != nil {
		return 0, err
	}
	return a, o.Release(a, size)
}

// freeList is a first-fit allocator of address ranges inside a region:
// this package's stand-in for vmm's extent allocator.
type freeList struct {
	r [][2]uintptr // sorted, disjoint, non-adjacent free ranges
}

func newFreeList(lo, hi uintptr) *freeList { return &freeList{r: [][2]uintptr{{lo, hi}}} }

// alloc takes size bytes aligned to align, lowest first (or highest first
// with top).
func (f *freeList) alloc(size, align uintptr, top bool) (uintptr, bool) {
	n := len(f.r)
	for j := 0; j < n; j++ {
		i := j
		if top {
			i = n - 1 - j
		}
		lo, hi := f.r[i][0], f.r[i][1]
		var a uintptr
		if top {
			if hi-lo < size {
				continue
			}
			a = mem.AlignDown(hi-size, align)
			if a < lo {
				continue
			}
		} else {
			var ok bool
			a, ok = mem.AlignUp(lo, align)
			if !ok || a >= hi || hi-a < size {
				continue
			}
		}
		f.take(a, a+size)
		return a, true
	}
	return 0, false
}

// take removes [lo, hi) (which must be free) from the list.
func (f *freeList) take(lo, hi uintptr) bool {
	for i, r := range f.r {
		if r[0] <= lo && hi <= r[1] {
			var add [][2]uintptr
			if r[0] < lo {
				add = append(add, [2]uintptr{r[0], lo})
			}
			if hi < r[1] {
				add = append(add, [2]uintptr{hi, r[1]})
			}
			f.r = append(f.r[:i], append(add, f.r[i+1:]...)...)
			return true
		}
	}
	return false
}

// free returns [lo, hi) to the list, merging neighbours.
func (f *freeList) free(lo, hi uintptr) {
	f.r = append(f.r, [2]uintptr{lo, hi})
	sort.Slice(f.r, func(i, j int) bool { return f.r[i][0] < f.r[j][0] })
	out := f.r[:1]
	for _, r := range f.r[1:] {
		if last := &out[len(out)-1]; r[0] <= last[1] {
			last[1] = max(last[1], r[1])
		} else {
			out = append(out, r)
		}
	}
	f.r = out
}

// nearTries bounds nearSearch: the holes it maps into (and loses) per
// library before it gives up.
const nearTries = 8

// nearSearch finds a free range of size bytes every byte of which is
// rel32-reachable from every byte of [lo, hi), and back, nearest to the region first,
// and maps lib there: Frida's gum_memory_allocate_near and DynamoRIO's
// search-from-OS for reachable maps. Between the query and the map the
// hole is a race window; a lost race moves on to the next hole.
//
// A map can also fail in a hole that the next query still shows free:
// under Wine, the host's own mappings (Wine's Linux-side allocations) are
// invisible to VirtualQuery but hold their addresses, so the same hole
// would be picked, and fail, on every try. A failed range that no query
// then explains is therefore taken as held invisibly, and its whole hole
// is skipped from then on: where in the hole the invisible mapping ends
// is unknown, and probing it granule by granule would cost a call each.
// The ranges are remembered for later searches too. Either way the
// failure is counted as a lost race: the window was open and something
// else held the addresses.
func (b *base) nearSearch(lib Lib, size uintptr) (uintptr, error) {
	gran := b.os.Granularity()
	olo, ohi := b.os.Bounds()
	// Window of acceptable addresses: the rule of reach, as vmm's near
	// placement uses it.
	w, ok := mem.NearWindow(mem.Range{Start: b.lo, End: b.hi}, mem.Range{Start: olo, End: ohi}, gran)
	if !ok || w.Size() < size {
		return 0, ErrUnsupported
	}
	wlo, whi := w.Start, w.End
	var failed [2]uintptr // the range whose map failed last try, if any
	overlaps := func(r [2]uintptr, x, y uintptr) bool { return r[0] < y && x < r[1] }
	for try := 0; try < nearTries; try++ {
		regs, err := b.os.Regions(wlo, whi)
		if err != nil {
			return 0, err
		}
		if failed[1] != 0 {
			seen := false
			for _, r := range regs {
				if overlaps(failed, r.Start, r.End) {
					seen = true
					break
				}
			}
			if !seen {
				b.hidden = append(b.hidden, failed)
			}
			failed = [2]uintptr{}
		}
		type hole struct{ at, dist uintptr }
		var holes []hole
		prev := wlo
		consider := func(x, y uintptr) {
			for _, h := range b.hidden {
				if overlaps(h, x, y) {
					return
				}
			}
			x, ok := mem.AlignUp(x, gran)
			if !ok || x >= y || y-x < size {
				return
			}
			// Nearest end of the hole to the region.
			at := x
			if x >= b.hi {
				holes = append(holes, hole{x, x - b.hi})
				return
			}
			at = mem.AlignDown(y-size, gran)
			if at < x {
				return
			}
			if at+size <= b.lo {
				holes = append(holes, hole{at, b.lo - at})
			}
		}
		for _, r := range regs {
			if r.Start > prev {
				consider(prev, r.Start)
			}
			prev = max(prev, r.End)
		}
		if prev < whi {
			consider(prev, whi)
		}
		if len(holes) == 0 {
			return 0, ErrUnsupported
		}
		sort.Slice(holes, func(i, j int) bool {
			if holes[i].dist != holes[j].dist {
				return holes[i].dist < holes[j].dist
			}
			return holes[i].at < holes[j].at
		})
		at := holes[0].at
		b.window(at, at+size)
		v, err := b.mapLib(lib, at, size, mem.Exact)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, mem.ErrExists) {
			return 0, err
		}
		b.losses++
		failed = [2]uintptr{at, at + size}
	}
	return 0, fmt.Errorf("strategy: near placement of %s: holes kept being taken: %w", lib.Name, ErrUnsupported)
}

// relocated reports whether lib mapped at addr pays relocation: it has a
// preferred base (a PE image; ELF shared objects are position-independent)
// and is not there.
func relocated(lib Lib, addr uintptr) bool { return lib.Pref != 0 && addr != lib.Pref }
