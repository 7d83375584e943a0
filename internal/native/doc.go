// Package native is the only way reachvm enters native code from Go:
// privload's Func (Call, Invoke, the typed bindings, Bind through
// purego's reflection aside), jit.Call, jit.Run and the entry into a
// jit.Machine's code cache all come through here.
//
// # The transition
//
// On linux/amd64 a call goes through runtime.cgocall, as a cgo call does:
// the goroutine is "in a system call" while the native code runs, so the
// scheduler hands its P to another thread and the garbage collector's
// stop-the-world does not wait for it; the native code runs on the
// thread's system stack (g0), not on the goroutine's. The call is
// described by a frame on the calling goroutine's stack, which the
// trampoline (call_linux_amd64.s) reads the arguments from and writes the
// results to. A callback from the native code into Go (a purego callback)
// runs on the goroutine's stack and may grow it, and so move the frame:
// like the C half of a cgo wrapper, the trampoline keeps the frame's depth
// below the goroutine's stack top, not its address, and finds the frame
// again after the call from the stack top the runtime reports then
// (_cgo_topofstack, which cgo's generated code uses for the same purpose).
// The frame costs no allocation: Call0 to Call6 allocate nothing.
//
// On Windows a call goes through syscall.SyscallN (itself a cgocall into
// the runtime's stdcall trampoline), on other platforms through
// purego.SyscallN; floating-point arguments and results need the
// linux/amd64 trampoline (FloatArgs).
//
// # Pointers
//
// The rule for pointers, which privload's and jit's documentation state
// for their callers, is syscall.Syscall's: a pointer converted to uintptr
// in the argument list of the call (uintptr(unsafe.Pointer(&x))) stays
// alive, and in place, until the call returns. Call0 to Call6, and the
// exported entry points built on these calls (privload's Func.CallK and
// Func.Call, jit's Call, Run, Machine.Run and Machine.RunNative), are
// marked //go:uintptrescapes, which makes the compiler allocate on the
// heap whatever such an argument points to (heap objects do not move) and
// keep it alive across the call; privload's typed bindings and Ptr make
// their unsafe.Pointer arguments escape to the same effect.
// Without it the object could be a local of the calling goroutine, whose
// stack moves when it grows: during a callback into Go, or, for a
// jit.Machine, while the translator runs Go code between two entries into
// the cache. A pointer that reaches native code any other way (stored in
// memory the native code reads) is the caller's to pin.
package native
