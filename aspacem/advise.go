package aspacem

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/reachvm/reachvm/mem"
)

// ErrNoSpace is returned (wrapped) by Advise when no free range satisfies
// the request.
var ErrNoSpace = errors.New("aspacem: no free range fits")

// Advise returns the start p of a free range [p, p+size) for a new
// mapping: p is a multiple of max(align, Granularity), the whole range is
// free in the map, and it is placed as near to near as possible within
// maxDist. It is Valgrind's am_get_advisory for MAny/MHint requests, but
// nearest-fit in O(log n) rather than first-fit in O(n). Advise changes
// nothing: the caller maps at p, then calls Update.
//
// Distance. The distance of a placement is that of its farther end:
//
//	D(p) = max(near - p, p + size - near)
//
// (for a range wholly above near that is p+size-near, wholly below
// near-p, and for one straddling near the larger of the two). Every byte
// of [p, p+size) then lies within D(p) of near, which is what rel32 reach
// needs. A placement is valid iff D(p) <= maxDist, i.e. iff
// near-maxDist <= p and p+size <= near+maxDist; among valid placements
// Advise returns one of least D(p), the lower address on a tie. D(p) is
// least when the range is centred on near: if near lies in a large free
// gap the advice straddles it.
//
// Special values: maxDist == 0 means no distance limit (the nearest
// placement anywhere); near == 0 means no preference: the lowest fitting
// address in the map (first fit, as Valgrind), and maxDist is ignored.
//
// Errors: size must be a non-zero multiple of the page size and align 0 or
// a power of two (errors wrap nothing); when nothing fits the error wraps
// ErrNoSpace.
//
// Complexity: the free gaps are indexed by an augmented treap whose nodes
// know the largest gap below them, counted after rounding both gap ends to
// the granularity. Advise makes one descent on each side of near, so it
// is O(log n) (expected, n = number of segments) whenever align <=
// Granularity, the usual case. A larger align can make a gap that is big
// enough at the granularity too small once aligned; such a gap is skipped
// at O(log n) each, so the cost is O((1+m) log n) for m such gaps lying
// between near and the answer. There is no cap on n.
func (m *Map) Advise(size, align, near, maxDist uintptr) (uintptr, error) {
	ps := m.cfg.PageSize
	if size == 0 || size%ps != 0 {
		return 0, fmt.Errorf("aspacem: advise: size %#x is not a non-zero multiple of the page size %#x", size, ps)
	}
	if align != 0 && bits.OnesCount64(uint64(align)) != 1 {
		return 0, fmt.Errorf("aspacem: advise: alignment %#x is not a power of two", align)
	}
	a := max(align, m.cfg.Granularity)
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.adviseLocked(size, a, near, maxDist)
	if !ok {
		if near == 0 || maxDist == 0 {
			return 0, fmt.Errorf("aspacem: advise %#x bytes aligned %#x near %#x: %w", size, a, near, ErrNoSpace)
		}
		return 0, fmt.Errorf("aspacem: advise %#x bytes aligned %#x within %#x of %#x: %w", size, a, maxDist, near, ErrNoSpace)
	}
	return p, nil
}

// adviseLocked implements Advise with a, the effective alignment, a power
// of two >= Granularity.
//
// Preconditions: m.mu is held; size is a non-zero page multiple.
func (m *Map) adviseLocked(size, a, near, maxDist uintptr) (uintptr, bool) {
	t := m.gaps
	if near == 0 {
		// Lowest address: first fit by address.
		for n := t.firstFit(0, size); n != nil; n = t.firstFit(n.start+1, size) {
			if p, ok := fitUp(n.start, n.start, n.end, size, a, ^uintptr(0)); ok {
				return p, true
			}
		}
		return 0, false
	}

	// The window [wlo, whi] every valid placement lies in.
	wlo, whi := uintptr(0), ^uintptr(0)
	if maxDist != 0 {
		if maxDist < size/2 {
			return 0, false // even a range centred on near reaches too far
		}
		if near > maxDist {
			wlo = near - maxDist
		}
		if near+maxDist >= near {
			whi = near + maxDist
		}
		if whi < size {
			return 0, false
		}
	}
	// The ideal start c = near - size/2 (size is even). Placements with
	// p <= c are "below", the others "above".
	below := near >= size/2
	var c uintptr
	if below {
		c = near - size/2
	}

	var bestLo, bestHi uintptr
	foundLo, foundHi := false, false
	if below {
		// Highest placement p <= c. Gaps are visited by decreasing
		// start; a gap's best candidate is higher than that of any gap
		// before it, so the first hit is the answer on this side.
		for n := t.lastFit(c, size); n != nil; {
			if n.end <= wlo || n.end-wlo < size {
				break // this gap and all lower ones end too low
			}
			if p, ok := fitDown(n.start, n.end, size, a, min(c, whi-size), wlo); ok {
				bestLo, foundLo = p, true
				break
			}
			if n.start == 0 {
				break
			}
			n = t.lastFit(n.start-1, size)
		}
	}
	// Lowest placement p >= c: start from the gap containing c, if any.
	key := c
	if g := t.floor(c); g != nil && g.end > c {
		key = g.start
	}
	for n := t.firstFit(key, size); n != nil; n = t.firstFit(n.start+1, size) {
		if n.start > whi || whi-n.start < size {
			break // this gap and all higher ones start too high
		}
		lo := c
		if !below {
			lo = 0
		}
		if p, ok := fitUp(max(lo, wlo), n.start, n.end, size, a, whi); ok {
			bestHi, foundHi = p, true
			break
		}
		if n.start == ^uintptr(0) {
			break
		}
	}
	switch {
	case foundLo && foundHi:
		if bestHi-c < c-bestLo {
			return bestHi, true
		}
		return bestLo, true
	case foundLo:
		return bestLo, true
	case foundHi:
		return bestHi, true
	}
	return 0, false
}

// fitUp returns the lowest a-aligned p with p >= from, p >= gs,
// p+size <= ge and p+size <= limit.
func fitUp(from, gs, ge, size, a, limit uintptr) (uintptr, bool) {
	lo := max(from, gs)
	p, ok := mem.AlignUp(lo, a)
	if !ok {
		return 0, false
	}
	end := ge
	if limit < end {
		end = limit
	}
	if end < size || p > end-size {
		return 0, false
	}
	return p, true
}

// fitDown returns the highest a-aligned p with p <= top, p >= gs,
// p >= floor and p+size <= ge.
func fitDown(gs, ge, size, a, top, floor uintptr) (uintptr, bool) {
	if ge < size {
		return 0, false
	}
	hi := min(top, ge-size)
	p := mem.AlignDown(hi, a)
	if p < gs || p < floor {
		return 0, false
	}
	return p, true
}
