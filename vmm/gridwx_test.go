package vmm_test

import (
	"errors"
	"fmt"
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
var gridWXOps = []struct {
	name  string
	setup func(u *vmm.Slot) error
	op    func(v *vmm.VMM, u *vmm.Slot) error
}{
	{"commit", nil, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Commit(u.Base(), u.Size(), mem.ProtRX) }},
	{"protect", gridWXCommit, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Protect(u.Base(), u.Size(), mem.ProtRead) }},
	{"decommit", gridWXCommit, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Decommit(u.Base(), u.Size()) }},
	{"release", gridWXCommit, func(_ *vmm.VMM, u *vmm.Slot) error { return u.Release() }},
	{"close", gridWXCommit, func(v *vmm.VMM, _ *vmm.Slot) error { return v.Close() }},
}

func gridWXCommit(u *vmm.Slot) error { return u.Commit(u.Base(), u.Size(), mem.ProtRX) }

// TestGridWXFaultEachCall fails each OS call of each operation in turn:
// aspacem still matches the simulator exactly, the operation succeeds when
// repeated, and Close leaves nothing.
func TestGridWXFaultEachCall(t *testing.T) {
	for _, o := range gridWXOps {
		t.Run(o.name, func(t *testing.T) {
			for n := 1; ; n++ {
				v, s := newSimWX(t, mem.RulesWindows)
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
					if o.name != "close" {
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
				if o.name != "close" {
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
				if o.name != "close" {
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
