package mem

import "math"

// Rel32Min and Rel32Max bound a rel32 displacement: a call, jump or
// RIP-relative operand whose displacement is taken at next (the end of its
// instruction) reaches [next+Rel32Min, next+Rel32Max].
const (
	Rel32Min = math.MinInt32
	Rel32Max = math.MaxInt32
)

// Rel32 returns the displacement from next (the end of the instruction
// that holds it) to target. ok is false if target is out of reach.
func Rel32(next, target uintptr) (d int32, ok bool) {
	d64 := int64(target) - int64(next)
	if d64 < Rel32Min || d64 > Rel32Max {
		return 0, false
	}
	return int32(d64), true
}

// Reachable reports whether a rel32 displacement taken at from (the end of
// the instruction that holds it) reaches to.
func Reachable(from, to uintptr) bool {
	_, ok := Rel32(from, to)
	return ok
}

// ReachesAll reports whether target is rel32-reachable from every address
// of r. It is HotSpot's rule (CodeCache::reachable): a target is reachable
// from a region only if it is reachable from both its ends, which, reach
// being an interval, covers everything in between. An empty r reaches
// nothing.
func ReachesAll(r Range, target uintptr) bool {
	return !r.Empty() && Reachable(r.Start, target) && Reachable(r.End, target)
}

// NearWindow returns the largest range, aligned to align and clipped to
// within, every address of which is rel32-reachable from every address of
// r, and every address of r from it: a region placed inside the window may
// call r, and r it, with rel32 displacements. ok is false if the window is
// empty.
//
// Preconditions: r is non-empty; align is a power of two.
func NearWindow(r Range, within Range, align uintptr) (w Range, ok bool) {
	// Reach both ways means a distance of at most Rel32Max (a displacement
	// of Rel32Min reaches one way only). Lowest start: (r.End-1) -
	// Rel32Max; highest end (exclusive): r.Start + Rel32Max + 1.
	lo := within.Start
	if m := int64(r.End-1) - Rel32Max; m > int64(lo) {
		lo = uintptr(m)
	}
	hi := within.End
	if m := uint64(r.Start) + Rel32Max + 1; m < uint64(hi) {
		hi = uintptr(m)
	}
	lo, ok = AlignUp(lo, align)
	hi = AlignDown(hi, align)
	if !ok || hi <= lo {
		return Range{}, false
	}
	return Range{Start: lo, End: hi}, true
}
