package decode

// Opcode flags: whether a ModRM byte follows, the immediate's size, and
// opcodes undefined in 64-bit mode.
const (
	fM       = 0x01     // ModRM follows
	fI8      = 1 << 1   // imm8 (or rel8)
	fI16     = 2 << 1   // imm16
	fIZ      = 3 << 1   // imm16 with 66 (and no REX.W), else imm32 (or rel32)
	fIV      = 4 << 1   // imm64 with REX.W, imm16 with 66, else imm32 (mov r, imm)
	fSpecial = 5 << 1   // see special
	fI32     = 6 << 1   // imm32 whatever the operand size
	fImm     = 0x0e     // mask of the immediate field
	fBad     = 0x10     // undefined in 64-bit mode
	fMI8     = fM | fI8 // ModRM and imm8
	fMIZ     = fM | fIZ // ModRM and imm16/32
	fMSp     = fM | fSpecial
)

// table1 is the one-byte opcode map in 64-bit mode. Prefix bytes (26, 2E,
// 36, 3E, 40-4F, 64-67, F0, F2, F3) and the VEX/EVEX escapes (C4, C5, 62)
// never reach it.
var table1 = [256]uint8{
	// 00-07: add; push/pop es invalid
	fM, fM, fM, fM, fI8, fIZ, fBad, fBad,
	// 08-0F: or; push cs invalid; 0F escape handled before
	fM, fM, fM, fM, fI8, fIZ, fBad, 0,
	// 10-17: adc; push/pop ss invalid
	fM, fM, fM, fM, fI8, fIZ, fBad, fBad,
	// 18-1F: sbb; push/pop ds invalid
	fM, fM, fM, fM, fI8, fIZ, fBad, fBad,
	// 20-27: and; 26 prefix; daa invalid
	fM, fM, fM, fM, fI8, fIZ, 0, fBad,
	// 28-2F: sub; 2E prefix; das invalid
	fM, fM, fM, fM, fI8, fIZ, 0, fBad,
	// 30-37: xor; 36 prefix; aaa invalid
	fM, fM, fM, fM, fI8, fIZ, 0, fBad,
	// 38-3F: cmp; 3E prefix; aas invalid
	fM, fM, fM, fM, fI8, fIZ, 0, fBad,
	// 40-4F: REX
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	// 50-5F: push, pop
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	// 60-67: pusha, popa invalid; 62 EVEX; movsxd; 64-67 prefixes
	fBad, fBad, 0, fM, 0, 0, 0, 0,
	// 68-6F: push iz, imul iz, push ib, imul ib, ins, outs
	fIZ, fMIZ, fI8, fMI8, 0, 0, 0, 0,
	// 70-7F: jcc rel8
	fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8,
	// 80-87: group 1 (82 invalid), test, xchg
	fMI8, fMIZ, fBad, fMI8, fM, fM, fM, fM,
	// 88-8F: mov, mov sreg, lea, pop r/m (8F with reg != 0 is XOP)
	fM, fM, fM, fM, fM, fM, fM, fM,
	// 90-97: xchg, nop, pause
	0, 0, 0, 0, 0, 0, 0, 0,
	// 98-9F: cbw, cwd, callf invalid, fwait, pushf, popf, sahf, lahf
	0, 0, fBad, 0, 0, 0, 0, 0,
	// A0-A7: mov moffs, movs, cmps
	fSpecial, fSpecial, fSpecial, fSpecial, 0, 0, 0, 0,
	// A8-AF: test al/eax imm, stos, lods, scas
	fI8, fIZ, 0, 0, 0, 0, 0, 0,
	// B0-B7: mov r8, imm8
	fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8,
	// B8-BF: mov r, imm
	fIV, fIV, fIV, fIV, fIV, fIV, fIV, fIV,
	// C0-C7: shift ib, ret iw, ret, VEX, VEX, mov ib, mov iz (xabort, xbegin)
	fMI8, fMI8, fI16, 0, 0, 0, fMI8, fMIZ,
	// C8-CF: enter, leave, retf iw, retf, int3, int ib, into invalid, iret
	fSpecial, 0, fI16, 0, 0, fI8, fBad, 0,
	// D0-D7: shifts, aam/aad/salc invalid, xlat
	fM, fM, fM, fM, fBad, fBad, fBad, 0,
	// D8-DF: x87
	fM, fM, fM, fM, fM, fM, fM, fM,
	// E0-E7: loopne, loope, loop, jrcxz, in/out ib
	fI8, fI8, fI8, fI8, fI8, fI8, fI8, fI8,
	// E8-EF: call rel32, jmp rel32, jmpf invalid, jmp rel8, in/out dx
	fIZ, fIZ, fBad, fI8, 0, 0, 0, 0,
	// F0-F7: lock, int1, F2, F3, hlt, cmc, group 3
	0, 0, 0, 0, 0, 0, fMSp, fMSp,
	// F8-FF: clc stc cli sti cld std, group 4, group 5
	0, 0, 0, 0, 0, 0, fM, fM,
}

// table0F is the two-byte opcode map (0F xx) in 64-bit mode. 38 and 3A
// escape to the three-byte maps and never reach it.
var table0F = [256]uint8{
	// 00-07: group 6, group 7, lar, lsl, -, syscall, clts, sysret
	fM, fM, fM, fM, fBad, 0, 0, 0,
	// 08-0F: invd, wbinvd, -, ud2, -, prefetch, femms, 3DNow!
	0, 0, fBad, 0, fBad, fM, 0, fMI8,
	// 10-17: SSE moves
	fM, fM, fM, fM, fM, fM, fM, fM,
	// 18-1F: prefetch, hint nops (endbr64 is F3 0F 1E FA), nop r/m
	fM, fM, fM, fM, fM, fM, fM, fM,
	// 20-27: mov cr/dr
	fM, fM, fM, fM, fBad, fBad, fBad, fBad,
	// 28-2F: SSE
	fM, fM, fM, fM, fM, fM, fM, fM,
	// 30-37: wrmsr, rdtsc, rdmsr, rdpmc, sysenter, sysexit, -, getsec
	0, 0, 0, 0, 0, 0, fBad, 0,
	// 38-3F: escapes (38, 3A), rest invalid
	0, fBad, 0, fBad, fBad, fBad, fBad, fBad,
	// 40-4F: cmovcc
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
	// 50-5F: SSE
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
	// 60-6F: MMX/SSE
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
	// 70-77: pshuf ib, shift groups ib, pcmpeq, emms
	fMI8, fMI8, fMI8, fMI8, fM, fM, fM, 0,
	// 78-7F: vmread (SSE4a extrq/insertq ib ib), vmwrite, -, -, hadd, hsub, movd/q
	fMSp, fM, fBad, fBad, fM, fM, fM, fM,
	// 80-8F: jcc rel32
	fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ, fIZ,
	// 90-9F: setcc
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
	// A0-A7: push fs, pop fs, cpuid, bt, shld ib, shld cl, -, -
	0, 0, 0, fM, fMI8, fM, fBad, fBad,
	// A8-AF: push gs, pop gs, rsm, bts, shrd ib, shrd cl, group 15, imul
	0, 0, 0, fM, fMI8, fM, fM, fM,
	// B0-B7: cmpxchg, lss, btr, lfs, lgs, movzx
	fM, fM, fM, fM, fM, fM, fM, fM,
	// B8-BF: popcnt/jmpe, ud1, group 8 ib, btc, bsf, bsr, movsx
	fM, fM, fMI8, fM, fM, fM, fM, fM,
	// C0-C7: xadd, cmpps ib, movnti, pinsrw ib, pextrw ib, shufps ib, group 9
	fM, fM, fMI8, fM, fMI8, fMI8, fMI8, fM,
	// C8-CF: bswap
	0, 0, 0, 0, 0, 0, 0, 0,
	// D0-FF: MMX/SSE (FF is ud0)
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
	fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM, fM,
}
