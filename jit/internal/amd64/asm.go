// Package amd64 encodes the x86-64 instructions the jit emits.
//
// Branches and calls to other code are always the fixed 5-byte rel32 forms
// (E8/E9) so that a link can later be patched in place with one aligned
// 4-byte store; nothing here picks a shorter form behind the caller's back.
package amd64

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/reachvm/reachvm/mem"
)

// Reg is a general-purpose register, numbered as in the ModRM encoding.
type Reg uint8

// The 16 general-purpose registers.
const (
	RAX Reg = iota
	RCX
	RDX
	RBX
	RSP
	RBP
	RSI
	RDI
	R8
	R9
	R10
	R11
	R12
	R13
	R14
	R15
)

var regNames = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

func (r Reg) String() string {
	if int(r) < len(regNames) {
		return regNames[r]
	}
	return fmt.Sprintf("Reg(%d)", uint8(r))
}

// ReachError reports a rel32 target out of reach: the reason vmcode exists.
type ReachError struct {
	Op       string
	From, To uintptr
}

func (e *ReachError) Error() string {
	return fmt.Sprintf("amd64: %s from %#x cannot reach %#x with rel32 (distance %#x)", e.Op, e.From, e.To, int64(e.To)-int64(e.From))
}

// Assembler appends instructions to a buffer that will run at Base.
type Assembler struct {
	// Base is the address the first byte will execute at; rel32
	// displacements are computed from it.
	Base uintptr
	buf  []byte
}

// NewAssembler returns an assembler for code that will run at base.
func NewAssembler(base uintptr) *Assembler { return &Assembler{Base: base} }

// Bytes returns the encoded instructions.
func (a *Assembler) Bytes() []byte { return a.buf }

// Len returns the number of bytes encoded so far.
func (a *Assembler) Len() int { return len(a.buf) }

// PC returns the address the next instruction will run at.
func (a *Assembler) PC() uintptr { return a.Base + uintptr(len(a.buf)) }

func (a *Assembler) rel32(op string, opcode byte, target uintptr) error {
	next := a.PC() + 5
	d, ok := mem.Rel32(next, target)
	if !ok {
		return &ReachError{Op: op, From: a.PC(), To: target}
	}
	a.buf = append(a.buf, opcode)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(d))
	return nil
}

// CallRel32 emits `call target` as E8 rel32.
func (a *Assembler) CallRel32(target uintptr) error { return a.rel32("call", 0xe8, target) }

// JmpRel32 emits `jmp target` as E9 rel32.
func (a *Assembler) JmpRel32(target uintptr) error { return a.rel32("jmp", 0xe9, target) }

// Ret emits `ret`.
func (a *Assembler) Ret() { a.buf = append(a.buf, 0xc3) }

// rex returns a REX prefix with W set and the B bit for r.
func rexWB(r Reg) byte { return 0x48 | byte(r>>3) }

// MovImm64 emits `mov r, imm` in the 10-byte REX.W B8+r form, which is
// patchable in place.
func (a *Assembler) MovImm64(r Reg, imm uint64) {
	a.buf = append(a.buf, rexWB(r), 0xb8+byte(r&7))
	a.buf = binary.LittleEndian.AppendUint64(a.buf, imm)
}

// CallReg emits `call r` (FF /2).
func (a *Assembler) CallReg(r Reg) {
	if r >= R8 {
		a.buf = append(a.buf, 0x41)
	}
	a.buf = append(a.buf, 0xff, 0xd0|byte(r&7))
}

// Push emits `push r`.
func (a *Assembler) Push(r Reg) {
	if r >= R8 {
		a.buf = append(a.buf, 0x41)
	}
	a.buf = append(a.buf, 0x50+byte(r&7))
}

// Pop emits `pop r`.
func (a *Assembler) Pop(r Reg) {
	if r >= R8 {
		a.buf = append(a.buf, 0x41)
	}
	a.buf = append(a.buf, 0x58+byte(r&7))
}

// SubRSP emits `sub rsp, n`, in the imm8 form when n fits.
func (a *Assembler) SubRSP(n int32) { a.aluRSP(5, n) }

// AddRSP emits `add rsp, n`, in the imm8 form when n fits.
func (a *Assembler) AddRSP(n int32) { a.aluRSP(0, n) }

// aluRSP emits the group-1 ALU op /ext with rsp and an immediate.
func (a *Assembler) aluRSP(ext byte, n int32) {
	modrm := 0xc0 | ext<<3 | byte(RSP)
	if n >= math.MinInt8 && n <= math.MaxInt8 {
		a.buf = append(a.buf, 0x48, 0x83, modrm, byte(int8(n)))
		return
	}
	a.buf = append(a.buf, 0x48, 0x81, modrm)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(n))
}

// rexRR returns the REX.W prefix for a ModRM with reg and rm fields.
func rexRR(reg, rm Reg) byte { return 0x48 | byte(reg>>3)<<2 | byte(rm>>3) }

// MovRR emits `mov dst, src` (REX.W 89 /r).
func (a *Assembler) MovRR(dst, src Reg) {
	a.buf = append(a.buf, rexRR(src, dst), 0x89, 0xc0|byte(src&7)<<3|byte(dst&7))
}

// AddRR emits `add dst, src` (REX.W 01 /r).
func (a *Assembler) AddRR(dst, src Reg) {
	a.buf = append(a.buf, rexRR(src, dst), 0x01, 0xc0|byte(src&7)<<3|byte(dst&7))
}
