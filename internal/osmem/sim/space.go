package sim

import (
	"github.com/google/btree"

	"github.com/reachvm/reachvm/internal/osmem"
)

// seg is one run of pages with identical attributes. The simulator keeps
// segments canonical: two adjacent segments that could be one (see
// mergeable) are always merged, so that the segment list is exactly what
// Regions reports and two simulators in the same state hold equal trees.
type seg struct {
	// start and end bound the segment: [start, end), page aligned,
	// start < end.
	start, end uintptr
	// state is StateReserved or StateCommitted, never StateFree. Under
	// Linux rules it is a function of typ, prot and shared (see
	// linuxState), because the kernel cannot tell a reservation from
	// PROT_NONE memory either.
	state osmem.State
	// typ is TypePrivate for anonymous memory, TypeMapped (or TypeImage,
	// foreign only) for views.
	typ    osmem.Type
	prot   osmem.Prot
	shared bool
	// base is the allocation base under Windows rules (the reservation or
	// view the segment belongs to) and 0 under Linux rules, which have no
	// such notion.
	base uintptr
	// obj is the object mapped, nil for anonymous and foreign memory.
	obj *object
	// name is what Regions reports as Name.
	name string
	// off is the offset into the backing object of start; 0 for anonymous
	// memory.
	off        uint64
	dev, inode uint64
}

// backed reports whether g has a backing object (and hence a meaningful
// offset).
func (g *seg) backed() bool { return g.typ != osmem.TypePrivate }

// mergeable reports whether x and y, x immediately below y, are one run of
// identical pages: same attributes, same allocation, and for views
// contiguous offsets into the same object.
func mergeable(x, y *seg) bool {
	if x.end != y.start || x.state != y.state || x.typ != y.typ || x.prot != y.prot ||
		x.shared != y.shared || x.base != y.base || x.obj != y.obj || x.name != y.name ||
		x.dev != y.dev || x.inode != y.inode {
		return false
	}
	if x.backed() {
		return x.off+uint64(x.end-x.start) == y.off
	}
	return true
}

func segLess(a, b seg) bool { return a.start < b.start }

// key returns a pivot for tree searches.
func key(a uintptr) seg { return seg{start: a} }

// space is a set of non-overlapping segments ordered by address. It is not
// safe for concurrent use: OS serializes access with its mutex.
type space struct {
	t *btree.BTreeG[seg]
}

func newSpace() space { return space{t: btree.NewG(16, segLess)} }

// at returns the segment containing a.
func (sp *space) at(a uintptr) (seg, bool) {
	var out seg
	found := false
	sp.t.DescendLessOrEqual(key(a), func(g seg) bool {
		if a < g.end {
			out, found = g, true
		}
		return false
	})
	return out, found
}

// prev returns the last segment starting below a.
func (sp *space) prev(a uintptr) (seg, bool) {
	var out seg
	found := false
	sp.t.DescendLessOrEqual(key(a), func(g seg) bool {
		if g.start < a {
			out, found = g, true
			return false
		}
		return true
	})
	return out, found
}

// next returns the first segment starting at or above a.
func (sp *space) next(a uintptr) (seg, bool) {
	var out seg
	found := false
	sp.t.AscendGreaterOrEqual(key(a), func(g seg) bool {
		out, found = g, true
		return false
	})
	return out, found
}

// overlaps reports whether any segment intersects [a, b).
//
// Preconditions: a < b.
func (sp *space) overlaps(a, b uintptr) bool {
	hit := false
	sp.t.DescendLessOrEqual(key(b-1), func(g seg) bool {
		hit = g.end > a
		return false
	})
	return hit
}

// mappedTo returns the end of the run of contiguous segments that starts at
// a, capped at b: a if a itself is unmapped, b if [a, b) is wholly mapped.
//
// Preconditions: a < b.
func (sp *space) mappedTo(a, b uintptr) uintptr {
	g, ok := sp.at(a)
	if !ok {
		return a
	}
	end := g.end
	if end >= b {
		return b
	}
	sp.t.AscendGreaterOrEqual(key(end), func(g seg) bool {
		if g.start != end {
			return false
		}
		end = g.end
		return end < b
	})
	return min(end, b)
}

// in returns copies of the segments that start in [a, b), in order.
func (sp *space) in(a, b uintptr) []seg {
	var out []seg
	sp.t.AscendRange(key(a), key(b), func(g seg) bool {
		out = append(out, g)
		return true
	})
	return out
}

// split cuts the segment containing a, if any, so that a segment starts at
// a.
func (sp *space) split(a uintptr) {
	g, ok := sp.at(a)
	if !ok || g.start == a {
		return
	}
	lo, hi := g, g
	lo.end = a
	hi.start = a
	if g.backed() {
		hi.off += uint64(a - g.start)
	}
	sp.t.ReplaceOrInsert(lo)
	sp.t.ReplaceOrInsert(hi)
}

// remove unmaps [a, b).
//
// Preconditions: a < b.
func (sp *space) remove(a, b uintptr) {
	sp.split(a)
	sp.split(b)
	for _, g := range sp.in(a, b) {
		sp.t.Delete(g)
	}
}

// update applies fn to every page of [a, b) that is mapped, then restores
// canonical form.
//
// Preconditions: a < b.
func (sp *space) update(a, b uintptr, fn func(*seg)) {
	sp.split(a)
	sp.split(b)
	for _, g := range sp.in(a, b) {
		fn(&g)
		sp.t.ReplaceOrInsert(g)
	}
	sp.coalesce(a, b)
}

// insert adds g, which must not overlap any segment, and restores
// canonical form around it.
func (sp *space) insert(g seg) {
	sp.t.ReplaceOrInsert(g)
	sp.coalesce(g.start, g.end)
}

// coalesce merges mergeable neighbours among the segments that touch
// [a, b], including the one ending at a and the one starting at b.
func (sp *space) coalesce(a, b uintptr) {
	from := a
	if p, ok := sp.prev(a); ok && p.end == a {
		from = p.start
	}
	var run []seg
	sp.t.AscendGreaterOrEqual(key(from), func(g seg) bool {
		if g.start > b {
			return false
		}
		run = append(run, g)
		return true
	})
	for i := 0; i+1 < len(run); {
		if mergeable(&run[i], &run[i+1]) {
			sp.t.Delete(run[i+1])
			run[i].end = run[i+1].end
			sp.t.ReplaceOrInsert(run[i])
			run = append(run[:i+1], run[i+2:]...)
			continue
		}
		i++
	}
}

// gapsUp calls fn on each free gap [x, y) within [lo, hi), lowest first,
// until fn returns false.
func (sp *space) gapsUp(lo, hi uintptr, fn func(x, y uintptr) bool) {
	if lo >= hi {
		return
	}
	cur := lo
	if g, ok := sp.at(lo); ok {
		cur = g.end
	}
	more := true
	sp.t.AscendGreaterOrEqual(key(cur), func(g seg) bool {
		if g.start >= hi {
			return false
		}
		if g.start > cur {
			if more = fn(cur, g.start); !more {
				return false
			}
		}
		cur = g.end
		return cur < hi
	})
	if more && cur < hi {
		fn(cur, hi)
	}
}

// gapsDown calls fn on each free gap [x, y) within [lo, hi), highest
// first, until fn returns false.
func (sp *space) gapsDown(lo, hi uintptr, fn func(x, y uintptr) bool) {
	if lo >= hi {
		return
	}
	cur := hi
	more := true
	sp.t.DescendLessOrEqual(key(hi-1), func(g seg) bool {
		if g.end <= lo {
			return false
		}
		if g.end < cur {
			if more = fn(g.end, cur); !more {
				return false
			}
		}
		cur = min(cur, g.start)
		return cur > lo
	})
	if more && cur > lo {
		fn(lo, cur)
	}
}

// all returns every segment in order.
func (sp *space) all() []seg {
	out := make([]seg, 0, sp.t.Len())
	sp.t.Ascend(func(g seg) bool {
		out = append(out, g)
		return true
	})
	return out
}
