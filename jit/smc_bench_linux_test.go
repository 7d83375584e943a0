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
// the smc_jit kernel (translated, or natively through Machine.RunNative:
// the same process, stack and entry) calls 1,000 generated functions in
// application memory (read-write-execute, four pages) 10 times an op, after
// rewriting some of them itself.
//
//   - hot: nothing is rewritten. translated runs with the code pages
//     write-protected, unprotected with write protection off: what
//     detection costs code that does not change.
//   - some: 8 functions on one page are rewritten an op; spread: every
//     other function, on every page. Each first write to a page faults;
//     pages deletes the fragments of the page written (the machine's
//     way), whole flushes the whole cache instead.
//   - one: a single function, alone on its page, rewritten and called
//     once an op: the cost of a write to translated code (the fault,
//     the page's protection given back and taken again, the write run
//     again, the function translated again).
func BenchmarkCodeWrites(b *testing.B) {
	for _, c := range []struct {
		name                 string
		fns, rewrite, stride uintptr
		calls                uintptr
	}{
		{"hot", smcFns, 0, 0, smcCalls},
		{"some", smcFns, 8, 2, smcCalls},
		{"spread", smcFns, smcFns / 2, 2, smcCalls},
		{"one", 1, 1, 1, 1},
	} {
		b.Run(c.name, func(b *testing.B) {
			modes := []string{"native", "translated", "unprotected"}
			if c.rewrite != 0 {
				modes = []string{"native", "pages", "whole"}
			}
			for _, mode := range modes {
				b.Run(mode, func(b *testing.B) { benchCodeWrites(b, mode, c.fns, c.rewrite, c.stride, c.calls) })
			}
		})
	}
}

func benchCodeWrites(b *testing.B, mode string, fns, rewrite, stride, calls uintptr) {
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
	for i := range int(fns) {
		jitEmit(code, i, uint32(i))
	}
	run := func(seed uintptr) uintptr {
		if mode == "native" {
			got, _ := m.RunNative(fn, code, fns, rewrite, stride, calls, seed)
			return got
		}
		got, err := m.Run(fn, code, fns, rewrite, stride, calls, seed)
		if err != nil {
			b.Fatal(err)
		}
		return got
	}
	seed := uintptr(1)
	want, _ := m.RunNative(fn, code, fns, rewrite, stride, calls, seed)
	if got := run(seed); got != want {
		b.Fatalf("%s %d, native %d", mode, got, want)
	}
	before := m.Stats()
	for b.Loop() {
		seed++
		run(seed)
	}
	b.StopTimer()
	if mode != "native" {
		st := m.Stats()
		b.ReportMetric(float64(st.Fragments-before.Fragments)/float64(b.N), "frags/op")
		b.ReportMetric(float64(st.CodeWrites-before.CodeWrites)/float64(b.N), "writes/op")
	}
	// The last rewrite, natively, gives what the translation gets.
	seed++
	want, _ = m.RunNative(fn, code, fns, rewrite, stride, calls, seed)
	if got := run(seed); got != want {
		b.Fatalf("after the rewrites: %s %d, native %d", mode, got, want)
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
