package vmm_test

import (
	"errors"
	"github.com/reachvm/reachvm/aspacem"
	"math"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

func TestReachable(t *testing.T) {
	const a = uintptr(0x7000_0000_0000)
	for _, tc := range []struct {
		from, to uintptr
		want     bool
	}{
		{a, a, true},
		{a, a + math.MaxInt32, true},
		{a, a + math.MaxInt32 + 1, false},
		{a, a - 1<<31, true},
		{a, a - 1<<31 - 1, false},
		{0, ^uintptr(0), true}, // -1: wraps, as the CPU's arithmetic does
	} {
		if got := mem.Reachable(tc.from, tc.to); got != tc.want {
			t.Errorf("Reachable(%#x, %#x) = %v", tc.from, tc.to, got)
		}
	}
}

// TestReachesAllBothEnds checks HotSpot's rule on a real placement: a
// target just reachable from vmcode's base but not from its end is not
// reachable from the region.
func TestReachesAllBothEnds(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: s, VMCodeBase: 0x10_0000_0000, VMCodeSize: 64 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	base, size := v.VMCode()
	if !v.ReachesAll(base + size + 1<<20) {
		t.Error("a target 1 MiB past vmcode is not reachable from all of it")
	}
	// Above vmcode the base is the far end; below it, the end is.
	above := base + size + 1<<31 - size/2
	if mem.Reachable(base, above) || !mem.Reachable(base+size, above) || v.ReachesAll(above) {
		t.Errorf("target %#x above vmcode: reachable from the end only, yet ReachesAll = %v", above, v.ReachesAll(above))
	}
	below := base - 1<<31 + size/2
	if !mem.Reachable(base, below) || mem.Reachable(base+size, below) || v.ReachesAll(below) {
		t.Errorf("target %#x below vmcode: reachable from the base only, yet ReachesAll = %v", below, v.ReachesAll(below))
	}
}

func TestPlacementPolicies(t *testing.T) {
	const base = 0x20_0000_0000
	t.Run("os", func(t *testing.T) {
		s := sim.New(mem.RulesLinux, sim.Options{})
		v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 64 << 20, NoVMHeap: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		if p := v.Placement(); p.How != "os" || len(p.Fallbacks) != 0 {
			t.Fatalf("placement %+v", p)
		}
	})
	t.Run("base+offset", func(t *testing.T) {
		seen := map[uintptr]bool{}
		for i := 0; i < 20; i++ {
			s := sim.New(mem.RulesWindows, sim.Options{})
			// A multiple of the 640 KiB grid slot, so no rounding.
			v, err := vmm.New(vmm.Config{OS: s, VMCodeBase: 0x1f_fffe_0000, VMCodeMaxOffset: 256 << 20, VMCodeSize: 64 << 20, NoVMHeap: true})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := v.VMCode()
			p := v.Placement()
			if p.How != "base+offset" || got != 0x1f_fffe_0000+p.Offset || p.Offset >= 256<<20 || p.Offset%(640<<10) != 0 {
				t.Fatalf("placement %+v at %#x", p, got)
			}
			seen[got] = true
			v.Close()
		}
		if len(seen) < 10 {
			t.Fatalf("20 placements with a 256 MiB jitter gave only %d distinct bases", len(seen))
		}
	})
	t.Run("taken", func(t *testing.T) {
		s := sim.New(mem.RulesLinux, sim.Options{})
		if _, err := s.Reserve(base, 1<<20, mem.Exact); err != nil {
			t.Fatal(err)
		}
		if _, err := vmm.New(vmm.Config{OS: s, VMCodeBase: base, VMCodeSize: 64 << 20, NoVMHeap: true}); !errors.Is(err, mem.ErrExists) {
			t.Fatalf("base taken, no fallback allowed: %v", err)
		}
		v, err := vmm.New(vmm.Config{OS: s, VMCodeBase: base, VMCodeSize: 64 << 20, AllowElsewhere: true, NoVMHeap: true})
		if err != nil {
			t.Fatal(err)
		}
		defer v.Close()
		p := v.Placement()
		if got, _ := v.VMCode(); got == base || p.How != "elsewhere" || len(p.Fallbacks) != 1 || !strings.HasPrefix(p.Fallbacks[0], "elsewhere") {
			t.Fatalf("placement %+v at %#x", p, got)
		}
	})
}

// TestPlacementTakenLow takes a base below 2 GiB, as reachvm run's: with
// AllowElsewhere vmcode goes to the free gap nearest it below 2 GiB
// rather than where the OS chooses.
func TestPlacementTakenLow(t *testing.T) {
	const base, size = 0x3f00_0000, 512 << 20
	s := sim.New(mem.RulesLinux, sim.Options{})
	if _, err := s.Reserve(base, 32<<20, mem.Exact); err != nil {
		t.Fatal(err)
	}
	v, err := vmm.New(vmm.Config{OS: s, VMCodeBase: base, VMCodeSize: size, AllowElsewhere: true, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	p := v.Placement()
	got, n := v.VMCode()
	if p.How != "low" || len(p.Fallbacks) != 1 || !strings.HasPrefix(p.Fallbacks[0], "low: ") {
		t.Fatalf("placement %+v", p)
	}
	// The gap just below the base is the nearest.
	if got != base-size || n != size {
		t.Fatalf("vmcode at %#x+%#x, want %#x+%#x", got, n, uintptr(base-size), uintptr(size))
	}
}

// TestPlacementNearApp asks for a full 2 GiB vmcode near a 16 MiB "text":
// it cannot fit, so with AllowSmaller it shrinks, reports each step, and
// the result is reachable from every byte of the range.
func TestPlacementNearApp(t *testing.T) {
	// Near placement is for Linux rules; the Windows grid refuses it
	// clearly rather than placing vmcode out of reach.
	if _, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesWindows, sim.Options{}), Near: &mem.Range{Start: 0x5555_0000_0000, End: 0x5555_0100_0000}}); err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Fatalf("near placement on the grid: %v", err)
	}
	for _, rules := range []mem.Rules{mem.RulesLinux} {
		s := sim.New(rules, sim.Options{})
		text := mem.Range{Start: 0x5555_0000_0000, End: 0x5555_0100_0000}
		if _, err := s.Reserve(text.Start, text.End-text.Start, mem.Exact); err != nil {
			t.Fatal(err)
		}
		if _, err := vmm.New(vmm.Config{OS: s, Near: &text, NoVMHeap: true}); err == nil {
			t.Fatalf("%v: a full 2 GiB near a 16 MiB range succeeded without AllowSmaller", rules)
		}
		v, err := vmm.New(vmm.Config{OS: s, Near: &text, AllowSmaller: true, NoVMHeap: true})
		if err != nil {
			t.Fatalf("%v: %v", rules, err)
		}
		base, size := v.VMCode()
		p := v.Placement()
		if p.How != "near-app" || len(p.Fallbacks) == 0 || size >= 2<<30 || size < 1<<30 {
			t.Fatalf("%v: placement %+v, size %#x", rules, p, size)
		}
		for _, from := range []uintptr{text.Start, text.End - 1} {
			for _, to := range []uintptr{base, base + size - 1} {
				if !mem.Reachable(from, to) || !mem.Reachable(to, from) {
					t.Fatalf("%v: vmcode byte %#x and text byte %#x are out of rel32 reach", rules, to, from)
				}
			}
		}
		if mism, err := v.Space().SyncCheck(s); err != nil || len(mism) != 0 {
			t.Fatalf("%v: SyncCheck %v %v", rules, err, mism)
		}
		v.Close()
	}
}

// TestPlacementNearStaleMap places vmcode near a range with a map loaded
// before something else took the gap it would advise: the first try finds
// the gap taken, the map is refreshed and the second try succeeds, each
// step reported, and vmcode avoids the newcomer.
func TestPlacementNearStaleMap(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	text := mem.Range{Start: 0x5555_0000_0000, End: 0x5555_0001_0000}
	if _, err := s.Reserve(text.Start, text.End-text.Start, mem.Exact); err != nil {
		t.Fatal(err)
	}
	space, err := aspacem.Load(s)
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	// Where a fresh map advises vmcode: place once, note it, release.
	v, err := vmm.New(vmm.Config{OS: s, Near: &text, VMCodeSize: size, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	advised, _ := v.VMCode()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	// Someone takes that gap after space was loaded.
	if err := s.MapForeign(advised, advised+size, mem.ProtRW, "newcomer"); err != nil {
		t.Fatal(err)
	}
	v, err = vmm.New(vmm.Config{OS: s, Space: space, Near: &text, VMCodeSize: size, NoVMHeap: true})
	if err != nil {
		t.Fatalf("near placement with a stale map: %v", err)
	}
	defer v.Close()
	base, _ := v.VMCode()
	p := v.Placement()
	if p.Attempts != 2 || len(p.Fallbacks) != 1 || !strings.Contains(p.Fallbacks[0], "retry") {
		t.Errorf("placement %+v: want one reported retry", p)
	}
	if base < advised+size && base+size > advised {
		t.Errorf("vmcode [%#x, +%#x) overlaps the newcomer at %#x", base, size, advised)
	}
	if !mem.Reachable(text.Start, base) || !mem.Reachable(base+size-1, text.End-1) {
		t.Errorf("vmcode at %#x out of reach of %#x", base, text.Start)
	}
}

func TestPlacementShrinkFloor(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	text := mem.Range{Start: 0x5555_0000_0000, End: 0x5555_7000_0000} // 1.75 GiB of text
	if _, err := s.Reserve(text.Start, text.End-text.Start, mem.Exact); err != nil {
		t.Fatal(err)
	}
	_, err := vmm.New(vmm.Config{OS: s, Near: &text, AllowSmaller: true, MinVMCodeSize: 512 << 20, NoVMHeap: true})
	if err == nil || !strings.Contains(err.Error(), "floor") {
		t.Fatalf("near 1.75 GiB of text with a 512 MiB floor: %v", err)
	}
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 1 || rs[0].Start != text.Start {
		t.Fatalf("failed placement left %v", rs)
	}
}

func TestVMHeap(t *testing.T) {
	for _, o := range []mem.OS{sim.New(mem.RulesLinux, sim.Options{}), sim.New(mem.RulesWindows, sim.Options{}), osmem.Native()} {
		v, err := vmm.New(vmm.Config{OS: o, VMCodeSize: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		hb, hs := v.VMHeap()
		if hs != vmm.DefaultVMHeapSize {
			t.Fatalf("%s: vmheap %#x bytes", o.Name(), hs)
		}
		a, err := v.HeapAlloc(100)
		if err != nil {
			t.Fatal(err)
		}
		if a < hb || a >= hb+hs {
			t.Fatalf("%s: heap allocation %#x outside vmheap", o.Name(), a)
		}
		if o == osmem.Native() {
			rawmem.Bytes(a, 100)[99] = 1 // committed and writable
		}
		if err := v.HeapFree(a+o.Granularity(), 1); err == nil {
			t.Errorf("%s: freeing an unallocated range accepted", o.Name())
		}
		if err := v.HeapFree(a, 100); err != nil {
			t.Fatal(err)
		}
		if err := v.HeapFree(a, 100); err == nil {
			t.Errorf("%s: double free accepted", o.Name())
		}
		if mism, err := v.Space().SyncCheck(o); err != nil || len(mism) != 0 {
			t.Fatalf("%s: SyncCheck %v %v", o.Name(), err, mism)
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
		if rs, _ := o.Regions(hb, hb+hs); len(rs) != 0 {
			t.Fatalf("%s: vmheap left %v", o.Name(), rs)
		}
	}
}
