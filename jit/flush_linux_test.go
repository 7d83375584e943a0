//go:build linux && amd64

package jit

import (
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// TestFullCache runs the kernels with a cache too small for them, two
// ways: capped at two 64 KiB units (the cap's flush), and in a vmcode
// too small to give the cache more than a few units (vmcode exhausted:
// the cache flushes rather than allocate anywhere else). Results must
// equal the native calls', the cache must have flushed, and every unit
// must lie in vmcode.
func TestFullCache(t *testing.T) {
	for _, c := range []struct {
		name string
		opts Options
		// ballast leaves only this much of vmcode free.
		ballast uintptr
	}{
		{"cap", Options{UnitSize: 16 << 10, MaxCacheSize: 32 << 10}, 0},
		{"vmcode", Options{UnitSize: 16 << 10, MaxCacheSize: 1 << 30}, 40 << 10},
	} {
		t.Run(c.name, func(t *testing.T) {
			m, _ := newTestMachine(t, vmm.Config{}, &c.opts)
			lib := loadKernels(t, m.v)
			if c.ballast != 0 {
				s, err := m.v.ReserveSlot(m.v.FreeVMCode()-c.ballast, "ballast")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { s.Release() })
				t.Logf("vmcode free: %#x bytes", m.v.FreeVMCode())
			}
			for round := range 3 {
				runKernels(t, m, lib, fmt.Sprintf("translated in round %d", round), nil)
			}
			st := m.Stats()
			if st.Flushes == 0 {
				t.Errorf("no flush: %+v", st)
			}
			for _, u := range m.units {
				if !m.v.InVMCode(u.exec, u.size) {
					t.Errorf("unit [%#x, +%#x) outside vmcode", u.exec, u.size)
				}
			}
			checkCache(t, m, false)
			t.Logf("%d units; %+v", len(m.units), st)
		})
	}
}
