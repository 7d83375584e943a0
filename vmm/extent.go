package vmm

import (
	"fmt"
	"math/bits"
	"sync"

	"github.com/reachvm/reachvm/mem"
)

// The block allocator.
//
// DynamoRIO's VMM keeps one bit per block and scans it first fit from
// block 0 (core/heap.c): O(n) in the blocks of the region, which at 2 GiB
// of 4 KiB blocks is 524,288 bits to walk when the low part is full. The
// extent allocator below keeps the free extents themselves, indexed two
// ways, so that neither allocation nor free walks the region:
//
//   - by size: a two-level segregated fit (TLSF, Masmano et al. 2004). A
//     free extent of n blocks sits on the doubly linked list of its size
//     class; classes are exact below 64 blocks and 32 per power of two
//     above (so a class spans at most 1/32 of its lower bound), and two
//     bitmaps of non-empty classes find the first non-empty class at or
//     above a size in two count-trailing-zeros. Allocation takes the most
//     recently freed extent of the first non-empty class whose every extent
//     fits, carving from its low end, O(1). Below 64 blocks that is best fit
//     by size; from 64 blocks on it is a good fit: it passes over extents of
//     the request's own class (some of which may fit) for the next class up.
//   - by address: one bit per block (set = allocated) with a summary bit per
//     64-block word, and boundary tags: the first and last block of every
//     free extent name its record. Free finds its neighbours by testing the
//     blocks on either side and reading their tags (O(1) coalescing); an
//     exact-address request finds the extent holding its start by a
//     backward scan of the bitmap and its summary (O(N/4096) words at
//     worst, a few hundred for 8 GiB).
//
// Besides that, alloc and free mark the request's blocks in the bitmap and
// release checks them (a double or partial free is refused): O(n/64) words
// for an n-block request, the same order as touching its pages once.
//
// No fit is ever missed. When the good-fit search finds nothing, alloc
// walks the extents that might still fit: those of the request's own
// class (an unaligned request), or every non-empty class from there up (a
// request aligned to more than one block, whose padding depends on where
// each extent starts). A caller therefore gets ExhaustedError only when no
// free run of the asked size and alignment exists anywhere; that fallback
// costs O(free extents in the classes walked), and only runs when the region
// is nearly exhausted for the size asked.
//
// Memory, for N blocks and F free extents: N/8 bytes of bitmap (64 KiB for
// 2 GiB of 4 KiB blocks, 256 KiB for 8 GiB), N/4096 bytes of summary, 16
// bytes per free extent record (the slice grows by doubling and never
// shrinks), and boundary tags of 4 bytes a block, allocated lazily in
// chunks of tagChunk blocks only where a free extent has ever started or
// ended: the part of the region in use, not its size. Measured: a fresh
// 2 GiB vmcode takes 101 KiB, a fresh 8 GiB vmheap 299 KiB, vmcode churned
// to 90% full (11,000 free extents) 2.4 MiB. The worst case, every other
// block free across the whole region, is 4 + 8 bytes a block: 6 MiB for
// 2 GiB, 24 MiB for 8 GiB.
const (
	// slBits is log2 of the number of second-level classes per power of two.
	slBits  = 5
	slCount = 1 << slBits
	// flCount first-level classes cover every extent below 1<<31 blocks.
	flCount    = 31 - slBits + 1
	classCount = flCount * slCount
	// maxBlocks bounds a region's blocks so that block numbers and record
	// indices fit in 31 bits (8 TiB of 4 KiB blocks).
	maxBlocks = 1<<31 - 1

	tagShift = 12
	tagChunk = 1 << tagShift

	// noSpan ends a class list and marks an absent record.
	noSpan = -1
)

// span is a free extent: blocks [start, start+n). Free records are chained
// through next on the allocator's recycled list.
type span struct {
	start, n   uint32
	next, prev int32
}

// extentAllocator hands out ranges of a fixed region in whole units (a
// block is one unit). See the comment above for the structures and their
// costs.
//
// It is safe for concurrent use: one mutex guards all mutable state and is
// held only across the structure updates, never while validating arguments
// or formatting errors.
//
// Invariants, whenever mu is not held (checkInvariants in the tests walks
// them all):
//   - the free extents are the maximal runs of clear bits in used: disjoint,
//     coalesced (never adjacent), each exactly one record on the list of
//     the class of its size;
//   - the tags at the first and last block of each free extent name its
//     record; records not listed are on the recycled list;
//   - heads, flMap and slMap agree; summary agrees with used; free is the
//     number of clear bits below nblocks.
type extentAllocator struct {
	// base and size bound the region: [base, base+size). unit is the
	// block size; every start and size is a multiple of it. shift is
	// log2(unit) when unit is a power of two, else -1. nblocks is
	// size/unit. All immutable.
	base, size, unit uintptr
	shift            int
	nblocks          uint32

	mu sync.Mutex

	// used has one bit per block, set when the block is allocated; the
	// bits past nblocks in the last word are set.
	// +checklocks:mu
	used []uint64

	// summary has one bit per word of used, set when that word is not
	// zero (holds an allocated block).
	// +checklocks:mu
	summary []uint64

	// tags[b>>tagShift][b&(tagChunk-1)] is the record of the free extent
	// that starts or ends at block b. Meaningful only at the first and
	// last block of a free extent; chunks are allocated on first write,
	// so a region costs tag memory only where it has been used.
	// +checklocks:mu
	tags []*[tagChunk]int32

	// spans holds the records, listed or recycled.
	// +checklocks:mu
	spans []span

	// recycled chains the unused records through next.
	// +checklocks:mu
	recycled int32

	// heads[c] is the first record of size class c, or noSpan.
	// +checklocks:mu
	heads [classCount]int32

	// flMap has bit fl set when some class fl*slCount+sl is non-empty;
	// slMap[fl] has bit sl set when class fl*slCount+sl is.
	// +checklocks:mu
	flMap uint32
	// +checklocks:mu
	slMap [flCount]uint32

	// free counts the free blocks.
	// +checklocks:mu
	free uint32
}

// ExhaustedError reports that a region cannot satisfy a request. Nothing is
// ever placed outside the region instead (docs/ARCHITECTURE.md invariant 6).
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

// newExtentAllocator returns an allocator over [base, base+size), all free,
// in blocks of unit bytes. It panics unless unit is non-zero, base and size
// are multiples of it, and size/unit is at most maxBlocks: regions are made
// by the VMM from checked configurations, so a violation is a bug.
func newExtentAllocator(base, size, unit uintptr) *extentAllocator {
	if unit == 0 || base%unit != 0 || size%unit != 0 || uint64(size/unit) > maxBlocks {
		panic(fmt.Sprintf("vmm: extent allocator over [%#x, +%#x) in units of %#x: bad geometry", base, size, unit))
	}
	n := uint32(size / unit)
	words := (int(n) + 63) / 64
	a := &extentAllocator{
		base:     base,
		size:     size,
		unit:     unit,
		shift:    -1,
		nblocks:  n,
		used:     make([]uint64, words),
		summary:  make([]uint64, (words+63)/64),
		tags:     make([]*[tagChunk]int32, (int(n)+tagChunk-1)/tagChunk),
		recycled: noSpan,
	}
	if unit&(unit-1) == 0 {
		a.shift = bits.TrailingZeros64(uint64(unit))
	}
	for i := range a.heads {
		a.heads[i] = noSpan
	}
	if tail := n % 64; tail != 0 {
		// The blocks past the end count as allocated: no run crosses them.
		a.used[words-1] = ^uint64(0) << tail
		a.summary[(words-1)/64] |= 1 << ((words - 1) % 64)
	}
	if n > 0 {
		a.insert(a.newSpan(0, n))
		a.free = n
	}
	return a
}

// blocks converts a byte count that is a multiple of unit to blocks.
func (a *extentAllocator) blocks(b uintptr) uintptr {
	if a.shift >= 0 {
		return b >> a.shift
	}
	return b / a.unit
}

// whole reports whether b is a multiple of unit.
func (a *extentAllocator) whole(b uintptr) bool {
	if a.shift >= 0 {
		return b&(a.unit-1) == 0
	}
	return b%a.unit == 0
}

// bytes converts blocks to bytes.
func (a *extentAllocator) bytes(n uint32) uintptr {
	if a.shift >= 0 {
		return uintptr(n) << a.shift
	}
	return uintptr(n) * a.unit
}

// classOf returns the size class an extent of n >= 1 blocks is listed in.
func classOf(n uint32) int {
	if n < 2*slCount {
		return int(n) // Exact classes: fl 0 and 1.
	}
	f := bits.Len32(n) - 1
	return (f-slBits+1)<<slBits + int(n>>(f-slBits)) - slCount
}

// classAtLeast returns the first class whose every extent has at least n
// blocks, and false when no class is that large.
func classAtLeast(n uint64) (int, bool) {
	if n >= 2*slCount {
		f := bits.Len64(n) - 1
		step := uint64(1) << (f - slBits)
		var ok bool
		n, ok = mem.AlignUp(n, step)
		if !ok || n > maxBlocks {
			return 0, false
		}
	}
	return classOf(uint32(n)), true
}

// findClass returns the first non-empty class at or above c, or -1.
func (a *extentAllocator) findClass(c int) int {
	if c >= classCount {
		return -1
	}
	fl, sl := c>>slBits, c&(slCount-1)
	if m := a.slMap[fl] & (^uint32(0) << sl); m != 0 {
		return fl<<slBits | bits.TrailingZeros32(m)
	}
	m := a.flMap & (^uint32(0) << (fl + 1))
	if m == 0 {
		return -1
	}
	fl = bits.TrailingZeros32(m)
	return fl<<slBits | bits.TrailingZeros32(a.slMap[fl])
}

func (a *extentAllocator) newSpan(start, n uint32) int32 {
	i := a.recycled
	if i == noSpan {
		i = int32(len(a.spans))
		a.spans = append(a.spans, span{})
	} else {
		a.recycled = a.spans[i].next
	}
	a.spans[i] = span{start: start, n: n, next: noSpan, prev: noSpan}
	return i
}

func (a *extentAllocator) dropSpan(i int32) {
	a.spans[i] = span{next: a.recycled, prev: noSpan}
	a.recycled = i
}

func (a *extentAllocator) setTag(b uint32, i int32) {
	c := a.tags[b>>tagShift]
	if c == nil {
		c = new([tagChunk]int32)
		a.tags[b>>tagShift] = c
	}
	c[b&(tagChunk-1)] = i
}

// tag returns the record named at block b, which must be the first or last
// block of a free extent.
func (a *extentAllocator) tag(b uint32) int32 {
	return a.tags[b>>tagShift][b&(tagChunk-1)]
}

// insert lists record i in its class and tags its boundary blocks.
func (a *extentAllocator) insert(i int32) {
	s := &a.spans[i]
	a.setTag(s.start, i)
	a.setTag(s.start+s.n-1, i)
	c := classOf(s.n)
	s.prev = noSpan
	s.next = a.heads[c]
	if s.next != noSpan {
		a.spans[s.next].prev = i
	}
	a.heads[c] = i
	a.slMap[c>>slBits] |= 1 << (c & (slCount - 1))
	a.flMap |= 1 << (c >> slBits)
}

// unlink removes record i from its class list.
func (a *extentAllocator) unlink(i int32) {
	s := &a.spans[i]
	if s.prev != noSpan {
		a.spans[s.prev].next = s.next
	} else {
		c := classOf(s.n)
		a.heads[c] = s.next
		if s.next == noSpan {
			fl := c >> slBits
			a.slMap[fl] &^= 1 << (c & (slCount - 1))
			if a.slMap[fl] == 0 {
				a.flMap &^= 1 << fl
			}
		}
	}
	if s.next != noSpan {
		a.spans[s.next].prev = s.prev
	}
}

// pad returns how many blocks past block start the first address aligned
// to align (a multiple of unit) lies.
func (a *extentAllocator) pad(start uint32, align uintptr) uint32 {
	addr := a.base + a.bytes(start)
	var p uintptr
	if align&(align-1) == 0 {
		p = -addr & (align - 1)
	} else if r := addr % align; r != 0 {
		p = align - r
	}
	return uint32(a.blocks(p))
}

// fits reports whether record i holds n blocks aligned to align, and where.
func (a *extentAllocator) fits(i int32, n uint32, align uintptr) (uint32, bool) {
	s := &a.spans[i]
	if align <= a.unit {
		return s.start, s.n >= n
	}
	p := a.pad(s.start, align)
	return s.start + p, s.n >= n && s.n-n >= p
}

// fit finds a free extent holding n blocks aligned to align and returns
// its record and the aligned start, or noSpan.
func (a *extentAllocator) fit(n uint32, align uintptr) (int32, uint32) {
	// Good fit: the first non-empty class whose every extent holds n
	// blocks. Unaligned, its head fits; aligned, it may not.
	if c, ok := classAtLeast(uint64(n)); ok {
		if c = a.findClass(c); c >= 0 {
			if at, ok := a.fits(a.heads[c], n, align); ok {
				return a.heads[c], at
			}
		}
	}
	first := classOf(n)
	if align > a.unit {
		// Every extent of n+align-1 blocks holds an aligned run of n
		// (align here in blocks, so the padding is at most align-1).
		if c, ok := classAtLeast(uint64(n) + uint64(a.blocks(align)) - 1); ok {
			if c = a.findClass(c); c >= 0 {
				at, _ := a.fits(a.heads[c], n, align)
				return a.heads[c], at
			}
		}
		// Exhaustive: any extent of n or more blocks may hold one.
		for c := a.findClass(first); c >= 0; c = a.findClass(c + 1) {
			for i := a.heads[c]; i != noSpan; i = a.spans[i].next {
				if at, ok := a.fits(i, n, align); ok {
					return i, at
				}
			}
		}
		return noSpan, 0
	}
	// Unaligned, only the request's own class can hold a fit the good-fit
	// search skipped: lower classes are smaller than n, higher ones empty.
	for i := a.heads[first]; i != noSpan; i = a.spans[i].next {
		if a.spans[i].n >= n {
			return i, a.spans[i].start
		}
	}
	return noSpan, 0
}

// carve allocates blocks [at, at+n) out of free record i, which holds them,
// and lists what is left on either side.
func (a *extentAllocator) carve(i int32, at, n uint32) {
	a.unlink(i)
	s := a.spans[i]
	a.markUsed(at, n)
	a.free -= n
	front, back := at-s.start, s.start+s.n-(at+n)
	if front > 0 {
		a.spans[i].n = front
		a.insert(i)
		if back > 0 {
			a.insert(a.newSpan(at+n, back))
		}
		return
	}
	if back > 0 {
		a.spans[i].start, a.spans[i].n = at+n, back
		a.insert(i)
		return
	}
	a.dropSpan(i)
}

// largest returns the largest free extent in blocks: the largest of the
// top non-empty class.
func (a *extentAllocator) largest() uint32 {
	if a.flMap == 0 {
		return 0
	}
	fl := bits.Len32(a.flMap) - 1
	c := fl<<slBits | (bits.Len32(a.slMap[fl]) - 1)
	m := uint32(0)
	for i := a.heads[c]; i != noSpan; i = a.spans[i].next {
		m = max(m, a.spans[i].n)
	}
	return m
}

// alloc returns the start of size free bytes aligned to align (relative to
// address 0, not to the region): a good fit by size class, taken from the
// start of the chosen extent. O(1) plus O(size/unit/64) to mark the
// blocks; see the top of this file for the fallback near exhaustion.
//
// size must be a non-zero multiple of unit and align a non-zero multiple
// or divisor of unit (a power of two, as a rule, but the grid's 640 KiB
// works too); otherwise alloc returns an error.
// When no aligned run of size bytes is free, the error is *ExhaustedError.
func (a *extentAllocator) alloc(region string, size, align uintptr) (uintptr, error) {
	if size == 0 || !a.whole(size) || align == 0 || (!a.whole(align) && a.unit%align != 0) {
		return 0, fmt.Errorf("vmm: %s: cannot allocate %#x bytes aligned to %#x: the size must be a non-zero multiple of the unit %#x, the alignment a multiple or divisor of it", region, size, align, a.unit)
	}
	nb := a.blocks(size)
	a.mu.Lock()
	i, at := int32(noSpan), uint32(0)
	if uint64(nb) <= uint64(a.nblocks) {
		i, at = a.fit(uint32(nb), align)
	}
	if i == noSpan {
		free, largest := a.free, a.largest()
		a.mu.Unlock()
		return 0, &ExhaustedError{Region: region, Asked: size, Align: align, Free: a.bytes(free), Largest: a.bytes(largest)}
	}
	a.carve(i, at, uint32(nb))
	a.mu.Unlock()
	return a.base + a.bytes(at), nil
}

// blockRange converts [start, start+size) to blocks [b, b+n) of the region,
// or reports false if it is empty, unaligned or not wholly inside.
func (a *extentAllocator) blockRange(start, size uintptr) (b, n uint32, ok bool) {
	if size == 0 || start < a.base || start-a.base > a.size || size > a.size-(start-a.base) ||
		!a.whole(start-a.base) || !a.whole(size) {
		return 0, 0, false
	}
	return uint32(a.blocks(start - a.base)), uint32(a.blocks(size)), true
}

// allocAt claims exactly [start, start+size), which must be free: the
// exact-address request behind file slots (DynamoRIO's
// heap_reserve_for_external_mapping). O(size/unit/64) plus the backward
// scan for the extent holding start.
func (a *extentAllocator) allocAt(region string, start, size uintptr) error {
	b, n, ok := a.blockRange(start, size)
	if !ok {
		return fmt.Errorf("vmm: %s: [%#x, +%#x) is not an aligned range of the region [%#x, %#x)", region, start, size, a.base, a.base+a.size)
	}
	a.mu.Lock()
	if !a.allClear(b, n) {
		a.mu.Unlock()
		return fmt.Errorf("vmm: %s: [%#x, +%#x) is not free", region, start, size)
	}
	first := uint32(0)
	if u, ok := a.prevUsed(b); ok {
		first = u + 1
	}
	a.carve(a.tag(first), b, n)
	a.mu.Unlock()
	return nil
}

// release returns [start, start+size) to the free extents, coalescing with
// its neighbours in O(1) after checking the range's blocks in
// O(size/unit/64). A range that is not wholly allocated (it overlaps free
// space, leaves the region or is unaligned) is refused and changes nothing:
// freeing twice is a caller bug that must not corrupt the allocator.
func (a *extentAllocator) release(region string, start, size uintptr) error {
	b, n, ok := a.blockRange(start, size)
	if !ok {
		return fmt.Errorf("vmm: %s: cannot free [%#x, +%#x): not an aligned range of the region [%#x, %#x)", region, start, size, a.base, a.base+a.size)
	}
	a.mu.Lock()
	if !a.allSet(b, n) {
		a.mu.Unlock()
		return fmt.Errorf("vmm: %s: cannot free [%#x, +%#x): part of it is already free", region, start, size)
	}
	a.markFree(b, n)
	a.free += n
	left, right := int32(noSpan), int32(noSpan)
	if b > 0 && !a.isUsed(b-1) {
		left = a.tag(b - 1)
		a.unlink(left)
	}
	if end := b + n; end < a.nblocks && !a.isUsed(end) {
		right = a.tag(end)
		a.unlink(right)
	}
	switch {
	case left != noSpan && right != noSpan:
		a.spans[left].n += n + a.spans[right].n
		a.dropSpan(right)
		a.insert(left)
	case left != noSpan:
		a.spans[left].n += n
		a.insert(left)
	case right != noSpan:
		a.spans[right].start = b
		a.spans[right].n += n
		a.insert(right)
	default:
		a.insert(a.newSpan(b, n))
	}
	a.mu.Unlock()
	return nil
}

// freeBytes returns the total free space.
func (a *extentAllocator) freeBytes() uintptr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bytes(a.free)
}

// largestFree returns the size of the largest free extent.
func (a *extentAllocator) largestFree() uintptr {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.bytes(a.largest())
}

// sideBytes returns the memory the allocator's structures take, for
// reports: bitmap, summary, tag chunks present and records.
func (a *extentAllocator) sideBytes() uintptr {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := uintptr(len(a.used)+len(a.summary))*8 + uintptr(len(a.tags))*8 +
		uintptr(cap(a.spans))*16 + uintptr(len(a.heads))*4
	for _, c := range a.tags {
		if c != nil {
			n += tagChunk * 4
		}
	}
	return n
}

// Bitmap primitives over used. Every word written goes through setWord,
// which keeps summary in step.

func (a *extentAllocator) setWord(w int, v uint64) {
	a.used[w] = v
	if v != 0 {
		a.summary[w>>6] |= 1 << (w & 63)
	} else {
		a.summary[w>>6] &^= 1 << (w & 63)
	}
}

func (a *extentAllocator) isUsed(b uint32) bool {
	return a.used[b>>6]&(1<<(b&63)) != 0
}

// wordMask returns the mask of bits [lo, lo+cnt) of a word, cnt in 1..64.
func wordMask(lo, cnt uint32) uint64 {
	return (^uint64(0) >> (64 - cnt)) << lo
}

// allSet reports whether blocks [b, b+n) are all allocated.
func (a *extentAllocator) allSet(b, n uint32) bool {
	for n > 0 {
		lo := b & 63
		cnt := min(64-lo, n)
		if m := wordMask(lo, cnt); a.used[b>>6]&m != m {
			return false
		}
		b, n = b+cnt, n-cnt
	}
	return true
}

// allClear reports whether blocks [b, b+n) are all free.
func (a *extentAllocator) allClear(b, n uint32) bool {
	for n > 0 {
		lo := b & 63
		cnt := min(64-lo, n)
		if a.used[b>>6]&wordMask(lo, cnt) != 0 {
			return false
		}
		b, n = b+cnt, n-cnt
	}
	return true
}

func (a *extentAllocator) markUsed(b, n uint32) {
	for n > 0 {
		lo := b & 63
		cnt := min(64-lo, n)
		w := int(b >> 6)
		a.setWord(w, a.used[w]|wordMask(lo, cnt))
		b, n = b+cnt, n-cnt
	}
}

func (a *extentAllocator) markFree(b, n uint32) {
	for n > 0 {
		lo := b & 63
		cnt := min(64-lo, n)
		w := int(b >> 6)
		a.setWord(w, a.used[w]&^wordMask(lo, cnt))
		b, n = b+cnt, n-cnt
	}
}

// prevUsed returns the last allocated block below b, using the summary to
// skip free words 64 at a time.
func (a *extentAllocator) prevUsed(b uint32) (uint32, bool) {
	w := int(b >> 6)
	if m := a.used[w] & (uint64(1)<<(b&63) - 1); m != 0 {
		return uint32(w<<6 | (63 - bits.LeadingZeros64(m))), true
	}
	sw := w >> 6
	m := a.summary[sw] & (uint64(1)<<(w&63) - 1)
	for m == 0 {
		if sw == 0 {
			return 0, false
		}
		sw--
		m = a.summary[sw]
	}
	w = sw<<6 | (63 - bits.LeadingZeros64(m))
	return uint32(w<<6 | (63 - bits.LeadingZeros64(a.used[w]))), true
}
