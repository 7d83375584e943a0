package vmm_test

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestGridWXReserveCharge checks that W^X vmcode under Windows rules is a
// reserve-only section: its writable view starts reserved, a unit's commit
// commits the section's pages of its slots (seen committed in both views),
// a freed unit's slots stay committed but inaccessible (section pages
// cannot be decommitted), a unit reusing them adds no charge, and the
// charge is the slots units have held, never vmcode's size.
func TestGridWXReserveCharge(t *testing.T) {
	v, s := newSimWX(t, mem.RulesWindows)
	defer v.Close()
	base, size := v.VMCode()
	rw, _ := v.WritableView()
	alias := func(exec uintptr) uintptr { return rw + (exec - base) }
	charge := func(want uintptr, when string) {
		t.Helper()
		got, ok := v.SectionCharge()
		if !ok || got != want {
			t.Fatalf("%s: section charge %#x, %v; want %#x", when, got, ok, want)
		}
		vmmtest.SyncCheck(t, v, when)
	}
	if r := query(t, s, rw); r.State != mem.StateReserved || r.Type != mem.TypeMapped || r.End != rw+size {
		t.Fatalf("the writable view of a new W^X vmcode reads back as %+v, want all reserved", r)
	}
	charge(0, "new")

	u, err := v.ReserveUnit(4096, "fcache")
	if err != nil {
		t.Fatal(err)
	}
	if err := gridWXCommit(u); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, alias(u.Base())); r.State != mem.StateCommitted || r.Prot != mem.ProtRW || r.End != alias(u.Base())+u.Size() {
		t.Fatalf("the unit's writable view reads back as %+v", r)
	}
	if r := query(t, s, u.Base()); r.State != mem.StateCommitted || r.Prot != mem.ProtRX {
		t.Fatalf("the unit's executable view reads back as %+v", r)
	}
	charge(gridWXSlot, "one unit")

	// Decommitted, the slot's section pages stay committed, closed.
	if err := u.Decommit(u.Base(), u.Size()); err != nil {
		t.Fatal(err)
	}
	if r := query(t, s, alias(u.Base())); r.State != mem.StateCommitted || r.Prot != mem.ProtNone {
		t.Fatalf("a decommitted unit's writable view reads back as %+v", r)
	}
	charge(gridWXSlot, "unit decommitted")
	if err := gridWXCommit(u); err != nil {
		t.Fatal(err)
	}
	charge(gridWXSlot, "unit committed again")
	if err := u.Release(); err != nil {
		t.Fatal(err)
	}
	charge(gridWXSlot, "unit released")

	// Units taking the freed slot and a fresh one.
	var us []*vmm.Slot
	for range 2 {
		u, err := v.ReserveUnit(4096, "fcache")
		if err != nil {
			t.Fatal(err)
		}
		if err := gridWXCommit(u); err != nil {
			t.Fatal(err)
		}
		us = append(us, u)
	}
	charge(2*gridWXSlot, "two units")
	for _, u := range us {
		if err := u.Release(); err != nil {
			t.Fatal(err)
		}
	}
	charge(2*gridWXSlot, "two units released")
}

// TestGridWXOffNoSection checks that WXOff (and REACHVM_WX=off) leaves the
// grid single: no section, nothing charged for one.
func TestGridWXOffNoSection(t *testing.T) {
	for _, cfg := range []struct {
		mode vmm.WXMode
		env  string
	}{{vmm.WXOff, ""}, {vmm.WXAuto, "off"}} {
		t.Setenv(vmm.WXEnv, cfg.env)
		v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesWindows, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true, WX: cfg.mode})
		if err != nil {
			t.Fatal(err)
		}
		if v.WX() {
			t.Errorf("%v with %s=%q gave W^X", cfg.mode, vmm.WXEnv, cfg.env)
		}
		if _, ok := v.SectionCharge(); ok {
			t.Errorf("%v with %s=%q has a section", cfg.mode, vmm.WXEnv, cfg.env)
		}
		v.Close()
	}
}
