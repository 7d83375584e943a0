package vmm

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// bitmap is the reference model and the benchmark baseline: DynamoRIO's
// block allocator, one bit per unit (set = free), allocated first fit by a
// scan from block 0.
type bitmap struct {
	base, unit uintptr
	free       []bool
}

func newBitmap(base, size, unit uintptr) *bitmap {
	b := &bitmap{base: base, unit: unit, free: make([]bool, size/unit)}
	for i := range b.free {
		b.free[i] = true
	}
	return b
}

// runFree reports whether units [i, i+n) are all free.
func (b *bitmap) runFree(i, n int) bool {
	if i < 0 || i+n > len(b.free) {
		return false
	}
	for j := i; j < i+n; j++ {
		if !b.free[j] {
			return false
		}
	}
	return true
}

func (b *bitmap) set(i, n int, free bool) {
	for j := i; j < i+n; j++ {
		b.free[j] = free
	}
}

// firstFit returns the first aligned run of n free units, O(blocks).
func (b *bitmap) firstFit(n, alignUnits int) (int, bool) {
	for i := 0; i+n <= len(b.free); i += alignUnits {
		if b.runFree(i, n) {
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

// TestExtentAllocatorAgainstBitmap runs random alloc, allocAt and release
// on both the allocator and a bitmap, checking every result: allocations
// are free in the model and aligned, refusals happen only when the model
// has no aligned run either, and the free totals agree.
func TestExtentAllocatorAgainstBitmap(t *testing.T) {
	const unit, base, size = 0x1000, 0x10_0000_0000, 0x400_0000 // 16,384 units
	a := newExtentAllocator(base, size, unit)
	m := newBitmap(base, size, unit)
	rng := rand.New(rand.NewPCG(7, 8))
	type block struct{ start, size uintptr }
	var live []block
	for i := 0; i < 20000; i++ {
		switch op := rng.IntN(5); {
		case op < 2:
			n := 1 + rng.IntN(64)
			if rng.IntN(10) == 0 {
				n = 1 + rng.IntN(2048)
			}
			alignUnits := 1 << rng.IntN(5)
			got, err := a.alloc("test", uintptr(n)*unit, uintptr(alignUnits)*unit)
			if err != nil {
				var ex *ExhaustedError
				if !errors.As(err, &ex) {
					t.Fatalf("op %d: alloc error %v is not *ExhaustedError", i, err)
				}
				if at, ok := m.firstFit(n, alignUnits); ok {
					t.Fatalf("op %d: alloc(%d units, align %d) refused but units %d.. are free", i, n, alignUnits, at)
				}
				if ex.Free != uintptr(countFree(m))*unit || ex.Largest != uintptr(m.largestRun())*unit {
					t.Fatalf("op %d: exhausted reports free %#x largest %#x, model %#x %#x", i, ex.Free, ex.Largest, countFree(m)*unit, m.largestRun()*unit)
				}
				continue
			}
			idx := int((got - base) / unit)
			if (got-base)%(uintptr(alignUnits)*unit) != 0 || !m.runFree(idx, n) {
				t.Fatalf("op %d: alloc returned %#x (%d units, align %d), not free or not aligned", i, got, n, alignUnits)
			}
			m.set(idx, n, false)
			live = append(live, block{got, uintptr(n) * unit})
		case op == 2:
			idx, n := rng.IntN(len(m.free)), 1+rng.IntN(16)
			err := a.allocAt("test", base+uintptr(idx)*unit, uintptr(n)*unit)
			if want := m.runFree(idx, n); (err == nil) != want {
				t.Fatalf("op %d: allocAt(unit %d, %d units): err %v, model says free=%v", i, idx, n, err, want)
			}
			if err == nil {
				m.set(idx, n, false)
				live = append(live, block{base + uintptr(idx)*unit, uintptr(n) * unit})
			}
		default:
			if len(live) == 0 {
				continue
			}
			j := rng.IntN(len(live))
			b := live[j]
			live = append(live[:j], live[j+1:]...)
			if err := a.release("test", b.start, b.size); err != nil {
				t.Fatalf("op %d: release %#x+%#x: %v", i, b.start, b.size, err)
			}
			m.set(int((b.start-base)/unit), int(b.size/unit), true)
			// Freeing it again must be refused and change nothing.
			if err := a.release("test", b.start, b.size); err == nil {
				t.Fatalf("op %d: double release of %#x accepted", i, b.start)
			}
		}
		if got, want := a.freeBytes(), uintptr(countFree(m))*unit; got != want {
			t.Fatalf("op %d: allocator has %#x free, model %#x", i, got, want)
		}
	}
	checkExtents(t, a)
}

func countFree(m *bitmap) int {
	n := 0
	for _, f := range m.free {
		if f {
			n++
		}
	}
	return n
}

// checkExtents verifies the allocator's invariants: both indexes hold the
// same extents, disjoint, coalesced and aligned.
func checkExtents(t *testing.T, a *extentAllocator) {
	t.Helper()
	if a.addrs.Len() != a.sizes.Len() {
		t.Fatalf("index sizes differ: %d by address, %d by size", a.addrs.Len(), a.sizes.Len())
	}
	var prev *extent
	a.addrs.Ascend(func(e extent) bool {
		if !a.sizes.Has(e) {
			t.Fatalf("extent %#x+%#x missing from the size index", e.start, e.size)
		}
		if e.start%a.unit != 0 || e.size%a.unit != 0 || e.size == 0 {
			t.Fatalf("extent %#x+%#x unaligned or empty", e.start, e.size)
		}
		if prev != nil && prev.end() >= e.start {
			t.Fatalf("extents %#x+%#x and %#x+%#x overlap or touch", prev.start, prev.size, e.start, e.size)
		}
		p := e
		prev = &p
		return true
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
		{"unaligned", 0x10800, 0x1000},
		{"never allocated", 0x11000, 0x1000},
	} {
		if err := a.release("test", tc.start, tc.size); err == nil {
			t.Errorf("release %s accepted", tc.name)
		}
	}
	if err := a.allocAt("test", 0x10000, ^uintptr(0)-0xfff); err == nil {
		t.Error("overflowing allocAt accepted")
	}
	if a.freeBytes() != 0x10000 {
		t.Fatalf("refused requests changed the free total to %#x", a.freeBytes())
	}
	checkExtents(t, a)
}

// fragmented returns an allocator and a bitmap over 2 GiB of 4 KiB units
// with every other unit of the first half allocated: 131,072 free
// extents, the worst case for a first-fit scan looking for two units.
func fragmented(b *testing.B) (*extentAllocator, *bitmap) {
	const unit, base, size = 0x1000, 0x10_0000_0000, 2 << 30
	a := newExtentAllocator(base, size, unit)
	m := newBitmap(base, size, unit)
	half := int(size / unit / 2)
	for i := 0; i < half; i += 2 {
		if err := a.allocAt("bench", base+uintptr(i)*unit, unit); err != nil {
			b.Fatal(err)
		}
		m.set(i, 1, false)
	}
	return a, m
}

// BenchmarkAllocFragmented measures alloc+release of two units on a
// fragmented 2 GiB vmcode: the extent allocator's best fit by size index.
func BenchmarkAllocFragmented(b *testing.B) {
	a, _ := fragmented(b)
	b.ResetTimer()
	for b.Loop() {
		p, err := a.alloc("bench", 0x2000, 0x1000)
		if err != nil {
			b.Fatal(err)
		}
		if err := a.release("bench", p, 0x2000); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAllocFragmentedBitmapFirstFit is the baseline: DynamoRIO's
// first-fit bitmap scan from block 0 on the same layout.
func BenchmarkAllocFragmentedBitmapFirstFit(b *testing.B) {
	_, m := fragmented(b)
	b.ResetTimer()
	for b.Loop() {
		i, ok := m.firstFit(2, 1)
		if !ok {
			b.Fatal("no fit")
		}
		m.set(i, 2, false)
		m.set(i, 2, true)
	}
}
