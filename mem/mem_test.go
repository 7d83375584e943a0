package mem_test

import (
	"math"
	"testing"

	"github.com/reachvm/reachvm/mem"
)

func TestRange(t *testing.T) {
	if _, ok := mem.RangeOf(math.MaxUint64-0xfff, 0x1000); ok {
		t.Error("RangeOf accepted a range that wraps")
	}
	if r, ok := mem.RangeOf(math.MaxUint64-0xfff, 0xfff); !ok || r.Size() != 0xfff {
		t.Errorf("RangeOf refused the last range below the top: %v %v", r, ok)
	}
	a := mem.Range{Start: 0x1000, End: 0x3000}
	for _, tc := range []struct {
		b                  mem.Range
		overlaps, contains bool
		inter              mem.Range
	}{
		{mem.Range{Start: 0x0, End: 0x1000}, false, false, mem.Range{}},
		{mem.Range{Start: 0x0, End: 0x1001}, true, false, mem.Range{Start: 0x1000, End: 0x1001}},
		{mem.Range{Start: 0x2000, End: 0x3000}, true, true, mem.Range{Start: 0x2000, End: 0x3000}},
		{mem.Range{Start: 0x2fff, End: 0x4000}, true, false, mem.Range{Start: 0x2fff, End: 0x3000}},
		{mem.Range{Start: 0x3000, End: 0x4000}, false, false, mem.Range{}},
		{mem.Range{Start: 0x2000, End: 0x2000}, false, true, mem.Range{}},
	} {
		if got := a.Overlaps(tc.b); got != tc.overlaps {
			t.Errorf("%v.Overlaps(%v) = %v", a, tc.b, got)
		}
		if got := tc.b.Overlaps(a); got != tc.overlaps {
			t.Errorf("%v.Overlaps(%v) = %v (not symmetric)", tc.b, a, got)
		}
		if got := a.ContainsRange(tc.b); got != tc.contains {
			t.Errorf("%v.ContainsRange(%v) = %v", a, tc.b, got)
		}
		if got := a.Intersect(tc.b); got != tc.inter {
			t.Errorf("%v.Intersect(%v) = %v, want %v", a, tc.b, got, tc.inter)
		}
	}
	if !a.Contains(0x1000) || a.Contains(0x3000) || a.Contains(0xfff) {
		t.Error("Contains is not [Start, End)")
	}
	if (mem.Range{Start: 2, End: 1}).WellFormed() {
		t.Error("WellFormed accepted Start > End")
	}
}

func TestAlign(t *testing.T) {
	if got, ok := mem.AlignUp[uintptr](0x1001, mem.PageSize); !ok || got != 0x2000 {
		t.Errorf("AlignUp(0x1001) = %#x, %v", got, ok)
	}
	if got, ok := mem.AlignUp[uintptr](0x2000, mem.PageSize); !ok || got != 0x2000 {
		t.Errorf("AlignUp(0x2000) = %#x, %v", got, ok)
	}
	if _, ok := mem.AlignUp(uint64(math.MaxUint64-10), 0x1000); ok {
		t.Error("AlignUp did not report overflow")
	}
	if got := mem.AlignDown[uint64](0x12345, mem.GranularityWindows); got != 0x10000 {
		t.Errorf("AlignDown = %#x", got)
	}
	if !mem.Aligned[uintptr](0x20000, mem.GranularityWindows) || mem.Aligned[uintptr](0x21000, mem.GranularityWindows) {
		t.Error("Aligned is wrong")
	}
	if mem.IsPowerOfTwo[uint](0) || !mem.IsPowerOfTwo[uint](64) || mem.IsPowerOfTwo[uint](96) {
		t.Error("IsPowerOfTwo is wrong")
	}
}

func TestReach(t *testing.T) {
	const base = 0x7000_0000_0000
	for _, tc := range []struct {
		from, to uintptr
		want     bool
	}{
		{base, base + math.MaxInt32, true},
		{base, base + math.MaxInt32 + 1, false},
		{base, base - (1 << 31), true},
		{base, base - (1 << 31) - 1, false},
	} {
		if got := mem.Reachable(tc.from, tc.to); got != tc.want {
			t.Errorf("Reachable(%#x, %#x) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
	r := mem.Range{Start: base, End: base + 1<<30}
	if !mem.ReachesAll(r, base+(1<<31)-1) || mem.ReachesAll(r, base+(1<<31)) || !mem.Reachable(r.End, base+(1<<31)) {
		t.Error("ReachesAll does not apply both ends")
	}
	if mem.ReachesAll(mem.Range{}, 0) {
		t.Error("an empty range reaches something")
	}
}

func TestNearWindow(t *testing.T) {
	text := mem.Range{Start: 0x5555_0000_0000, End: 0x5555_0001_0000}
	w, ok := mem.NearWindow(text, mem.Range{Start: 0x1_0000, End: 0x7fff_ffff_0000}, mem.GranularityWindows)
	if !ok {
		t.Fatal("no window")
	}
	for _, a := range []uintptr{w.Start, w.End - 1} {
		for _, b := range []uintptr{text.Start, text.End - 1} {
			if !mem.Reachable(a, b) || !mem.Reachable(b, a) {
				t.Errorf("%#x and %#x of the window and the text do not reach each other", a, b)
			}
		}
	}
	if !mem.Aligned(w.Start, mem.GranularityWindows) || !mem.Aligned(w.End, mem.GranularityWindows) {
		t.Errorf("window %v not aligned", w)
	}
	// With no alignment to hide it, the window's ends are exactly the
	// farthest addresses that reach the text's far ends both ways.
	w, ok = mem.NearWindow(text, mem.Range{Start: 0, End: 1 << 47}, 1)
	if !ok {
		t.Fatal("no unaligned window")
	}
	for _, tc := range []struct {
		a, b uintptr
		want bool
	}{
		{w.Start, text.End - 1, true},
		{w.Start - 1, text.End - 1, false},
		{w.End - 1, text.Start, true},
		{w.End, text.Start, false},
	} {
		if got := mem.Reachable(tc.a, tc.b) && mem.Reachable(tc.b, tc.a); got != tc.want {
			t.Errorf("%#x and %#x reach each other both ways: %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if _, ok := mem.NearWindow(text, mem.Range{Start: 0x1000, End: 0x2000}, mem.PageSize); ok {
		t.Error("a window out of reach of the text was found")
	}
}

func TestProtLinux(t *testing.T) {
	for p := mem.ProtNone; p <= mem.ProtRWX; p++ {
		q, ok := mem.ProtFromLinux(p.Linux())
		if !ok || q != p {
			t.Errorf("%v: round trip gave %v, %v", p, q, ok)
		}
	}
	if _, ok := mem.ProtFromLinux(0x01000000); ok { // PROT_GROWSDOWN
		t.Error("ProtFromLinux accepted PROT_GROWSDOWN")
	}
}
