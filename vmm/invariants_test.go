package vmm_test

// One test per invariant of docs/ARCHITECTURE.md section 4 that this package owns
// (4, W^X, lives with the dual backing's tests). Each fails if its
// invariant is broken.

import (
	"errors"
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// fill reserves slots of mixed sizes until vmcode is exhausted and returns
// them and the error that stopped it.
func fill(t *testing.T, v *vmm.VMM) ([]*vmm.Slot, error) {
	t.Helper()
	var slots []*vmm.Slot
	for i := 0; ; i++ {
		s, err := v.ReserveSlot(uintptr(1+i%13)*0x5000, fmt.Sprintf("s%d", i))
		if err != nil {
			return slots, err
		}
		slots = append(slots, s)
	}
}

// Invariant 1, reach: any two addresses handed out from vmcode are
// rel32-reachable from each other, checked with HotSpot's rule.
func TestInvariantReach(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: s, NoVMHeap: true}) // the full 2 GiB
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var lo, hi uintptr = ^uintptr(0), 0
	for i := 0; i < 2000; i++ {
		sl, err := v.ReserveSlot(uintptr(1+i%64)<<20, fmt.Sprintf("s%d", i))
		if err != nil {
			break
		}
		lo, hi = min(lo, sl.Base()), max(hi, sl.Base()+sl.Size())
		for _, a := range []uintptr{sl.Base(), sl.Base() + sl.Size() - 1} {
			if !v.ReachesAll(a) {
				t.Fatalf("slot byte %#x is not reachable from all of vmcode", a)
			}
		}
	}
	if !mem.Reachable(lo, hi-1) || !mem.Reachable(hi-1, lo) {
		t.Fatalf("lowest (%#x) and highest (%#x) handed-out bytes are out of reach", lo, hi-1)
	}
	if hi-lo < 1<<30 {
		t.Fatalf("the test spread slots over only %#x bytes", hi-lo)
	}
}

// Invariant 2, alignment: every reservation and placement is a multiple of
// the allocation granularity, under both rule sets.
func TestInvariantAlignment(t *testing.T) {
	for _, rules := range []mem.Rules{mem.RulesLinux, mem.RulesWindows} {
		s := sim.New(rules, sim.Options{})
		v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		g := s.Granularity()
		base, size := v.VMCode()
		hb, hs := v.VMHeap()
		for _, x := range []uintptr{base, size, hb, hs} {
			if x%g != 0 {
				t.Fatalf("%v: %#x not a multiple of the granularity %#x", rules, x, g)
			}
		}
		slots, _ := fill(t, v)
		for _, sl := range slots {
			if sl.Base()%g != 0 || sl.Size()%g != 0 {
				t.Fatalf("%v: slot %#x+%#x not aligned to %#x", rules, sl.Base(), sl.Size(), g)
			}
		}
		for i := 0; i < 100; i++ {
			a, err := v.HeapAlloc(uintptr(1 + i*777))
			if err != nil {
				t.Fatal(err)
			}
			if a%g != 0 {
				t.Fatalf("%v: heap allocation %#x not aligned to %#x", rules, a, g)
			}
		}
		v.Close()
	}
}

// Invariant 3, accounting: after a mixed sequence, successful and failed,
// aspacem equals the kernel over what the library owns, and after Close
// the library owns nothing (also TestRandomOps*, at 1,000 operations).
func TestInvariantAccounting(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 32 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	base, size := v.VMCode()
	hb, hs := v.VMHeap()
	slots, _ := fill(t, v)
	for i, sl := range slots {
		switch i % 4 {
		case 0:
			sl.Commit(sl.Base(), v.OS().PageSize(), mem.ProtRW)
		case 1:
			sl.Release()
		case 2:
			sl.Protect(sl.Base(), v.OS().PageSize(), mem.ProtRW) // refused: reserved
		}
	}
	h, _ := v.HeapAlloc(1 << 20)
	vmmtest.SyncCheck(t, v, "after the sequence")
	v.HeapFree(h, 1<<20)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range [][2]uintptr{{base, size}, {hb, hs}} {
		if rs, err := v.OS().Regions(r[0], r[0]+r[1]); err != nil || len(rs) != 0 {
			t.Fatalf("after Close the kernel still maps %v (%v)", rs, err)
		}
	}
	if owned := v.Space().Owned(); len(owned) != 0 {
		t.Fatalf("after Close aspacem still has owned segments %v", owned)
	}
}

// Invariant 5, isolation: nothing anyone else maps lands on vmcode or
// vmheap. The kernel places hinted mappings elsewhere, refuses exact ones,
// and aspacem never advises a placement there.
func TestInvariantIsolation(t *testing.T) {
	o := osmem.Native()
	v, err := vmm.New(vmm.Config{OS: o, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	base, size := v.VMCode()
	hb, hs := v.VMHeap()
	inside := func(a uintptr) bool { return (a >= base && a < base+size) || (a >= hb && a < hb+hs) }
	for _, hint := range []uintptr{base, base + size/2, hb + hs - 1<<20} {
		a, err := o.Reserve(hint, 1<<20, mem.Hint)
		if err != nil {
			t.Fatal(err)
		}
		if inside(a) || inside(a+1<<20-1) {
			t.Fatalf("a mapping hinted at %#x landed inside reachvm's regions at %#x", hint, a)
		}
		o.Release(a, 1<<20)
		if _, err := o.Reserve(hint, 1<<20, mem.Exact); !errors.Is(err, mem.ErrExists) {
			t.Fatalf("an exact mapping at %#x inside reachvm's regions: %v, want ErrExists", hint, err)
		}
	}
	for _, near := range []uintptr{base, base + size/2, hb} {
		a, err := v.Space().Advise(1<<20, 0, near, 0)
		if err != nil {
			t.Fatal(err)
		}
		if inside(a) || inside(a+1<<20-1) {
			t.Fatalf("aspacem advised %#x, inside reachvm's regions", a)
		}
	}
}

// Invariant 6, no silent spill: a full vmcode refuses with a typed error
// naming the sizes; nothing is ever placed outside it, and the kernel shows
// no new mapping outside vmcode after the refusal.
func TestInvariantNoSpill(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 4 << 20, NoVMHeap: true}) // DR's client.low_on_memory
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	slots, err := fill(t, v)
	var ex *vmm.ExhaustedError
	if !errors.As(err, &ex) || ex.Asked == 0 || ex.Free != v.FreeVMCode() || ex.Region != "vmcode" {
		t.Fatalf("a full vmcode gave %v, want *ExhaustedError with the sizes", err)
	}
	before, _ := s.Regions(s.Bounds())
	for i := 0; i < 100; i++ {
		if sl, err := v.ReserveSlot(ex.Free+ex.Largest+s.PageSize(), "more"); err == nil {
			t.Fatalf("a request larger than what is free got %#x", sl.Base())
		}
	}
	after, _ := s.Regions(s.Bounds())
	if len(after) != len(before) {
		t.Fatalf("refused requests changed the address space: %d regions before, %d after", len(before), len(after))
	}
	for _, sl := range slots {
		if !v.InVMCode(sl.Base(), sl.Size()) {
			t.Fatalf("slot %#x outside vmcode", sl.Base())
		}
	}
}
