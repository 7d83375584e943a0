package vmmtest

import (
	"testing"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Footprint is the address space a VMM holds: vmcode, its writable view
// (vmcode again without W^X) and vmheap (left out without one).
type Footprint []mem.Range

// FootprintOf returns v's footprint; take it before v closes, since a
// closed VMM reports no vmheap.
func FootprintOf(v *vmm.VMM) Footprint {
	base, size := v.VMCode()
	f := Footprint{{Start: base, End: base + size}}
	if rw, n := v.WritableView(); rw != base {
		f = append(f, mem.Range{Start: rw, End: rw + n})
	}
	if hb, hn := v.VMHeap(); hn != 0 {
		f = append(f, mem.Range{Start: hb, End: hb + hn})
	}
	return f
}

// Gone fails t unless nothing of f is left after v closed: v's OS (the
// kernel's map, /proc/self/maps on Linux) shows no mapping in it, and
// aspacem records no segment owned there. It runs SyncCheck too.
//
// Preconditions: called on the test's goroutine, before anything else
// can map into f (it may call t.FailNow).
func Gone(t testing.TB, v *vmm.VMM, f Footprint, when string) {
	t.Helper()
	SyncCheck(t, v, when)
	for _, r := range f {
		regs, err := v.OS().Regions(r.Start, r.End)
		if err != nil {
			t.Fatalf("%s: reading the kernel's map of [%#x, %#x): %v", when, r.Start, r.End, err)
		}
		for _, g := range regs {
			if g.State == mem.StateFree {
				continue
			}
			// The kernel may place someone else's mapping in the hole
			// the VMM left (the Go runtime's, most often): one that
			// reaches out of the footprint is not the VMM's, which
			// never maps outside it.
			if full, err := v.OS().Query(g.Start); err == nil && !f.holds(full.Start, full.End) {
				t.Logf("%s: [%#x, %#x), mapped since the VMM closed, reaches out of its footprint: not the VMM's", when, full.Start, full.End)
				continue
			}
			t.Errorf("%s: [%#x, %#x) of the closed VMM's [%#x, %#x) is still mapped (%v, %q)", when, g.Start, g.End, r.Start, r.End, g.State, g.Name)
		}
		for _, s := range v.Space().Segments(r.Start, r.End) {
			if s.Kind.Owned() {
				t.Errorf("%s: aspacem still records %v in the closed VMM's [%#x, %#x)", when, s, r.Start, r.End)
			}
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// holds reports whether [start, end) lies inside f's union.
func (f Footprint) holds(start, end uintptr) bool {
	for start < end {
		in := false
		for _, r := range f {
			if r.Start <= start && start < r.End {
				start, in = r.End, true
			}
		}
		if !in {
			return false
		}
	}
	return true
}
