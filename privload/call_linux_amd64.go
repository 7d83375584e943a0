//go:build linux && amd64

package privload

import "unsafe"

// callTrampABI0 is the address of callTramp (call_linux_amd64.s), the
// ABI0 entry runtime.cgocall calls on the system stack.
var callTrampABI0 uintptr

// runtime_cgocall is the runtime's entry to native code on the system
// stack, as cgo and purego use it (the runtime keeps this linkname for
// them, go.dev/issue/67401).
//
//go:linkname runtime_cgocall runtime.cgocall
func runtime_cgocall(fn uintptr, arg unsafe.Pointer) int32

// callNative runs the call described by fr.
func callNative(fr *callFrame) {
	runtime_cgocall(callTrampABI0, unsafe.Pointer(fr))
}
