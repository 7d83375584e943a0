package mem

import "fmt"

// Range is the address range [Start, End).
//
// Invariant of a well-formed range: Start <= End. The zero Range is empty
// and well formed. The constructors below never make an ill-formed one;
// a literal can, and WellFormed tells.
type Range struct {
	Start, End uintptr
}

// RangeOf returns [start, start+size). ok is false if the end overflows the
// address space (the range would wrap).
func RangeOf(start, size uintptr) (r Range, ok bool) {
	end := start + size
	if end < start {
		return Range{}, false
	}
	return Range{Start: start, End: end}, true
}

// WellFormed reports whether Start <= End.
func (r Range) WellFormed() bool { return r.Start <= r.End }

// Size returns End - Start.
//
// Preconditions: r is well formed.
func (r Range) Size() uintptr { return r.End - r.Start }

// Empty reports whether r holds no address.
func (r Range) Empty() bool { return r.Start >= r.End }

// Contains reports whether addr lies in r.
func (r Range) Contains(addr uintptr) bool { return r.Start <= addr && addr < r.End }

// ContainsRange reports whether o lies wholly in r. An empty o lies in r
// if its Start does, or at r's End.
func (r Range) ContainsRange(o Range) bool {
	return r.Start <= o.Start && o.End <= r.End && o.Start <= o.End
}

// Overlaps reports whether r and o share at least one address.
func (r Range) Overlaps(o Range) bool {
	return r.Start < o.End && o.Start < r.End && !r.Empty() && !o.Empty()
}

// Intersect returns the addresses r and o share; the zero Range if none.
func (r Range) Intersect(o Range) Range {
	if !r.Overlaps(o) {
		return Range{}
	}
	return Range{Start: max(r.Start, o.Start), End: min(r.End, o.End)}
}

// String returns r as "[0xstart, 0xend)".
func (r Range) String() string { return fmt.Sprintf("[%#x, %#x)", r.Start, r.End) }
