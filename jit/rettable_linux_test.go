//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// BenchmarkReturnTable times k_rets, whose one function returns to five
// callers in turn, with returns that miss their inline cache going
// through the return table ("table") and through the indirect-branch
// table's lookup ("ibl", Options.NoReturnTable, the baseline), beside
// the native run, all in one process with vmcode low (where the return
// table is used).
func BenchmarkReturnTable(b *testing.B) {
	const n = 100000
	for _, c := range []struct {
		name string
		opts Options
	}{{"table", Options{}}, {"ibl", Options{NoReturnTable: true}}} {
		m, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, &c.opts)
		lib := loadKernels(b, m.v)
		fn := lookup(b, lib, "k_rets")
		want := Call(fn, n)
		if c.name == "table" {
			b.Run("native", func(b *testing.B) {
				m.RunNative(fn, n)
				for b.Loop() {
					m.RunNative(fn, n)
				}
			})
		}
		b.Run(c.name, func(b *testing.B) {
			if got, err := m.Run(fn, n); err != nil || got != want {
				b.Fatalf("%#x, %v; native %#x", got, err, want)
			}
			for b.Loop() {
				m.Run(fn, n)
			}
		})
	}
}

// TestReturnTable checks that k_rets's polymorphic return goes through
// the return table, and not to the dispatcher, once warm: a second run
// exits no more than the first's few, and the result is native's.
func TestReturnTable(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{VMCodeBase: lowBase}, nil)
	if !m.rtOn() {
		t.Skip("the tables lie above 2 GiB: no return table")
	}
	lib := loadKernels(t, m.v)
	fn := lookup(t, lib, "k_rets")
	want := Call(fn, 1000)
	for i := range 2 {
		before := m.Stats()
		got, err := m.Run(fn, 1000)
		if err != nil || got != want {
			t.Fatalf("run %d: %#x, %v; native %#x", i, got, err, want)
		}
		st := m.Stats()
		if i == 1 && st.Exits-before.Exits > 2 {
			t.Errorf("warm run: %d exits, want at most 2 (the entry's and the return to Go's)", st.Exits-before.Exits)
		}
	}
	used := 0
	for k := uintptr(0); k < rtEntries; k++ {
		if uintptr(binary.LittleEndian.Uint64(m.rtSlot(k))) != m.gen.retMiss {
			used++
		}
	}
	if used < 5 {
		t.Errorf("%d return-table entries lead to a fragment, want at least k_rets's 5 return addresses", used)
	}
}
