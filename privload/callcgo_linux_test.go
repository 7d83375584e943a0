//go:build cgo && linux && amd64

package privload

import (
	"runtime"
	"testing"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/native/cgotest"
)

// BenchmarkCallVsCgo measures the ways into native code against cgo, on
// the same machine code: add2 (two longs) and add6 (six), compiled by cgo
// into the test binary. Sub-benchmarks, for benchstat:
//
//   - cgo: the cgo call (the baseline);
//   - native: internal/native's raw call, no liveness check;
//   - Func.CallK: the raw private call of a library's Func, with its
//     liveness check (one atomic load), and Func.check, the check alone;
//   - BindK: the typed binding;
//   - Func.Bind: purego's RegisterFunc (reflection), guarded against
//     use after Close by a second reflect.MakeFunc;
//   - purego.RegisterFunc: the same without the guard;
//   - purego.SyscallN: purego's raw call.
//
// Besides wall time, each reports cpu-ns/op, the calling thread's CPU
// time (CLOCK_THREAD_CPUTIME_ID) per call, which time slices lost to other
// processes do not inflate: on a shared machine it is the steadier
// figure.
//
// The Func has a loaded library's liveness word (libfx_host.so's), so that
// its check costs what it costs in use.
func BenchmarkCallVsCgo(b *testing.B) {
	lib, err := Load(newVMM(b), fxPath(b, "libfx_host.so"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer lib.Close()
	add2 := Func{addr: cgotest.Add2, name: "add2", lib: lib}
	add6 := Func{addr: cgotest.Add6, name: "add6", lib: lib}
	var sink int64
	b.Run("add2/cgo", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += cgotest.CgoAdd2(int64(i), 2)
		}
		c.report(b)
	})
	b.Run("add2/native", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += int64(native.Call2(cgotest.Add2, uintptr(i), 2))
		}
		c.report(b)
	})
	b.Run("add2/Func.Call2", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			r, _ := add2.Call2(uintptr(i), 2)
			sink += int64(r)
		}
		c.report(b)
	})
	b.Run("add2/Func.check", func(b *testing.B) {
		c := startCPU()
		// The liveness check alone: what Func.Call2 adds to native.
		for b.Loop() {
			if add2.check() != nil {
				b.Fatal("closed")
			}
		}
		c.report(b)
	})
	typed2 := Bind2[int64, int64, int64](add2)
	b.Run("add2/Bind2", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			r, _ := typed2(int64(i), 2)
			sink += r
		}
		c.report(b)
	})
	var reflect2 func(int64, int64) int64
	if err := add2.Bind(&reflect2); err != nil {
		b.Fatal(err)
	}
	b.Run("add2/Func.Bind", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += reflect2(int64(i), 2)
		}
		c.report(b)
	})
	var unguarded2 func(int64, int64) int64
	purego.RegisterFunc(&unguarded2, cgotest.Add2)
	b.Run("add2/purego.RegisterFunc", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += unguarded2(int64(i), 2)
		}
		c.report(b)
	})
	b.Run("add2/purego.SyscallN", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			r, _, _ := purego.SyscallN(cgotest.Add2, uintptr(i), 2)
			sink += int64(r)
		}
		c.report(b)
	})

	b.Run("add6/cgo", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += cgotest.CgoAdd6(int64(i), 2, 3, 4, 5, 6)
		}
		c.report(b)
	})
	b.Run("add6/native", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += int64(native.Call6(cgotest.Add6, uintptr(i), 2, 3, 4, 5, 6))
		}
		c.report(b)
	})
	b.Run("add6/Func.Call6", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			r, _ := add6.Call6(uintptr(i), 2, 3, 4, 5, 6)
			sink += int64(r)
		}
		c.report(b)
	})
	typed6 := Bind6[int64, int64, int64, int64, int64, int64, int64](add6)
	b.Run("add6/Bind6", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			r, _ := typed6(int64(i), 2, 3, 4, 5, 6)
			sink += r
		}
		c.report(b)
	})
	var reflect6 func(int64, int64, int64, int64, int64, int64) int64
	if err := add6.Bind(&reflect6); err != nil {
		b.Fatal(err)
	}
	b.Run("add6/Func.Bind", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += reflect6(int64(i), 2, 3, 4, 5, 6)
		}
		c.report(b)
	})
	var unguarded6 func(int64, int64, int64, int64, int64, int64) int64
	purego.RegisterFunc(&unguarded6, cgotest.Add6)
	b.Run("add6/purego.RegisterFunc", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			sink += unguarded6(int64(i), 2, 3, 4, 5, 6)
		}
		c.report(b)
	})
	b.Run("add6/purego.SyscallN", func(b *testing.B) {
		c := startCPU()
		for i := 0; b.Loop(); i++ {
			r, _, _ := purego.SyscallN(cgotest.Add6, uintptr(i), 2, 3, 4, 5, 6)
			sink += int64(r)
		}
		c.report(b)
	})
	if sink == 42 {
		b.Log(sink)
	}
}

// cpuClock measures the CPU time of the calling thread, locked to it.
type cpuClock struct{ start int64 }

func threadCPU() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		panic(err)
	}
	return ts.Nano()
}

func startCPU() cpuClock {
	runtime.LockOSThread()
	return cpuClock{start: threadCPU()}
}

// report adds cpu-ns/op to b's results and unlocks the thread.
func (c cpuClock) report(b *testing.B) {
	d := threadCPU() - c.start
	runtime.UnlockOSThread()
	b.ReportMetric(float64(d)/float64(b.N), "cpu-ns/op")
}
