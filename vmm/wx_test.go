package vmm_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// newSimWX returns a W^X VMM of 16 MiB on a fresh simulator with rules:
// under Linux rules one memfd-like object viewed twice, under Windows
// rules the grid with a pagefile-backed section viewed twice.
func newSimWX(t *testing.T, rules mem.Rules) (*vmm.VMM, *sim.OS) {
	t.Helper()
	s := sim.New(rules, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXOn})
	if err != nil {
		t.Fatal(err)
	}
	if !v.WX() {
		t.Fatal("WXOn gave no W^X")
	}
	return v, s
}

// query returns the simulator's region at addr.
func query(t *testing.T, o mem.OS, addr uintptr) mem.Region {
	t.Helper()
	r, err := o.Query(addr)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestWXLayout checks what W^X vmcode is made of: two views of one shared
// object at a constant offset, both recorded in aspacem with the object's
// name and offsets, and the conversions between them.
func TestWXLayout(t *testing.T) {
	v, s := newSimWX(t, mem.RulesLinux)
	defer v.Close()
	base, size := v.VMCode()
	rw, rwSize := v.WritableView()
	if rwSize != size || (rw < base+size && base < rw+size) {
		t.Fatalf("writable view [%#x, +%#x) overlaps vmcode [%#x, +%#x) or differs in size", rw, rwSize, base, size)
	}
	for _, c := range []struct {
		addr, owner string
		at          uintptr
	}{{"vmcode", vmm.OwnerVMCode, base}, {"writable view", vmm.OwnerVMCodeAlias, rw}} {
		seg, _ := v.Space().Lookup(c.at)
		want := aspacem.Segment{Start: c.at, End: c.at + size, Kind: aspacem.KindShared, Shared: true,
			Owner: c.owner, Name: "/memfd:" + vmm.SharedName}
		if seg != want {
			t.Errorf("%s recorded as %v, want %v", c.addr, seg, want)
		}
		if r := query(t, s, c.at); !r.Shared || r.Prot != mem.ProtNone || r.Name != "/memfd:"+vmm.SharedName+" (deleted)" {
			t.Errorf("%s: the simulator shows %+v", c.addr, r)
		}
	}
	for _, off := range []uintptr{0, 0x1000, size - 1} {
		w, ok := v.Writable(base + off)
		if !ok || w != rw+off {
			t.Errorf("Writable(base+%#x) = %#x %v, want %#x", off, w, ok, rw+off)
		}
		x, ok := v.Executable(rw + off)
		if !ok || x != base+off {
			t.Errorf("Executable(rw+%#x) = %#x %v, want %#x", off, x, ok, base+off)
		}
	}
	for _, a := range []uintptr{base - 1, base + size, rw} {
		if _, ok := v.Writable(a); ok {
			t.Errorf("Writable(%#x) outside vmcode succeeded", a)
		}
	}
	for _, a := range []uintptr{rw - 1, rw + size, base} {
		if _, ok := v.Executable(a); ok {
			t.Errorf("Executable(%#x) outside the writable view succeeded", a)
		}
	}
	vmmtest.SyncCheck(t, v, "after New")
}

// TestWXSlotStates walks one slot through every state (reserved,
// committed, protected, decommitted, a file view, released) and checks
// both views in the simulator and aspacem after each step.
func TestWXSlotStates(t *testing.T) {
	v, s := newSimWX(t, mem.RulesLinux)
	defer v.Close()
	base, _ := v.VMCode()
	path := tempFile(t, 4*4096)
	obj, err := s.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseObject(obj)
	sl, err := v.ReserveSlot(4*4096, "privlib x")
	if err != nil {
		t.Fatal(err)
	}
	a := sl.Base()
	rw, _ := v.Writable(a)
	views := func(when string, exec, alias mem.Prot) {
		t.Helper()
		if p := query(t, s, a).Prot; p != exec {
			t.Errorf("%s: executable view %v, want %v", when, p, exec)
		}
		if p := query(t, s, rw).Prot; p != alias {
			t.Errorf("%s: writable view %v, want %v", when, p, alias)
		}
		vmmtest.SyncCheck(t, v, when)
	}
	views("reserved", mem.ProtNone, mem.ProtNone)
	if seg, _ := v.Space().Lookup(a); seg.Kind != aspacem.KindShared || seg.Offset != uint64(a-base) || seg.Owner != "privlib x" {
		t.Fatalf("reserved slot recorded as %v", seg)
	}
	if err := sl.Protect(a, 4096, mem.ProtRead); err == nil {
		t.Fatal("protecting reserved pages succeeded")
	}
	if err := sl.Commit(a, 4096, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	views("committed r-x", mem.ProtRX, mem.ProtRW)
	if err := sl.Protect(a, 4096, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	views("protected r--", mem.ProtRead, mem.ProtRW)
	if err := sl.Commit(a, 4096, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	views("committed rw-", mem.ProtRW, mem.ProtRW)
	if err := sl.Decommit(a, 4096); err != nil {
		t.Fatal(err)
	}
	views("decommitted", mem.ProtNone, mem.ProtNone)
	if err := sl.Commit(a, 4096, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	// A file view over committed pages: the object's pages there go, the
	// writable view there becomes inaccessible.
	if err := sl.MapFile(obj, 4096, a, 2*4096, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, a); r.Shared || r.Name != path || r.Offset != 4096 {
		t.Fatalf("file view shows as %+v", r)
	}
	views("file view", mem.ProtRX, mem.ProtNone)
	if err := sl.Protect(a, 2*4096, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	views("file view r--", mem.ProtRead, mem.ProtNone)
	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	views("released", mem.ProtNone, mem.ProtNone)
	if r := query(t, s, a); !r.Shared || r.Offset != uint64(a-base) {
		t.Fatalf("released slot shows as %+v, want the object at offset %#x", r, a-base)
	}
}

// TestWXRefusesWriteExec asks, under W^X, for pages writable and
// executable at once in every way a slot can: each is refused with
// ErrWriteExec and changes nothing. WXOff, the comparison mode, grants
// them, as the single mapping it is.
func TestWXRefusesWriteExec(t *testing.T) {
	v, s := newSimWX(t, mem.RulesLinux)
	defer v.Close()
	obj, err := s.OpenFile(tempFile(t, 4096))
	if err != nil {
		t.Fatal(err)
	}
	defer s.CloseObject(obj)
	sl, err := v.ReserveSlot(2*4096, "x")
	if err != nil {
		t.Fatal(err)
	}
	a := sl.Base()
	if err := sl.Commit(a, 4096, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"commit rwx":  sl.Commit(a+4096, 4096, mem.ProtRWX),
		"protect rwx": sl.Protect(a, 4096, mem.ProtRWX),
		"protect -wx": sl.Protect(a, 4096, mem.ProtWrite|mem.ProtExec),
		"map rwx":     sl.MapFile(obj, 0, a+4096, 4096, mem.ProtRWX),
	} {
		if !errors.Is(err, vmm.ErrWriteExec) {
			t.Errorf("%s: got %v, want ErrWriteExec", name, err)
		}
	}
	if r := query(t, s, a); r.Prot != mem.ProtRX {
		t.Errorf("a refused request changed the page to %v", r.Prot)
	}
	vmmtest.SyncCheck(t, v, "after the refusals")

	off, err := vmm.New(vmm.Config{OS: s, Space: v.Space(), VMCodeSize: 1 << 20, NoVMHeap: true, WX: vmm.WXOff})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	sl, err = off.ReserveSlot(4096, "y")
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Commit(sl.Base(), 4096, mem.ProtRWX); err != nil {
		t.Errorf("WXOff refused rwx: %v", err)
	}
}

// wxOps are the slot operations whose OS calls TestWXFaultEachCall fails
// one by one. Each starts from a slot of 4 pages whose first two are
// committed r-x, then runs its setup, if any, with no fault; setup returns
// the slot op works on.
var wxOps = []struct {
	name  string
	setup func(v *vmm.VMM, sl *vmm.Slot) (*vmm.Slot, error)
	op    func(v *vmm.VMM, sl *vmm.Slot, obj mem.Object) error
}{
	{"commit", nil, func(_ *vmm.VMM, sl *vmm.Slot, _ mem.Object) error {
		return sl.Commit(sl.Base(), 4*4096, mem.ProtRX)
	}},
	{"decommit", nil, func(_ *vmm.VMM, sl *vmm.Slot, _ mem.Object) error { return sl.Decommit(sl.Base(), 4*4096) }},
	{"protect", nil, func(_ *vmm.VMM, sl *vmm.Slot, _ mem.Object) error {
		return sl.Protect(sl.Base(), 2*4096, mem.ProtRead)
	}},
	{"map", nil, func(_ *vmm.VMM, sl *vmm.Slot, obj mem.Object) error {
		return sl.MapFile(obj, 0, sl.Base(), 4*4096, mem.ProtRead)
	}},
	// Half committed: the pages are dropped at once.
	{"release", nil, func(_ *vmm.VMM, sl *vmm.Slot, _ mem.Object) error { return sl.Release() }},
	// All committed: the pages become freed.
	{"release committed", commitAll, func(_ *vmm.VMM, sl *vmm.Slot, _ mem.Object) error { return sl.Release() }},
	// Freed pages trimmed.
	{"trim", freeAll, func(v *vmm.VMM, _ *vmm.Slot, _ mem.Object) error { return v.Trim() }},
	// Freed pages revived by a new slot over them, and file-mapped over.
	{"revive", reserveFreed, func(_ *vmm.VMM, sl *vmm.Slot, _ mem.Object) error {
		return sl.Commit(sl.Base(), 4*4096, mem.ProtRX)
	}},
	{"map over freed", reserveFreed, func(_ *vmm.VMM, sl *vmm.Slot, obj mem.Object) error {
		return sl.MapFile(obj, 0, sl.Base(), 4*4096, mem.ProtRead)
	}},
}

// commitAll commits all 4 pages of a wxOps slot.
func commitAll(_ *vmm.VMM, sl *vmm.Slot) (*vmm.Slot, error) {
	return sl, sl.Commit(sl.Base(), 4*4096, mem.ProtRX)
}

// freeAll commits all of a wxOps slot and releases it: its pages are freed.
func freeAll(v *vmm.VMM, sl *vmm.Slot) (*vmm.Slot, error) {
	if _, err := commitAll(v, sl); err != nil {
		return nil, err
	}
	return sl, sl.Release()
}

// reserveFreed frees a wxOps slot's pages and reserves a new slot over
// them.
func reserveFreed(v *vmm.VMM, sl *vmm.Slot) (*vmm.Slot, error) {
	if _, err := freeAll(v, sl); err != nil {
		return nil, err
	}
	if v.Trimmable() != 4*4096 {
		return nil, fmt.Errorf("%#x bytes freed, want 4 pages", v.Trimmable())
	}
	return v.ReserveSlotAt(sl.Base(), 4*4096, "t")
}

// TestWXFaultEachCall fails each OS call of each W^X slot operation in
// turn: the operation reports the error, aspacem still matches the
// simulator exactly (the alias is recorded as each call succeeds, the
// executable view is changed last), and the operation then succeeds when
// repeated.
func TestWXFaultEachCall(t *testing.T) {
	path := tempFile(t, 4*4096)
	for _, o := range wxOps {
		t.Run(o.name, func(t *testing.T) {
			for n := 1; ; n++ {
				v, s := newSimWX(t, mem.RulesLinux)
				obj, err := s.OpenFile(path)
				if err != nil {
					t.Fatal(err)
				}
				sl, err := v.ReserveSlot(4*4096, "s")
				if err != nil {
					t.Fatal(err)
				}
				if err := sl.Commit(sl.Base(), 2*4096, mem.ProtRX); err != nil {
					t.Fatal(err)
				}
				if o.setup != nil {
					if sl, err = o.setup(v, sl); err != nil {
						t.Fatal(err)
					}
				}
				before := s.Calls()
				s.FailCall(n, mem.ErrNoMemory)
				err = o.op(v, sl, obj)
				made := s.Calls() - before
				s.ClearFaults()
				when := fmt.Sprintf("call %d failed", n)
				if n > made {
					// Every call of the operation has failed once.
					if err != nil {
						t.Fatalf("clean run: %v", err)
					}
					vmmtest.SyncCheck(t, v, "clean run")
					v.Close()
					if n < 2 {
						t.Fatalf("the operation made %d OS calls", made)
					}
					return
				}
				if !errors.Is(err, mem.ErrNoMemory) {
					t.Fatalf("%s: got %v, want the injected ErrNoMemory", when, err)
				}
				vmmtest.SyncCheck(t, v, when)
				if err := o.op(v, sl, obj); err != nil {
					t.Fatalf("%s, then repeated: %v", when, err)
				}
				vmmtest.SyncCheck(t, v, when+", then repeated")
				if err := v.Close(); err != nil {
					t.Fatal(err)
				}
				if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
					t.Fatalf("%s: Close left %v", when, rs)
				}
			}
		})
	}
}

// TestWXCloseResumes fails each OS call of Close in turn: Close reports
// it, the slots refuse to touch views that may be gone, and a second Close
// finishes the job, leaving nothing in the simulator or aspacem.
func TestWXCloseResumes(t *testing.T) {
	for n := 1; ; n++ {
		v, s := newSimWX(t, mem.RulesLinux)
		base, size := v.VMCode()
		rw, _ := v.WritableView()
		sl, err := v.ReserveSlot(4096, "s")
		if err != nil {
			t.Fatal(err)
		}
		if err := sl.Commit(sl.Base(), 4096, mem.ProtRX); err != nil {
			t.Fatal(err)
		}
		before := s.Calls()
		s.FailCall(n, mem.ErrNoMemory)
		err = v.Close()
		made := s.Calls() - before
		s.ClearFaults()
		if n > made {
			if err != nil {
				t.Fatalf("clean Close: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("Close with call %d failing succeeded", n)
		}
		if n > 1 {
			// The writable view is gone and its range free: let someone
			// else map there, as the kernel would allow. The slot must
			// not touch it.
			w, _ := v.Writable(sl.Base())
			if err := s.MapForeign(w, w+4096, mem.ProtRead, "intruder"); err != nil {
				t.Fatal(err)
			}
			if err := sl.Commit(sl.Base(), 4096, mem.ProtRX); err == nil {
				t.Fatalf("call %d of Close failed: a commit after the half-done Close succeeded", n)
			}
			if r := query(t, s, w); r.Prot != mem.ProtRead || r.Name != "intruder" {
				t.Fatalf("call %d of Close failed: a commit changed someone else's mapping: %+v", n, r)
			}
			if err := s.Release(w, 4096); err != nil {
				t.Fatal(err)
			}
		}
		if err := v.Close(); err != nil {
			t.Fatalf("call %d of Close failed, then Close again: %v", n, err)
		}
		assertNothingOwned(t, v, base, size, fmt.Sprintf("call %d of Close failed", n))
		if rs, _ := s.Regions(rw, rw+size); len(rs) != 0 {
			t.Fatalf("call %d of Close failed: the writable view is left: %v", n, rs)
		}
		if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
			t.Fatalf("call %d of Close failed: left %v", n, rs)
		}
	}
}

// TestWXNewFaults fails each OS call of a W^X New in turn, under either
// OS's rules: New reports it and leaves nothing behind. Under Windows
// rules New may still succeed, since a failed check of one grid placement
// is retried elsewhere; Close must then leave nothing either.
func TestWXNewFaults(t *testing.T) {
	for _, tc := range []struct {
		rules   mem.Rules
		size    uintptr
		retries bool
	}{
		{mem.RulesLinux, 16 << 20, false},
		{mem.RulesWindows, 4 << 20, true},
	} {
		t.Run(tc.rules.String(), func(t *testing.T) {
			for n := 1; ; n++ {
				s := sim.New(tc.rules, sim.Options{})
				s.FailCall(n, mem.ErrNoMemory)
				v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: tc.size, NoVMHeap: true, WX: vmm.WXOn})
				if err == nil {
					// Read before Close, whose calls would reach n.
					calls := s.Calls()
					if calls < n {
						v.Close()
						if n < 4 {
							t.Fatalf("New made only %d OS calls", calls)
						}
						return
					}
					v.Close()
					if !tc.retries {
						t.Fatalf("New with call %d failing succeeded", n)
					}
					if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
						t.Fatalf("call %d failed: Close left %v", n, rs)
					}
					continue
				}
				if !errors.Is(err, mem.ErrNoMemory) {
					t.Fatalf("call %d: got %v", n, err)
				}
				if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
					t.Fatalf("call %d failed: New left %v", n, rs)
				}
			}
		})
	}
}

// TestWXFreedPages releases fully committed slots, whose pages stay in the
// shared object for reuse (both views PROT_NONE, recorded as reserved), up
// to 1 MiB; reusing them, trimming them and going past the bound each
// leave aspacem exact.
func TestWXFreedPages(t *testing.T) {
	v, _ := newSimWX(t, mem.RulesLinux)
	defer v.Close()
	commit := func(size uintptr) *vmm.Slot {
		t.Helper()
		sl, err := v.ReserveUnit(size, "u")
		if err != nil {
			t.Fatal(err)
		}
		if err := sl.Commit(sl.Base(), sl.Size(), mem.ProtRX); err != nil {
			t.Fatal(err)
		}
		return sl
	}
	sl := commit(3 * 4096)
	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	if got := v.Trimmable(); got != 3*4096 {
		t.Fatalf("%#x bytes trimmable after releasing 3 committed pages", got)
	}
	vmmtest.SyncCheck(t, v, "freed")
	// The allocator hands the same pages out again; committing them
	// revives them.
	sl = commit(2 * 4096)
	if got := v.Trimmable(); got > 4096 {
		t.Fatalf("%#x bytes trimmable after reusing 2 of 3 freed pages", got)
	}
	vmmtest.SyncCheck(t, v, "revived")
	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	if err := v.Trim(); err != nil {
		t.Fatal(err)
	}
	if got := v.Trimmable(); got != 0 {
		t.Fatalf("%#x bytes trimmable after Trim", got)
	}
	vmmtest.SyncCheck(t, v, "trimmed")
	// Past the bound, the release that crosses it trims.
	var slots []*vmm.Slot
	for i := 0; i < 40; i++ {
		slots = append(slots, commit(64<<10))
	}
	peak := uintptr(0)
	for _, sl := range slots {
		if err := sl.Release(); err != nil {
			t.Fatal(err)
		}
		peak = max(peak, v.Trimmable())
	}
	if peak > 1<<20+64<<10 || peak < 1<<20 {
		t.Fatalf("at most %#x bytes kept for reuse, want about 1 MiB", peak)
	}
	vmmtest.SyncCheck(t, v, "past the bound")
}

// TestWXUnavailable makes the kernel refuse the executable view of the
// shared object (EPERM, as under vm.memfd_noexec=2): WXOn fails with
// ErrWXUnavailable, WXAuto leaves W^X off; neither leaves anything behind
// and the VMM that comes out works.
func TestWXUnavailable(t *testing.T) {
	// Find the probe: the first call whose ErrNotSupported New reports as
	// ErrWXUnavailable.
	probe := 0
	for n := 1; n < 20 && probe == 0; n++ {
		s := sim.New(mem.RulesLinux, sim.Options{})
		s.FailCall(n, mem.ErrNotSupported)
		v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXOn})
		if err == nil {
			v.Close()
			continue
		}
		if errors.Is(err, vmm.ErrWXUnavailable) {
			probe = n
		}
		if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
			t.Fatalf("call %d refused: WXOn left %v", n, rs)
		}
	}
	if probe == 0 {
		t.Fatal("no refused call made New report ErrWXUnavailable")
	}
	s := sim.New(mem.RulesLinux, sim.Options{})
	s.FailCall(probe, mem.ErrNotSupported)
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXAuto})
	if err != nil {
		t.Fatalf("WXAuto with the executable view refused: %v", err)
	}
	if v.WX() {
		t.Fatal("WXAuto with the executable view refused gave W^X")
	}
	vmmtest.SyncCheck(t, v, "W^X refused")
	sl, err := v.ReserveSlot(4096, "s")
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Commit(sl.Base(), 4096, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, sl.Base()); r.Shared || r.Prot != mem.ProtRW {
		t.Fatalf("a slot of single vmcode shows as %+v", r)
	}
	base, size := v.VMCode()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothingOwned(t, v, base, size, "after Close")
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("left %v", rs)
	}
}
