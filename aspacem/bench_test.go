package aspacem

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/mem"
)

const benchSegments = 100_000

// benchMap builds Valgrind's pathological layout (foundationdb#7610: a
// guard-page loop): n segments alternating one committed page and one free
// page, then one large free gap at the top. Every small gap is too small
// for a multi-page request, so first-fit must walk all of them.
func benchMap(b *testing.B, n int) (*Map, []Segment) {
	b.Helper()
	cfg := Config{Lo: 0x1000_0000, Hi: 0x1000_0000 + uintptr(n+4096)*P, PageSize: P, Granularity: P}
	m, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n/2; i++ {
		a := cfg.Lo + uintptr(2*i)*P
		if err := m.Update(Segment{Start: a, End: a + P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "guard loop"}); err != nil {
			b.Fatal(err)
		}
	}
	if m.Len() < n {
		b.Fatalf("map has %d segments, want >= %d", m.Len(), n)
	}
	segs := m.Segments(cfg.Lo, cfg.Hi)
	runtime.GC() // do not time the collection of the previous benchmark's map
	return m, segs
}

// firstFitScan is the baseline: Valgrind's am_get_advisory policy, a
// linear first-fit scan of the sorted segment array.
func firstFitScan(segs []Segment, size, align uintptr) (uintptr, bool) {
	for i := range segs {
		s := &segs[i]
		if s.Kind != KindFree {
			continue
		}
		p, _ := mem.AlignUp(s.Start, align)
		if p >= s.Start && p < s.End && s.End-p >= size {
			return p, true
		}
	}
	return 0, false
}

// BenchmarkAdvise compares Advise with the O(n) first-fit scan on the same
// 100,000-segment map, for the same answer (the lowest fitting address).
func BenchmarkAdvise(b *testing.B) {
	m, segs := benchMap(b, benchSegments)
	const size = 16 * P
	want, ok := firstFitScan(segs, size, P)
	got, err := m.Advise(size, 0, 0, 0)
	if !ok || err != nil || got != want {
		b.Fatalf("Advise = %#x, %v; first fit %#x, %v", got, err, want, ok)
	}
	b.Run("impl=aspacem", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Advise(size, 0, 0, 0); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=firstfit-scan", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := firstFitScan(segs, size, P); !ok {
				b.Fatal("no fit")
			}
		}
	})
}

// BenchmarkAdviseNear asks for the placement nearest an address in the
// middle of the guard-page region, within 2 GiB.
func BenchmarkAdviseNear(b *testing.B) {
	m, segs := benchMap(b, benchSegments)
	near := segs[len(segs)/2].Start
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Advise(16*P, 0, near, 1<<31); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	m, segs := benchMap(b, benchSegments)
	r := rand.New(rand.NewPCG(1, 1))
	addrs := make([]uintptr, 4096)
	lo, hi := segs[0].Start, segs[len(segs)-1].End
	for i := range addrs {
		addrs[i] = lo + uintptr(r.Uint64N(uint64(hi-lo)))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, ok := m.Lookup(addrs[i&4095]); !ok {
			b.Fatal("lookup failed")
		}
		i++
	}
}

// BenchmarkUpdate protects one page of a committed segment and restores
// it: a split into three and a merge back, on a 100,000-segment map.
func BenchmarkUpdate(b *testing.B) {
	m, segs := benchMap(b, benchSegments)
	var owned []Segment
	for _, s := range segs {
		if s.Kind == KindAnon {
			owned = append(owned, s)
		}
	}
	r := rand.New(rand.NewPCG(2, 2))
	b.ReportAllocs()
	for b.Loop() {
		s := owned[r.IntN(len(owned))]
		s.Prot = mem.ProtRead
		if err := m.Update(s); err != nil {
			b.Fatal(err)
		}
		s.Prot = mem.ProtRW
		if err := m.Update(s); err != nil {
			b.Fatal(err)
		}
	}
}
