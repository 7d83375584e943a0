package vmcode_test

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// TestUnitLifecycle allocates, writes, seals and frees units on the
// simulator under both rule sets and on the native backend, checking the
// kernel's view of each step.
func TestUnitLifecycle(t *testing.T) {
	backends := map[string]osmem.OS{
		"sim-linux":   sim.New(osmem.RulesLinux, sim.Options{}),
		"sim-windows": sim.New(osmem.RulesWindows, sim.Options{}),
		"native":      osmem.Native(),
	}
	for name, o := range backends {
		t.Run(name, func(t *testing.T) {
			v, err := vmm.New(vmm.Config{OS: o, VMCodeSize: 16 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			c := vmcode.New(v)
			u, err := c.Alloc(100)
			if err != nil {
				t.Fatal(err)
			}
			if !v.InVMCode(u.Exec(), u.Size()) || u.Size() < 100 {
				t.Fatalf("unit %#x+%#x not inside vmcode", u.Exec(), u.Size())
			}
			if r, err := o.Query(u.Exec()); err != nil || r.Prot != osmem.ProtRW {
				t.Fatalf("fresh unit: %+v %v, want rw", r, err)
			}
			// The simulator models the address space, not memory: only the
			// native backend has bytes to write.
			real := o == osmem.Native()
			if real {
				if err := u.Write(0, []byte{0xc3}); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.Write(u.Size()-1, []byte{1, 2}); err == nil {
				t.Fatal("a write past the unit's end succeeded")
			}
			if err := u.Seal(); err != nil {
				t.Fatal(err)
			}
			if r, err := o.Query(u.Exec()); err != nil || r.Prot != osmem.ProtRX {
				t.Fatalf("sealed unit: %+v %v, want r-x", r, err)
			}
			if real && osmem.Bytes(u.Exec(), 1)[0] != 0xc3 {
				t.Fatal("the sealed unit does not hold what was written")
			}
			if err := u.Write(0, []byte{0x90}); err == nil {
				t.Fatal("a write to a sealed unit succeeded")
			}
			if mism, err := v.Space().SyncCheck(o); err != nil || len(mism) != 0 {
				t.Fatalf("SyncCheck: %v %v", err, mism)
			}
			before := v.FreeVMCode()
			if err := u.Free(); err != nil {
				t.Fatal(err)
			}
			if v.FreeVMCode() != before+u.Size() {
				t.Fatalf("free vmcode %#x after Free, want %#x", v.FreeVMCode(), before+u.Size())
			}
			if r, err := o.Query(u.Exec()); err != nil || r.State != osmem.StateReserved {
				t.Fatalf("freed unit: %+v %v, want reserved", r, err)
			}
			if mism, err := v.Space().SyncCheck(o); err != nil || len(mism) != 0 {
				t.Fatalf("SyncCheck after Free: %v %v", err, mism)
			}
		})
	}
}
