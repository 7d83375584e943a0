package jit

import (
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
)

// FS-relative operands, translated (fsMangle).
//
// Where the kernel does not enable wrfsbase, switching FS costs two
// system calls per cache exit (arch_prctl; on a paravirtualised guest each
// is a trapped MSR write of several microseconds). Instead the translator
// can leave FS Go's for good and rewrite the program's FS-relative memory
// operands to add the context's FS base (ctxAppFS) itself, as QEMU's user
// mode does for every guest segment: a C library's are its thread
// pointer (%fs:0), its stack protector's canary (%fs:0x28) and its TLS
// variables, a few per function, where exits are what the switch would
// pay for. An FS-relative operand
//
//	op   reg, fs:[base + index*scale + disp]
//
// becomes, with s a register the instruction does not name,
//
//	mov  [ctxSpill], s
//	mov  s, [ctxAppFS]
//	lea  s, [s + base]          ; when there is a base
//	op   reg, [s + index*scale + disp]
//	mov  s, [ctxSpill]
//
// which leaves the flags alone, keeps the instruction's length-sensitive
// parts (an EVEX disp8 stays scaled as it was) and faults, if it does, at
// the same linear address as natively: with a base of 0, before the
// program sets FS, at the displacement itself. Anything else that reaches
// memory through FS (a moffs form, a string instruction, an indirect
// branch, a RIP-relative operand) is refused with an error naming it,
// never copied: copied, it would read Go's thread pointer.

// fsOperand is an FS-relative memory operand's base register.
type fsOperand struct {
	// base is the base register, hasBase false when there is none
	// ([index*scale + disp32] or [disp32]).
	base    amd64.Reg
	hasBase bool
	// index is the index register's number (a general register, or a
	// vector register for VSIB), hasIndex false when there is none.
	index    uint8
	hasIndex bool
	// sib is set when the operand is encoded with a SIB byte.
	sib bool
}

// isSegFS reports whether in has an FS segment override.
func isSegFS(in *decode.Inst) bool { return in.Prefixes&decode.PSeg != 0 && in.Seg == 0x64 }

// fsMemory reports whether in reaches memory through its FS override, and
// whether the translator can rewrite it (a ModRM memory operand that is
// not RIP-relative); what names what it cannot.
func fsMemory(b []byte, in *decode.Inst) (mem, ok bool, what string) {
	if in.HasModRM() {
		if in.Mod() == 3 {
			return false, true, ""
		}
		if in.RIPRelative() {
			return true, false, "an FS-relative RIP-relative operand"
		}
		return true, true, ""
	}
	if in.Encoding == decode.Legacy && in.Map == decode.Map1Byte {
		switch op := in.Op; {
		case op >= 0xa0 && op <= 0xa3:
			return true, false, "an FS-relative moffs operand"
		case op >= 0xa4 && op <= 0xa7, op >= 0xaa && op <= 0xaf, op == 0xd7, op == 0x6c, op == 0x6d, op == 0x6e, op == 0x6f:
			return true, false, "an FS-relative string instruction"
		}
	}
	// The override of an instruction that reaches no memory does
	// nothing.
	return false, true, ""
}

// fsOperandOf decodes in's ModRM memory operand.
//
// Preconditions: in has a ModRM memory operand (mod != 3), not
// RIP-relative.
func fsOperandOf(b []byte, in *decode.Inst) fsOperand {
	rexB, rexX := in.REX&1, in.REX>>1&1
	rm := in.ModRM & 7
	if rm != 4 {
		return fsOperand{base: amd64.Reg(rm | rexB<<3), hasBase: true}
	}
	sib := b[in.ModRMOff+1]
	op := fsOperand{sib: true}
	if idx := sib >> 3 & 7; idx != 4 || rexX != 0 || in.Encoding == decode.EVEX {
		// Index 100 without REX.X is "none" for a general register;
		// an EVEX VSIB operand always has one (V' is not decoded, so
		// only gathers and scatters reach here with an EVEX index).
		op.index, op.hasIndex = idx|rexX<<3, true
	}
	if base := sib & 7; base != 5 || in.Mod() != 0 {
		op.base, op.hasBase = amd64.Reg(base|rexB<<3), true
	}
	return op
}

// fsScratch picks a register among rsi, rdi and rbx that in does not
// name: not its ModRM reg, its VEX vvvv, its base or index, and not rbx
// for cmpxchg8b/16b. Those are never implicit operands of an instruction
// with a ModRM memory operand otherwise.
func fsScratch(in *decode.Inst, op fsOperand) (amd64.Reg, bool) {
	for _, s := range []amd64.Reg{amd64.RSI, amd64.RDI, amd64.RBX} {
		switch {
		case uint8(s) == in.RegField(), in.Vvvv != 0xff && uint8(s) == in.Vvvv,
			op.hasBase && op.base == s, op.hasIndex && op.index == uint8(s),
			s == amd64.RBX && in.Map == decode.Map0F && in.Op == 0xc7:
			continue
		}
		return s, true
	}
	return 0, false
}

// fsRelative translates an instruction with an FS segment override in
// fsMangle mode (see above).
func (t *translator) fsRelative(b []byte, in *decode.Inst, next uintptr) error {
	pc := next - uintptr(in.Len)
	isMem, ok, what := fsMemory(b, in)
	if !ok {
		return t.unsupported(pc, b, what)
	}
	if !isMem {
		t.a.Raw(b...)
		return nil
	}
	op := fsOperandOf(b, in)
	s, ok := fsScratch(in, op)
	if !ok {
		return t.unsupported(pc, b, "no free scratch register for an FS-relative operand")
	}
	a := t.a
	if err := a.MovStore(t.ctx(ctxSpill), s); err != nil {
		return err
	}
	spilled := none
	spilled.spill = int8(s)
	t.markFix(pc, spilled)
	if err := a.MovLoad(s, t.ctx(ctxAppFS)); err != nil {
		return err
	}
	if op.hasBase {
		m := amd64.MI(s, op.base, 1, 0)
		if op.base == amd64.RSP {
			m = amd64.MI(amd64.RSP, s, 1, 0)
		}
		if err := a.Lea(s, m); err != nil {
			return err
		}
	}
	a.Raw(rewriteFS(t.scratch[:0], b, in, op, s)...)
	t.markFix(next, spilled)
	return a.MovLoad(s, t.ctx(ctxSpill))
}

// rewriteFS appends to dst the instruction b without its FS override and
// with its memory operand's base replaced by s (s < 8, not rbp: mod and
// displacement keep their meaning): REX.B (VEX/EVEX ~B) is cleared; an
// operand with no base ([index*scale + disp32], mod 00) gets mod 10,
// whose disp32 is the same four bytes.
func rewriteFS(dst, b []byte, in *decode.Inst, op fsOperand, s amd64.Reg) []byte {
	start := len(dst)
	skipped := 0
	for i := 0; i < int(in.ModRMOff); i++ {
		if i < legacyPrefixLen(b, in) && b[i] == 0x64 {
			skipped++
			continue
		}
		dst = append(dst, b[i])
	}
	// Offsets in the copy are skipped bytes earlier.
	fix := func(off int) int { return start + off - skipped }
	switch in.Encoding {
	case decode.Legacy:
		if in.REXOff >= 0 {
			dst[fix(int(in.REXOff))] &^= 1
		}
	case decode.VEX:
		if b[in.VEXOff] == 0xc4 {
			dst[fix(int(in.VEXOff))+1] |= 0x20 // ~B
		}
	case decode.EVEX, decode.XOP:
		dst[fix(int(in.VEXOff))+1] |= 0x20 // ~B
	}
	modrm := in.ModRM
	rest := b[in.ModRMOff+1:]
	if !op.sib {
		dst = append(dst, modrm&^7|byte(s&7))
	} else {
		if !op.hasBase {
			modrm = modrm&0x3f | 0x80
		}
		dst = append(dst, modrm, rest[0]&^7|byte(s&7))
		rest = rest[1:]
	}
	return append(dst, rest...)
}

// legacyPrefixLen returns the number of legacy prefix bytes b starts
// with (as the decoder read them: in has them).
func legacyPrefixLen(b []byte, in *decode.Inst) int {
	end := int(in.ModRMOff)
	if in.REXOff >= 0 {
		end = int(in.REXOff)
	} else if in.Encoding != decode.Legacy {
		end = int(in.VEXOff)
	}
	n := 0
	for n < end {
		switch b[n] {
		case 0xf0, 0xf2, 0xf3, 0x2e, 0x36, 0x3e, 0x26, 0x64, 0x65, 0x66, 0x67:
			n++
			continue
		}
		break
	}
	return n
}
