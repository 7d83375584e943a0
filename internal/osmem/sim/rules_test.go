package sim_test

import (
	"errors"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

const page = 4 << 10

func TestDefaults(t *testing.T) {
	l := sim.New(osmem.RulesLinux, sim.Options{})
	if lo, hi := l.Bounds(); lo != 0x10000 || hi != 0x7fff_ffff_f000 || l.Name() != "sim-linux" || l.Granularity() != page || l.PageSize() != page {
		t.Errorf("linux defaults: %s [%#x, %#x) page %#x gran %#x", l.Name(), lo, hi, l.PageSize(), l.Granularity())
	}
	// Without a seed the mmap base is where an unrandomised kernel puts
	// it: 128 MiB below the top.
	if got := l.MmapBase(); got != 0x7fff_f7ff_f000 {
		t.Errorf("MmapBase() = %#x, want 0x7ffff7fff000", got)
	}
	w := sim.New(osmem.RulesWindows, sim.Options{})
	if lo, hi := w.Bounds(); lo != 0x10000 || hi != 0x7fff_ffff_0000 || w.Name() != "sim-windows" || w.Granularity() != 64<<10 || w.PageSize() != page {
		t.Errorf("windows defaults: %s [%#x, %#x) page %#x gran %#x", w.Name(), lo, hi, w.PageSize(), w.Granularity())
	}
	if w.MmapBase() != 0 {
		t.Errorf("windows MmapBase() = %#x", w.MmapBase())
	}
	// Nonsense options fall back to the defaults rather than failing.
	b := sim.New(osmem.RulesLinux, sim.Options{Lo: 0x5000_0000, Hi: 0x1000, PageSize: 3000})
	if lo, hi := b.Bounds(); lo != 0x10000 || hi != 0x7fff_ffff_f000 || b.PageSize() != page {
		t.Errorf("bad options: [%#x, %#x) page %#x", lo, hi, b.PageSize())
	}
}

// TestLinuxPlacement checks the kernel's top-down placement: below the mmap
// base, each new mapping right under the previous one, holes reused from
// the top, and bottom-up above the base when nothing fits below.
func TestLinuxPlacement(t *testing.T) {
	s := sim.New(osmem.RulesLinux, sim.Options{Lo: 0x10000, Hi: 0x10000 + 64*page, MmapBase: 0x10000 + 48*page})
	base := s.MmapBase()
	a, _ := s.Reserve(0, 4*page, osmem.Hint)
	b, _ := s.Reserve(0, 2*page, osmem.Hint)
	if a != base-4*page || b != a-2*page {
		t.Fatalf("top-down: a=%#x b=%#x, base %#x", a, b, base)
	}
	if err := s.Release(a+page, page); err != nil {
		t.Fatal(err)
	}
	// The one-page hole in a is the highest fit.
	c, _ := s.Reserve(0, page, osmem.Hint)
	if c != a+page {
		t.Errorf("hole not reused: c=%#x, hole at %#x", c, a+page)
	}
	// A free hint is honoured, above the base too.
	d, _ := s.Reserve(base+8*page, page, osmem.Hint)
	if d != base+8*page {
		t.Errorf("free hint %#x not honoured: %#x", base+8*page, d)
	}
	// Fill everything below the base, then placement goes above it,
	// bottom-up.
	if _, err := s.Reserve(0, b-0x10000, osmem.Hint); err != nil {
		t.Fatal(err)
	}
	e, err := s.Reserve(0, 2*page, osmem.Hint)
	if err != nil || e != base {
		t.Errorf("above the base: %#x, %v; want %#x", e, err, base)
	}
	// Exhaustion.
	_, err = s.Reserve(0, 32*page, osmem.Hint)
	if !errors.Is(err, osmem.ErrNoMemory) || osmem.Code(err) != 12 {
		t.Errorf("exhausted: %v, want ENOMEM", err)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

// TestWindowsPlacement checks bottom-up placement on 64 KiB bases, with
// the tail of a small reservation's granule unusable.
func TestWindowsPlacement(t *testing.T) {
	const g = 64 << 10
	s := sim.New(osmem.RulesWindows, sim.Options{Lo: g, Hi: 9 * g})
	var bases []uintptr
	for range 8 {
		a, err := s.Reserve(0, page, osmem.Hint)
		if err != nil {
			t.Fatal(err)
		}
		bases = append(bases, a)
	}
	for i, a := range bases {
		if a != uintptr(i+1)*g {
			t.Errorf("reservation %d at %#x, want %#x", i, a, (i+1)*g)
		}
	}
	// Eight pages reserved, 8*15 pages free, and still no room.
	_, err := s.Reserve(0, page, osmem.Hint)
	if !errors.Is(err, osmem.ErrNoMemory) || osmem.Code(err) != osmem.WinErrorNotEnoughMemory {
		t.Errorf("full: %v, want ERROR_NOT_ENOUGH_MEMORY", err)
	}
	if err := s.Release(bases[3], page); err != nil {
		t.Fatal(err)
	}
	// A hint is rounded down to the granularity.
	a, err := s.Reserve(bases[3]+5*page, 2*page, osmem.Hint)
	if err != nil || a != bases[3] {
		t.Errorf("rounded hint: %#x, %v; want %#x", a, err, bases[3])
	}
}

// TestSeedRandomisesMmapBase checks ASLR-like randomisation: a seed moves
// the mmap base, the same seed to the same place.
func TestSeedRandomisesMmapBase(t *testing.T) {
	seen := map[uintptr]bool{}
	for seed := int64(1); seed <= 20; seed++ {
		a := sim.New(osmem.RulesLinux, sim.Options{Seed: seed}).MmapBase()
		b := sim.New(osmem.RulesLinux, sim.Options{Seed: seed}).MmapBase()
		if a != b {
			t.Fatalf("seed %d: mmap base %#x then %#x", seed, a, b)
		}
		if a%page != 0 || a > 0x7fff_f7ff_f000 || a < 0x7fff_f7ff_f000-(1<<40) {
			t.Errorf("seed %d: mmap base %#x out of the kernel's range", seed, a)
		}
		seen[a] = true
	}
	if len(seen) < 15 {
		t.Errorf("20 seeds gave %d mmap bases", len(seen))
	}
}

// TestLinuxMprotectSemantics checks the one non-atomic Linux rule: mprotect
// changes the mappings before the first hole, then fails.
func TestLinuxMprotectSemantics(t *testing.T) {
	s := sim.New(osmem.RulesLinux, sim.Options{})
	a, _ := s.Reserve(0x100000, 4*page, osmem.Exact)
	if a != 0x100000 {
		t.Fatal(a)
	}
	err := s.Commit(a, 6*page, osmem.ProtRW)
	if !errors.Is(err, osmem.ErrNotMapped) || osmem.Code(err) != 12 {
		t.Fatalf("Commit across the end: %v", err)
	}
	r, _ := s.Query(a)
	if r.Prot != osmem.ProtRW || r.End != a+4*page || r.State != osmem.StateCommitted {
		t.Errorf("pages before the hole: %+v, want committed RW", r)
	}
	// A range that starts in a hole changes nothing.
	if err := s.Protect(a-page, 2*page, osmem.ProtRead); !errors.Is(err, osmem.ErrNotMapped) {
		t.Fatalf("Protect from a hole: %v", err)
	}
	if r, _ := s.Query(a); r.Prot != osmem.ProtRW {
		t.Errorf("Protect from a hole changed %+v", r)
	}
}

// TestPopulate checks foreign mappings: all or nothing, rules-dependent
// derivation, and that they constrain placement like any other mapping.
func TestPopulate(t *testing.T) {
	s := sim.New(osmem.RulesLinux, sim.Options{})
	layout := []osmem.Region{
		{Start: 0x400000, End: 0x401000, Prot: osmem.ProtRX, Name: "/bin/app", Inode: 42, Dev: 0x801},
		{Start: 0x401000, End: 0x402000, Prot: osmem.ProtRW, Name: "/bin/app", Inode: 42, Dev: 0x801, Offset: 0x1000},
		{Start: 0x800000, End: 0x900000, Prot: osmem.ProtRW, Name: "[heap]"},
		{Start: 0xffff_ffff_ff60_0000, End: 0xffff_ffff_ff60_1000, Prot: osmem.ProtRX, Name: "[vsyscall]"},
	}
	if err := s.Populate(layout); err != nil {
		t.Fatal(err)
	}
	snap := s.Snapshot()
	if len(snap) != 4 || snap[0].Type != osmem.TypeMapped || snap[0].State != osmem.StateCommitted || snap[2].Type != osmem.TypePrivate || snap[1].Offset != 0x1000 {
		t.Errorf("populated: %v", snap)
	}
	// Overlap anywhere rejects the whole batch.
	err := s.Populate([]osmem.Region{{Start: 0x1000000, End: 0x1001000}, {Start: 0x8ff000, End: 0x901000}})
	if !errors.Is(err, osmem.ErrExists) || len(s.Snapshot()) != 4 {
		t.Errorf("overlapping batch: %v, %d regions", err, len(s.Snapshot()))
	}
	if err := s.Populate([]osmem.Region{{Start: 0x1000, End: 0x1800}}); !errors.Is(err, osmem.ErrInvalid) {
		t.Errorf("unaligned region: %v", err)
	}
	if _, err := s.Reserve(0x800000, page, osmem.Exact); !errors.Is(err, osmem.ErrExists) {
		t.Errorf("Exact over a foreign mapping: %v", err)
	}
	// The vsyscall page lies above the bounds: munmap there is EINVAL.
	if err := s.Release(0xffff_ffff_ff60_0000, page); !errors.Is(err, osmem.ErrInvalid) {
		t.Errorf("Release above the bounds: %v", err)
	}
	if err := s.MapForeign(0x2000000, 0x2002000, osmem.ProtRW, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}

	w := sim.New(osmem.RulesWindows, sim.Options{})
	err = w.Populate([]osmem.Region{
		{Start: 0x140000000, End: 0x140001000, State: osmem.StateCommitted, Type: osmem.TypeImage, Prot: osmem.ProtRead, AllocBase: 0x140000000, Name: `C:\app.exe`},
		{Start: 0x140001000, End: 0x140003000, State: osmem.StateCommitted, Type: osmem.TypeImage, Prot: osmem.ProtRX, AllocBase: 0x140000000, Name: `C:\app.exe`},
		{Start: 0x10000, End: 0x20000, State: osmem.StateReserved, Type: osmem.TypePrivate, AllocBase: 0x10000},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The image is a view: not released, unmapped whole.
	if err := w.Release(0x140000000, 0x3000); !errors.Is(err, osmem.ErrNotMapped) {
		t.Errorf("Release of an image: %v", err)
	}
	if err := w.Unmap(0x140000000, 0x3000); err != nil {
		t.Errorf("Unmap of an image: %v", err)
	}
	if err := w.Release(0x10000, 0x10000); err != nil {
		t.Errorf("Release of a foreign reservation: %v", err)
	}
	// An allocation must start at its aligned base.
	err = w.Populate([]osmem.Region{{Start: 0x31000, End: 0x32000, State: osmem.StateReserved, Type: osmem.TypePrivate, AllocBase: 0x30000}})
	if !errors.Is(err, osmem.ErrInvalid) {
		t.Errorf("allocation not from its base: %v", err)
	}
	if len(w.Snapshot()) != 0 {
		t.Errorf("left %v", w.Snapshot())
	}
}

// TestNoPanics throws random and extreme arguments at every method under
// both rules: errors are fine, panics and broken invariants are not.
func TestNoPanics(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	extremes := []uintptr{0, 1, page - 1, page, 64 << 10, 0x10000, 0x7fff_ffff_f000, 0x7fff_ffff_0000, 1 << 47, 1 << 63, ^uintptr(0), ^uintptr(0) - page + 1, mem.AlignDown(^uintptr(0), page)}
	val := func() uintptr {
		if rng.IntN(2) == 0 {
			return extremes[rng.IntN(len(extremes))]
		}
		return mem.AlignDown(uintptr(rng.Uint64()), page) >> rng.IntN(64)
	}
	for _, rules := range bothRules {
		s := sim.New(rules, sim.Options{})
		obj, _ := s.CreateShared("x", 64<<10)
		for i := range 20000 {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%v call %d panicked: %v", rules, i, r)
					}
				}()
				a, n := val(), val()
				switch rng.IntN(9) {
				case 0:
					s.Reserve(a, n, osmem.Mode(rng.IntN(4)))
				case 1:
					s.Commit(a, n, osmem.Prot(rng.IntN(16)))
				case 2:
					s.Decommit(a, n)
				case 3:
					s.Protect(a, n, osmem.Prot(rng.IntN(16)))
				case 4:
					s.Release(a, n)
				case 5:
					s.MapObject(obj, uint64(val()), a, n, osmem.Prot(rng.IntN(16)), osmem.Mode(rng.IntN(4)))
				case 6:
					s.Unmap(a, n)
				case 7:
					s.Query(a)
				case 8:
					s.Regions(a, n)
				}
			}()
		}
		if err := s.Check(); err != nil {
			t.Errorf("%v: %v", rules, err)
		}
		for _, bad := range []osmem.Object{nil, obj} {
			if _, err := sim.New(rules, sim.Options{}).MapObject(bad, 0, 0, page, osmem.ProtRead, osmem.Hint); !errors.Is(err, osmem.ErrInvalid) {
				t.Errorf("%v: another simulator's object: %v", rules, err)
			}
		}
	}
}

// TestConcurrent runs operations from several goroutines (for the race
// detector) and checks the invariants after.
func TestConcurrent(t *testing.T) {
	for _, rules := range bothRules {
		s := sim.New(rules, sim.Options{})
		g := s.Granularity()
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() {
				for i := range 200 {
					a, err := s.Reserve(0, g*uintptr(1+i%3), osmem.Hint)
					if err != nil {
						t.Errorf("worker %d: %v", w, err)
						return
					}
					if err := s.Commit(a, page, osmem.ProtRW); err != nil {
						t.Errorf("worker %d: %v", w, err)
					}
					s.Regions(a, a+g)
					if err := s.Release(a, g*uintptr(1+i%3)); err != nil {
						t.Errorf("worker %d: %v", w, err)
					}
				}
			})
		}
		wg.Wait()
		if err := s.Check(); err != nil || len(s.Snapshot()) != 0 {
			t.Errorf("%v: %v, %v", rules, err, s.Snapshot())
		}
	}
}

// TestManyRegions checks that thousands of regions stay fast: each
// operation is logarithmic in the number of regions (placement aside).
func TestManyRegions(t *testing.T) {
	s := sim.New(osmem.RulesLinux, sim.Options{})
	r, err := s.Reserve(0, 20000*page, osmem.Hint)
	if err != nil {
		t.Fatal(err)
	}
	// A guard-page pattern: every other page committed, 20,000 regions.
	for i := uintptr(0); i < 20000; i += 2 {
		if err := s.Commit(r+i*page, page, osmem.ProtRW); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Snapshot()); n != 20000 {
		t.Fatalf("%d regions, want 20000", n)
	}
	for i := uintptr(0); i < 20000; i += 2 {
		if err := s.Decommit(r+i*page, page); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(s.Snapshot()); n != 1 {
		t.Fatalf("%d regions after decommitting all, want 1", n)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}

func BenchmarkCommitDecommit(b *testing.B) {
	s := sim.New(osmem.RulesLinux, sim.Options{})
	r, _ := s.Reserve(0, 20000*page, osmem.Hint)
	for i := uintptr(0); i < 20000; i += 2 {
		s.Commit(r+i*page, page, osmem.ProtRW)
	}
	i := uintptr(0)
	for b.Loop() {
		a := r + (i%10000*2+1)*page
		s.Commit(a, page, osmem.ProtRW)
		s.Decommit(a, page)
		i++
	}
}
