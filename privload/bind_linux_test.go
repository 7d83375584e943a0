//go:build cgo && linux && amd64

package privload

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/internal/native/cgotest"
)

// TestBindScalars calls C functions of narrow, bool, floating-point and
// pointer types through typed bindings: each argument arrives widened as
// its C type says, each result comes back truncated to its Go type.
func TestBindScalars(t *testing.T) {
	widen := Bind6[int64, int8, uint8, int16, uint16, int32, uint32](FuncAt(cgotest.Widen, "widen"))
	if got, err := widen(-1, 255, -2, 65535, -3, 1<<32-1); err != nil || got != -1+255-2+65535-3+(1<<32-1) {
		t.Errorf("widen(-1, 255, -2, 65535, -3, 2^32-1) = %d, %v", got, err)
	}
	type small int8 // a named type: bindings go by the underlying type
	neg8 := Bind1[small, small](FuncAt(cgotest.Neg8, "neg8"))
	if got, err := neg8(5); err != nil || got != -5 {
		t.Errorf("neg8(5) = %d, %v", got, err)
	}
	if got, err := neg8(-128); err != nil || got != -128 {
		t.Errorf("neg8(-128) = %d, %v (wraps in C too)", got, err)
	}
	not := Bind1[bool, bool](FuncAt(cgotest.Not, "not"))
	for _, b := range []bool{false, true} {
		if got, err := not(b); err != nil || got != !b {
			t.Errorf("not(%v) = %v, %v", b, got, err)
		}
	}
	mixf := Bind3[float64, float32, int64, float64](FuncAt(cgotest.MixF, "mixf"))
	if got, err := mixf(1.5, -4, 0.25); err != nil || got != 1.5*-4+0.25 {
		t.Errorf("mixf(1.5, -4, 0.25) = %v, %v", got, err)
	}
	half := Bind1[float32, float32](FuncAt(cgotest.Half, "half"))
	if got, err := half(3); err != nil || got != 1.5 {
		t.Errorf("half(3) = %v, %v", got, err)
	}
	ptrAdd := Bind2[unsafe.Pointer, unsafe.Pointer, int](FuncAt(cgotest.PtrAdd, "ptr_add"))
	buf := make([]byte, 16)
	if got, err := ptrAdd(unsafe.Pointer(&buf[0]), 5); err != nil || got != unsafe.Pointer(&buf[5]) {
		t.Errorf("ptr_add(&buf[0], 5) = %p, %v; want %p", got, err, &buf[5])
	}
	add2 := Bind2[int64, int64, int64](FuncAt(cgotest.Add2, "add2"))
	if got, err := add2(-40, -2); err != nil || got != -42 {
		t.Errorf("add2(-40, -2) = %d, %v", got, err)
	}
	add0 := Bind0[int64](FuncAt(0, "nothing"))
	if _, err := add0(); err == nil {
		t.Error("a binding of a Func with no address: no error")
	}
}

// TestBindReflect binds the same C functions through Func.Bind, whose
// reflective conversion handles signatures of these types itself.
func TestBindReflect(t *testing.T) {
	var widen func(int8, uint8, int16, uint16, int32, uint32) int64
	var neg8 func(int8) int8
	var not func(bool) bool
	var mixf func(float32, int64, float64) float64
	var half func(float32) float32
	var ptrAdd func(*byte, int) *byte
	var sum14 func(int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64, int64) int64
	for _, b := range []struct {
		addr uintptr
		fptr any
	}{
		{cgotest.Widen, &widen}, {cgotest.Neg8, &neg8}, {cgotest.Not, &not},
		{cgotest.MixF, &mixf}, {cgotest.Half, &half}, {cgotest.PtrAdd, &ptrAdd},
		{cgotest.Sum14, &sum14},
	} {
		if err := FuncAt(b.addr, "f").Bind(b.fptr); err != nil {
			t.Fatal(err)
		}
	}
	if got := widen(-1, 255, -2, 65535, -3, 1<<32-1); got != -1+255-2+65535-3+(1<<32-1) {
		t.Errorf("widen = %d", got)
	}
	if got := neg8(5); got != -5 {
		t.Errorf("neg8(5) = %d", got)
	}
	if not(true) || !not(false) {
		t.Error("not")
	}
	if got := mixf(1.5, -4, 0.25); got != 1.5*-4+0.25 {
		t.Errorf("mixf = %v", got)
	}
	if got := half(3); got != 1.5 {
		t.Errorf("half(3) = %v", got)
	}
	buf := make([]byte, 16)
	if got := ptrAdd(&buf[0], 5); got != &buf[5] {
		t.Errorf("ptr_add = %p, want %p", got, &buf[5])
	}
	if got := sum14(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14); got != 1015 {
		t.Errorf("sum14(1..14) = %d, want 1015 (stack arguments)", got)
	}
}

// TestCallAllocs: the fixed-arity calls and the typed bindings of a
// loaded library's function allocate nothing.
func TestCallAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	lib := loadOK(t, newVMM(t), fxPath(t, "libfx_host.so"), Options{})
	nop, err := lib.Func("fx_nop")
	if err != nil {
		t.Fatal(err)
	}
	mix, err := lib.Func("fx_mix")
	if err != nil {
		t.Fatal(err)
	}
	bound2 := Bind2[int64, int64, int64](nop)
	boundMix := Bind5[float64, int64, float64, int32, float32, int64](mix)
	var sink uintptr
	calls := map[string]func(){
		"Call0": func() { sink += ok(nop.Call0()) },
		"Call1": func() { sink += ok(nop.Call1(1)) },
		"Call2": func() { sink += ok(nop.Call2(1, 2)) },
		"Call3": func() { sink += ok(nop.Call3(1, 2, 3)) },
		"Call4": func() { sink += ok(nop.Call4(1, 2, 3, 4)) },
		"Call5": func() { sink += ok(nop.Call5(1, 2, 3, 4, 5)) },
		"Call6": func() { sink += ok(nop.Call6(1, 2, 3, 4, 5, 6)) },
		"Bind2": func() { sink += uintptr(ok(bound2(1, 2))) },
		"Bind5/float": func() {
			if ok(boundMix(3, 1.5, -4, 0.25, 10)) != 3*1.5+(-4)*0.25-10 {
				panic("fx_mix")
			}
		},
		"Invoke": func() { sink += ok(nop.Invoke(Int(7))).Int },
	}
	for name, call := range calls {
		if n := testing.AllocsPerRun(1000, call); n != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, n)
		}
	}
}

// TestCallAfterClose: every way into a library's function fails with
// ErrClosed once the library is closed, instead of running unmapped
// code; Bind's function, which has no error result, panics with it.
func TestCallAfterClose(t *testing.T) {
	lib := loadOK(t, newVMM(t), sysLibDir+"libz.so.1", Options{})
	adler, err := lib.Func("adler32")
	if err != nil {
		t.Fatal(err)
	}
	typed := Bind3[uint32, uint32, unsafe.Pointer, uint32](adler)
	var viaReflect func(uint32, unsafe.Pointer, uint32) uint32
	if err := adler.Bind(&viaReflect); err != nil {
		t.Fatal(err)
	}
	// A signature with strings goes to purego (which makes C strings).
	gzopen, err := lib.Func("gzopen")
	if err != nil {
		t.Fatal(err)
	}
	var open func(path, mode string) uintptr
	if err := gzopen.Bind(&open); err != nil {
		t.Fatal(err)
	}
	if h := open(t.TempDir()+"/absent.gz", "rb"); h != 0 {
		t.Fatalf("gzopen of a missing file = %#x, want NULL", h)
	}
	data := []byte("Wikipedia")
	const want = 0x11e60398
	if got := ok(adler.Call3(1, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)))); got != want {
		t.Fatalf("adler32 = %#x, want %#x", got, want)
	}
	if got := ok(typed(1, unsafe.Pointer(&data[0]), uint32(len(data)))); got != want {
		t.Fatalf("typed adler32 = %#x, want %#x", got, want)
	}
	if got := viaReflect(1, unsafe.Pointer(&data[0]), uint32(len(data))); got != want {
		t.Fatalf("bound adler32 = %#x, want %#x", got, want)
	}

	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", what, err)
		}
	}
	_, err = lib.Func("adler32")
	check("Func", err)
	_, err = adler.Call3(1, 0, 0)
	check("Call3", err)
	_, err = adler.Call(1, 0, 0)
	check("Call", err)
	_, err = adler.Invoke(Uint(1), Ptr(nil), Uint(0))
	check("Invoke", err)
	_, err = typed(1, nil, 0)
	check("Bind3's function", err)
	check("Bind", adler.Bind(&viaReflect))
	func() {
		defer func() {
			err, _ := recover().(error)
			check("Bind's function", err)
		}()
		viaReflect(1, nil, 0)
	}()
	func() {
		defer func() {
			err, _ := recover().(error)
			check("Bind's function through purego", err)
		}()
		open("absent.gz", "rb")
	}()
}

// TestCallTooManyArgs: more arguments than a call can place is an
// error naming the function, not a crash.
func TestCallTooManyArgs(t *testing.T) {
	f := FuncAt(cgotest.Add2, "add2")
	if _, err := f.Call(make([]uintptr, 15)...); err == nil {
		t.Error("Call with 15 arguments: no error")
	}
	args := make([]Arg, 15)
	if _, err := f.Invoke(args...); err == nil {
		t.Error("Invoke with 15 integer arguments: no error")
	}
}
