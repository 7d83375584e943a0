package amd64

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/reachvm/reachvm/mem"
)

// Cond is a condition code, numbered as in Jcc/SETcc/CMOVcc.
type Cond uint8

// The 16 conditions.
const (
	CondO Cond = iota
	CondNO
	CondB
	CondAE
	CondE
	CondNE
	CondBE
	CondA
	CondS
	CondNS
	CondP
	CondNP
	CondL
	CondGE
	CondLE
	CondG
)

var condNames = [16]string{"o", "no", "b", "ae", "e", "ne", "be", "a", "s", "ns", "p", "np", "l", "ge", "le", "g"}

func (c Cond) String() string {
	if c < 16 {
		return condNames[c]
	}
	return fmt.Sprintf("Cond(%d)", uint8(c))
}

// Lengths of the fixed, patchable branch forms. A link or an unlink
// rewrites only the 4-byte displacement that ends such an instruction, so
// the instruction never changes length.
const (
	JmpRel32Len  = 5
	CallRel32Len = 5
	JccRel32Len  = 6
)

// JccRel32 emits `jcc target` in the 6-byte 0F 80+cc rel32 form.
func (a *Assembler) JccRel32(cc Cond, target uintptr) error {
	next := a.PC() + JccRel32Len
	d, ok := mem.Rel32(next, target)
	if !ok {
		return &ReachError{Op: "j" + cc.String(), From: a.PC(), To: target}
	}
	a.buf = append(a.buf, 0x0f, 0x80|byte(cc&15))
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(d))
	return nil
}

// Fixup is a forward branch inside the buffer whose displacement is filled
// in by Bind.
type Fixup struct {
	// at is the offset of the displacement field; size its width (1 or
	// 4).
	at, size int
}

func (a *Assembler) fixup(size int, opcode ...byte) Fixup {
	a.buf = append(a.buf, opcode...)
	f := Fixup{at: len(a.buf), size: size}
	for range size {
		a.buf = append(a.buf, 0)
	}
	return f
}

// Jrcxz emits `jrcxz` (E3 rel8) to a label bound later: the one branch
// that tests a register without reading or writing the flags, which is
// why the translator's lookups use it.
func (a *Assembler) Jrcxz() Fixup { return a.fixup(1, 0xe3) }

// JmpShort emits `jmp rel8` (EB) to a label bound later.
func (a *Assembler) JmpShort() Fixup { return a.fixup(1, 0xeb) }

// JccShort emits `jcc rel8` (70+cc) to a label bound later.
func (a *Assembler) JccShort(cc Cond) Fixup { return a.fixup(1, 0x70|byte(cc&15)) }

// JmpLabel emits `jmp rel32` (E9) to a label bound later.
func (a *Assembler) JmpLabel() Fixup { return a.fixup(4, 0xe9) }

// JccLabel emits `jcc rel32` (0F 80+cc) to a label bound later.
func (a *Assembler) JccLabel(cc Cond) Fixup { return a.fixup(4, 0x0f, 0x80|byte(cc&15)) }

// Bind points f at the current position.
func (a *Assembler) Bind(f Fixup) error { return a.BindAt(f, len(a.buf)) }

// BindAt points f at offset off of the buffer.
func (a *Assembler) BindAt(f Fixup, off int) error {
	d := off - (f.at + f.size)
	switch f.size {
	case 1:
		if d < math.MinInt8 || d > math.MaxInt8 {
			return fmt.Errorf("amd64: rel8 branch at %#x cannot reach offset %#x", f.at-1, off)
		}
		a.buf[f.at] = byte(int8(d))
	case 4:
		binary.LittleEndian.PutUint32(a.buf[f.at:], uint32(int32(d)))
	}
	return nil
}

// MovLoad emits `mov dst, qword [m]` (REX.W 8B /r).
func (a *Assembler) MovLoad(dst Reg, m Mem) error {
	return a.emitMem("mov", op1(true, 0x8b, dst), m)
}

// MovStore emits `mov qword [m], src` (REX.W 89 /r).
func (a *Assembler) MovStore(m Mem, src Reg) error {
	return a.emitMem("mov", op1(true, 0x89, src), m)
}

// MovStore32 emits `mov dword [m], src32` (89 /r).
func (a *Assembler) MovStore32(m Mem, src Reg) error {
	return a.emitMem("mov", op1(false, 0x89, src), m)
}

// MovStoreImm32 emits `mov qword [m], imm` (REX.W C7 /0, imm32
// sign-extended).
func (a *Assembler) MovStoreImm32(m Mem, imm int32) error {
	return a.emitMem("mov", op1(true, 0xc7, 0).withImm32(imm), m)
}

// MovStoreImm32D emits `mov dword [m], imm` (C7 /0): with PushImm32 it
// pushes a 64-bit constant without a scratch register or the flags.
func (a *Assembler) MovStoreImm32D(m Mem, imm int32) error {
	return a.emitMem("mov", op1(false, 0xc7, 0).withImm32(imm), m)
}

// MovImm32 emits `mov dst32, imm` (B8+r id), which zero-extends into the
// whole register.
func (a *Assembler) MovImm32(dst Reg, imm uint32) {
	if dst >= R8 {
		a.buf = append(a.buf, 0x41)
	}
	a.buf = append(a.buf, 0xb8+byte(dst&7))
	a.buf = binary.LittleEndian.AppendUint32(a.buf, imm)
}

// Lea emits `lea dst, [m]` (REX.W 8D /r). It never touches the flags.
func (a *Assembler) Lea(dst Reg, m Mem) error {
	return a.emitMem("lea", op1(true, 0x8d, dst), m)
}

// Movzx16 emits `movzx dst32, src16` (0F B7 /r): the low 16 bits of src,
// zero-extended, without touching the flags.
func (a *Assembler) Movzx16(dst, src Reg) {
	a.emitRR(op2(false, 0x0f, 0xb7, dst), src)
}

// Movzx8Load emits `movzx dst32, byte [m]` (0F B6 /r), which zero-extends
// into the whole register and does not touch the flags: with jrcxz, a
// test of one byte of memory that keeps them.
func (a *Assembler) Movzx8Load(dst Reg, m Mem) error {
	return a.emitMem("movzx", op2(false, 0x0f, 0xb6, dst), m)
}

// CmpMem8Imm8 emits `cmp byte [m], imm` (80 /7 ib): a test of one byte of
// memory with no register, where the flags are dead.
func (a *Assembler) CmpMem8Imm8(m Mem, imm int8) error {
	return a.emitMem("cmp", op1(false, 0x80, 7).withImm8(imm), m)
}

// Xchg emits `xchg a, b` (REX.W 87 /r), which does not touch the flags.
func (a *Assembler) Xchg(r1, r2 Reg) {
	a.emitRR(op1(true, 0x87, r2), r1)
}

// PushImm32 emits `push imm` (68 id): pushes imm sign-extended to 64 bits.
func (a *Assembler) PushImm32(imm int32) {
	a.buf = append(a.buf, 0x68)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(imm))
}

// Push64 pushes the 64-bit constant v without a scratch register and
// without touching the flags: `push imm32` alone when v is a sign-extended
// 32-bit value, else `push lo32` then `mov dword [rsp+4], hi32`.
func (a *Assembler) Push64(v uint64) {
	if int64(v) >= math.MinInt32 && int64(v) <= math.MaxInt32 {
		a.PushImm32(int32(v))
		return
	}
	a.PushImm32(int32(uint32(v)))
	// Cannot fail: no RIP operand.
	_ = a.MovStoreImm32D(M(RSP, 4), int32(uint32(v>>32)))
}

// Pushfq emits `pushfq` (9C).
func (a *Assembler) Pushfq() { a.buf = append(a.buf, 0x9c) }

// Popfq emits `popfq` (9D).
func (a *Assembler) Popfq() { a.buf = append(a.buf, 0x9d) }

// PushMem emits `push qword [m]` (FF /6).
func (a *Assembler) PushMem(m Mem) error { return a.emitMem("push", op1(false, 0xff, 6), m) }

// PopMem emits `pop qword [m]` (8F /0).
func (a *Assembler) PopMem(m Mem) error { return a.emitMem("pop", op1(false, 0x8f, 0), m) }

// JmpMem emits `jmp qword [m]` (FF /4).
func (a *Assembler) JmpMem(m Mem) error { return a.emitMem("jmp", op1(false, 0xff, 4), m) }

// CallMem emits `call qword [m]` (FF /2).
func (a *Assembler) CallMem(m Mem) error { return a.emitMem("call", op1(false, 0xff, 2), m) }

// JmpReg emits `jmp r` (FF /4).
func (a *Assembler) JmpReg(r Reg) { a.emitRR(op1(false, 0xff, 4), r) }

// Lahf emits `lahf` (9F): SF, ZF, AF, PF and CF into AH.
func (a *Assembler) Lahf() { a.buf = append(a.buf, 0x9f) }

// Sahf emits `sahf` (9E): AH into SF, ZF, AF, PF and CF.
func (a *Assembler) Sahf() { a.buf = append(a.buf, 0x9e) }

// SetoAL emits `seto al` (0F 90 C0): with Lahf, DynamoRIO's way to save
// the arithmetic flags without the stack.
func (a *Assembler) SetoAL() { a.buf = append(a.buf, 0x0f, 0x90, 0xc0) }

// Xsave64 emits `xsave64 [m]` (REX.W 0F AE /4): saves the components in
// EDX:EAX & XCR0.
func (a *Assembler) Xsave64(m Mem) error { return a.emitMem("xsave64", op2(true, 0x0f, 0xae, 4), m) }

// Xrstor64 emits `xrstor64 [m]` (REX.W 0F AE /5).
func (a *Assembler) Xrstor64(m Mem) error {
	return a.emitMem("xrstor64", op2(true, 0x0f, 0xae, 5), m)
}

// Fxsave64 emits `fxsave64 [m]` (REX.W 0F AE /0): x87 and SSE state, for
// processors without XSAVE.
func (a *Assembler) Fxsave64(m Mem) error {
	return a.emitMem("fxsave64", op2(true, 0x0f, 0xae, 0), m)
}

// Fxrstor64 emits `fxrstor64 [m]` (REX.W 0F AE /1).
func (a *Assembler) Fxrstor64(m Mem) error {
	return a.emitMem("fxrstor64", op2(true, 0x0f, 0xae, 1), m)
}

// Stmxcsr emits `stmxcsr dword [m]` (0F AE /3).
func (a *Assembler) Stmxcsr(m Mem) error { return a.emitMem("stmxcsr", op2(false, 0x0f, 0xae, 3), m) }

// Ldmxcsr emits `ldmxcsr dword [m]` (0F AE /2).
func (a *Assembler) Ldmxcsr(m Mem) error { return a.emitMem("ldmxcsr", op2(false, 0x0f, 0xae, 2), m) }

// Fnstcw emits `fnstcw word [m]` (D9 /7).
func (a *Assembler) Fnstcw(m Mem) error { return a.emitMem("fnstcw", op1(false, 0xd9, 7), m) }

// Fldcw emits `fldcw word [m]` (D9 /5).
func (a *Assembler) Fldcw(m Mem) error { return a.emitMem("fldcw", op1(false, 0xd9, 5), m) }

// Fninit emits `fninit` (DB E3).
func (a *Assembler) Fninit() { a.buf = append(a.buf, 0xdb, 0xe3) }

// Vzeroupper emits `vzeroupper` (C5 F8 77).
func (a *Assembler) Vzeroupper() { a.buf = append(a.buf, 0xc5, 0xf8, 0x77) }

// Cld emits `cld` (FC).
func (a *Assembler) Cld() { a.buf = append(a.buf, 0xfc) }

// Int3 emits `int3` (CC).
func (a *Assembler) Int3() { a.buf = append(a.buf, 0xcc) }

// Ud2 emits `ud2` (0F 0B).
func (a *Assembler) Ud2() { a.buf = append(a.buf, 0x0f, 0x0b) }

// nops are the recommended multi-byte NOPs (Intel SDM, NOP), by length.
var nops = [...][]byte{
	1: {0x90},
	2: {0x66, 0x90},
	3: {0x0f, 0x1f, 0x00},
	4: {0x0f, 0x1f, 0x40, 0x00},
	5: {0x0f, 0x1f, 0x44, 0x00, 0x00},
	6: {0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
	7: {0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
	8: {0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
	9: {0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
}

// Nop emits n bytes of no-ops in as few instructions as the multi-byte
// forms allow.
func (a *Assembler) Nop(n int) {
	for n > 0 {
		k := min(n, len(nops)-1)
		a.buf = append(a.buf, nops[k]...)
		n -= k
	}
}

// Raw appends bytes as they are: a copied application instruction.
func (a *Assembler) Raw(b ...byte) { a.buf = append(a.buf, b...) }

// Reset empties the buffer and sets the address it will run at, keeping
// its storage.
func (a *Assembler) Reset(base uintptr) {
	a.Base = base
	a.buf = a.buf[:0]
}

// BindTarget points the rel32 fixup f at the absolute address target.
func (a *Assembler) BindTarget(f Fixup, target uintptr) error {
	if f.size != 4 {
		return fmt.Errorf("amd64: only a rel32 branch can be bound to an address")
	}
	end := a.Base + uintptr(f.at+4)
	d, ok := mem.Rel32(end, target)
	if !ok {
		return &ReachError{Op: "branch", From: end - 5, To: target}
	}
	binary.LittleEndian.PutUint32(a.buf[f.at:], uint32(d))
	return nil
}

// End returns the offset just after f's displacement: where the branch's
// displacement counts from.
func (f Fixup) End() int { return f.at + f.size }

// Truncate drops everything emitted after the first n bytes.
func (a *Assembler) Truncate(n int) { a.buf = a.buf[:n] }

// Lea32 emits `lea dst32, [m]` (8D /r without REX.W): the address's low
// 32 bits, zero-extended.
func (a *Assembler) Lea32(dst Reg, m Mem) error {
	return a.emitMem("lea", op1(false, 0x8d, dst), m)
}

// CmpMemImm32 emits `cmp qword [m], imm` (REX.W 81 /7, imm32
// sign-extended).
func (a *Assembler) CmpMemImm32(m Mem, imm int32) error {
	return a.emitMem("cmp", op1(true, 0x81, 7).withImm32(imm), m)
}

// CmpRegImm32 emits `cmp r, imm` (REX.W 81 /7, imm32 sign-extended), in
// the 4-byte-immediate form even when imm fits a byte, so that the
// immediate can be patched.
func (a *Assembler) CmpRegImm32(r Reg, imm int32) {
	a.emitRR(op1(true, 0x81, 7).withImm32(imm), r)
}

// CmpRegMem emits `cmp r, qword [m]` (REX.W 3B /r): with m a RIP-relative
// literal it compares a register against a 64-bit constant with no
// scratch register, and macro-fuses with a following jcc.
func (a *Assembler) CmpRegMem(r Reg, m Mem) error {
	return a.emitMem("cmp", op1(true, 0x3b, r), m)
}

// LeaRSP32 emits `lea rsp, [rsp+disp]` in the 8-byte disp32 form whatever
// disp, so that two variants of a patchable sequence have one length.
func (a *Assembler) LeaRSP32(disp int32) {
	a.buf = append(a.buf, 0x48, 0x8d, 0xa4, 0x24)
	a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(disp))
}

// CmpMem32Imm32 emits `cmp dword [m], imm` (81 /7): with its twin at
// [m+4] it compares a 64-bit value against a 64-bit constant without a
// register.
func (a *Assembler) CmpMem32Imm32(m Mem, imm int32) error {
	return a.emitMem("cmp", op1(false, 0x81, 7).withImm32(imm), m)
}

// CmpReg32Imm32 emits `cmp r32, imm` (81 /7) in the 4-byte-immediate
// form.
func (a *Assembler) CmpReg32Imm32(r Reg, imm int32) {
	a.emitRR(op1(false, 0x81, 7).withImm32(imm), r)
}

// RorImm emits `ror r, n` (REX.W C1 /1 ib). It writes CF and OF only:
// ZF from an earlier compare survives it.
func (a *Assembler) RorImm(r Reg, n uint8) {
	a.emitRR(op1(true, 0xc1, 1).withImm8(int8(n)), r)
}

// AddMemImm emits `add qword [m], imm` (REX.W 83 /0 ib, or 81 /0 id when
// imm does not fit a byte): a client's counter update where the flags
// are dead.
func (a *Assembler) AddMemImm(m Mem, imm int32) error {
	if int32(int8(imm)) == imm {
		return a.emitMem("add", op1(true, 0x83, 0).withImm8(int8(imm)), m)
	}
	return a.emitMem("add", op1(true, 0x81, 0).withImm32(imm), m)
}

// LockAddMemImm emits `lock add qword [m], imm`: AddMemImm made atomic,
// for a counter that several threads update.
func (a *Assembler) LockAddMemImm(m Mem, imm int32) error {
	a.buf = append(a.buf, 0xf0)
	return a.AddMemImm(m, imm)
}
