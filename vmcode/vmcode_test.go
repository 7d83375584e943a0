package vmcode_test

import (
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// setup is one backend and W^X mode to run unit tests on.
type setup struct {
	name string
	os   func() mem.OS
	wx   vmm.WXMode
	// dual says whether the VMM must come out W^X.
	dual bool
}

func setups() []setup {
	simLinux := func() mem.OS { return sim.New(mem.RulesLinux, sim.Options{}) }
	simWindows := func() mem.OS { return sim.New(mem.RulesWindows, sim.Options{}) }
	// A nil backend: vmm.New selects the OS the process runs on.
	native := func() mem.OS { return nil }
	out := []setup{
		{"sim-linux/wx=on", simLinux, vmm.WXOn, true},
		{"sim-linux/wx=off", simLinux, vmm.WXOff, false},
		{"sim-windows/wx=on", simWindows, vmm.WXOn, true},
		{"sim-windows/wx=off", simWindows, vmm.WXOff, false},
	}
	if runtime.GOOS == "linux" || runtime.GOOS == "windows" {
		out = append(out,
			setup{"native/wx=on", native, vmm.WXOn, true},
			setup{"native/wx=off", native, vmm.WXOff, false})
	}
	return out
}

// TestUnitLifecycle allocates, writes, seals and frees units on the
// simulator under both rule sets and on the native backend, with W^X on
// and off, checking the kernel's view of both addresses at each step.
func TestUnitLifecycle(t *testing.T) {
	for _, st := range setups() {
		t.Run(st.name, func(t *testing.T) {
			o := st.os()
			// The simulator models the address space, not memory: only the
			// native backend has bytes to write.
			real := o == nil
			v, err := vmm.New(vmm.Config{OS: o, VMCodeSize: 16 << 20, NoVMHeap: true, WX: st.wx})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			o = v.OS()
			c := vmcode.New(v)
			if c.WX() != st.dual {
				t.Fatalf("W^X %v, want %v", c.WX(), st.dual)
			}
			u, err := c.Alloc(100)
			if err != nil {
				t.Fatal(err)
			}
			if !v.InVMCode(u.Exec(), u.Size()) || u.Size() < 100 {
				t.Fatalf("unit %#x+%#x not inside vmcode", u.Exec(), u.Size())
			}
			prot := func(addr uintptr) mem.Prot {
				t.Helper()
				r, err := o.Query(addr)
				if err != nil {
					t.Fatal(err)
				}
				return r.Prot
			}
			if st.dual {
				if u.Writable() == u.Exec() || v.InVMCode(u.Writable(), 1) {
					t.Fatalf("writable address %#x: want one outside vmcode", u.Writable())
				}
				if x, ok := v.Executable(u.Writable()); !ok || x != u.Exec() {
					t.Fatalf("Executable(%#x) = %#x %v, want %#x", u.Writable(), x, ok, u.Exec())
				}
				if p, q := prot(u.Exec()), prot(u.Writable()); p != mem.ProtRX || q != mem.ProtRW {
					t.Fatalf("fresh unit: exec %v, writable %v; want r-x, rw-", p, q)
				}
			} else {
				if u.Writable() != u.Exec() {
					t.Fatalf("writable address %#x, want the executable one %#x", u.Writable(), u.Exec())
				}
				if p := prot(u.Exec()); p != mem.ProtRW {
					t.Fatalf("fresh unit: %v, want rw-", p)
				}
			}
			if real {
				if err := u.Write(1, []byte{0xc3}); err != nil {
					t.Fatal(err)
				}
			}
			if err := u.Write(u.Size()-1, []byte{1, 2}); err == nil {
				t.Fatal("a write past the unit's end succeeded")
			}
			if err := u.Seal(); err != nil {
				t.Fatal(err)
			}
			if p := prot(u.Exec()); p != mem.ProtRX {
				t.Fatalf("sealed unit: %v, want r-x", p)
			}
			if st.dual && prot(u.Writable()) != mem.ProtRW {
				t.Fatal("sealing changed the writable view")
			}
			if real && rawmem.Bytes(u.Exec(), 2)[1] != 0xc3 {
				t.Fatal("the executable view does not hold what was written")
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
			if st.dual && o.Rules() == mem.RulesWindows {
				// On the grid a freed unit is kept idle for the next one of
				// its size (vmm's gridDual): both views open, neither
				// writable and executable, until Trim tears it down.
				if p, q := prot(u.Exec()), prot(u.Writable()); p != mem.ProtRX || q != mem.ProtRW {
					t.Fatalf("freed unit, idle: exec %v, writable %v; want r-x, rw-", p, q)
				}
				if real && rawmem.Bytes(u.Exec(), 2)[1] != 0xcc {
					t.Fatal("a freed unit, idle, does not hold int3")
				}
				if err := v.Trim(); err != nil {
					t.Fatal(err)
				}
			}
			if r, err := o.Query(u.Exec()); err != nil || r.Prot != mem.ProtNone || (!st.dual && r.State != mem.StateReserved) {
				t.Fatalf("freed unit: %+v %v, want no access", r, err)
			}
			if st.dual && prot(u.Writable()) != mem.ProtNone {
				t.Fatal("a freed unit's writable view is still accessible")
			}
			if mism, err := v.Space().SyncCheck(o); err != nil || len(mism) != 0 {
				t.Fatalf("SyncCheck after Free: %v %v", err, mism)
			}
		})
	}
}

// TestUnitReuseIsZeroed writes a unit full, frees it and allocates its
// pages again: they must read as zeros from both views. Under W^X that
// holds only if Free punched the pages out of the shared object, which
// outlives every unit.
func TestUnitReuseIsZeroed(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("needs the native Linux backend")
	}
	for _, wx := range []vmm.WXMode{vmm.WXOn, vmm.WXOff} {
		t.Run(wx.String(), func(t *testing.T) {
			v, err := vmm.New(vmm.Config{VMCodeSize: 1 << 20, NoVMHeap: true, WX: wx})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			c := vmcode.New(v)
			u, err := c.Alloc(8192)
			if err != nil {
				t.Fatal(err)
			}
			junk := make([]byte, u.Size())
			for i := range junk {
				junk[i] = 0xcc
			}
			if err := u.Write(0, junk); err != nil {
				t.Fatal(err)
			}
			exec := u.Exec()
			if err := u.Free(); err != nil {
				t.Fatal(err)
			}
			u, err = c.Alloc(8192)
			if err != nil {
				t.Fatal(err)
			}
			defer u.Free()
			if u.Exec() != exec {
				t.Fatalf("the allocator did not reuse %#x (got %#x): the test needs it to", exec, u.Exec())
			}
			for _, addr := range []uintptr{u.Exec(), u.Writable()} {
				for i, b := range rawmem.Bytes(addr, u.Size()) {
					if b != 0 {
						t.Fatalf("byte %d at %#x is %#x after reuse, want 0", i, addr, b)
					}
				}
			}
		})
	}
}

// TestWXOnWindowsRules asks for W^X under Windows rules: the grid with
// two views of one pagefile-backed section. Units take whole grid slots;
// Close leaves nothing behind.
func TestWXOnWindowsRules(t *testing.T) {
	s := sim.New(mem.RulesWindows, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXOn})
	if err != nil {
		t.Fatal(err)
	}
	c := vmcode.New(v)
	if !c.WX() {
		t.Fatal("WXOn gave no W^X")
	}
	u, err := c.Alloc(100)
	if err != nil {
		t.Fatal(err)
	}
	if u.Size() != vmm.DefaultGridSlotSize {
		t.Fatalf("unit of %#x bytes, want one grid slot", u.Size())
	}
	if err := u.Free(); err != nil {
		t.Fatal(err)
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("Close left %v", rs)
	}
}

// TestWXDefault checks what the zero Config means: W^X under both rule
// sets (Windows: the grid with two views of one section), unless WXEnv
// says otherwise.
func TestWXDefault(t *testing.T) {
	t.Setenv(vmm.WXEnv, "")
	for _, rules := range []mem.Rules{mem.RulesLinux, mem.RulesWindows} {
		v, err := vmm.New(vmm.Config{OS: sim.New(rules, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true})
		if err != nil {
			t.Fatal(err)
		}
		if !v.WX() {
			t.Errorf("%v rules: no W^X by default", rules)
		}
		v.Close()
	}
	// WXEnv=off still turns it off under Windows rules (the comparison
	// mode of the W^X benchmark).
	t.Setenv(vmm.WXEnv, "off")
	if v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesWindows, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true}); err != nil {
		t.Fatal(err)
	} else {
		if v.WX() {
			t.Errorf("windows rules: W^X with %s=off", vmm.WXEnv)
		}
		v.Close()
	}
	t.Setenv(vmm.WXEnv, "")
	for env, want := range map[string]bool{"off": false, "0": false, "on": true, "auto": true} {
		t.Setenv(vmm.WXEnv, env)
		v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesLinux, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true})
		if err != nil {
			t.Fatal(err)
		}
		if v.WX() != want {
			t.Errorf("%s=%s: W^X %v, want %v", vmm.WXEnv, env, v.WX(), want)
		}
		v.Close()
	}
	t.Setenv(vmm.WXEnv, "maybe")
	s := sim.New(mem.RulesLinux, sim.Options{})
	if _, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true}); err == nil {
		t.Errorf("%s=maybe accepted", vmm.WXEnv)
	}
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("the refused New left %v", rs)
	}
	// An explicit mode ignores the variable.
	t.Setenv(vmm.WXEnv, "on")
	v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesLinux, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXOff})
	if err != nil {
		t.Fatal(err)
	}
	if v.WX() {
		t.Error("WXOff gave W^X")
	}
	v.Close()
}
