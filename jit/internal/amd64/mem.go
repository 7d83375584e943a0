package amd64

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/reachvm/reachvm/mem"
)

// NoReg marks an absent base or index register in a Mem.
const NoReg Reg = 0xff

// Mem is a memory operand: [Base + Index*Scale + Disp], or, with RIP set,
// the absolute address Target reached RIP-relatively. The translator's
// spill slots, machine context and lookup tables live in vmcode beside the
// code, so RIP-relative is how emitted code names them without a register
// and without touching FS (where Go keeps g).
type Mem struct {
	Base  Reg
	Index Reg
	// Scale is 1, 2, 4 or 8; ignored without Index.
	Scale uint8
	Disp  int32
	// RIP selects [rip + disp32] with disp32 computed so that the operand
	// addresses Target; Base, Index, Scale and Disp are ignored.
	RIP    bool
	Target uintptr
}

// M returns [base + disp].
func M(base Reg, disp int32) Mem { return Mem{Base: base, Index: NoReg, Disp: disp} }

// MI returns [base + index*scale + disp].
func MI(base, index Reg, scale uint8, disp int32) Mem {
	return Mem{Base: base, Index: index, Scale: scale, Disp: disp}
}

// RIPRel returns the RIP-relative operand addressing target.
func RIPRel(target uintptr) Mem { return Mem{RIP: true, Target: target} }

// Abs32 returns [disp32] with no base: an absolute address in the low
// 2 GiB (sign-extended).
func Abs32(addr int32) Mem { return Mem{Base: NoReg, Index: NoReg, Disp: addr} }

// scaleBits maps a scale to its SIB encoding.
func scaleBits(s uint8) (byte, bool) {
	switch s {
	case 1, 0:
		return 0, true
	case 2:
		return 1, true
	case 4:
		return 2, true
	case 8:
		return 3, true
	}
	return 0, false
}

// enc describes one instruction with a ModRM memory or register operand
// for emit.
//
// Fixed arrays rather than slices keep encoding free of allocations: the
// translator encodes on its hot path.
type enc struct {
	// prefix is a legacy prefix emitted before REX (0x66, 0xF2, 0xF3),
	// or 0 for none.
	prefix byte
	// w sets REX.W.
	w bool
	// op holds nop opcode bytes (after REX).
	op  [3]byte
	nop uint8
	// reg is the ModRM reg field: a register or an opcode extension.
	reg Reg
	// imm holds nimm bytes appended after the displacement.
	imm  [8]byte
	nimm uint8
}

// op1 and op2 return an enc for a one- or two-byte opcode with ModRM
// reg field reg.
func op1(w bool, b byte, reg Reg) enc { return enc{w: w, op: [3]byte{b}, nop: 1, reg: reg} }
func op2(w bool, b0, b1 byte, reg Reg) enc {
	return enc{w: w, op: [3]byte{b0, b1}, nop: 2, reg: reg}
}

// withImm32 returns e with a 32-bit immediate.
func (e enc) withImm32(v int32) enc {
	binary.LittleEndian.PutUint32(e.imm[:], uint32(v))
	e.nimm = 4
	return e
}

// withImm8 returns e with an 8-bit immediate.
func (e enc) withImm8(v int8) enc {
	e.imm[0] = byte(v)
	e.nimm = 1
	return e
}

// emitMem appends e with memory operand m. For a RIP-relative operand it
// computes the displacement from the end of the whole instruction
// (immediate included) and fails with *ReachError, leaving the buffer
// unchanged, if Target is out of rel32 reach.
func (a *Assembler) emitMem(op string, e enc, m Mem) error {
	start := len(a.buf)
	rex := byte(0)
	if e.w {
		rex |= 0x08
	}
	rex |= byte(e.reg>>3&1) << 2
	var modrm, sib byte
	hasSIB := false
	dispSize := 0
	disp := m.Disp
	switch {
	case m.RIP:
		modrm = 0<<6 | byte(e.reg&7)<<3 | 5
		dispSize = 4
	case m.Base == NoReg && m.Index == NoReg:
		// [disp32]: mod 00, rm 100, SIB base 101 index 100.
		modrm = 0<<6 | byte(e.reg&7)<<3 | 4
		sib = 0x25
		hasSIB = true
		dispSize = 4
	default:
		if m.Index == RSP {
			return fmt.Errorf("amd64: %s: rsp cannot be an index register", op)
		}
		needSIB := m.Index != NoReg || m.Base == NoReg || m.Base&7 == 4
		mod := byte(0)
		switch {
		case m.Base == NoReg:
			mod, dispSize = 0, 4
		case disp == 0 && m.Base&7 != 5:
			mod = 0
		case disp >= math.MinInt8 && disp <= math.MaxInt8:
			mod, dispSize = 1, 1
		default:
			mod, dispSize = 2, 4
		}
		if m.Base != NoReg {
			rex |= byte(m.Base >> 3 & 1)
		}
		if needSIB {
			sb, ok := scaleBits(m.Scale)
			if !ok {
				return fmt.Errorf("amd64: %s: bad scale %d", op, m.Scale)
			}
			idx := byte(4)
			if m.Index != NoReg {
				idx = byte(m.Index & 7)
				rex |= byte(m.Index>>3&1) << 1
			} else {
				sb = 0
			}
			base := byte(5)
			if m.Base != NoReg {
				base = byte(m.Base & 7)
			}
			sib = sb<<6 | idx<<3 | base
			hasSIB = true
			modrm = mod<<6 | byte(e.reg&7)<<3 | 4
		} else {
			modrm = mod<<6 | byte(e.reg&7)<<3 | byte(m.Base&7)
		}
	}
	if e.prefix != 0 {
		a.buf = append(a.buf, e.prefix)
	}
	if rex != 0 {
		a.buf = append(a.buf, 0x40|rex)
	}
	a.buf = append(a.buf, e.op[:e.nop]...)
	a.buf = append(a.buf, modrm)
	if hasSIB {
		a.buf = append(a.buf, sib)
	}
	dispAt := len(a.buf)
	switch dispSize {
	case 1:
		a.buf = append(a.buf, byte(int8(disp)))
	case 4:
		a.buf = binary.LittleEndian.AppendUint32(a.buf, uint32(disp))
	}
	a.buf = append(a.buf, e.imm[:e.nimm]...)
	if m.RIP {
		end := a.Base + uintptr(len(a.buf))
		d, ok := mem.Rel32(end, m.Target)
		if !ok {
			a.buf = a.buf[:start]
			return &ReachError{Op: op, From: a.Base + uintptr(start), To: m.Target}
		}
		binary.LittleEndian.PutUint32(a.buf[dispAt:], uint32(d))
	}
	return nil
}

// emitRR appends e with a register operand rm (ModRM mod 11).
func (a *Assembler) emitRR(e enc, rm Reg) {
	rex := byte(0)
	if e.w {
		rex |= 0x08
	}
	rex |= byte(e.reg>>3&1)<<2 | byte(rm>>3&1)
	if e.prefix != 0 {
		a.buf = append(a.buf, e.prefix)
	}
	if rex != 0 {
		a.buf = append(a.buf, 0x40|rex)
	}
	a.buf = append(a.buf, e.op[:e.nop]...)
	a.buf = append(a.buf, 0xc0|byte(e.reg&7)<<3|byte(rm&7))
	a.buf = append(a.buf, e.imm[:e.nimm]...)
}
