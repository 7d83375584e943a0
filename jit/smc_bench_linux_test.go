//go:build linux && amd64

package jit

import (
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// smcFns and smcCalls are the JIT benchmark's size: 1,000 functions of 16
// bytes (four pages), each called 10 times an op.
const (
	smcFns   = 1000
	smcCalls = 10
)

// jitEmit writes generated function i (lea eax, [rdi+k]; ret), as the
// smc_jit kernel does.
func jitEmit(code uintptr, i int, k uint32) {
	putCode(code+16*uintptr(i), []byte{0x8d, 0x87, byte(k), byte(k >> 8), byte(k >> 16), byte(k >> 24), 0xc3})
}

// BenchmarkCodeWrites measures write detection on a JIT-style workload:
// the smc_jit kernel calls 1,000 generated functions in application
// memory (read-write-execute) 10 times an op; between ops, some are
// rewritten.
//
//   - hot: nothing is rewritten. native is the kernel run natively
//     (Machine.RunNative, the same process and stack); translated runs it
//     with its code pages write-protected, unprotected with write
//     protection off: what detection costs on code that does not change.
//   - some: 8 functions on one page are rewritten an op; spread: every
//     other function, on every page. pages deletes the fragments of the
//     pages written (the machine's way), whole flushes the whole cache
//     instead.
//
// The rewrites are made from Go, each written page first reported with
// codeWritten as the signal layer reports a write fault: the figures
// count what reachvm does for a write (the page's protection given back,
// its fragments deleted and translated again when called) but not the
// kernel's delivery of the fault.
func BenchmarkCodeWrites(b *testing.B) {
	for _, c := range []struct {
		name    string
		rewrite []int
	}{
		{"hot", nil},
		{"some", []int{0, 2, 4, 6, 8, 10, 12, 14}},
		{"spread", func() []int {
			var r []int
			for i := 0; i < smcFns; i += 2 {
				r = append(r, i)
			}
			return r
		}()},
	} {
		b.Run(c.name, func(b *testing.B) {
			modes := []string{"native", "translated", "unprotected"}
			if c.rewrite != nil {
				modes = []string{"native", "pages", "whole"}
			}
			for _, mode := range modes {
				b.Run(mode, func(b *testing.B) { benchCodeWrites(b, mode, c.rewrite) })
			}
		})
	}
}

func benchCodeWrites(b *testing.B, mode string, rewrite []int) {
	m, _ := newTestMachine(b, vmm.Config{AllowElsewhere: true}, nil)
	m.protectWrites = mode != "unprotected"
	m.wholeFlush = mode == "whole"
	fn := lookup(b, loadKernels(b, m.v), "smc_jit")
	r, err := m.v.MapAppAnon(0, 4*mem.PageSize, mem.ProtRWX, mem.Hint, "smc bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.v.ReleaseApp(r) })
	code := r.Start
	for i := range smcFns {
		jitEmit(code, i, uint32(i))
	}
	run := func() uintptr {
		if mode == "native" {
			got, _ := m.RunNative(fn, code, smcFns, 0, smcCalls, 0, 0)
			return got
		}
		got, err := m.Run(fn, code, smcFns, 0, smcCalls, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		return got
	}
	want, _ := m.RunNative(fn, code, smcFns, 0, smcCalls, 0, 0)
	if got := run(); got != want {
		b.Fatalf("translated %d, native %d", got, want)
	}
	seed := uint32(0)
	var written []uintptr
	for b.Loop() {
		seed++
		written = written[:0]
		for _, i := range rewrite {
			at := code + 16*uintptr(i)
			if mode != "native" && (len(written) == 0 || written[len(written)-1] != pageOf(at)) {
				written = append(written, pageOf(at))
				m.mu.Lock()
				m.codeWritten(at)
				m.oneShot = false // no fault to resume
				m.mu.Unlock()
			}
			jitEmit(code, i, uint32(i)+seed)
		}
		run()
	}
	b.StopTimer()
	if mode != "native" {
		st := m.Stats()
		b.ReportMetric(float64(st.Fragments)/float64(b.N), "frags/op")
		b.ReportMetric(float64(st.CodeWrites)/float64(b.N), "writes/op")
	}
	// The last op's result, natively, must be what the translation got.
	if got, want := run(), func() uintptr { g, _ := m.RunNative(fn, code, smcFns, 0, smcCalls, 0, 0); return g }(); got != want {
		b.Fatalf("after the rewrites: %d, native %d", got, want)
	}
}

// BenchmarkCodeIndex measures what the code-page index costs a munmap (or
// mprotect, MAP_FIXED, ...) of memory that holds no translated code: 16
// pages, with n pages of code indexed elsewhere, all below the range
// (far: outside the index's bounds) or on both sides of it (between:
// looked up). forget is the baseline, what the call cost the translator
// before the index (the code map's check alone, which dropRange also
// makes).
func BenchmarkCodeIndex(b *testing.B) {
	m, _ := newTestMachine(b, vmm.Config{AllowElsewhere: true}, nil)
	r := mem.Range{Start: 0x7000_0000_0000, End: 0x7000_0000_0000 + 16*mem.PageSize}
	b.Run("forget", func(b *testing.B) {
		for b.Loop() {
			m.codes.forget(r.Start, r.End)
		}
	})
	for _, where := range []string{"far", "between"} {
		for _, n := range []int{1, 4, 64, 4096} {
			b.Run(fmt.Sprintf("%s/index=%d", where, n), func(b *testing.B) {
				for i := range n {
					p := 0x5000_0000 + uintptr(i)*mem.PageSize
					if where == "between" && i%2 == 1 {
						p += 0x7100_0000_0000
					}
					m.pages.add(&codePage{page: p, live: 1})
				}
				for b.Loop() {
					m.dropRange(r, true)
				}
				if m.pages.len() != n {
					b.Fatalf("%d pages indexed after unrelated drops, want %d", m.pages.len(), n)
				}
				for _, e := range m.pages.in(mem.Range{Start: m.pages.lo, End: m.pages.hi}) {
					m.pages.remove(e)
				}
			})
		}
	}
}
