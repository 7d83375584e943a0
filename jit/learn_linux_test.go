//go:build linux && amd64

package jit

import (
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// coldKernels are the kernels BenchmarkColdSites and TestColdSites run
// from an empty cache: their indirect calls and returns go to targets
// that already have fragments once the first call has run.
var coldKernels = []string{"k_fnptr", "k_rets", "k_icalls", "k_interp"}

// BenchmarkColdSites runs kernels from an empty cache (flushed before
// each op), with sites that count their visits and look their targets up
// before learning them ("lazy") and with sites that exit to learn at
// their first visit ("now", the baseline), in one process: what learning
// costs a program's start-up.
func BenchmarkColdSites(b *testing.B) {
	m, _ := newTestMachine(b, vmm.Config{VMCodeBase: lowBase}, nil)
	lib := loadKernels(b, m.v)
	for _, mode := range []struct {
		name string
		now  bool
	}{{"lazy", false}, {"now", true}} {
		b.Run(mode.name, func(b *testing.B) {
			m.learnNow = mode.now
			exits := 0
			for b.Loop() {
				m.Flush()
				before := m.Stats().Exits
				for _, k := range coldKernels {
					if _, err := m.Run(lookup(b, lib, k), 200); err != nil {
						b.Fatal(err)
					}
				}
				exits += m.Stats().Exits - before
			}
			b.ReportMetric(float64(exits)/float64(b.N), "exits/op")
		})
	}
}

// TestColdSites checks that counting visits saves exits on a cold start
// and that the results are native's either way.
func TestColdSites(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{VMCodeBase: lowBase}, nil)
	lib := loadKernels(t, m.v)
	var exits [2]int
	for i, now := range []bool{false, true} {
		m.learnNow = now
		m.Flush()
		before := m.Stats().Exits
		for _, k := range coldKernels {
			fn := lookup(t, lib, k)
			want := Call(fn, 200)
			if got, err := m.Run(fn, 200); err != nil || got != want {
				t.Fatalf("%s (learnNow %v): %#x, %v; native %#x", k, now, got, err, want)
			}
		}
		exits[i] = m.Stats().Exits - before
	}
	if exits[0] >= exits[1] {
		t.Errorf("cold start: %d exits counting visits, %d learning at once: none saved", exits[0], exits[1])
	}
	t.Logf("cold start: %d exits counting visits, %d learning at once", exits[0], exits[1])
}
