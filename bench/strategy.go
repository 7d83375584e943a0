package bench

import (
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/reachvm/reachvm/internal/osmem"
)

// Reach is the rel32 window: a library is reachable only if every byte of
// it lies within Reach of every byte of the region (DESIGN.md section 1).
const Reach = 1<<31 - 1

// Lib is one library or reachable file map to place.
type Lib struct {
	// Name labels the library (its file name, or a DR name from the seed).
	Name string
	// Size is its mapped size in bytes.
	Size uintptr
	// Pref is its preferred base, 0 for none. A library mapped anywhere
	// else pays relocation (RelocBytes).
	Pref uintptr
}

// View is a placed library.
type View struct {
	Lib        Lib
	Addr, Size uintptr
	// Relocated is set when the view is not at Lib.Pref.
	Relocated bool
}

// ErrUnsupported is returned by Place when the strategy has no way to place
// the library reachably at that point (A and C after init, F past its
// window): the defining weaknesses the harness counts.
var ErrUnsupported = errors.New("bench: no reachable placement")

// Strategy is one way of keeping client libraries reachable from a code
// region. The harness drives every implementation through the same life
// cycle, Setup, Place (init), EndInit, Place (post-init), Unload, Place
// (reload), Teardown, and measures the OS calls of each phase by wrapping
// the OS in a Counting decorator, so that strategies cannot misreport
// their own cost.
type Strategy interface {
	// Name is the strategy's key: "A".."F", "linux-fixed", ...
	Name() string
	// Rules are the OS rules it is written for.
	Rules() osmem.Rules
	// Setup claims the region on o.
	Setup(o osmem.OS) error
	// Region bounds the code region libraries must reach (and be reached
	// from).
	Region() (lo, hi uintptr)
	// Place maps lib reachably; post says init is over.
	Place(lib Lib, post bool) (View, error)
	// EndInit marks the end of initialisation (A and C reserve around
	// the libraries now).
	EndInit() error
	// Unload unmaps v and gives its space back to the region.
	Unload(v View) error
	// Teardown releases everything the strategy owns.
	Teardown() error
	// SetIntruder installs the "other thread": called in every window in
	// which addresses the strategy is about to use lie free, with the free
	// range. It may allocate there; the strategy must cope.
	SetIntruder(fn func(lo, hi uintptr))
	// Races reports the windows opened and the races lost so far.
	Races() (windows, losses int)
}

// Counting wraps an osmem.OS and counts the calls made through it, so that
// the cost of a strategy is measured at the OS boundary. Queries count
// too: VirtualQuery and reading /proc/self/maps are system calls, and a
// strategy that searches for holes pays for them.
type Counting struct {
	osmem.OS
	n atomic.Int64
}

// NewCounting wraps o.
func NewCounting(o osmem.OS) *Counting { return &Counting{OS: o} }

// Calls returns how many calls that reach the kernel have been made.
func (c *Counting) Calls() int { return int(c.n.Load()) }

func (c *Counting) Reserve(addr, size uintptr, mode osmem.Mode) (uintptr, error) {
	c.n.Add(1)
	return c.OS.Reserve(addr, size, mode)
}
func (c *Counting) Commit(addr, size uintptr, prot osmem.Prot) error {
	c.n.Add(1)
	return c.OS.Commit(addr, size, prot)
}
func (c *Counting) Decommit(addr, size uintptr) error {
	c.n.Add(1)
	return c.OS.Decommit(addr, size)
}
func (c *Counting) Protect(addr, size uintptr, prot osmem.Prot) error {
	c.n.Add(1)
	return c.OS.Protect(addr, size, prot)
}
func (c *Counting) Release(addr, size uintptr) error {
	c.n.Add(1)
	return c.OS.Release(addr, size)
}
func (c *Counting) OpenFile(path string) (osmem.Object, error) {
	c.n.Add(1)
	return c.OS.OpenFile(path)
}
func (c *Counting) CreateShared(name string, size uint64) (osmem.Object, error) {
	c.n.Add(1)
	return c.OS.CreateShared(name, size)
}
func (c *Counting) CloseObject(obj osmem.Object) error {
	c.n.Add(1)
	return c.OS.CloseObject(obj)
}
func (c *Counting) MapObject(obj osmem.Object, off uint64, addr, size uintptr, prot osmem.Prot, mode osmem.Mode) (uintptr, error) {
	c.n.Add(1)
	return c.OS.MapObject(obj, off, addr, size, prot, mode)
}
func (c *Counting) Unmap(addr, size uintptr) error {
	c.n.Add(1)
	return c.OS.Unmap(addr, size)
}
func (c *Counting) Query(addr uintptr) (osmem.Region, error) {
	c.n.Add(1)
	return c.OS.Query(addr)
}
func (c *Counting) Regions(lo, hi uintptr) ([]osmem.Region, error) {
	c.n.Add(1)
	return c.OS.Regions(lo, hi)
}

// base holds what every strategy shares: the OS, the region, the race
// hook and counters.
type base struct {
	os       osmem.OS
	lo, hi   uintptr
	intruder func(lo, hi uintptr)
	windows  int
	losses   int
	// hidden lists ranges nearSearch failed to map that no query showed
	// taken (see nearSearch); kept for the strategy's life, so that each
	// costs one lost try, not one per library.
	hidden [][2]uintptr
}

func (b *base) Region() (uintptr, uintptr)          { return b.lo, b.hi }
func (b *base) SetIntruder(fn func(lo, hi uintptr)) { b.intruder = fn }
func (b *base) Races() (int, int)                   { return b.windows, b.losses }

// window records that [lo, hi) lies free while the strategy still means to
// use it, and lets the intruder in.
func (b *base) window(lo, hi uintptr) {
	b.windows++
	if b.intruder != nil {
		b.intruder(lo, hi)
	}
}

func alignUp(x, a uintptr) uintptr { return (x + a - 1) &^ (a - 1) }

// mapLib creates the library's object, maps it at addr with mode and
// closes the object (the view keeps it alive), as a loader maps an image.
func (b *base) mapLib(lib Lib, addr, size uintptr, mode osmem.Mode) (uintptr, error) {
	obj, err := b.os.CreateShared(lib.Name, uint64(size))
	if err != nil {
		return 0, err
	}
	v, err := b.os.MapObject(obj, 0, addr, size, osmem.ProtRX, mode)
	if cerr := b.os.CloseObject(obj); err == nil && cerr != nil {
		_ = b.os.Unmap(v, size)
		return 0, cerr
	}
	return v, err
}

// pickRange finds (without keeping) a free range of size bytes: the
// search-from-OS step of A and C, which leave the region unreserved while
// libraries are loaded.
func pickRange(o osmem.OS, size uintptr) (uintptr, error) {
	a, err := o.Reserve(0, size, osmem.Hint)
	if err != nil {
		return 0, err
	}
	return a, o.Release(a, size)
}

// freeList is a first-fit allocator of address ranges inside a region:
// the bench-side stand-in for vmm's extent allocator.
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
			a = (hi - size) &^ (align - 1)
			if a < lo {
				continue
			}
		} else {
			a = alignUp(lo, align)
			if a >= hi || hi-a < size {
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
// within Reach of every byte of [lo, hi), nearest to the region first,
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
// The ranges are remembered for later searches too. Either way the failure is counted as a lost race: the window was open
// and something else held the addresses.
func (b *base) nearSearch(lib Lib, size uintptr) (uintptr, error) {
	gran := b.os.Granularity()
	olo, ohi := b.os.Bounds()
	// Window of acceptable addresses: [hi-Reach, lo+Reach).
	wlo, whi := olo, ohi
	if b.hi > Reach && b.hi-Reach > wlo {
		wlo = alignUp(b.hi-Reach, gran)
	}
	if b.lo+Reach < whi {
		whi = b.lo + Reach
	}
	if whi <= wlo || whi-wlo < size {
		return 0, ErrUnsupported
	}
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
			x = alignUp(x, gran)
			if x >= y || y-x < size {
				return
			}
			// Nearest end of the hole to the region.
			at := x
			if x >= b.hi {
				holes = append(holes, hole{x, x - b.hi})
				return
			}
			at = (y - size) &^ (gran - 1)
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
		v, err := b.mapLib(lib, at, size, osmem.Exact)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, osmem.ErrExists) {
			return 0, err
		}
		b.losses++
		failed = [2]uintptr{at, at + size}
	}
	return 0, fmt.Errorf("bench: near placement of %s: holes kept being taken: %w", lib.Name, ErrUnsupported)
}

// relocated reports whether lib mapped at addr pays relocation: it has a
// preferred base (a PE image; ELF shared objects are position-independent)
// and is not there.
func relocated(lib Lib, addr uintptr) bool { return lib.Pref != 0 && addr != lib.Pref }
