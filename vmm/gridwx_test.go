package vmm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// gridWXSlot is the grid's slot size (vmm.DefaultGridSlotSize).
const gridWXSlot = vmm.DefaultGridSlotSize

// TestGridWXLayout checks W^X vmcode under Windows rules: a writable view
// of the whole section at a constant offset, units of whole grid slots
// whose executable views show the section at their offset, no page
// writable and executable, and nothing left after Close.
func TestGridWXLayout(t *testing.T) {
	v, s := newSimWX(t, mem.RulesWindows)
	base, size := v.VMCode()
	rw, rwSize := v.WritableView()
	if rwSize != size || rw == base {
		t.Fatalf("writable view [%#x, +%#x), vmcode [%#x, +%#x)", rw, rwSize, base, size)
	}
	if r := query(t, s, rw); r.Start != rw || r.End != rw+size || r.Prot != mem.ProtNone || !r.Shared {
		t.Fatalf("writable view reads back as %+v", r)
	}
	vmmtest.SyncCheck(t, v, "new")

	u, err := v.ReserveUnit(4096, "fcache")
	if err != nil {
		t.Fatal(err)
	}
	if u.Size() != gridWXSlot || (u.Base()-base)%gridWXSlot != 0 {
		t.Fatalf("unit [%#x, +%#x): want one whole grid slot", u.Base(), u.Size())
	}
	if err := u.Commit(u.Base(), u.Size(), mem.ProtRWX); !errors.Is(err, vmm.ErrWriteExec) {
		t.Fatalf("rwx commit: got %v, want ErrWriteExec", err)
	}
	if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	r := query(t, s, u.Base())
	if r.Start != u.Base() || r.End != u.Base()+u.Size() || r.Prot != mem.ProtRX || !r.Shared || r.Offset != uint64(u.Base()-base) {
		t.Fatalf("executable view reads back as %+v", r)
	}
	if w, ok := v.Writable(u.Base()); !ok || w != rw+(u.Base()-base) {
		t.Fatalf("Writable(%#x) = %#x, %v", u.Base(), w, ok)
	}
	if r := query(t, s, rw+(u.Base()-base)); r.Start != rw+(u.Base()-base) || r.End != r.Start+u.Size() || r.Prot != mem.ProtRW {
		t.Fatalf("the unit's writable view reads back as %+v", r)
	}
	if e, ok := v.Executable(rw + (u.Base() - base) + 8); !ok || e != u.Base()+8 {
		t.Fatalf("Executable = %#x, %v", e, ok)
	}
	if err := u.Protect(u.Base(), 4096, mem.ProtRWX); !errors.Is(err, vmm.ErrWriteExec) {
		t.Fatalf("rwx protect: got %v, want ErrWriteExec", err)
	}
	vmmtest.SyncCheck(t, v, "committed")
	segs := v.Space().Segments(u.Base(), u.Base()+u.Size())
	if len(segs) != 1 || segs[0].Kind != aspacem.KindShared || segs[0].Owner != "fcache" {
		t.Fatalf("unit recorded as %v", segs)
	}

	// A unit of two slots, committed, decommitted, committed again.
	u2, err := v.ReserveUnit(gridWXSlot+4096, "fcache")
	if err != nil {
		t.Fatal(err)
	}
	if u2.Size() != 2*gridWXSlot {
		t.Fatalf("unit of %#x bytes, want two slots", u2.Size())
	}
	for i := 0; i < 2; i++ {
		if err := u2.Commit(u2.Base(), u2.Size(), mem.ProtRX); err != nil {
			t.Fatal(err)
		}
		vmmtest.SyncCheck(t, v, "second unit committed")
		if err := u2.Decommit(u2.Base(), u2.Size()); err != nil {
			t.Fatal(err)
		}
		vmmtest.SyncCheck(t, v, "second unit decommitted")
	}
	if err := u2.Commit(u2.Base(), 4096, mem.ProtRX); err == nil {
		t.Fatal("a commit of part of a grid slot succeeded")
	}
	vmmtest.SyncCheck(t, v, "partial commit refused")

	// A private file view in a file slot, as without W^X.
	path := tempFile(t, 4*4096)
	obj, err := s.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := v.ReserveSlot(4*4096, "privlib")
	if err != nil {
		t.Fatal(err)
	}
	if err := fs.MapFile(obj, 0, fs.Base(), 4*4096, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "file view")

	// Anonymous pages in a file slot (privload's PE images), as without
	// W^X: committed read-write, then made read-execute.
	img, err := v.ReserveSlot(0x65000, "privlib img.dll")
	if err != nil {
		t.Fatal(err)
	}
	if err := img.Commit(img.Base(), 0x65000, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	if err := img.Protect(img.Base(), 0x1000, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	if err := img.Protect(img.Base(), 0x1000, mem.ProtRWX); !errors.Is(err, vmm.ErrWriteExec) {
		t.Fatalf("rwx protect of an image: got %v, want ErrWriteExec", err)
	}
	if r := query(t, s, img.Base()); r.Shared || r.Prot != mem.ProtRX || r.State != mem.StateCommitted {
		t.Fatalf("image page reads back as %+v", r)
	}
	vmmtest.SyncCheck(t, v, "image committed")
	if err := img.Release(); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "image released")

	if err := u.Release(); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "unit released")
	// Kept idle for the next unit of its size: both views open, recorded
	// as an idle code view; Trim tears it down.
	if r := query(t, s, u.Base()); r.State != mem.StateCommitted || r.Prot != mem.ProtRX || !r.Shared {
		t.Fatalf("released unit, idle, reads back as %+v", r)
	}
	if seg, _ := v.Space().Lookup(u.Base()); seg.Owner != vmm.OwnerGridIdle || seg.Kind != aspacem.KindShared {
		t.Fatalf("idle unit recorded as %v", seg)
	}
	if n := v.Trimmable(); n != u.Size() {
		t.Fatalf("Trimmable %#x, want the idle unit's %#x", n, u.Size())
	}
	if err := v.Trim(); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "idle unit trimmed")
	if n := v.Trimmable(); n != 0 {
		t.Fatalf("Trimmable %#x after Trim", n)
	}
	if r := query(t, s, u.Base()); r.State != mem.StateReserved {
		t.Fatalf("released unit reads back as %+v", r)
	}
	if r := query(t, s, rw+(u.Base()-base)); r.Prot != mem.ProtNone {
		t.Fatalf("released unit's writable view reads back as %+v", r)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("Close left %v", rs)
	}
}

// gridWXOps are the unit operations TestGridWXFaultEachCall fails call by
// call. Each starts from a unit of two grid slots; setup runs with no
// fault.
// The release ops run with idle units off (the teardown's calls) or on
// (a release kept idle makes no OS call; its teardown by Trim, by a file
// slot reserved over it, or by Close does).
var gridWXOps = []struct {
	name string
	// idle says units are kept idle (vmm.SetGridIdleMax).
	idle  bool
	setup func(u *vmm.Slot) error
	op    func(v *vmm.VMM, u *vmm.Slot) error
}{
	{"commit", false, nil, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Commit(u.Base(), u.Size(), mem.ProtRX) }},
	{"protect", false, gridWXCommit, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Protect(u.Base(), u.Size(), mem.ProtRead) }},
	{"decommit", false, gridWXCommit, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Decommit(u.Base(), u.Size()) }},
	{"release", false, gridWXCommit, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Release() }},
	{"close", false, gridWXCommit, func(v *vmm.VMM, _ *vmm.Slot) error { return v.Close() }},
	{"trim idle", true, gridWXIdle, func(v *vmm.VMM, _ *vmm.Slot) error { return v.Trim() }},
	{"file slot over idle", true, gridWXIdle, func(v *vmm.VMM, u *vmm.Slot) error {
		s, err := v.ReserveSlotAt(u.Base(), u.Size(), "privlib")
		if err == nil {
			err = s.Release()
		}
		return err
	}},
	{"close idle", true, gridWXIdle, func(v *vmm.VMM, _ *vmm.Slot) error { return v.Close() }},
}

func gridWXCommit(u *vmm.Slot) error { return u.Commit(u.Base(), u.Size(), mem.ProtRX) }

// gridWXIdle commits and releases u: an idle unit.
func gridWXIdle(u *vmm.Slot) error {
	if err := gridWXCommit(u); err != nil {
		return err
	}
	return u.Release()
}

// TestGridWXFaultEachCall fails each OS call of each operation in turn:
// aspacem still matches the simulator exactly, the operation succeeds when
// repeated, and Close leaves nothing.
func TestGridWXFaultEachCall(t *testing.T) {
	for _, o := range gridWXOps {
		t.Run(o.name, func(t *testing.T) {
			for n := 1; ; n++ {
				v, s := newSimWX(t, mem.RulesWindows)
				if !o.idle {
					vmm.SetGridIdleMax(v, 0)
				}
				u, err := v.ReserveUnit(2*gridWXSlot, "fcache")
				if err != nil {
					t.Fatal(err)
				}
				if o.setup != nil {
					if err := o.setup(u); err != nil {
						t.Fatal(err)
					}
				}
				before := s.Calls()
				s.FailCall(n, mem.ErrNoMemory)
				err = o.op(v, u)
				made := s.Calls() - before
				s.ClearFaults()
				when := fmt.Sprintf("call %d failed", n)
				if n > made {
					if err != nil {
						t.Fatalf("clean run: %v", err)
					}
					if !strings.HasPrefix(o.name, "close") {
						vmmtest.SyncCheck(t, v, "clean run")
						v.Close()
					}
					if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
						t.Fatalf("clean run: Close left %v", rs)
					}
					if n < 2 {
						t.Fatalf("the operation made %d OS calls", made)
					}
					t.Logf("%d OS calls failed in turn", made)
					return
				}
				if !strings.HasPrefix(o.name, "close") {
					vmmtest.SyncCheck(t, v, when)
				}
				if err != nil {
					if !errors.Is(err, mem.ErrNoMemory) {
						t.Fatalf("%s: got %v, want the injected ErrNoMemory", when, err)
					}
					if err := o.op(v, u); err != nil {
						t.Fatalf("%s, then repeated: %v", when, err)
					}
				}
				if !strings.HasPrefix(o.name, "close") {
					vmmtest.SyncCheck(t, v, when+", then repeated")
					if err := v.Close(); err != nil {
						t.Fatal(err)
					}
				}
				if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
					t.Fatalf("%s: Close left %v", when, rs)
				}
			}
		})
	}
}

// TestGridWXIdleUnits checks the idle units of W^X vmcode on the grid: a
// released unit is kept with both views open, and the next unit of its
// range takes it over with no OS call; at most four slots are kept (the
// fifth release tears its unit down); a unit of another size, or a file
// slot, over an idle unit tears it down first; aspacem stays exact
// throughout and no view is ever writable and executable.
func TestGridWXIdleUnits(t *testing.T) {
	v, s := newSimWX(t, mem.RulesWindows)
	defer v.Close()
	reserve := func(size uintptr) *vmm.Slot {
		t.Helper()
		u, err := v.ReserveUnit(size, "fcache")
		if err != nil {
			t.Fatal(err)
		}
		if err := gridWXCommit(u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	release := func(u *vmm.Slot) {
		t.Helper()
		if err := u.Release(); err != nil {
			t.Fatal(err)
		}
	}
	noWriteExec := func(when string) {
		t.Helper()
		rs, err := s.Regions(s.Bounds())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Prot&mem.ProtWrite != 0 && r.Prot&mem.ProtExec != 0 {
				t.Fatalf("%s: %+v is writable and executable", when, r)
			}
		}
		vmmtest.SyncCheck(t, v, when)
	}

	u := reserve(4096)
	base := u.Base()
	c0 := s.Calls()
	release(u)
	if made := s.Calls() - c0; made != 0 {
		t.Errorf("a release kept idle made %d OS calls", made)
	}
	noWriteExec("one idle unit")
	c0 = s.Calls()
	u = reserve(4096)
	if made := s.Calls() - c0; made != 0 || u.Base() != base {
		t.Errorf("the next unit: %d OS calls, at %#x; want none, at the idle unit's %#x", made, u.Base(), base)
	}
	if seg, _ := v.Space().Lookup(base); seg.Owner != "fcache" || seg.Prot != mem.ProtRX {
		t.Errorf("unit taken over recorded as %v", seg)
	}
	noWriteExec("idle unit taken over")
	release(u)

	// Five units released: four kept, the fifth torn down.
	var us []*vmm.Slot
	for range 5 {
		us = append(us, reserve(4096))
	}
	for _, u := range us {
		release(u)
	}
	if n := v.Trimmable(); n != 4*gridWXSlot {
		t.Errorf("idle bytes %#x, want four slots", n)
	}
	last := us[4].Base()
	if r := query(t, s, last); r.State != mem.StateReserved {
		t.Errorf("the fifth unit released reads back as %+v, want reserved", r)
	}
	noWriteExec("four idle units")

	// A two-slot unit over two idle ones tears both down.
	big, err := v.ReserveSlotAt(us[0].Base(), 2*gridWXSlot, "privlib")
	if err == nil {
		release(big)
	}
	if err != nil {
		t.Fatal(err)
	}
	noWriteExec("file slot over idle units")
	if r := query(t, s, us[0].Base()); r.State != mem.StateReserved {
		t.Errorf("an idle unit under a file slot reads back as %+v, want reserved", r)
	}
	u = reserve(2 * gridWXSlot)
	noWriteExec("two-slot unit")
	release(u)
	noWriteExec("two-slot unit released")
	if err := v.Trim(); err != nil {
		t.Fatal(err)
	}
	if n := v.Trimmable(); n != 0 {
		t.Errorf("idle bytes %#x after Trim", n)
	}
	noWriteExec("trimmed")
}
