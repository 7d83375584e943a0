package jit

import (
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// TestInnerEntries runs every kernel translated with inner entries and
// without (the baseline): the results are native's both ways, and with
// them fewer fragments and instructions are translated, the loops
// entered by falling into them closing on the fragment that holds them
// instead of starting another.
func TestInnerEntries(t *testing.T) {
	stats := map[bool]Stats{}
	for _, off := range []bool{false, true} {
		m, _ := newTestMachine(t, vmm.Config{}, nil)
		m.noInner = off
		lib := loadKernels(t, m.v)
		for _, k := range kernels {
			if k.need != nil && !k.need() {
				continue
			}
			fn := lookup(t, lib, k.name)
			want := Call(fn, k.args...)
			for i := range 2 {
				got, err := m.Run(fn, k.args...)
				if err != nil {
					t.Fatalf("inner entries off %v: %s: %v", off, k.name, err)
				}
				if got != want {
					t.Fatalf("inner entries off %v: run %d: %s%v = %#x translated, %#x native", off, i, k.name, k.args, got, want)
				}
			}
		}
		stats[off] = m.Stats()
	}
	on, off := stats[false], stats[true]
	t.Logf("with inner entries: %d fragments, %d instructions; without: %d, %d", on.Fragments, on.Instrs, off.Fragments, off.Instrs)
	if on.Fragments >= off.Fragments || on.Instrs >= off.Instrs {
		t.Errorf("inner entries translated %d fragments and %d instructions, no fewer than %d and %d without", on.Fragments, on.Instrs, off.Fragments, off.Instrs)
	}
}
