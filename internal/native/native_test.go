//go:build cgo && linux

package native_test

import (
	"math"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/native/cgotest"
)

// TestCall checks every arity against C functions cgo compiled: each
// argument reaches its register or stack slot.
func TestCall(t *testing.T) {
	if got := native.Call2(cgotest.Add2, 40, 2); got != 42 {
		t.Errorf("Call2(add2, 40, 2) = %d", got)
	}
	neg := uintptr(math.MaxUint64) // -1
	if got := int64(native.Call2(cgotest.Add2, neg, neg)); got != -2 {
		t.Errorf("Call2(add2, -1, -1) = %d", got)
	}
	if got := native.Call6(cgotest.Add6, 1, 2, 3, 4, 5, 6); got != 21 {
		t.Errorf("Call6(add6, 1..6) = %d", got)
	}
	// Fewer arguments than the callee reads: the rest are zero, as each
	// CallK clears the registers it does not set.
	calls := []func() uintptr{
		func() uintptr { return native.Call0(cgotest.Add6) },
		func() uintptr { return native.Call1(cgotest.Add6, 1) },
		func() uintptr { return native.Call2(cgotest.Add6, 1, 2) },
		func() uintptr { return native.Call3(cgotest.Add6, 1, 2, 3) },
		func() uintptr { return native.Call4(cgotest.Add6, 1, 2, 3, 4) },
		func() uintptr { return native.Call5(cgotest.Add6, 1, 2, 3, 4, 5) },
		func() uintptr { return native.Call6(cgotest.Add6, 1, 2, 3, 4, 5, 6) },
	}
	for k, call := range calls {
		if got, want := call(), uintptr(k*(k+1)/2); got != want {
			t.Errorf("Call%d(add6, 1..%d) = %d, want %d", k, k, got, want)
		}
	}
	for n := 0; n <= native.IntRegs; n++ {
		args := make([]uintptr, n)
		for i := range args {
			args[i] = uintptr(i + 1)
		}
		if got, want := native.CallN(cgotest.Add6, args), uintptr(n*(n+1)/2); got != want {
			t.Errorf("CallN(add6, 1..%d) = %d, want %d", n, got, want)
		}
	}
	args := make([]uintptr, native.MaxArgs)
	want := uintptr(0)
	for i := range args {
		args[i] = uintptr(100 + i)
		want += uintptr(i+1) * args[i]
	}
	if got := native.CallN(cgotest.Sum14, args); got != want {
		t.Errorf("CallN(sum14, 100..113) = %d, want %d", got, want)
	}
}

// TestCallTooManyArgs: more than MaxArgs is a precondition CallN states
// and enforces with a clear message.
func TestCallTooManyArgs(t *testing.T) {
	defer func() {
		r := recover()
		err, ok := r.(error)
		if !ok || err.Error() != "15 integer arguments, at most 14 (6 in registers, 8 on the stack)" {
			t.Errorf("CallN with 15 arguments: recovered %v", r)
		}
	}()
	native.CallN(cgotest.Sum14, make([]uintptr, native.MaxArgs+1))
}

// TestFrameFloat checks the general trampoline: floating-point
// arguments and result, and stack arguments.
func TestFrameFloat(t *testing.T) {
	if !native.FloatArgs {
		t.Skip("floating-point arguments need the linux/amd64 trampoline")
	}
	fr := native.Frame{Fn: cgotest.Scale, NFloat: 1}
	fr.Floats[0] = math.Float64bits(1.5)
	fr.Ints[0] = 4
	fr.Call()
	if got := math.Float64frombits(fr.XMM0); got != 6 {
		t.Errorf("scale(1.5, 4) = %v", got)
	}
	fr = native.Frame{Fn: cgotest.Sum14, NStack: 8}
	want := uint64(0)
	for i := range native.MaxArgs {
		v := uint64(1000 + i)
		if i < native.IntRegs {
			fr.Ints[i] = v
		} else {
			fr.Stack[i-native.IntRegs] = v
		}
		want += uint64(i+1) * v
	}
	fr.Call()
	if fr.RAX != want {
		t.Errorf("sum14 through a Frame = %d, want %d", fr.RAX, want)
	}
}

// TestCallAllocs: Call0 to Call6 and a Frame call allocate nothing.
func TestCallAllocs(t *testing.T) {
	if testing.CoverMode() != "" || raceEnabled {
		t.Skip("instrumentation allocates")
	}
	var sink uintptr
	calls := map[string]func(){
		"Call0": func() { sink += native.Call0(cgotest.Add2) },
		"Call1": func() { sink += native.Call1(cgotest.Add2, 1) },
		"Call2": func() { sink += native.Call2(cgotest.Add2, 1, 2) },
		"Call3": func() { sink += native.Call3(cgotest.Add6, 1, 2, 3) },
		"Call4": func() { sink += native.Call4(cgotest.Add6, 1, 2, 3, 4) },
		"Call5": func() { sink += native.Call5(cgotest.Add6, 1, 2, 3, 4, 5) },
		"Call6": func() { sink += native.Call6(cgotest.Add6, 1, 2, 3, 4, 5, 6) },
		"Call6/pointer": func() {
			var x [4]uint64
			sink += native.Call6(cgotest.Add6, 1, 2, 3, 4, 5, uintptr(unsafe.Pointer(&x)))
		},
		"Frame": func() {
			fr := native.Frame{Fn: cgotest.Add2}
			fr.Ints[0], fr.Ints[1] = 1, 2
			fr.Call()
			sink += uintptr(fr.RAX)
		},
	}
	for name, call := range calls {
		if n := testing.AllocsPerRun(1000, call); n != 0 && name != "Call6/pointer" {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		} else if name == "Call6/pointer" && n != 1 {
			// The pointer rule at work: the local it points to is
			// moved to the heap.
			t.Errorf("%s: %v allocations per call, want 1 (the pointed-to local)", name, n)
		}
	}
}

// heapWord returns a new word on the heap: returned from a function the
// compiler does not inline, it cannot live on the caller's stack.
//
//go:noinline
func heapWord() *uint64 { return new(uint64) }

// grow uses about n KiB of stack.
//
//go:noinline
func grow(n int) byte {
	var buf [1024]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return grow(n-1) + buf[(n+1)%len(buf)]
}

var storeBack = sync1(func() uintptr {
	return purego.NewCallback(func(v uint64) uint64 {
		grow(256)
		return 2 * v
	})
})

func sync1(f func() uintptr) func() uintptr {
	var v uintptr
	var done atomic.Bool
	return func() uintptr {
		if !done.Load() {
			v = f()
			done.Store(true)
		}
		return v
	}
}

// TestCallbackMovesStack calls C code that calls back into Go, which
// grows (and so moves) the calling goroutine's stack, and then writes
// through a pointer to a local of the caller: the result must come back
// through the moved frame, and the write must land in the local (on the
// heap by the pointer rule). Each call runs on a new goroutine, whose
// stack is small, so that it does move; the test checks that it did.
func TestCallbackMovesStack(t *testing.T) {
	back := storeBack()
	type outcome struct {
		r, x, v uint64
		moved   bool
	}
	for _, name := range []string{"Call3", "Frame"} {
		moved := 0
		const runs = 50
		for i := range runs {
			ch := make(chan outcome)
			go func() {
				var marker byte
				before := uintptr(unsafe.Pointer(&marker))
				v := uint64(1000 + i)
				var x, r uint64
				if name == "Call3" {
					// A local, written in the call's arguments.
					r = uint64(native.Call3(cgotest.StoreAfter, uintptr(unsafe.Pointer(&x)), uintptr(v), back))
				} else {
					// A pointer stored in a Frame is outside the
					// rule: it must be on the heap already.
					p := heapWord()
					fr := native.Frame{Fn: cgotest.StoreAfter}
					fr.Ints[0], fr.Ints[1], fr.Ints[2] = uint64(uintptr(unsafe.Pointer(p))), v, uint64(back)
					fr.Call()
					r, x = fr.RAX, *p
				}
				ch <- outcome{r: r, x: x, v: v, moved: uintptr(unsafe.Pointer(&marker)) != before}
			}()
			o := <-ch
			if o.r != 2*o.v+1 || o.x != o.v {
				t.Fatalf("%s run %d: store_after returned %d and stored %d, want %d and %d", name, i, o.r, o.x, 2*o.v+1, o.v)
			}
			if o.moved {
				moved++
			}
		}
		if moved == 0 {
			t.Errorf("%s: the goroutine's stack never moved in %d runs: the test did not test the moved frame", name, runs)
		}
		t.Logf("%s: the stack moved in %d of %d runs", name, moved, runs)
	}
}

// TestLongCallLetsGCRun: native code spinning in a call does not stop
// a garbage collection's stop-the-world from completing, because the
// call entered through runtime.cgocall (the goroutine is in a system
// call, at a safe point). A bare jump into native code would make
// runtime.GC wait for the spin, forever here.
func TestLongCallLetsGCRun(t *testing.T) {
	flag := new(uint64)
	spun := make(chan uintptr)
	go func() {
		spun <- native.Call1(cgotest.WaitFlag, uintptr(unsafe.Pointer(flag)))
	}()
	time.Sleep(20 * time.Millisecond) // let it enter the call
	gcDone := make(chan time.Duration)
	go func() {
		start := time.Now()
		runtime.GC()
		runtime.GC()
		gcDone <- time.Since(start)
	}()
	select {
	case d := <-gcDone:
		t.Logf("two collections took %v while native code spun", d)
	case <-time.After(20 * time.Second):
		t.Error("runtime.GC did not complete in 20 s while native code spun")
	}
	atomic.StoreUint64(flag, 1)
	if n := <-spun; n == 0 {
		t.Error("wait_flag returned at once: it did not spin while the collections ran")
	}
}
