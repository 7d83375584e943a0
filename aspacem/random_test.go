package aspacem

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/reachvm/reachvm/mem"
)

// refMap is the naive reference model the randomised test compares Map
// against: one attribute record per page, merged into segments on demand.
type refMap struct {
	cfg   Config
	pages []Segment // pages[i] covers Lo+i*P; Start/End unused, Offset is the page's own
}

func newRefMap(cfg Config) *refMap {
	n := int((cfg.Hi - cfg.Lo) / cfg.PageSize)
	return &refMap{cfg: cfg, pages: make([]Segment, n)}
}

func (r *refMap) update(s Segment) {
	s.normalize()
	P := r.cfg.PageSize
	for a := s.Start; a < s.End; a += P {
		p := s
		if p.hasOffset() {
			p.Offset = s.Offset + uint64(a-s.Start)
		}
		p.Start, p.End = 0, 0
		r.pages[(a-r.cfg.Lo)/P] = p
	}
}

// segments merges the pages into maximal segments.
func (r *refMap) segments() []Segment {
	P := r.cfg.PageSize
	var out []Segment
	for i, p := range r.pages {
		a := r.cfg.Lo + uintptr(i)*P
		p.Start, p.End = a, a+P
		if n := len(out); n > 0 && mergeable(&out[n-1], &p, r.cfg.FoldCase) {
			out[n-1].End = p.End
			continue
		}
		out = append(out, p)
	}
	return out
}

// advise is Advise by brute force over every aligned address.
func (r *refMap) advise(size, a, near, maxDist uintptr) (uintptr, bool) {
	P := r.cfg.PageSize
	free := make([]int, len(r.pages)+1) // prefix counts of free pages
	for i, p := range r.pages {
		free[i+1] = free[i]
		if p.Kind == KindFree {
			free[i+1]++
		}
	}
	var best uintptr
	var bestD int64 = -1
	for p, _ := mem.AlignUp(r.cfg.Lo, a); p+size <= r.cfg.Hi && p >= r.cfg.Lo; p += a {
		i, j := int((p-r.cfg.Lo)/P), int((p+size-r.cfg.Lo)/P)
		if free[j]-free[i] != j-i {
			continue
		}
		if near == 0 {
			return p, true
		}
		d := max(int64(near)-int64(p), int64(p+size)-int64(near))
		if maxDist != 0 && d > int64(maxDist) {
			continue
		}
		if bestD < 0 || d < bestD {
			best, bestD = p, d
		}
	}
	return best, bestD >= 0
}

type randGen struct {
	*rand.Rand
	cfg Config
}

func (g randGen) page() uintptr {
	return g.cfg.Lo + uintptr(g.IntN(int((g.cfg.Hi-g.cfg.Lo)/g.cfg.PageSize)))*g.cfg.PageSize
}

// segment returns a random valid segment, biased towards few distinct
// attribute sets so that merges happen.
func (g randGen) segment() Segment {
	P := g.cfg.PageSize
	a, b := g.page(), g.page()
	if a > b {
		a, b = b, a
	}
	b += P
	if g.IntN(3) == 0 { // many small segments
		b = min(a+P*uintptr(1+g.IntN(4)), g.cfg.Hi)
	}
	s := Segment{Start: a, End: b}
	prots := []mem.Prot{mem.ProtNone, mem.ProtRead, mem.ProtRW, mem.ProtRX}
	owners := []string{"vmcode", "vmheap", ""}
	names := []string{"/lib/a.so", "/lib/b.so", "/LIB/A.SO"}
	switch k := g.IntN(10); {
	case k < 3:
		s.Kind = KindFree
	case k < 5:
		s.Kind = KindReservation
		s.Owner = owners[g.IntN(len(owners))]
	case k < 7:
		s.Kind = KindAnon
		s.Prot = prots[g.IntN(len(prots))]
		s.Owner = owners[g.IntN(len(owners))]
	case k < 8:
		s.Kind = KindFile
		s.Prot = prots[g.IntN(len(prots))]
		s.Name = names[g.IntN(len(names))]
		s.Owner = owners[g.IntN(len(owners))]
		// Mostly an identity offset, so that neighbouring views are
		// contiguous and merge.
		if g.IntN(4) != 0 {
			s.Offset = uint64(a - g.cfg.Lo)
		} else {
			s.Offset = uint64(g.IntN(8)) * uint64(P)
		}
	case k < 9:
		s.Kind = KindShared
		s.Prot = prots[g.IntN(len(prots))]
		s.Name = "dual"
		s.Offset = uint64(a - g.cfg.Lo)
		s.Owner = "vmcode"
	default:
		s.Kind = KindForeign
		s.Prot = prots[g.IntN(len(prots))]
		if g.IntN(2) == 0 {
			s.Name = "[heap]"
		}
	}
	return s
}

// adviseArgs returns random Advise arguments.
func (g randGen) adviseArgs() (size, align, near, maxDist uintptr) {
	P := g.cfg.PageSize
	span := g.cfg.Hi - g.cfg.Lo
	size = P * uintptr(1+g.IntN(16))
	if g.IntN(8) == 0 {
		size = P * uintptr(1+g.IntN(int(span/P/2)))
	}
	align = []uintptr{0, P, 2 * P, 4 * P, 16 * P, 64 * P}[g.IntN(6)]
	switch g.IntN(8) {
	case 0:
		near = 0
	case 1:
		near = g.cfg.Lo / 2 // below the map
	case 2:
		near = g.cfg.Hi + uintptr(g.IntN(int(span))) // above it
	default:
		near = g.cfg.Lo + uintptr(g.IntN(int(span)))
	}
	switch g.IntN(4) {
	case 0:
		maxDist = 0
	case 1:
		maxDist = span * 4
	default:
		maxDist = P * uintptr(g.IntN(int(span/P)))
	}
	return
}

func checkAgainstRef(t *testing.T, m *Map, ref *refMap, g randGen, step int) {
	t.Helper()
	if err := m.CheckInvariants(); err != nil {
		t.Fatalf("step %d: %v", step, err)
	}
	want := ref.segments()
	got := m.Segments(m.cfg.Lo, m.cfg.Hi)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("step %d: segments differ from the reference\n got %v\nwant %v", step, got, want)
	}
	if m.Len() != len(want) {
		t.Fatalf("step %d: Len %d, want %d", step, m.Len(), len(want))
	}
	var owned []Segment
	for _, s := range want {
		if s.Kind.Owned() {
			owned = append(owned, s)
		}
	}
	if got := m.Owned(); !(len(got) == 0 && len(owned) == 0) && !reflect.DeepEqual(got, owned) {
		t.Fatalf("step %d: Owned differs\n got %v\nwant %v", step, got, owned)
	}
	for i := 0; i < 4; i++ {
		a := g.cfg.Lo + uintptr(g.IntN(int(g.cfg.Hi-g.cfg.Lo)))
		s, ok := m.Lookup(a)
		if !ok || !s.Contains(a) {
			t.Fatalf("step %d: Lookup(%#x) = %v, %v", step, a, s, ok)
		}
		for _, w := range want {
			if w.Contains(a) && w != s {
				t.Fatalf("step %d: Lookup(%#x) = %v, want %v", step, a, s, w)
			}
		}
		b := a + uintptr(g.IntN(int(g.cfg.Hi-g.cfg.Lo)/4))
		segs := m.Segments(a, b)
		for j, s := range segs {
			if (j == 0 && s.Start != a) || (j > 0 && s.Start != segs[j-1].End) || (j == len(segs)-1 && s.End != min(b, g.cfg.Hi)) {
				t.Fatalf("step %d: Segments(%#x, %#x) not a clipped cover: %v", step, a, b, segs)
			}
			full, _ := m.Lookup(s.Start)
			if full.clip(s.Start, s.End) != s {
				t.Fatalf("step %d: Segments(%#x, %#x)[%d] = %v, want %v", step, a, b, j, s, full.clip(s.Start, s.End))
			}
		}
	}
	for i := 0; i < 4; i++ {
		size, align, near, maxDist := g.adviseArgs()
		a := max(align, m.cfg.Granularity)
		wantP, wantOK := ref.advise(size, a, near, maxDist)
		p, err := m.Advise(size, align, near, maxDist)
		if (err == nil) != wantOK || (wantOK && p != wantP) {
			t.Fatalf("step %d: Advise(size %#x, align %#x, near %#x, maxDist %#x) = %#x, %v; reference %#x, %v",
				step, size, align, near, maxDist, p, err, wantP, wantOK)
		}
		if err != nil && !errors.Is(err, ErrNoSpace) {
			t.Fatalf("step %d: Advise error %v does not wrap ErrNoSpace", step, err)
		}
	}
}

// TestRandomAgainstReference applies thousands of random updates and
// compares the map after each with the page-by-page reference model:
// segments, Lookup, Segments, Owned and Advise (whose answer must be the
// reference's exactly: valid, and no strictly nearer valid placement, ties
// to the lower address).
func TestRandomAgainstReference(t *testing.T) {
	configs := []Config{
		{Lo: 0x100000, Hi: 0x100000 + 1024*0x1000, PageSize: 0x1000, Granularity: 0x1000},
		{Lo: 0x40000, Hi: 0x40000 + 1024*0x1000, PageSize: 0x1000, Granularity: 0x4000},
		{Lo: 0x10000, Hi: 0x10000 + 512*0x1000, PageSize: 0x1000, Granularity: 0x10000, FoldCase: true, Rules: mem.RulesWindows},
	}
	steps := 3000
	if testing.Short() || raceEnabled {
		steps = 1000
	}
	for ci, cfg := range configs {
		t.Run(fmt.Sprintf("config%d", ci), func(t *testing.T) {
			g := randGen{rand.New(rand.NewPCG(uint64(ci)+1, 42)), cfg}
			m := mustNew(t, cfg)
			ref := newRefMap(cfg)
			for step := 0; step < steps; step++ {
				s := g.segment()
				if err := m.Update(s); err != nil {
					t.Fatalf("step %d: Update(%v): %v", step, s, err)
				}
				ref.update(s)
				if cfg.FoldCase {
					// The map keeps the first spelling of a merged
					// name; make the reference agree by re-reading
					// names from the map.
					for _, seg := range m.Segments(cfg.Lo, cfg.Hi) {
						for a := seg.Start; a < seg.End; a += cfg.PageSize {
							ref.pages[(a-cfg.Lo)/cfg.PageSize].Name = seg.Name
						}
					}
				}
				checkAgainstRef(t, m, ref, g, step)
			}
		})
	}
}

// TestGapTreeAgainstSlice exercises the treap alone against a sorted slice.
func TestGapTreeAgainstSlice(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	const G = 0x4000
	tr := newGapTree(G)
	type gap struct{ s, e uintptr }
	var ref []gap
	steps := 20000
	if testing.Short() || raceEnabled {
		steps = 5000
	}
	for step := 0; step < steps; step++ {
		if len(ref) > 0 && r.IntN(3) == 0 {
			i := r.IntN(len(ref))
			if !tr.remove(ref[i].s) {
				t.Fatalf("remove(%#x) found nothing", ref[i].s)
			}
			ref = append(ref[:i], ref[i+1:]...)
		} else {
			s := uintptr(r.IntN(1<<16)) * 0x1000
			e := s + uintptr(1+r.IntN(64))*0x1000
			ok := true
			for _, g := range ref {
				if s <= g.e && g.s <= e {
					ok = false // overlapping or adjacent
				}
			}
			if !ok {
				continue
			}
			tr.insert(s, e)
			i := 0
			for i < len(ref) && ref[i].s < s {
				i++
			}
			ref = append(ref[:i], append([]gap{{s, e}}, ref[i:]...)...)
		}
		if tr.remove(1) { // never a gap start
			t.Fatal("removed a gap that was not there")
		}
		if msg := tr.check(); msg != "" {
			t.Fatalf("step %d: %s", step, msg)
		}
		key := uintptr(r.IntN(1<<16)) * 0x1000
		size := uintptr(r.IntN(40)) * 0x1000
		var wantLast, wantFirst, wantFloor *gap
		for i := range ref {
			g := &ref[i]
			u := tr.usable(g.s, g.e)
			if g.s <= key {
				wantFloor = g
			}
			if u >= size && g.s <= key {
				wantLast = g
			}
			if u >= size && g.s >= key && wantFirst == nil {
				wantFirst = g
			}
		}
		same := func(n *gapNode, g *gap) bool {
			return (n == nil && g == nil) || (n != nil && g != nil && n.start == g.s && n.end == g.e)
		}
		if n := tr.lastFit(key, size); !same(n, wantLast) {
			t.Fatalf("step %d: lastFit(%#x, %#x) = %v, want %v", step, key, size, n, wantLast)
		}
		if n := tr.firstFit(key, size); !same(n, wantFirst) {
			t.Fatalf("step %d: firstFit(%#x, %#x) = %v, want %v", step, key, size, n, wantFirst)
		}
		if n := tr.floor(key); !same(n, wantFloor) {
			t.Fatalf("step %d: floor(%#x) = %v, want %v", step, key, n, wantFloor)
		}
	}
}
