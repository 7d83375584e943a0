//go:build linux && amd64

package jit

import (
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// BenchmarkKernels times each kernel natively and under the translator
// (warm cache: the first run, which translates, is outside the timing).
// The ratio is translated/native ns/op of the same sub-benchmark pair.
func BenchmarkKernels(b *testing.B) {
	m, _ := newTestMachine(b, vmm.Config{}, nil)
	lib := loadKernels(b, m.v)
	for _, k := range kernels {
		if k.need != nil && !k.need() {
			continue
		}
		fn := lookup(b, lib, k.name)
		want := Call(fn, k.bench...)
		b.Run(k.name+"/native", func(b *testing.B) {
			for b.Loop() {
				Call(fn, k.bench...)
			}
		})
		b.Run(k.name+"/translated", func(b *testing.B) {
			got, err := m.Run(fn, k.bench...)
			if err != nil || got != want {
				b.Fatalf("%#x, %v; native %#x", got, err, want)
			}
			for b.Loop() {
				m.Run(fn, k.bench...)
			}
			dumpCache(b, m)
		})
	}
}
