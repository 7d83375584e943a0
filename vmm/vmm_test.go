package vmm_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

func newSim(t *testing.T, rules mem.Rules) *sim.OS {
	t.Helper()
	return sim.New(rules, sim.Options{})
}

func TestVMCodePlacement(t *testing.T) {
	s := newSim(t, mem.RulesLinux)
	v, err := vmm.New(vmm.Config{OS: s})
	if err != nil {
		t.Fatal(err)
	}
	base, size := v.VMCode()
	if size != vmm.DefaultVMCodeSize {
		t.Fatalf("default vmcode size %#x, want 2 GiB", size)
	}
	if seg, ok := v.Space().Lookup(base); !ok || seg.Owner != vmm.OwnerVMCode || seg.End != base+size {
		t.Fatalf("aspacem records vmcode as %v", seg)
	}
	// A second VMM asking for the same base exactly is refused, and the
	// first is untouched.
	if _, err := vmm.New(vmm.Config{OS: s, Space: v.Space(), VMCodeBase: base, VMCodeSize: 1 << 20}); !errors.Is(err, mem.ErrExists) {
		t.Fatalf("vmcode over vmcode: got %v, want ErrExists", err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); !errors.Is(err, vmm.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := v.ReserveSlot(4096, "late"); !errors.Is(err, vmm.ErrClosed) {
		t.Fatalf("ReserveSlot after Close: %v", err)
	}
	// At an exact base, on both rule sets.
	for _, rules := range []mem.Rules{mem.RulesLinux, mem.RulesWindows} {
		s := newSim(t, rules)
		want := uintptr(0x10_0000_0000) // rounded up to a grid slot multiple under Windows rules
		if rules == mem.RulesWindows {
			want += 640<<10 - want%(640<<10)
		}
		v, err := vmm.New(vmm.Config{OS: s, VMCodeBase: want, VMCodeSize: 64 << 20})
		if err != nil {
			t.Fatalf("%v: %v", rules, err)
		}
		if b, _ := v.VMCode(); b != want {
			t.Fatalf("%v: vmcode at %#x, want %#x", rules, b, want)
		}
		v.Close()
	}
}

func TestBadConfig(t *testing.T) {
	s := newSim(t, mem.RulesWindows)
	for _, cfg := range []vmm.Config{
		{OS: s, VMCodeSize: 4096},                                  // not a multiple of 64 KiB
		{OS: s, VMCodeBase: 0x10_0000_1000},                        // unaligned base
		{OS: s, VMCodeBase: ^uintptr(0) &^ 0xffff},                 // overflowing
		{OS: s, VMCodeBase: 0x7fff_0000_0000, VMCodeSize: 1 << 40}, // beyond the address space
	} {
		if v, err := vmm.New(cfg); err == nil {
			v.Close()
			t.Errorf("vmm.New(%+v) succeeded", cfg)
		}
	}
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("refused configurations left %v", rs)
	}
}

// TestSlotsStayInVMCode fills vmcode with slots of mixed sizes until it is
// exhausted: every slot lies inside vmcode, no two overlap, and the last
// request fails with ExhaustedError rather than landing outside.
func TestSlotsStayInVMCode(t *testing.T) {
	s := newSim(t, mem.RulesLinux)
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	var slots []*vmm.Slot
	for i := 0; ; i++ {
		sl, err := v.ReserveSlot(uintptr(1+i%7)*0x3000, fmt.Sprintf("s%d", i))
		if err != nil {
			var ex *vmm.ExhaustedError
			if !errors.As(err, &ex) {
				t.Fatalf("slot %d: %v, want *ExhaustedError", i, err)
			}
			break
		}
		if !v.InVMCode(sl.Base(), sl.Size()) {
			t.Fatalf("slot %d at %#x+%#x lies outside vmcode", i, sl.Base(), sl.Size())
		}
		for _, o := range slots {
			if sl.Base() < o.Base()+o.Size() && o.Base() < sl.Base()+sl.Size() {
				t.Fatalf("slots %#x and %#x overlap", sl.Base(), o.Base())
			}
		}
		slots = append(slots, sl)
	}
	if len(slots) < 100 {
		t.Fatalf("only %d slots fit in 16 MiB", len(slots))
	}
	mism, err := v.Space().SyncCheck(s)
	if err != nil || len(mism) != 0 {
		t.Fatalf("SyncCheck: %v %v", err, mism)
	}
}

func TestSlotBadInput(t *testing.T) {
	s := newSim(t, mem.RulesLinux)
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if _, err := v.ReserveSlot(0, "zero"); err == nil {
		t.Error("zero-size slot accepted")
	}
	if _, err := v.ReserveSlot(32<<20, "huge"); err == nil {
		t.Error("slot larger than vmcode accepted")
	}
	if _, err := v.ReserveSlot(4096, "bad\x00name"); err == nil {
		t.Error("owner with a NUL byte accepted")
	}
	sl, err := v.ReserveSlot(0x4000, "ok")
	if err != nil {
		t.Fatal(err)
	}
	b := sl.Base()
	for name, err := range map[string]error{
		"protect reserved pages": sl.Protect(b, 0x1000, mem.ProtRW),
		"commit past the end":    sl.Commit(b+0x3000, 0x2000, mem.ProtRW),
		"commit before the base": sl.Commit(b-0x1000, 0x1000, mem.ProtRW),
		"unaligned commit":       sl.Commit(b+1, 0x1000, mem.ProtRW),
		"overflowing commit":     sl.Commit(b, ^uintptr(0)&^0xfff, mem.ProtRW),
		"bad protection bits":    sl.Commit(b, 0x1000, mem.Prot(0x80)),
	} {
		if err == nil {
			t.Errorf("%s accepted", name)
		}
	}
	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	if err := sl.Release(); err == nil {
		t.Error("second release accepted")
	}
	if err := sl.Commit(b, 0x1000, mem.ProtRW); err == nil {
		t.Error("commit in a released slot accepted")
	}
	mism, err := v.Space().SyncCheck(s)
	if err != nil || len(mism) != 0 {
		t.Fatalf("SyncCheck after refused requests: %v %v", err, mism)
	}
}

// Example reserves a small vmcode on the simulator, carves a slot out of
// it and commits a page, with aspacem recording each step.
func Example() {
	os := sim.New(mem.RulesLinux, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: os, VMCodeSize: 1 << 20, WX: vmm.WXOn})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	slot, err := v.ReserveSlot(0x3000, "privlib libexample.so")
	if err != nil {
		panic(err)
	}
	if err := slot.Commit(slot.Base(), 0x1000, mem.ProtRW); err != nil {
		panic(err)
	}
	base, _ := v.VMCode()
	for _, seg := range v.Space().Segments(base, base+(1<<20)) {
		fmt.Printf("+%#06x-+%#06x %-11s %v %s\n", seg.Start-base, seg.End-base, seg.Kind, seg.Prot, seg.Owner)
	}
	mism, _ := v.Space().SyncCheck(os)
	fmt.Println("mismatches:", len(mism))
	// Under W^X (the default under Linux rules) every page of vmcode is a
	// view of one shared object, PROT_NONE until committed.
	//
	// Output:
	// +0x000000-+0x001000 shared      rw- privlib libexample.so
	// +0x001000-+0x003000 shared      --- privlib libexample.so
	// +0x003000-+0x100000 shared      --- vmcode
	// mismatches: 0
}

// TestReserveSlotAt asks for slots at exact addresses: free ones are
// granted where asked, taken or unaligned ones are refused, and a unit
// cannot hold a file view.
func TestReserveSlotAt(t *testing.T) {
	s := newSim(t, mem.RulesLinux)
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	base, _ := v.VMCode()
	a, err := v.ReserveSlotAt(base+0x10000, 0x3000, "exact")
	if err != nil || a.Base() != base+0x10000 {
		t.Fatalf("ReserveSlotAt: %v at %#x", err, a.Base())
	}
	if _, err := v.ReserveSlotAt(base+0x12000, 0x1000, "overlap"); err == nil {
		t.Fatal("a slot over another slot was granted")
	}
	if _, err := v.ReserveSlotAt(base+0x100, 0x1000, "unaligned"); err == nil {
		t.Fatal("an unaligned exact slot was granted")
	}
	if _, err := v.ReserveSlotAt(base+16<<20, 0x1000, "outside"); err == nil {
		t.Fatal("an exact slot outside vmcode was granted")
	}
	u, err := v.ReserveUnit(0x1000, "unit")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.MapFile(nil, 0, u.Base(), 0x1000, mem.ProtRead); err == nil {
		t.Fatal("a unit accepted a file view")
	}
	if mism, err := v.Space().SyncCheck(s); err != nil || len(mism) != 0 {
		t.Fatalf("SyncCheck: %v %v", err, mism)
	}
}
