// Package jit emits x86-64 code into vmcode and runs it.
//
// Two levels: call stubs (EmitCallStub), a few instructions that call a
// target with the 5-byte E8 rel32 form, which works only because the stub
// and the target both lie inside vmcode; and, on linux/amd64, a binary
// translator in DynamoRIO's style (Machine, Run, LoadProgram): native code
// is copied into a code cache in vmcode block by block, unchanged except
// for control transfers and RIP-relative operands, direct exits linked
// with rel32 jumps patched in place, returns and indirect branches through
// per-site inline caches in front of a hash table, entered and left
// through an emitted context switch that never touches Go's FS base.
//
// # Pointers
//
// Call, Run, Machine.Run and Machine.RunNative follow privload's pointer
// rule (see "Calling in" in package privload): a pointer converted to
// uintptr in the call's argument list (uintptr(unsafe.Pointer(&x))) stays
// alive and in place until the call returns, even while the translator
// runs Go code between entries into the code cache. A pointer the
// application keeps after the call, or reads from memory, is the caller's
// to keep alive and on the heap.
package jit

import (
	"fmt"
	"runtime"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/vmcode"
)

// Stub is emitted code that calls one target.
type Stub struct {
	// Addr is the stub's executable address.
	Addr uintptr
	// Writable is the address its bytes are written at: Addr plus the
	// VMM's constant offset under W^X, Addr otherwise.
	Writable uintptr
	// Code holds the bytes emitted at Addr.
	Code []byte
	// CallOffset is the offset in Code of the rel32 call instruction.
	CallOffset int
	unit       *vmcode.Unit
}

// EmitCallStub emits, in a new vmcode unit, a C-ABI function (System V
// AMD64, or Windows x64 on Windows) that
// forwards its arguments to target and returns its result:
//
//	sub  rsp, 8      ; keep rsp 16-byte aligned at the call (40 on Windows,
//	                 ; adding the callee's 32-byte shadow space)
//	call target      ; E8 rel32
//	add  rsp, 8
//	ret
//
// It fails, with an error that names both addresses, if target is not
// rel32-reachable from the unit (mem.Reachable), which never happens for a
// target inside the same vmcode.
//
// The code is encoded for the unit's executable address, where it runs and
// which its rel32 is relative to, and stored through the unit's writable
// address, which under W^X is elsewhere (vmcode.Unit.Write).
func EmitCallStub(code *vmcode.Code, target uintptr) (*Stub, error) {
	u, err := code.Alloc(1)
	if err != nil {
		return nil, fmt.Errorf("jit: allocating a stub unit: %w", err)
	}
	a := amd64.NewAssembler(u.Exec())
	a.SubRSP(stubFrame)
	callOff := a.Len()
	if err := a.CallRel32(target); err != nil {
		return nil, freeOnErr(u, err)
	}
	a.AddRSP(stubFrame)
	a.Ret()
	if err := u.Write(0, a.Bytes()); err != nil {
		return nil, freeOnErr(u, err)
	}
	if err := u.Seal(); err != nil {
		return nil, freeOnErr(u, err)
	}
	return &Stub{Addr: u.Exec(), Writable: u.Writable(), Code: a.Bytes(), CallOffset: callOff, unit: u}, nil
}

func freeOnErr(u *vmcode.Unit, err error) error {
	if ferr := u.Free(); ferr != nil {
		return fmt.Errorf("jit: %w (and freeing the unit: %v)", err, ferr)
	}
	return fmt.Errorf("jit: %w", err)
}

// Free returns the stub's unit to vmcode.
func (s *Stub) Free() error { return s.unit.Free() }

// Call runs the native function at fn with integer or pointer arguments in
// the platform's C calling convention and returns its integer result. It
// enters through the runtime's cgocall path, as cgo does, so the Go
// scheduler and the garbage collector treat the native code as a system
// call: it may run long without stalling stop-the-world. Pointers follow
// the package's pointer rule.
//
// Preconditions: fn is executable code that follows the platform's C ABI
// and takes at most 14 integer arguments.
//
//go:uintptrescapes
func Call(fn uintptr, args ...uintptr) uintptr {
	return native.CallN(fn, args)
}

// stubFrame is the stack a call stub reserves below its return address:
// 8 bytes keep rsp 16-byte aligned at the call under System V; the
// Windows x64 ABI also needs 32 bytes of shadow space for the callee.
var stubFrame int32 = func() int32 {
	if runtime.GOOS == "windows" {
		return 40
	}
	return 8
}()
