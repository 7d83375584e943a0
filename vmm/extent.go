package vmm

import (
	"fmt"
	"sync"

	"github.com/google/btree"
)

// extent is a run of free bytes [start, start+size).
type extent struct {
	start, size uintptr
}

func (e extent) end() uintptr { return e.start + e.size }

func byStart(a, b extent) bool { return a.start < b.start }

func bySize(a, b extent) bool {
	if a.size != b.size {
		return a.size < b.size
	}
	return a.start < b.start
}

// extentAllocator hands out aligned ranges of a fixed region. Free space is
// kept as extents in two btrees, by address (for coalescing and exact
// requests) and by size (for best fit), so allocation and free are
// O(log n) in the number of free extents, where DynamoRIO's bitmap is O(n)
// in the number of blocks.
//
// It is safe for concurrent use.
type extentAllocator struct {
	// base and limit bound the region: [base, limit). Immutable.
	base, limit uintptr
	// unit is the allocation unit: every start and size is a multiple of
	// it. Immutable.
	unit uintptr

	// mu guards everything below.
	mu sync.Mutex
	// addrs and sizes index the same set of free extents. Invariant: free
	// extents are disjoint, non-adjacent (coalesced) and unit aligned.
	addrs *btree.BTreeG[extent]
	sizes *btree.BTreeG[extent]
	// free is the total size of the free extents.
	free uintptr
}

// ExhaustedError reports that a region cannot satisfy a request. Nothing is
// ever placed outside the region instead (DESIGN.md invariant 6).
type ExhaustedError struct {
	// Region names the region: "vmcode" or "vmheap".
	Region string
	// Asked is the size requested, Align its alignment.
	Asked, Align uintptr
	// Free is the total free space left; Largest the largest free extent.
	Free, Largest uintptr
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("vmm: %s exhausted: asked %#x bytes (align %#x), %#x free, largest free extent %#x",
		e.Region, e.Asked, e.Align, e.Free, e.Largest)
}

func newExtentAllocator(base, size, unit uintptr) *extentAllocator {
	a := &extentAllocator{
		base:  base,
		limit: base + size,
		unit:  unit,
		addrs: btree.NewG(16, byStart),
		sizes: btree.NewG(16, bySize),
	}
	a.insertLocked(extent{base, size})
	return a
}

func (a *extentAllocator) insertLocked(e extent) {
	a.addrs.ReplaceOrInsert(e)
	a.sizes.ReplaceOrInsert(e)
	a.free += e.size
}

func (a *extentAllocator) removeLocked(e extent) {
	a.addrs.Delete(e)
	a.sizes.Delete(e)
	a.free -= e.size
}

// takeLocked removes [start, start+size) from the free extent e, which
// contains it, putting back what is left on either side.
func (a *extentAllocator) takeLocked(e extent, start, size uintptr) {
	a.removeLocked(e)
	if start > e.start {
		a.insertLocked(extent{e.start, start - e.start})
	}
	if end := start + size; end < e.end() {
		a.insertLocked(extent{end, e.end() - end})
	}
}

func (a *extentAllocator) exhausted(region string, size, align uintptr) error {
	largest := uintptr(0)
	if e, ok := a.sizes.Max(); ok {
		largest = e.size
	}
	return &ExhaustedError{Region: region, Asked: size, Align: align, Free: a.free, Largest: largest}
}

// alloc returns the start of size free bytes aligned to align: the
// smallest free extent that fits (best fit), lowest address among equals.
// Candidates are visited in size order from size up; only extents that fit
// the size but not once aligned are skipped, so the cost is O(log n) plus
// the number of such near misses.
//
// Preconditions: size and align are non-zero multiples of a.unit; align is
// a power of two.
func (a *extentAllocator) alloc(region string, size, align uintptr) (uintptr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var (
		found extent
		start uintptr
		ok    bool
	)
	a.sizes.AscendGreaterOrEqual(extent{size: size}, func(e extent) bool {
		s := (e.start + align - 1) &^ (align - 1)
		if s >= e.start && s-e.start <= e.size-size {
			found, start, ok = e, s, true
			return false
		}
		return true
	})
	if !ok {
		return 0, a.exhausted(region, size, align)
	}
	a.takeLocked(found, start, size)
	return start, nil
}

// allocAt claims exactly [start, start+size), which must be free.
func (a *extentAllocator) allocAt(region string, start, size uintptr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if start < a.base || start+size > a.limit || start+size < start {
		return fmt.Errorf("vmm: %s: [%#x, +%#x) lies outside the region [%#x, %#x)", region, start, size, a.base, a.limit)
	}
	var e extent
	found := false
	a.addrs.DescendLessOrEqual(extent{start: start}, func(x extent) bool {
		e, found = x, true
		return false
	})
	if !found || e.end() < start+size {
		return fmt.Errorf("vmm: %s: [%#x, +%#x) is not free", region, start, size)
	}
	a.takeLocked(e, start, size)
	return nil
}

// release returns [start, start+size) to the free extents, coalescing with
// its neighbours. A range that is not wholly allocated (it overlaps free
// space or leaves the region) is refused: freeing twice is a caller bug
// that must not corrupt the allocator.
func (a *extentAllocator) release(region string, start, size uintptr) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	end := start + size
	if size == 0 || start < a.base || end > a.limit || end < start || start%a.unit != 0 || size%a.unit != 0 {
		return fmt.Errorf("vmm: %s: cannot free [%#x, +%#x): not an aligned range of the region [%#x, %#x)", region, start, size, a.base, a.limit)
	}
	var prev, next extent
	hasPrev, hasNext := false, false
	a.addrs.DescendLessOrEqual(extent{start: start}, func(x extent) bool {
		prev, hasPrev = x, true
		return false
	})
	a.addrs.AscendGreaterOrEqual(extent{start: start}, func(x extent) bool {
		next, hasNext = x, true
		return false
	})
	if (hasPrev && prev.end() > start) || (hasNext && next.start < end) {
		return fmt.Errorf("vmm: %s: cannot free [%#x, +%#x): part of it is already free", region, start, size)
	}
	e := extent{start, size}
	if hasPrev && prev.end() == start {
		a.removeLocked(prev)
		e = extent{prev.start, e.size + prev.size}
	}
	if hasNext && next.start == end {
		a.removeLocked(next)
		e.size += next.size
	}
	a.insertLocked(e)
	return nil
}

// freeBytes returns the total free space.
func (a *extentAllocator) freeBytes() uintptr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.free
}
