package decode

// Register effects, for the translator's liveness analysis: which
// general registers an instruction reads and which it overwrites whole
// (kills), known exactly for a small set of common instructions and not
// at all for the rest. The translator borrows registers; a register it can
// prove dead (killed before any read) at a branch target need not be
// restored there, which keeps loop-carried values out of a store and
// reload round trip.
//
// Register masks have bit n for register n (rax 0 ... r15 15).
//
// Flags gets the same treatment for the arithmetic flags (OF, SF, ZF, AF,
// PF, CF): an instruction that overwrites them all without reading any
// makes them dead before it.

// Flags says what an instruction does with the arithmetic flags.
type Flags uint8

const (
	// FlagsNone: neither reads nor writes them.
	FlagsNone Flags = iota
	// FlagsWrite: writes all six (or leaves some undefined) and reads
	// none. An undefined flag has no value a program may rely on, so
	// the flags are dead before such an instruction even on a CPU that
	// leaves the undefined ones unchanged (an AMD EPYC of family 1Ah
	// keeps imul's SF ZF AF PF).
	FlagsWrite
	// FlagsRead: reads some, or writes only some (inc, dec, rotates),
	// which leaves the others live.
	FlagsRead
)

// FlagEffect returns what the instruction does with the arithmetic flags;
// ok is false for instructions it does not know (analysis must stop).
func FlagEffect(code []byte, in *Inst) (f Flags, ok bool) {
	if _, _, known := Effects(code, in); !known {
		return 0, false
	}
	ext := in.ModRM >> 3 & 7
	switch in.Map {
	case Map1Byte:
		op := in.Op
		switch {
		case op <= 0x3f && op&7 <= 5:
			if alu := op >> 3; alu == 2 || alu == 3 { // adc, sbb
				return FlagsRead, true
			}
			return FlagsWrite, true
		case op == 0x80 || op == 0x81 || op == 0x83:
			if ext == 2 || ext == 3 {
				return FlagsRead, true
			}
			return FlagsWrite, true
		case op == 0x84 || op == 0x85 || op == 0xa8 || op == 0xa9:
			return FlagsWrite, true
		case op == 0xc0 || op == 0xc1 || op == 0xd0 || op == 0xd1:
			// shl, shr, sal, sar by an immediate or 1 write them all
			// (AF and, past a count of 1, OF undefined); rotates write
			// CF and OF only. The count is masked to 6 bits for a
			// 64-bit operand and to 5 for the others, and a masked
			// count of 0 writes none (treated as a read): shl eax, 32
			// leaves the flags alone.
			if ext >= 4 && !((op == 0xc0 || op == 0xc1) && code[in.ImmOff]&shiftCountMask(in) == 0) {
				return FlagsWrite, true
			}
			return FlagsRead, true
		case op == 0xf6 || op == 0xf7:
			switch ext {
			case 0, 1, 3: // test, neg
				return FlagsWrite, true
			case 2: // not
				return FlagsNone, true
			}
			return FlagsRead, true
		case op == 0xff: // inc, dec: CF unchanged
			return FlagsRead, true
		case op == 0x69 || op == 0x6b:
			return FlagsWrite, true
		}
		return FlagsNone, true
	case Map0F:
		op := in.Op
		switch {
		case op >= 0x40 && op <= 0x4f, op >= 0x90 && op <= 0x9f: // cmovcc, setcc
			return FlagsRead, true
		case op == 0xaf: // imul
			return FlagsWrite, true
		}
		return FlagsNone, true
	}
	return FlagsNone, true
}

// shiftCountMask is the mask a shift or rotate applies to its count: 6
// bits with a 64-bit operand (REX.W), 5 bits otherwise, the 8- and
// 16-bit forms included (Intel SDM vol. 2B, SAL/SAR/SHL/SHR).
func shiftCountMask(in *Inst) byte {
	if in.REX&8 != 0 {
		return 63
	}
	return 31
}

// Regs is a set of general registers.
type Regs uint16

// Has reports whether r is in the set.
func (s Regs) Has(r uint8) bool { return s>>r&1 != 0 }

// Effects returns the general registers the instruction reads and the
// ones it writes whole without reading them first (a 64-bit or 32-bit
// destination, which zero-extends). ok is false when the instruction is
// not one this function knows exactly (it may read registers implicitly):
// analysis must stop there. The flags, rsp and rip are not tracked; rsp is
// never borrowed.
func Effects(code []byte, in *Inst) (read, kill Regs, ok bool) {
	if in.Encoding != Legacy || in.Prefixes&(PF2|PLock|PSeg|P67) != 0 {
		if in.isNop(code) {
			return 0, 0, true
		}
		return 0, 0, false
	}
	if in.Prefixes&PF3 != 0 && !in.isNop(code) {
		return 0, 0, false
	}
	w16 := in.Prefixes&P66 != 0 && in.REX&8 == 0
	rex := in.REXOff >= 0
	reg := in.RegField()
	// rm operand: a register (mod 11) or the address registers.
	rmReg, addr := uint8(0xff), Regs(0)
	if in.HasModRM() {
		if in.Mod() == 3 {
			rmReg = in.ModRM&7 | in.REX&1<<3
		} else {
			addr = in.addrRegs(code)
		}
	}
	bit := func(r uint8) Regs {
		if r == 0xff {
			return 0
		}
		return 1 << r
	}
	// byteReg returns the set a byte register operand touches: without
	// REX, 4-7 are ah, ch, dh, bh (of rax..rbx).
	byteReg := func(r uint8) Regs {
		if r == 0xff {
			return 0
		}
		if !rex && r >= 4 && r < 8 {
			return 1 << (r - 4)
		}
		return 1 << r
	}
	// full reports whether a write to a register operand replaces the
	// whole register (32 or 64 bits).
	full := !w16
	// writeReg kills r if the write is whole, else reads it.
	writeReg := func(r uint8) {
		if full {
			kill |= bit(r)
		} else {
			read |= bit(r)
		}
	}
	switch in.Map {
	case Map1Byte:
		op := in.Op
		switch {
		case op == 0x90 && in.REX&1 == 0: // nop (xchg eax, eax)
			return 0, 0, true
		case op <= 0x3f && op&7 <= 5 && op != 0x0f:
			// ALU: 00-05 add, 08 or, 10 adc, 18 sbb, 20 and, 28 sub,
			// 30 xor, 38 cmp, in forms r/m,r (0, 1), r,r/m (2, 3),
			// al,ib (4), eax,iz (5).
			alu := op >> 3
			switch op & 7 {
			case 0, 2: // 8-bit
				read |= byteReg(reg) | byteReg(rmReg) | addr
			case 1, 3:
				if rmReg == reg && (alu == 6 || alu == 5) && full {
					// xor r, r and sub r, r: zeroing idioms.
					kill |= bit(reg)
					return read, kill, true
				}
				read |= bit(reg) | bit(rmReg) | addr
			case 4, 5:
				read |= 1 // rax
			}
			return read, kill, true
		case op >= 0x50 && op <= 0x57: // push r
			return bit(op&7 | in.REX&1<<3), 0, true
		case op >= 0x58 && op <= 0x5f: // pop r
			if w16 {
				return bit(op&7 | in.REX&1<<3), 0, true
			}
			return 0, bit(op&7 | in.REX&1<<3), true
		case op == 0x63: // movsxd r, r/m32
			read |= bit(rmReg) | addr
			writeReg(reg)
			return read, kill, true
		case op == 0x69 || op == 0x6b: // imul r, r/m, imm
			read |= bit(rmReg) | addr
			writeReg(reg)
			return read, kill, true
		case op == 0x80 || op == 0xc0 || op == 0xd0 || op == 0xf6 && reg&7 <= 1:
			read |= byteReg(rmReg) | addr
			return read, kill, true
		case op == 0x81 || op == 0x83 || op == 0xc1 || op == 0xd1 || op == 0xf7 && reg&7 <= 3:
			// group 1, shifts by imm or 1, test/not/neg.
			read |= bit(rmReg) | addr
			return read, kill, true
		case op == 0x84 || op == 0x86 || op == 0x88 || op == 0x8a:
			read |= byteReg(reg) | byteReg(rmReg) | addr
			return read, kill, true
		case op == 0x85 || op == 0x87: // test, xchg
			read |= bit(reg) | bit(rmReg) | addr
			return read, kill, true
		case op == 0x89: // mov r/m, r
			read |= bit(reg) | addr
			if rmReg != 0xff {
				writeReg(rmReg)
			}
			return read, kill, true
		case op == 0x8b: // mov r, r/m
			read |= bit(rmReg) | addr
			writeReg(reg)
			return read, kill, true
		case op == 0x8d: // lea
			read |= addr
			writeReg(reg)
			return read, kill, true
		case op == 0x98: // cdqe: rax from eax
			return 1, 0, true
		case op == 0x99: // cqo/cdq: rdx from rax
			if w16 {
				return 1 | 4, 0, true
			}
			return 1, 4, true
		case op >= 0xb0 && op <= 0xb7: // mov r8, imm8
			return byteReg(op&7 | in.REX&1<<3), 0, true
		case op >= 0xb8 && op <= 0xbf: // mov r, imm
			writeReg(op&7 | in.REX&1<<3)
			return read, kill, true
		case op == 0xc6 && reg == 0:
			return byteReg(rmReg) | addr, 0, true
		case op == 0xc7 && in.ModRM>>3&7 == 0:
			read |= addr
			if rmReg != 0xff {
				writeReg(rmReg)
			}
			return read, kill, true
		case op == 0xff && in.ModRM>>3&7 <= 1: // inc, dec
			return bit(rmReg) | addr, 0, true
		case op == 0xa8 || op == 0xa9: // test al/eax, imm
			return 1, 0, true
		}
	case Map0F:
		op := in.Op
		switch {
		case op == 0x1f || op == 0x1e && in.isNop(code): // nop r/m, endbr
			return 0, 0, true
		case op >= 0x40 && op <= 0x4f: // cmovcc: a conditional write
			return bit(reg) | bit(rmReg) | addr, 0, true
		case op >= 0x90 && op <= 0x9f: // setcc r/m8
			return byteReg(rmReg) | addr, 0, true
		case op == 0xaf: // imul r, r/m
			return bit(reg) | bit(rmReg) | addr, 0, true
		case op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf: // movzx, movsx
			if op == 0xb6 || op == 0xbe {
				read |= byteReg(rmReg)
			} else {
				read |= bit(rmReg)
			}
			read |= addr
			writeReg(reg)
			return read, kill, true
		}
	}
	return 0, 0, false
}

// isNop reports whether the instruction is a no-op for the registers:
// the nop forms and ENDBR64/ENDBR32.
func (in *Inst) isNop(code []byte) bool {
	if in.Encoding != Legacy {
		return false
	}
	switch {
	case in.Map == Map1Byte && in.Op == 0x90 && in.REX&1 == 0 && in.Prefixes&(PF2|PLock) == 0:
		return true // nop, pause
	case in.Map == Map0F && in.Op == 0x1f:
		return true
	case in.Map == Map0F && in.Op == 0x1e && in.Prefixes&PF3 != 0 && (in.ModRM == 0xfa || in.ModRM == 0xfb):
		return true
	}
	return false
}

// addrRegs returns the base and index registers of a memory operand.
func (in *Inst) addrRegs(code []byte) Regs {
	rm := in.ModRM & 7
	if rm != 4 {
		if in.Mod() == 0 && rm == 5 {
			return 0 // RIP-relative
		}
		return 1 << (rm | in.REX&1<<3)
	}
	sib := code[in.ModRMOff+1]
	var s Regs
	if idx := sib>>3&7 | in.REX>>1&1<<3; idx != 4 {
		s |= 1 << idx
	}
	if base := sib & 7; !(base == 5 && in.Mod() == 0) {
		s |= 1 << (base | in.REX&1<<3)
	}
	return s
}
