package vmm

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// bitmap is the reference model: one bool per unit (true = free), every
// question answered by the obvious loop. It is deliberately naive; the
// benchmark's baseline (drBitmap, alloc_bench_test.go) is the fast one and
// is itself checked against this model.
type bitmap struct {
	base, unit uintptr
	free       []bool
	// nfree counts the true entries of free.
	nfree int
}

func newBitmap(base, size, unit uintptr) *bitmap {
	b := &bitmap{base: base, unit: unit, free: make([]bool, size/unit), nfree: int(size / unit)}
	for i := range b.free {
		b.free[i] = true
	}
	return b
}

// runFree reports whether units [i, i+n) are all free.
func (b *bitmap) runFree(i, n int) bool {
	if i < 0 || n <= 0 || i+n > len(b.free) {
		return false
	}
	for j := i; j < i+n; j++ {
		if !b.free[j] {
			return false
		}
	}
	return true
}

// runUsed reports whether units [i, i+n) are all allocated.
func (b *bitmap) runUsed(i, n int) bool {
	if i < 0 || n <= 0 || i+n > len(b.free) {
		return false
	}
	for j := i; j < i+n; j++ {
		if b.free[j] {
			return false
		}
	}
	return true
}

func (b *bitmap) set(i, n int, free bool) {
	for j := i; j < i+n; j++ {
		if b.free[j] != free {
			b.free[j] = free
			if free {
				b.nfree++
			} else {
				b.nfree--
			}
		}
	}
}

// firstFit returns the first run of n free units whose address is a
// multiple of align.
func (b *bitmap) firstFit(n int, align uintptr) (int, bool) {
	for i := 0; i+n <= len(b.free); i++ {
		if (b.base+uintptr(i)*b.unit)%align == 0 && b.runFree(i, n) {
			return i, true
		}
	}
	return 0, false
}

// largestRun returns the longest run of free units.
func (b *bitmap) largestRun() int {
	best, cur := 0, 0
	for _, f := range b.free {
		if f {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

func (b *bitmap) countFree() int { return b.nfree }

// modelPair drives an allocator and the model with the same operations and
// checks every result against the model.
type modelPair struct {
	a    *extentAllocator
	m    *bitmap
	live []liveBlock
}

type liveBlock struct{ start, size uintptr }

func newModelPair(base, size, unit uintptr) *modelPair {
	return &modelPair{a: newExtentAllocator(base, size, unit), m: newBitmap(base, size, unit)}
}

func (p *modelPair) unit() uintptr { return p.m.unit }

// alloc asks for n units aligned to align bytes.
func (p *modelPair) alloc(n int, align uintptr) error {
	unit, base := p.unit(), p.m.base
	got, err := p.a.alloc("test", uintptr(n)*unit, align)
	if err != nil {
		var ex *ExhaustedError
		if !errors.As(err, &ex) {
			return fmt.Errorf("alloc(%d units, align %#x): error %v is not *ExhaustedError", n, align, err)
		}
		if at, ok := p.m.firstFit(n, align); ok {
			return fmt.Errorf("alloc(%d units, align %#x) refused but units %d.. are free and aligned", n, align, at)
		}
		if ex.Asked != uintptr(n)*unit || ex.Align != align || ex.Region != "test" {
			return fmt.Errorf("exhausted reports asked %#x align %#x region %q", ex.Asked, ex.Align, ex.Region)
		}
		if ex.Free != uintptr(p.m.countFree())*unit || ex.Largest != uintptr(p.m.largestRun())*unit {
			return fmt.Errorf("exhausted reports free %#x largest %#x, model %#x %#x", ex.Free, ex.Largest, p.m.countFree()*int(unit), p.m.largestRun()*int(unit))
		}
		return nil
	}
	idx := int((got - base) / unit)
	if got < base || (got-base)%unit != 0 || got%align != 0 || !p.m.runFree(idx, n) {
		return fmt.Errorf("alloc(%d units, align %#x) returned %#x: not free or not aligned", n, align, got)
	}
	p.m.set(idx, n, false)
	p.live = append(p.live, liveBlock{got, uintptr(n) * unit})
	return nil
}

// allocAt asks for units [idx, idx+n) exactly.
func (p *modelPair) allocAt(idx, n int) error {
	unit, base := p.unit(), p.m.base
	err := p.a.allocAt("test", base+uintptr(idx)*unit, uintptr(n)*unit)
	if want := p.m.runFree(idx, n); (err == nil) != want {
		return fmt.Errorf("allocAt(unit %d, %d units): err %v, model says free=%v", idx, n, err, want)
	}
	if err == nil {
		p.m.set(idx, n, false)
		p.live = append(p.live, liveBlock{base + uintptr(idx)*unit, uintptr(n) * unit})
	}
	return nil
}

// release frees [start, start+size): it must succeed exactly when the
// model has it all allocated, and a second release must then be refused.
func (p *modelPair) release(start, size uintptr) error {
	unit, base := p.unit(), p.m.base
	idx, n := int((start-base)/unit), int(size/unit)
	want := start >= base && (start-base)%unit == 0 && size%unit == 0 && p.m.runUsed(idx, n)
	err := p.a.release("test", start, size)
	if (err == nil) != want {
		return fmt.Errorf("release(%#x, +%#x): err %v, model says wholly allocated=%v", start, size, err, want)
	}
	if err != nil {
		return nil
	}
	p.m.set(idx, n, true)
	if err := p.a.release("test", start, size); err == nil {
		return fmt.Errorf("double release of %#x+%#x accepted", start, size)
	}
	return nil
}

// releaseLive frees the j-th block handed out (or whatever of it is still
// allocated decides the expected answer).
func (p *modelPair) releaseLive(j int) error {
	b := p.live[j]
	p.live[j] = p.live[len(p.live)-1]
	p.live = p.live[:len(p.live)-1]
	return p.release(b.start, b.size)
}

func (p *modelPair) checkTotals() error {
	if got, want := p.a.freeBytes(), uintptr(p.m.countFree())*p.unit(); got != want {
		return fmt.Errorf("allocator has %#x free, model %#x", got, want)
	}
	return nil
}

// TestExtentAllocatorAgainstBitmap runs random alloc, allocAt and release
// on the allocator and the model over several geometries, checking every
// result: allocations are free in the model and aligned, refusals happen
// only when the model has no aligned run either (with exact Free and
// Largest), exact requests and frees succeed exactly when the model says
// so, double frees are refused, and the internal invariants hold.
func TestExtentAllocatorAgainstBitmap(t *testing.T) {
	for _, g := range []struct {
		name             string
		base, unit       uintptr
		units            int
		aligns           []uintptr // in units
		bigEvery, bigMax int
	}{
		{"4K aligned base", 0x10_0000_0000, 0x1000, 16384, []uintptr{1, 1, 1, 2, 4, 8, 16}, 10, 2048},
		{"4K odd base", 0x10_0000_3000, 0x1000, 5000, []uintptr{1, 1, 2, 4, 8, 16, 512}, 10, 600},
		{"64K, grid-slot alignment", 0x7f00_0000_0000, 0x10000, 1000, []uintptr{1, 1, 2, 10, 32}, 8, 300},
		{"640K grid slots", 0xa_0000 * 7, 0xa_0000, 300, []uintptr{1, 1, 3, 5}, 5, 100},
		{"tiny", 0x2000, 0x1000, 3, []uintptr{1, 2}, 2, 3},
	} {
		t.Run(g.name, func(t *testing.T) {
			p := newModelPair(g.base, uintptr(g.units)*g.unit, g.unit)
			rng := rand.New(rand.NewPCG(7, uint64(g.units)))
			ops := 20000
			if testing.Short() {
				ops = 4000
			}
			for i := 0; i < ops; i++ {
				var err error
				switch op := rng.IntN(20); {
				case op < 8:
					n := 1 + rng.IntN(min(64, g.units))
					if rng.IntN(g.bigEvery) == 0 {
						n = 1 + rng.IntN(g.bigMax)
					}
					align := g.aligns[rng.IntN(len(g.aligns))] * g.unit
					if rng.IntN(16) == 0 && g.unit%2 == 0 {
						align = g.unit / 2 // a divisor of the unit: any block will do
					}
					err = p.alloc(n, align)
				case op < 11:
					err = p.allocAt(rng.IntN(g.units), 1+rng.IntN(16))
				case op < 19:
					if len(p.live) > 0 {
						err = p.releaseLive(rng.IntN(len(p.live)))
					}
				default:
					// An arbitrary range: part of a block, several, free space.
					err = p.release(g.base+uintptr(rng.IntN(g.units))*g.unit, uintptr(1+rng.IntN(8))*g.unit)
				}
				if err == nil {
					err = p.checkTotals()
				}
				if err == nil && i%97 == 0 {
					err = p.a.checkInvariants()
				}
				if err != nil {
					t.Fatalf("op %d: %v", i, err)
				}
			}
			// Free what is left allocated, run by run (arbitrary releases
			// may have freed parts of live blocks).
			for i := 0; i < g.units; i++ {
				if p.m.free[i] {
					continue
				}
				j := i
				for j < g.units && !p.m.free[j] {
					j++
				}
				if err := p.release(g.base+uintptr(i)*g.unit, uintptr(j-i)*g.unit); err != nil {
					t.Fatal(err)
				}
				i = j
			}
			if err := p.a.checkInvariants(); err != nil {
				t.Fatal(err)
			}
			if got := p.a.freeBytes(); got != uintptr(g.units)*g.unit {
				t.Fatalf("after freeing everything %#x free, want %#x", got, uintptr(g.units)*g.unit)
			}
			if got := p.a.largestFree(); got != uintptr(g.units)*g.unit {
				t.Fatalf("after freeing everything the largest extent is %#x, want the whole region", got)
			}
		})
	}
}

// TestExtentAllocatorNoMissedFit builds the layouts where a segregated fit
// looks in the wrong place first: a request whose own size class holds a
// fitting extent that is not the class's head, and aligned requests that
// only an extent below the guaranteed class can satisfy.
func TestExtentAllocatorNoMissedFit(t *testing.T) {
	const unit, base = 0x1000, 0x40_0000_0000
	u := func(i uint32) uintptr { return base + uintptr(i)*unit }
	// fresh returns an allocator of 1024 units with only the given extents
	// free.
	fresh := func(t *testing.T, free ...[2]uint32) *extentAllocator {
		a := newExtentAllocator(base, 1024*unit, unit)
		if err := a.allocAt("test", base, 1024*unit); err != nil {
			t.Fatal(err)
		}
		for _, f := range free {
			if err := a.release("test", u(f[0]), uintptr(f[1])*unit); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.checkInvariants(); err != nil {
			t.Fatal(err)
		}
		return a
	}
	t.Run("same class, head too small", func(t *testing.T) {
		// 64 and 65 units share a class; 64 is the head (freed last).
		a := fresh(t, [2]uint32{300, 65}, [2]uint32{100, 64})
		got, err := a.alloc("test", 65*unit, unit)
		if err != nil || got != u(300) {
			t.Fatalf("alloc(65 units) = %#x, %v; want %#x", got, err, u(300))
		}
	})
	t.Run("aligned, below the guaranteed class", func(t *testing.T) {
		// Want 2 units aligned to 8: [1, 4) cannot, [6, 12) can at 8; no
		// extent of 9 units exists, so only the exhaustive walk finds it.
		a := fresh(t, [2]uint32{6, 6}, [2]uint32{1, 3}, [2]uint32{17, 3})
		got, err := a.alloc("test", 2*unit, 8*unit)
		if err != nil || got != u(8) {
			t.Fatalf("alloc(2 units, align 8) = %#x, %v; want %#x", got, err, u(8))
		}
		if err := a.checkInvariants(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("aligned, nothing fits", func(t *testing.T) {
		a := fresh(t, [2]uint32{1, 7}, [2]uint32{9, 7}, [2]uint32{17, 3})
		_, err := a.alloc("test", 2*unit, 8*unit)
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Free != 17*unit || ex.Largest != 7*unit {
			t.Fatalf("alloc(2 units, align 8) = %v; want exhausted with 17 units free, largest 7", err)
		}
	})
	t.Run("larger than the region", func(t *testing.T) {
		a := newExtentAllocator(base, 16*unit, unit)
		_, err := a.alloc("test", 17*unit, unit)
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Free != 16*unit || ex.Largest != 16*unit || ex.Asked != 17*unit {
			t.Fatalf("alloc(17 of 16 units) = %v; want exhausted, 16 units free and largest", err)
		}
	})
}

func TestExtentAllocatorBadInput(t *testing.T) {
	a := newExtentAllocator(0x10000, 0x10000, 0x1000)
	for _, tc := range []struct {
		name        string
		start, size uintptr
	}{
		{"zero size", 0x10000, 0},
		{"below the region", 0xf000, 0x1000},
		{"past the region", 0x1f000, 0x2000},
		{"overflowing", 0x10000, ^uintptr(0) - 0xfff},
		{"wrapping", ^uintptr(0) - 0xfff, 0x2000},
		{"unaligned", 0x10800, 0x1000},
		{"unaligned size", 0x10000, 0x1800},
		{"never allocated", 0x11000, 0x1000},
	} {
		if err := a.release("test", tc.start, tc.size); err == nil {
			t.Errorf("release %s accepted", tc.name)
		}
		if tc.name != "never allocated" {
			if err := a.allocAt("test", tc.start, tc.size); err == nil {
				t.Errorf("allocAt %s accepted", tc.name)
			}
		}
	}
	for _, tc := range []struct {
		name        string
		size, align uintptr
	}{
		{"zero size", 0, 0x1000},
		{"unaligned size", 0x1800, 0x1000},
		{"zero align", 0x1000, 0},
		{"align not a multiple or divisor of the unit", 0x1000, 0x1800},
	} {
		_, err := a.alloc("test", tc.size, tc.align)
		var ex *ExhaustedError
		if err == nil || errors.As(err, &ex) {
			t.Errorf("alloc %s: got %v, want an argument error", tc.name, err)
		}
	}
	if a.freeBytes() != 0x10000 {
		t.Fatalf("refused requests changed the free total to %#x", a.freeBytes())
	}
	if err := a.checkInvariants(); err != nil {
		t.Fatal(err)
	}
	for _, g := range [][3]uintptr{{0x1000, 0x1000, 0}, {0x1800, 0x2000, 0x1000}, {0, 0x1800, 0x1000}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("newExtentAllocator(%#x, %#x, %#x) did not panic", g[0], g[1], g[2])
				}
			}()
			newExtentAllocator(g[0], g[1], g[2])
		}()
	}
	// An empty region refuses everything and stays consistent.
	e := newExtentAllocator(0x10000, 0, 0x1000)
	if _, err := e.alloc("test", 0x1000, 0x1000); err == nil {
		t.Error("empty region allocated")
	}
	if err := e.checkInvariants(); err != nil {
		t.Fatal(err)
	}
}

// FuzzExtentAllocator drives the allocator and the model from bytes: the
// first three choose the geometry, then every four bytes are one operation.
func FuzzExtentAllocator(f *testing.F) {
	f.Add([]byte{0, 40, 3, 0, 5, 0, 0, 0, 16, 1, 0, 2, 0, 0, 0, 3, 1, 0, 0})
	f.Add([]byte{1, 200, 1, 0, 1, 3, 0, 1, 30, 4, 0, 1, 2, 6, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 64, 2, 0})
	f.Add([]byte{2, 7, 0, 0, 2, 1, 0, 3, 1, 1, 1, 0, 6, 2, 0, 2, 0, 0, 0, 4, 3, 2, 1})
	f.Add([]byte{0, 255, 9, 0, 255, 4, 0, 0, 255, 0, 0, 1, 200, 0, 50, 3, 10, 40, 0, 0, 255, 5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 3 {
			return
		}
		units := []uintptr{0x1000, 0x10000, 0x3000}
		unit := units[int(data[0])%len(units)]
		n := 1 + int(data[1])
		base := unit * uintptr(1+int(data[2]))
		p := newModelPair(base, uintptr(n)*unit, unit)
		for data = data[3:]; len(data) >= 4; data = data[4:] {
			op, x, y, z := data[0]%5, int(data[1]), int(data[2]), int(data[3])
			var err error
			switch op {
			case 0, 1:
				align := unit << (z % 6)
				if data[0]&0x80 != 0 {
					align = unit * uintptr(1+z%5)
				}
				err = p.alloc(1+(x|y<<8)%n, align)
			case 2:
				err = p.allocAt(x|y<<8, 1+z%32)
			case 3:
				if len(p.live) > 0 {
					err = p.releaseLive((x | y<<8) % len(p.live))
				}
			case 4:
				err = p.release(base+uintptr(x|y<<8)*unit-unit*uintptr(z&1), uintptr(1+z%16)*unit)
			}
			if err == nil {
				err = p.checkTotals()
			}
			if err == nil {
				err = p.a.checkInvariants()
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	})
}

var allocSoak = flag.Bool("allocsoak", false, "run TestAllocatorConcurrent for 10 s instead of 2 s")

// TestAllocatorConcurrent has 8 goroutines allocate (1..64 units, some
// aligned, some at exact addresses) and free for a while, each claiming
// every unit it gets in a shared owner table, so that any unit handed to two
// goroutines at once is caught; at the end everything is freed and the
// allocator must be whole and consistent. Meant for -race; 10 s with
// -allocsoak or REACHVM_SOAK=1.
func TestAllocatorConcurrent(t *testing.T) {
	d := 2 * time.Second
	if *allocSoak || os.Getenv("REACHVM_SOAK") == "1" {
		d = 10 * time.Second
	} else if testing.Short() {
		d = 300 * time.Millisecond
	}
	const unit, base, units, workers = 0x1000, 0x20_0000_0000, 1 << 14, 8
	a := newExtentAllocator(base, units*unit, unit)
	owner := make([]atomic.Int32, units)
	claim := func(id int32, start, size uintptr) error {
		i := int((start - base) / unit)
		for j := i; j < i+int(size/unit); j++ {
			if !owner[j].CompareAndSwap(0, id) {
				return fmt.Errorf("unit %d handed to worker %d while worker %d holds it", j, id, owner[j].Load())
			}
		}
		return nil
	}
	disown := func(id int32, start, size uintptr) error {
		i := int((start - base) / unit)
		for j := i; j < i+int(size/unit); j++ {
			if !owner[j].CompareAndSwap(id, 0) {
				return fmt.Errorf("unit %d freed by worker %d but held by %d", j, id, owner[j].Load())
			}
		}
		return nil
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	var ops atomic.Int64
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func(id int32) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(id), 99))
			var live []liveBlock
			fail := func(err error) { errs <- fmt.Errorf("worker %d: %w", id, err) }
			free := func(j int) bool {
				b := live[j]
				live[j] = live[len(live)-1]
				live = live[:len(live)-1]
				if err := disown(id, b.start, b.size); err != nil {
					fail(err)
					return false
				}
				if err := a.release("test", b.start, b.size); err != nil {
					fail(err)
					return false
				}
				return true
			}
			for n := 0; ; n++ {
				if n%64 == 0 && time.Now().After(deadline) {
					break
				}
				ops.Add(1)
				switch r := rng.IntN(16); {
				case r < 7 && len(live) < 96:
					size := uintptr(1+rng.IntN(64)) * unit
					align := uintptr(unit)
					if rng.IntN(4) == 0 {
						align <<= rng.IntN(5)
					}
					start, err := a.alloc("test", size, align)
					if err != nil {
						var ex *ExhaustedError
						if !errors.As(err, &ex) {
							fail(err)
							return
						}
						continue
					}
					if start%align != 0 {
						fail(fmt.Errorf("alloc aligned to %#x returned %#x", align, start))
						return
					}
					if err := claim(id, start, size); err != nil {
						fail(err)
						return
					}
					live = append(live, liveBlock{start, size})
				case r == 7:
					start := base + uintptr(rng.IntN(units))*unit
					size := uintptr(1+rng.IntN(16)) * unit
					if start+size > base+units*unit {
						continue
					}
					if a.allocAt("test", start, size) != nil {
						continue
					}
					if err := claim(id, start, size); err != nil {
						fail(err)
						return
					}
					live = append(live, liveBlock{start, size})
				default:
					if len(live) > 0 && !free(rng.IntN(len(live))) {
						return
					}
				}
			}
			for len(live) > 0 {
				if !free(len(live) - 1) {
					return
				}
			}
		}(int32(w + 1))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := a.freeBytes(); got != units*unit {
		t.Errorf("after every worker freed everything, %#x bytes free, want %#x", got, units*unit)
	}
	if err := a.checkInvariants(); err != nil {
		t.Error(err)
	}
	t.Logf("%d operations by %d workers in %v", ops.Load(), workers, d)
}

// TestExtentAllocatorSideMemory bounds the allocator's own memory for the
// two regions reachvm makes: vmcode (2 GiB) and vmheap (8 GiB) in 4 KiB
// blocks, fresh and after fragmenting the low 64 MiB.
func TestExtentAllocatorSideMemory(t *testing.T) {
	for _, r := range []struct {
		name string
		size uintptr
		max  uintptr
	}{
		{"vmcode 2 GiB", 2 << 30, 128 << 10},
		{"vmheap 8 GiB", 8 << 30, 512 << 10},
	} {
		a := newExtentAllocator(0x100_0000_0000, r.size, 0x1000)
		fresh := a.sideBytes()
		if err := a.allocAt("test", 0x100_0000_0000, 64<<20); err != nil {
			t.Fatal(err)
		}
		for i := uintptr(0); i < 64<<20; i += 0x2000 {
			if err := a.release("test", 0x100_0000_0000+i, 0x1000); err != nil {
				t.Fatal(err)
			}
		}
		frag := a.sideBytes()
		t.Logf("%s: %d KiB fresh, %d KiB with 8,192 free extents in the low 64 MiB", r.name, fresh>>10, frag>>10)
		if fresh > r.max || frag > r.max+8192*16*2+64<<20/0x1000*4 {
			t.Errorf("%s: side memory %d fresh, %d fragmented: over budget", r.name, fresh, frag)
		}
	}
}

// classLow returns the smallest size class c holds.
func classLow(c int) uint64 {
	fl, sl := c>>slBits, uint64(c&(slCount-1))
	if fl <= 1 {
		return uint64(c)
	}
	return (slCount + sl) << (fl - 1)
}

// TestSizeClasses checks the class mapping: every size lies in its class's
// range, and classAtLeast returns the first class whose smallest member is
// at least the size asked.
func TestSizeClasses(t *testing.T) {
	sizes := []uint64{1, 2, 31, 32, 63, 64, 65, 66, 67, 127, 128, 129, 130, 1000, 1 << 20, 1<<20 + 1, maxBlocks - 1, maxBlocks}
	for i := uint64(1); i < 5000; i++ {
		sizes = append(sizes, i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		sizes = append(sizes, 1+rng.Uint64N(maxBlocks))
	}
	for _, n := range sizes {
		c := classOf(uint32(n))
		if c < 0 || c >= classCount || classLow(c) > n || (c+1 < classCount && classLow(c+1) <= n) {
			t.Fatalf("classOf(%d) = %d, which holds [%d, %d)", n, c, classLow(c), classLow(c+1))
		}
		if n >= 2*slCount && classLow(c+1)-classLow(c) > classLow(c)/slCount {
			t.Fatalf("class %d spans [%d, %d): wider than 1/%d of its floor", c, classLow(c), classLow(c+1), slCount)
		}
		g, ok := classAtLeast(n)
		if !ok {
			if classLow(classCount-1) >= n {
				t.Fatalf("classAtLeast(%d) found none, class %d starts at %d", n, classCount-1, classLow(classCount-1))
			}
			continue
		}
		if classLow(g) < n || (g > 0 && classLow(g-1) >= n) {
			t.Fatalf("classAtLeast(%d) = %d starting at %d; the one below starts at %d", n, g, classLow(g), classLow(g-1))
		}
	}
	if _, ok := classAtLeast(maxBlocks + 1); ok {
		t.Fatal("classAtLeast past the largest region found a class")
	}
	e := &ExhaustedError{Region: "vmcode", Asked: 0x2000, Align: 0x1000, Free: 0x1000, Largest: 0x1000}
	if got := e.Error(); got != "vmm: vmcode exhausted: asked 0x2000 bytes (align 0x1000), 0x1000 free, largest free extent 0x1000" {
		t.Fatalf("Error() = %q", got)
	}
}
