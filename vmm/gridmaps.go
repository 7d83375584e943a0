package vmm

import (
	"fmt"
	"io"

	"github.com/reachvm/reachvm/aspacem"
)

// WriteMaps writes aspacem's map of [lo, hi) in /proc/self/maps format,
// each line reachvm owns annotated (aspacem.Map.WriteMaps), except that on
// a grid each run of two or more consecutive slots that are plain
// reservations (no view, no library, no unit) is one line, annotated
// "[grid slots K-M/N]" (slots K to M, both included, of N): a 2 GiB grid
// is 3,277 reservations, and a reader of the map looks for the slots that
// hold something.
func (v *VMM) WriteMaps(w io.Writer, lo, hi uintptr) error {
	segs := v.space.Segments(lo, hi)
	var g *grid
	switch b := v.back.(type) {
	case *grid:
		g = b
	case *gridDual:
		g = b.g
	}
	if g != nil {
		segs = g.foldIdle(segs)
	}
	return aspacem.WriteSegments(w, segs)
}

// idleSlot returns the index of the grid slot s is, when s is exactly one
// idle slot: the slot's whole reservation, recorded as the grid's.
func (g *grid) idleSlot(s *aspacem.Segment) (int, bool) {
	if s.Kind != aspacem.KindReservation || s.Start < g.base || s.Start-g.base >= g.size {
		return 0, false
	}
	k := g.slotOf(s.Start)
	if s.Start != g.slotAddr(k) || s.End != g.slotEnd(k) || s.Owner != gridOwner(k, g.n) {
		return 0, false
	}
	return k, true
}

// foldIdle replaces, in segs (in address order), each run of two or more
// consecutive idle slots by one segment spanning them, owned by "grid
// slots K-M/N". segs is reused.
func (g *grid) foldIdle(segs []aspacem.Segment) []aspacem.Segment {
	out := segs[:0]
	for i := 0; i < len(segs); {
		k, ok := g.idleSlot(&segs[i])
		j := i + 1
		if ok {
			for j < len(segs) {
				m, ok := g.idleSlot(&segs[j])
				if !ok || m != k+(j-i) {
					break
				}
				j++
			}
		}
		s := segs[i]
		if j-i > 1 {
			s.End = segs[j-1].End
			s.Owner = fmt.Sprintf("grid slots %d-%d/%d", k, k+(j-i)-1, g.n)
		}
		out = append(out, s)
		i = j
	}
	return out
}
