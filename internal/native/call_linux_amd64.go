//go:build linux && amd64

package native

import (
	"unsafe"

	// runtime.cgocall needs the runtime's cgo support: cgo's when cgo is
	// on, purego's stand-in (fakecgo) when it is off. Importing purego
	// links the one that applies, so that a program without cgo that
	// reaches native code only through here still has it.
	_ "github.com/ebitengine/purego"
)

// FloatArgs reports whether Frame.Call places floating-point arguments
// and returns floating-point results: the System V trampoline does.
const FloatArgs = true

// callIntABI0 and callFrameABI0 are the addresses of the trampolines of
// call_linux_amd64.s, which runtime.cgocall calls on the system stack
// with the C calling convention.
var callIntABI0, callFrameABI0 uintptr

// runtime_cgocall is the runtime's entry to native code on the system
// stack, as cgo and purego use it (the runtime keeps this linkname for
// them). Unlike theirs, the declaration here says arg does not escape:
// the frames live on the calling goroutine's stack, and the trampolines
// find them again if a callback moved that stack.
//
//go:noescape
//go:linkname runtime_cgocall runtime.cgocall
func runtime_cgocall(fn uintptr, arg unsafe.Pointer) int32

// intFrame is the frame of Call0 to Call6: the function, its integer
// arguments and its RAX. Its layout is read by callInt through go_asm.h.
// The calls fill it field by field: a composite literal is built in a
// temporary and copied with 16-byte moves, whose loads of two 8-byte
// stores just made stall store forwarding (about 9 ns a call with six
// arguments).
type intFrame struct {
	fn uintptr
	a  [IntRegs]uintptr
	r  uintptr
}

// Call0 calls fn() and returns RAX.
//
//go:uintptrescapes
func Call0(fn uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call1 calls fn(a1) and returns RAX.
//
//go:uintptrescapes
func Call1(fn, a1 uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	fr.a[0] = a1
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call2 calls fn(a1, a2) and returns RAX.
//
//go:uintptrescapes
func Call2(fn, a1, a2 uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	fr.a[0] = a1
	fr.a[1] = a2
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call3 calls fn(a1, a2, a3) and returns RAX.
//
//go:uintptrescapes
func Call3(fn, a1, a2, a3 uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	fr.a[0] = a1
	fr.a[1] = a2
	fr.a[2] = a3
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call4 calls fn(a1, a2, a3, a4) and returns RAX.
//
//go:uintptrescapes
func Call4(fn, a1, a2, a3, a4 uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	fr.a[0] = a1
	fr.a[1] = a2
	fr.a[2] = a3
	fr.a[3] = a4
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call5 calls fn(a1, a2, a3, a4, a5) and returns RAX.
//
//go:uintptrescapes
func Call5(fn, a1, a2, a3, a4, a5 uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	fr.a[0] = a1
	fr.a[1] = a2
	fr.a[2] = a3
	fr.a[3] = a4
	fr.a[4] = a5
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call6 calls fn(a1, a2, a3, a4, a5, a6) and returns RAX.
//
//go:uintptrescapes
func Call6(fn, a1, a2, a3, a4, a5, a6 uintptr) uintptr {
	var fr intFrame
	fr.fn = fn
	fr.a[0] = a1
	fr.a[1] = a2
	fr.a[2] = a3
	fr.a[3] = a4
	fr.a[4] = a5
	fr.a[5] = a6
	runtime_cgocall(callIntABI0, unsafe.Pointer(&fr))
	return fr.r
}

// Call makes the call fr describes and fills in its results.
func (fr *Frame) Call() {
	runtime_cgocall(callFrameABI0, unsafe.Pointer(fr))
}
