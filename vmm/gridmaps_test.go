package vmm_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// TestWriteMapsFoldsIdleSlots: on a grid (the simulator under Windows
// rules, W^X on and off) runs of idle slots are one line each, slots that
// hold something keep their own lines, and the lines cover vmcode with no
// gap, as the map does; linear vmcode prints as aspacem does.
func TestWriteMapsFoldsIdleSlots(t *testing.T) {
	for _, mode := range []vmm.WXMode{vmm.WXOn, vmm.WXOff} {
		t.Run("wx="+mode.String(), func(t *testing.T) {
			s := sim.New(mem.RulesWindows, sim.Options{})
			v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true, WX: mode})
			if err != nil {
				t.Fatal(err)
			}
			defer v.Close()
			base, size := v.VMCode()
			n := int((size + gridWXSlot - 1) / gridWXSlot)
			// One unit in slot 3 or so: two runs of idle slots around it.
			pad, err := v.ReserveSlot(3*gridWXSlot, "pad")
			if err != nil {
				t.Fatal(err)
			}
			u, err := v.ReserveUnit(4096, "fcache")
			if err != nil {
				t.Fatal(err)
			}
			if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
				t.Fatal(err)
			}
			if err := pad.Release(); err != nil {
				t.Fatal(err)
			}
			k := int((u.Base() - base) / gridWXSlot)
			var out bytes.Buffer
			if err := v.WriteMaps(&out, base, base+size); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			want := []string{fmt.Sprintf("[grid slots 0-%d/%d]", k-1, n), "[fcache]"}
			if mode == vmm.WXOff {
				// The unit takes a granule of its slot; the rest of the
				// slot's reservation is the slot's, and not idle.
				want = append(want, fmt.Sprintf("[grid slot %d/%d]", k, n))
			}
			want = append(want, fmt.Sprintf("[grid slots %d-%d/%d]", k+1, n-1, n))
			if len(lines) != len(want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out.String())
			}
			next := base
			for i, l := range lines {
				if !strings.HasSuffix(l, want[i]) {
					t.Errorf("line %d %q, want it to end in %q", i, l, want[i])
				}
				var lo, hi uint64
				if _, err := fmt.Sscanf(l, "%x-%x", &lo, &hi); err != nil || uintptr(lo) != next {
					t.Errorf("line %d %q does not start where the one before ended, %#x", i, l, next)
				}
				next = uintptr(hi)
			}
			if next != base+size {
				t.Errorf("the lines end at %#x, vmcode at %#x", next, base+size)
			}
		})
	}
	// Linear vmcode: what aspacem writes.
	s := sim.New(mem.RulesLinux, sim.Options{})
	v, err := vmm.New(vmm.Config{OS: s, VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	base, size := v.VMCode()
	var a, b bytes.Buffer
	if err := v.WriteMaps(&a, base, base+size); err != nil {
		t.Fatal(err)
	}
	if err := v.Space().WriteMaps(&b, base, base+size); err != nil {
		t.Fatal(err)
	}
	if a.String() != b.String() || a.Len() == 0 {
		t.Errorf("linear vmcode: VMM.WriteMaps wrote\n%s\naspacem wrote\n%s", a.String(), b.String())
	}
}
