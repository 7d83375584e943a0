package native

import "syscall"

// syscallN is the runtime's way into a stdcall function: a cgocall-style
// transition, with the result in RAX.
func syscallN(fn uintptr, args ...uintptr) (r1, r2, err uintptr) {
	r1, r2, e := syscall.SyscallN(fn, args...)
	return r1, r2, uintptr(e)
}
