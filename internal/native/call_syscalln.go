//go:build !(linux && amd64)

package native

import (
	"fmt"
	"runtime"
)

// FloatArgs reports whether Frame.Call places floating-point arguments
// and returns floating-point results: only the linux/amd64 trampoline
// does. Calls here go through syscallN: on Windows syscall.SyscallN, the
// runtime's cgocall into its stdcall trampoline; elsewhere
// purego.SyscallN, a cgocall into purego's trampoline.
const FloatArgs = false

// Call0 calls fn() and returns its integer result.
//
//go:uintptrescapes
func Call0(fn uintptr) uintptr {
	r, _, _ := syscallN(fn)
	return r
}

// Call1 calls fn(a1) and returns its integer result.
//
//go:uintptrescapes
func Call1(fn, a1 uintptr) uintptr {
	r, _, _ := syscallN(fn, a1)
	return r
}

// Call2 calls fn(a1, a2) and returns its integer result.
//
//go:uintptrescapes
func Call2(fn, a1, a2 uintptr) uintptr {
	r, _, _ := syscallN(fn, a1, a2)
	return r
}

// Call3 calls fn(a1, a2, a3) and returns its integer result.
//
//go:uintptrescapes
func Call3(fn, a1, a2, a3 uintptr) uintptr {
	r, _, _ := syscallN(fn, a1, a2, a3)
	return r
}

// Call4 calls fn(a1, a2, a3, a4) and returns its integer result.
//
//go:uintptrescapes
func Call4(fn, a1, a2, a3, a4 uintptr) uintptr {
	r, _, _ := syscallN(fn, a1, a2, a3, a4)
	return r
}

// Call5 calls fn(a1, a2, a3, a4, a5) and returns its integer result.
//
//go:uintptrescapes
func Call5(fn, a1, a2, a3, a4, a5 uintptr) uintptr {
	r, _, _ := syscallN(fn, a1, a2, a3, a4, a5)
	return r
}

// Call6 calls fn(a1, a2, a3, a4, a5, a6) and returns its integer result.
//
//go:uintptrescapes
func Call6(fn, a1, a2, a3, a4, a5, a6 uintptr) uintptr {
	r, _, _ := syscallN(fn, a1, a2, a3, a4, a5, a6)
	return r
}

// Call makes the call fr describes, its integer arguments in order (the
// six of Ints, then Stack[:NStack]) as the platform's C convention
// places them, and fills in RAX.
//
// Preconditions: fr.NFloat == 0 (FloatArgs is false here).
func (fr *Frame) Call() {
	if fr.NFloat > 0 {
		panic(fmt.Sprintf("native: floating-point arguments are not supported on %s/%s", runtime.GOOS, runtime.GOARCH))
	}
	var args [MaxArgs]uintptr
	for i, a := range fr.Ints {
		args[i] = uintptr(a)
	}
	for i, a := range fr.Stack[:fr.NStack] {
		args[IntRegs+i] = uintptr(a)
	}
	r, _, _ := syscallN(fr.Fn, args[:IntRegs+int(fr.NStack)]...)
	fr.RAX = uint64(r)
}
