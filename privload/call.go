package privload

import (
	"fmt"
	"math"
	"reflect"
	"runtime"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/native"
)

// This file is the way into a loaded library's code. Every call goes
// through internal/native, which enters native code as cgo does (through
// runtime.cgocall: the goroutine is "in a system call", so the scheduler
// and the garbage collector go on without it and a long call does not
// stall a stop-the-world) and allocates nothing for its frame.
//
// The ways in, fastest first:
//
//   - Func.Call0 to Func.Call6: integer and pointer arguments, the
//     integer result, no allocation; Func.Call takes up to 14;
//   - Bind0 to Bind6: a typed Go function of integers, bools, floats
//     and unsafe.Pointers, which converts its arguments without
//     reflection;
//   - Func.Invoke: any mix of integer, pointer and floating-point
//     arguments, placed as the System V AMD64 ABI assigns them, with
//     both the integer and the floating-point result;
//   - Func.Bind: a Go function value of any signature purego supports
//     (strings, structs, callbacks), through reflection on every call.

// Func is a function of a loaded library, callable from Go. Every call
// of a Func whose library was closed returns an error wrapping ErrClosed
// instead of running unmapped code; a call that races with Close is the
// caller's to order.
type Func struct {
	addr uintptr
	name string
	// lib is the library the function belongs to, whose dead word each
	// call loads; nil for FuncAt, which the caller keeps valid.
	lib *Library
}

// Func returns the library's exported function name (see Lookup). After
// the library's Close (or its VMM's) it returns an error wrapping
// ErrClosed.
func (l *Library) Func(name string) (Func, error) {
	a, ok := l.Lookup(name)
	if !ok {
		if l.closed.Load() {
			return Func{}, fmt.Errorf("%w: %s: looking up %q", ErrClosed, l.path, name)
		}
		return Func{}, fmt.Errorf("privload: %s: no exported symbol %q", l.path, name)
	}
	return Func{addr: a, name: name, lib: l}, nil
}

// FuncAt returns a Func for native code at addr, which the caller keeps
// mapped for as long as it calls the Func.
func FuncAt(addr uintptr, name string) Func { return Func{addr: addr, name: name} }

// Addr returns the function's address.
func (f Func) Addr() uintptr { return f.addr }

// Name returns the function's name.
func (f Func) Name() string { return f.name }

// check returns nil if f may be called: one atomic load for a library's
// function. It is small enough to inline into every Call, which keeps the
// private call as cheap as a cgo call; the error is built out of line.
func (f Func) check() error {
	if f.lib != nil && !f.lib.dead.Load() {
		return nil
	}
	return f.checkSlow()
}

// checkSlow says why f may not be called, or returns nil for a Func with
// an address and no library (FuncAt).
func (f Func) checkSlow() error {
	if f.lib != nil {
		return fmt.Errorf("%w: %s: calling %s", ErrClosed, f.lib.path, f.name)
	}
	if f.addr == 0 {
		return fmt.Errorf("privload: calling %q: the Func has no address", f.name)
	}
	return nil
}

// Call0 calls f() and returns its integer result.
//
//go:uintptrescapes
func (f Func) Call0() (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call0(f.addr), nil
}

// Call1 calls f(a1) and returns its integer result. A pointer passed as
// uintptr(unsafe.Pointer(p)) in the call expression stays alive and in
// place for the call (the package's pointer rule).
//
//go:uintptrescapes
func (f Func) Call1(a1 uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call1(f.addr, a1), nil
}

// Call2 calls f(a1, a2) and returns its integer result, as Call1.
//
//go:uintptrescapes
func (f Func) Call2(a1, a2 uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call2(f.addr, a1, a2), nil
}

// Call3 calls f(a1, a2, a3) and returns its integer result, as Call1.
//
//go:uintptrescapes
func (f Func) Call3(a1, a2, a3 uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call3(f.addr, a1, a2, a3), nil
}

// Call4 calls f(a1, ..., a4) and returns its integer result, as Call1.
//
//go:uintptrescapes
func (f Func) Call4(a1, a2, a3, a4 uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call4(f.addr, a1, a2, a3, a4), nil
}

// Call5 calls f(a1, ..., a5) and returns its integer result, as Call1.
//
//go:uintptrescapes
func (f Func) Call5(a1, a2, a3, a4, a5 uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call5(f.addr, a1, a2, a3, a4, a5), nil
}

// Call6 calls f(a1, ..., a6) and returns its integer result, as Call1.
//
//go:uintptrescapes
func (f Func) Call6(a1, a2, a3, a4, a5, a6 uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return native.Call6(f.addr, a1, a2, a3, a4, a5, a6), nil
}

// Call calls f with up to 14 integer and pointer arguments (six in
// registers, the rest on the stack) and returns its integer result, as
// Call1. The argument slice costs an allocation: Call0 to Call6 do not.
//
//go:uintptrescapes
func (f Func) Call(args ...uintptr) (uintptr, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if len(args) > native.MaxArgs {
		return 0, fmt.Errorf("privload: calling %s: %w", f.name, native.TooManyArgs(len(args)))
	}
	return native.CallN(f.addr, args), nil
}

// argKind says which register class an argument goes to.
type argKind uint8

const (
	argInt argKind = iota
	argFloat
)

// Arg is one argument of Func.Invoke: make it with Int, Uint, Ptr,
// Float64 or Float32.
type Arg struct {
	// p keeps a pointer argument's target alive for the call; Ptr made
	// it escape, so it is on the heap and does not move.
	p    unsafe.Pointer
	bits uint64
	kind argKind
}

// Int is a signed integer argument (any C integer type up to 64 bits:
// the callee reads the low bits it needs).
func Int(v int64) Arg { return Arg{bits: uint64(v)} }

// Uint is an unsigned integer argument.
func Uint(v uint64) Arg { return Arg{bits: v} }

// Ptr is a pointer argument. What p points to stays alive and in place
// for the call (the package's pointer rule); it must hold no Go pointers
// and must not be retained by the callee after it returns.
func Ptr(p unsafe.Pointer) Arg {
	escape(p)
	return Arg{p: p, bits: uint64(uintptr(p))}
}

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

// Invoke calls f with args, each placed where the System V AMD64 ABI puts
// it: integers and pointers in RDI, RSI, RDX, RCX, R8, R9, floats in
// XMM0-7, the rest on the stack in order. AL carries the number of XMM
// registers used, so variadic functions (printf) work. It fails if the
// arguments need more than 8 stack words, or if they include floats on a
// platform other than linux/amd64.
func (f Func) Invoke(args ...Arg) (Result, error) {
	if err := f.check(); err != nil {
		return Result{}, err
	}
	fr := native.Frame{Fn: f.addr}
	ni, nf := 0, 0
	for _, a := range args {
		switch {
		case a.kind == argFloat && nf < native.FloatRegs:
			fr.Floats[nf] = a.bits
			nf++
		case a.kind == argInt && ni < native.IntRegs:
			fr.Ints[ni] = a.bits
			ni++
		default:
			if fr.NStack == native.MaxStackArgs {
				return Result{}, fmt.Errorf("privload: calling %s: %d arguments need more than %d stack words", f.name, len(args), native.MaxStackArgs)
			}
			fr.Stack[fr.NStack] = a.bits
			fr.NStack++
		}
	}
	if nf > 0 && !native.FloatArgs {
		return Result{}, fmt.Errorf("privload: calling %s: floating-point arguments are not supported on %s/%s", f.name, runtime.GOOS, runtime.GOARCH)
	}
	fr.NFloat = uint64(nf)
	fr.Call()
	runtime.KeepAlive(args)
	return Result{Int: uintptr(fr.RAX), Int2: uintptr(fr.RDX), Float: fr.XMM0, Float2: fr.XMM1}, nil
}

// Bind makes fptr, a pointer to a variable of function type, call f,
// converting Go arguments by reflection on every call. A signature of
// integers, bools, floats, uintptrs and pointers (at most one result) is
// converted here, as Invoke places arguments; any other (strings,
// structs, callbacks) goes to purego's RegisterFunc. The most convenient
// way in, and the slowest: Bind0 to Bind6 are several times faster. The
// bound function has no error result: once f's library is closed, it
// panics with an error wrapping ErrClosed.
func (f Func) Bind(fptr any) (err error) {
	if err := f.check(); err != nil {
		return err
	}
	v := reflect.ValueOf(fptr)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Func {
		return fmt.Errorf("privload: binding %s: want a non-nil pointer to a function variable, got %T", f.name, fptr)
	}
	if f.bindScalars(v.Elem()) {
		return nil
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("privload: binding %s: %v", f.name, r)
		}
	}()
	purego.RegisterFunc(fptr, f.addr)
	if f.lib != nil {
		guardBound(v.Elem(), f)
	}
	return nil
}

// reflectKind returns how a value of type t travels, and whether it is a
// Scalar-like type Bind converts itself (pointers included).
func reflectKind(t reflect.Type) (scalarKind, bool) {
	switch t.Kind() {
	case reflect.Int8:
		return kindS8, true
	case reflect.Uint8, reflect.Bool:
		return kindU8, true
	case reflect.Int16:
		return kindS16, true
	case reflect.Uint16:
		return kindU16, true
	case reflect.Int32:
		return kindS32, true
	case reflect.Uint32:
		return kindU32, true
	case reflect.Float32:
		return kindF32, true
	case reflect.Float64:
		return kindF64, true
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64, reflect.Uintptr:
		return kind64, true
	case reflect.Pointer, reflect.UnsafePointer:
		return kindPtr, true
	}
	return 0, false
}

// bindScalars binds fn, a function variable, to f if its signature has
// only Scalar-like types and fits in a Frame, and reports whether it
// did.
func (f Func) bindScalars(fn reflect.Value) bool {
	t := fn.Type()
	if t.IsVariadic() || t.NumOut() > 1 || t.NumIn() > native.IntRegs+native.MaxStackArgs {
		return false
	}
	kinds := make([]scalarKind, t.NumIn())
	floats, ints := 0, 0
	for i := range kinds {
		k, ok := reflectKind(t.In(i))
		if !ok {
			return false
		}
		kinds[i] = k
		if k.float() {
			floats++
		} else {
			ints++
		}
	}
	rk := kind64
	if t.NumOut() == 1 {
		k, ok := reflectKind(t.Out(0))
		if !ok {
			return false
		}
		rk = k
	}
	if (floats > 0 || rk.float()) && !native.FloatArgs {
		return false // purego places them
	}
	if max(floats-native.FloatRegs, 0)+max(ints-native.IntRegs, 0) > native.MaxStackArgs {
		return false
	}
	var out reflect.Type
	if t.NumOut() == 1 {
		out = t.Out(0)
	}
	fn.Set(reflect.MakeFunc(t, func(args []reflect.Value) []reflect.Value {
		if err := f.check(); err != nil {
			panic(err)
		}
		fr := native.Frame{Fn: f.addr}
		ni, nf := 0, 0
		for i, a := range args {
			var bits uint64
			switch k := kinds[i]; k {
			case kindF32:
				bits = uint64(math.Float32bits(float32(a.Float())))
			case kindF64:
				bits = math.Float64bits(a.Float())
			case kindPtr:
				bits = uint64(a.Pointer())
			default:
				switch a.Kind() {
				case reflect.Bool:
					if a.Bool() {
						bits = 1
					}
				case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
					bits = uint64(a.Int())
				default:
					bits = a.Uint()
				}
			}
			switch {
			case kinds[i].float() && nf < native.FloatRegs:
				fr.Floats[nf] = bits
				nf++
			case !kinds[i].float() && ni < native.IntRegs:
				fr.Ints[ni] = bits
				ni++
			default:
				fr.Stack[fr.NStack] = bits
				fr.NStack++
			}
		}
		fr.NFloat = uint64(nf)
		fr.Call()
		runtime.KeepAlive(args)
		if out == nil {
			return nil
		}
		r := reflect.New(out).Elem()
		w := fr.RAX
		if rk.float() {
			w = fr.XMM0
		}
		switch rk {
		case kindF32:
			r.SetFloat(float64(math.Float32frombits(uint32(w))))
		case kindF64:
			r.SetFloat(math.Float64frombits(w))
		case kindPtr:
			*(*uintptr)(r.Addr().UnsafePointer()) = uintptr(w)
		default:
			switch out.Kind() {
			case reflect.Bool:
				r.SetBool(uint8(w) != 0)
			case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
				r.SetInt(int64(word(unsafe.Pointer(&w), rk)))
			default:
				r.SetUint(uint64(word(unsafe.Pointer(&w), rk)))
			}
		}
		return []reflect.Value{r}
	}))
	return true
}

// callResolver calls an ifunc resolver and returns the address it picks.
// Resolvers get no arguments, as from glibc and DynamoRIO on x86-64:
// they read the CPU's features themselves (cpuid, or through the host's
// libc and dynamic linker, which private libraries bind to).
func callResolver(addr uintptr) uintptr { return native.Call0(addr) }

// escapeSink is written only if its flag is set, which it never is: an
// assignment to it that the compiler cannot prove dead makes a value
// escape, so that what a pointer argument points to is on the heap (as
// cgo's generated wrappers do with _Cgo_use).
var escapeSink struct {
	on bool
	p  unsafe.Pointer
	v  any
}

// escape makes p escape to the heap.
func escape(p unsafe.Pointer) {
	if escapeSink.on {
		escapeSink.p = p
	}
}

// guardBound wraps the function purego.RegisterFunc stored in v so that
// it panics with an error wrapping ErrClosed once f's library is closed,
// rather than jump into unmapped memory.
func guardBound(v reflect.Value, f Func) {
	inner := reflect.ValueOf(v.Interface())
	v.Set(reflect.MakeFunc(v.Type(), func(args []reflect.Value) []reflect.Value {
		if err := f.check(); err != nil {
			panic(err)
		}
		return inner.Call(args)
	}))
}
