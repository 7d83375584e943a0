package vmmtest

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Footprint is the address space a VMM holds: vmcode, its writable view
// (vmcode again without W^X) and vmheap (left out without one), with what
// the kernel mapped there when last marked.
type Footprint struct {
	// Ranges are the VMM's ranges.
	Ranges []mem.Range
	// seen is the kernel's map of Ranges at the last Mark.
	seen []mem.Region
}

// FootprintOf returns v's footprint, marked; take it before v closes,
// since a closed VMM reports no vmheap.
func FootprintOf(v *vmm.VMM) *Footprint {
	base, size := v.VMCode()
	f := &Footprint{Ranges: []mem.Range{{Start: base, End: base + size}}}
	if rw, n := v.WritableView(); rw != base {
		f.Ranges = append(f.Ranges, mem.Range{Start: rw, End: rw + n})
	}
	if hb, hn := v.VMHeap(); hn != 0 {
		f.Ranges = append(f.Ranges, mem.Range{Start: hb, End: hb + hn})
	}
	f.Mark(v)
	return f
}

// Mark records what the kernel maps in f now: call it right before v's
// Close, so that Unmapped tells what the VMM left behind (a part of a
// mapping marked, with the same state and protection) from what someone
// else mapped in the hole since.
func (f *Footprint) Mark(v *vmm.VMM) {
	f.seen = f.seen[:0]
	for _, r := range f.Ranges {
		regs, err := v.OS().Regions(r.Start, r.End)
		if err != nil {
			f.seen = nil // Unmapped then trusts no mark
			return
		}
		f.seen = append(f.seen, regs...)
	}
}

// marked reports whether g lies inside a region of the last Mark with
// the same state, protection and sharing.
func (f *Footprint) marked(g mem.Region) bool {
	if f.seen == nil {
		return true
	}
	for _, s := range f.seen {
		if s.Start <= g.Start && g.End <= s.End && s.State == g.State && s.Prot == g.Prot && s.Shared == g.Shared {
			return true
		}
	}
	return false
}

// Unmapped returns nil if v's OS (the kernel's map, /proc/self/maps on
// Linux) shows no mapping in f, else an error naming what it shows. Call
// it right after v's Close returns: the hole a closed VMM leaves is where
// the kernel puts the next mapping of anyone in the process (a new
// thread's stack, the Go heap), so the longer one waits, the likelier a
// mapping that is not the VMM's. One that reaches out of f is ignored for
// that reason: the VMM never maps outside its footprint; so is a thread's
// stack (a one-page guard below read-write memory), which a thread the Go
// runtime starts while Close runs can get, and so is anything not part of
// a mapping as it was at the last Mark.
func Unmapped(v *vmm.VMM, f *Footprint) error {
	var errs []error
	for _, r := range f.Ranges {
		regs, err := v.OS().Regions(r.Start, r.End)
		if err != nil {
			return fmt.Errorf("reading the kernel's map of [%#x, %#x): %w", r.Start, r.End, err)
		}
		for _, g := range regs {
			if g.State == mem.StateFree {
				continue
			}
			if !f.marked(g) {
				continue
			}
			if full, err := v.OS().Query(g.Start); err == nil && (!f.holds(full.Start, full.End) || threadStack(v.OS(), full)) {
				continue
			}
			errs = append(errs, fmt.Errorf("[%#x, %#x) of the closed VMM's [%#x, %#x) is still mapped (%v, %q)", g.Start, g.End, r.Start, r.End, g.State, g.Name))
		}
	}
	return errors.Join(errs...)
}

// Forgotten fails t unless v's aspacem is in sync with its OS (SyncCheck)
// and records no segment owned in f: after v closed, nothing of it is
// left on record.
//
// Preconditions: called on the test's goroutine (it may call t.FailNow).
func Forgotten(t testing.TB, v *vmm.VMM, f *Footprint, when string) {
	t.Helper()
	SyncCheck(t, v, when)
	bad := false
	for _, r := range f.Ranges {
		for _, s := range v.Space().Segments(r.Start, r.End) {
			if s.Kind.Owned() {
				t.Errorf("%s: aspacem still records %v in the closed VMM's [%#x, %#x)", when, s, r.Start, r.End)
				bad = true
			}
		}
	}
	if bad {
		t.FailNow()
	}
}

// Gone is Unmapped and Forgotten, for a VMM just closed.
//
// Preconditions: called on the test's goroutine, right after v's Close
// returned (it may call t.FailNow).
func Gone(t testing.TB, v *vmm.VMM, f *Footprint, when string) {
	t.Helper()
	if err := Unmapped(v, f); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	Forgotten(t, v, f, when)
}

// CloseDuring closes v while goroutines work on it, and checks it left
// nothing: it waits until busy has counted n of their operations, marks
// f, closes v, checks the kernel's map (Unmapped) before the goroutines
// can reuse the addresses, waits for them (wait), reports every error they
// sent on errs (which it closes), and checks aspacem (Forgotten).
//
// Preconditions: called on the test's goroutine (it may call t.FailNow);
// the goroutines send on errs without blocking (a buffered channel) and
// stop once their calls fail with vmm.ErrClosed.
func CloseDuring(t testing.TB, v *vmm.VMM, f *Footprint, busy *atomic.Int64, n int64, wait func(), errs chan error, when string) {
	t.Helper()
	for busy.Load() < n {
		runtime.Gosched()
	}
	f.Mark(v)
	if err := v.Close(); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	kernel := Unmapped(v, f)
	wait()
	close(errs)
	for err := range errs {
		t.Errorf("%s: %v", when, err)
	}
	if kernel != nil {
		t.Fatalf("%s: %v", when, kernel)
	}
	Forgotten(t, v, f, when)
}

// holds reports whether [start, end) lies inside f's union.
func (f *Footprint) holds(start, end uintptr) bool {
	for start < end {
		in := false
		for _, r := range f.Ranges {
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

// threadStack reports whether r is a part of what pthread_create maps for
// a thread's stack: a one-page inaccessible guard right below read-write
// memory. The VMM maps no such pair: it reserves and commits whole slots.
func threadStack(o mem.OS, r mem.Region) bool {
	page := o.PageSize()
	guard := func(g mem.Region) bool {
		return g.State != mem.StateFree && g.End-g.Start == page && g.Prot == mem.ProtNone
	}
	stack := func(s mem.Region) bool { return s.State == mem.StateCommitted && s.Prot == mem.ProtRW && !s.Shared }
	if guard(r) {
		above, err := o.Query(r.End)
		return err == nil && stack(above)
	}
	if stack(r) && r.Start >= page {
		below, err := o.Query(r.Start - page)
		return err == nil && below.End == r.Start && guard(below)
	}
	return false
}
