//go:build linux && amd64

package jit

import (
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// BenchmarkKernels times each kernel natively and under the translator
// (warm cache: the first run, which translates, is outside the timing).
// The ratio is translated/native ns/op of the same pair. "native" runs
// the function untranslated on the machine's own stack through the same
// context switch (Machine.RunNative), the like-for-like baseline; "call"
// is a plain cgocall-style Call on the Go thread's system stack, which
// can differ (k_bigstack faults in fresh stack pages there).
func BenchmarkKernels(b *testing.B) {
	m, _ := newTestMachine(b, vmm.Config{}, nil)
	lib := loadKernels(b, m.v)
	for _, k := range kernels {
		if k.need != nil && !k.need() {
			continue
		}
		fn := lookup(b, lib, k.name)
		want := Call(fn, k.bench...)
		b.Run(k.name+"/call", func(b *testing.B) {
			for b.Loop() {
				Call(fn, k.bench...)
			}
		})
		b.Run(k.name+"/native", func(b *testing.B) {
			for b.Loop() {
				m.RunNative(fn, k.bench...)
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
