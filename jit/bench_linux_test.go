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
//
// Each runs with vmcode low (below 2 GiB, DynamoRIO's vm_base, where
// sites compare 32-bit targets and the table is addressed absolutely) and
// high (where the OS puts it).
func BenchmarkKernels(b *testing.B) {
	for _, p := range []struct {
		name string
		cfg  vmm.Config
	}{{"low", vmm.Config{VMCodeBase: lowBase}}, {"high", vmm.Config{}}} {
		b.Run(p.name, func(b *testing.B) { benchKernels(b, p.cfg) })
	}
}

func benchKernels(b *testing.B, cfg vmm.Config) {
	m, _ := newTestMachine(b, cfg, nil)
	lib := loadKernels(b, m.v)
	for _, k := range kernels {
		if k.need != nil && !k.need() {
			continue
		}
		fn := lookup(b, lib, k.name)
		want := Call(fn, k.bench...)
		b.Run(k.name+"/call", func(b *testing.B) {
			Call(fn, k.bench...) // warm: the thread's stack pages
			for b.Loop() {
				Call(fn, k.bench...)
			}
		})
		b.Run(k.name+"/native", func(b *testing.B) {
			m.RunNative(fn, k.bench...) // warm: the machine's stack pages
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
