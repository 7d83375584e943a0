package privload

import (
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// This file is the typed way into a loaded library's code. Native code
// runs on the system stack and must be entered through a cgocall-style
// transition (runtime.cgocall, as cgo and purego do): the goroutine is
// then "in a system call", so the scheduler and the garbage collector go
// on without it, its stack cannot move under the native code, and a long
// call does not stall a stop-the-world, which a bare assembly trampoline
// would (DESIGN section 4).
//
// Three ways in, fastest first:
//
//   - Func.Call: integer and pointer arguments, an integer result;
//   - Func.Invoke: any mix of integer, pointer and floating-point
//     arguments, placed as the System V AMD64 ABI assigns them, with
//     both the integer and the floating-point result;
//   - Func.Bind: a Go function value of any signature purego supports
//     (strings, bools, structs, callbacks), through reflection.

// Func is a function of a loaded library, callable from Go. A Func must
// not be called after its library is closed.
type Func struct {
	addr uintptr
	name string
}

// Func returns the library's exported function name (see Lookup).
func (l *Library) Func(name string) (Func, error) {
	a, ok := l.Lookup(name)
	if !ok {
		return Func{}, fmt.Errorf("privload: %s: no exported symbol %q", l.path, name)
	}
	return Func{addr: a, name: name}, nil
}

// FuncAt returns a Func for native code at addr.
func FuncAt(addr uintptr, name string) Func { return Func{addr: addr, name: name} }

// Addr returns the function's address.
func (f Func) Addr() uintptr { return f.addr }

// Name returns the function's name.
func (f Func) Name() string { return f.name }

// argKind says which register class an argument goes to.
type argKind uint8

const (
	argInt argKind = iota
	argFloat
)

// Arg is one argument of Func.Invoke: make it with Int, Uint, Ptr,
// Float64 or Float32.
type Arg struct {
	// p keeps a pointer argument's target alive (and, through Invoke,
	// on the heap) for the duration of the call.
	p    unsafe.Pointer
	bits uint64
	kind argKind
}

// Int is a signed integer argument (any C integer type up to 64 bits:
// the callee reads the low bits it needs).
func Int(v int64) Arg { return Arg{bits: uint64(v)} }

// Uint is an unsigned integer argument.
func Uint(v uint64) Arg { return Arg{bits: v} }

// Ptr is a pointer argument. The memory it points to must follow the cgo
// rules: no Go pointers inside, kept alive by the call, not retained by
// the callee after it returns.
func Ptr(p unsafe.Pointer) Arg { return Arg{p: p, bits: uint64(uintptr(p))} }

// Float64 is a double argument.
func Float64(v float64) Arg { return Arg{bits: math.Float64bits(v), kind: argFloat} }

// Float32 is a float argument (in the low 32 bits of its XMM register).
func Float32(v float32) Arg { return Arg{bits: uint64(math.Float32bits(v)), kind: argFloat} }

// Result is what a native function returned: RAX and RDX, XMM0 and XMM1
// (the second register of each class carries the upper half of a 128-bit
// or two-field struct result).
type Result struct {
	Int, Int2     uintptr
	Float, Float2 uint64
}

// Int64 is the integer result.
func (r Result) Int64() int64 { return int64(r.Int) }

// Float64 is the double result.
func (r Result) Float64() float64 { return math.Float64frombits(r.Float) }

// Float32 is the float result.
func (r Result) Float32() float32 { return math.Float32frombits(uint32(r.Float)) }

// Limits of one call: the System V AMD64 ABI passes 6 integer and 8
// floating-point arguments in registers; the rest go on the stack, of
// which a call may use maxStackArgs words.
const (
	maxIntRegs   = 6
	maxFloatRegs = 8
	maxStackArgs = 8
)

// callFrame is the block the trampoline reads its arguments from and
// writes its results to. Its layout is read by call_linux_amd64.s
// through go_asm.h.
type callFrame struct {
	fn     uintptr
	ints   [maxIntRegs]uint64
	floats [maxFloatRegs]uint64
	stack  [maxStackArgs]uint64
	nstack uint64
	nfloat uint64
	rax    uint64
	rdx    uint64
	xmm0   uint64
	xmm1   uint64
	// keep holds the arguments (and so their pointers) on the heap for
	// the duration of the call: a callback into Go during the call may
	// grow, and so move, the calling goroutine's stack.
	keep []Arg
}

var framePool = sync.Pool{New: func() any { return new(callFrame) }}

// Invoke calls f with args, each placed where the System V AMD64 ABI puts
// it: integers and pointers in RDI, RSI, RDX, RCX, R8, R9, floats in
// XMM0-7, the rest on the stack in order. AL carries the number of XMM
// registers used, so variadic functions (printf) work. It panics if the
// arguments need more than maxStackArgs stack words.
func (f Func) Invoke(args ...Arg) Result {
	fr := framePool.Get().(*callFrame)
	*fr = callFrame{fn: f.addr, keep: args}
	ni, nf := 0, 0
	for _, a := range args {
		switch {
		case a.kind == argFloat && nf < maxFloatRegs:
			fr.floats[nf] = a.bits
			nf++
		case a.kind == argInt && ni < maxIntRegs:
			fr.ints[ni] = a.bits
			ni++
		default:
			if fr.nstack == maxStackArgs {
				framePool.Put(fr)
				panic(fmt.Sprintf("privload: %s: too many arguments (%d): at most %d go on the stack", f.name, len(args), maxStackArgs))
			}
			fr.stack[fr.nstack] = a.bits
			fr.nstack++
		}
	}
	fr.nfloat = uint64(nf)
	callNative(fr)
	r := Result{Int: uintptr(fr.rax), Int2: uintptr(fr.rdx), Float: fr.xmm0, Float2: fr.xmm1}
	runtime.KeepAlive(args)
	fr.keep = nil
	framePool.Put(fr)
	return r
}

// Call calls f with integer and pointer arguments and returns its integer
// result: the fast path. Pointers passed as uintptr(unsafe.Pointer(p)) in
// the call expression stay alive and in place for the call, as with
// syscall.Syscall.
//
//go:uintptrescapes
func (f Func) Call(args ...uintptr) uintptr {
	if len(args) > maxIntRegs+maxStackArgs {
		panic(fmt.Sprintf("privload: %s: too many arguments (%d), at most %d", f.name, len(args), maxIntRegs+maxStackArgs))
	}
	fr := framePool.Get().(*callFrame)
	*fr = callFrame{fn: f.addr}
	for i, a := range args {
		if i < maxIntRegs {
			fr.ints[i] = uint64(a)
		} else {
			fr.stack[i-maxIntRegs] = uint64(a)
			fr.nstack++
		}
	}
	callNative(fr)
	r := uintptr(fr.rax)
	framePool.Put(fr)
	return r
}

// Bind makes fptr, a pointer to a variable of function type, call f:
// purego's RegisterFunc, which converts Go arguments (integers, floats,
// bools, strings, pointers, structs, callbacks) by reflection on every
// call. The most convenient way in, and the slowest.
func (f Func) Bind(fptr any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("privload: binding %s: %v", f.name, r)
		}
	}()
	purego.RegisterFunc(fptr, f.addr)
	return nil
}

// callResolver calls an ifunc resolver and returns the address it picks.
// Resolvers get no arguments, as from glibc and DynamoRIO on x86-64:
// they read the CPU's features themselves (cpuid, or through the host's
// libc and dynamic linker, which private libraries bind to).
func callResolver(addr uintptr) uintptr { return FuncAt(addr, "ifunc resolver").Call() }
