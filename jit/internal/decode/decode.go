// Package decode is the translator's x86-64 instruction decoder: lengths,
// operand layout and control-flow class, nothing more.
//
// The translator copies instructions unchanged except control transfers
// and RIP-relative operands, so all it must know about an instruction is
// where its bytes end, whether and where it has a RIP-relative
// displacement or a branch displacement, which registers its ModRM and
// VEX.vvvv fields name (to pick a scratch register that it does not use)
// and whether it transfers control. x86asm answers more, but costs about
// 270 ns and an allocation per instruction, does not decode ENDBR64,
// RDPKRU and WRPKRU, and reports RIP-relative operands of VEX and EVEX
// instructions with no base. This decoder is table-driven, allocation-free
// and handles all three; a differential test checks it against x86asm and
// objdump over real libraries.
package decode

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// MaxLen is the architectural limit on an instruction's length.
const MaxLen = 15

// Encoding says how an instruction's opcode is encoded.
type Encoding uint8

const (
	Legacy Encoding = iota // optional legacy prefixes and REX, opcode map 0-3
	VEX                    // C4 or C5 prefix
	EVEX                   // 62 prefix
	XOP                    // 8F prefix (AMD)
)

// Map is an opcode map.
type Map uint8

const (
	Map1Byte Map = 0 // one-byte opcodes
	Map0F    Map = 1
	Map0F38  Map = 2
	Map0F3A  Map = 3
	Map5     Map = 5 // EVEX map 5 (AVX512-FP16)
	Map6     Map = 6 // EVEX map 6 (AVX512-FP16)
	MapXOP8  Map = 8 // XOP maps
	MapXOP9  Map = 9
	MapXOPA  Map = 10
)

// Kind classifies control flow.
type Kind uint8

const (
	// Plain instructions fall through to the next one.
	Plain Kind = iota
	// JmpRel is `jmp rel8/rel32`.
	JmpRel
	// JccRel is `jcc rel8/rel32`; Cond says which.
	JccRel
	// CallRel is `call rel32`.
	CallRel
	// LoopRel is `loop`, `loope`, `loopne` or `jrcxz` (rel8 only); Op
	// says which.
	LoopRel
	// JmpInd is `jmp r/m64`.
	JmpInd
	// CallInd is `call r/m64`.
	CallInd
	// Ret is `ret` or `ret imm16` (Imm16 set).
	Ret
	// Syscall is `syscall`.
	Syscall
	// Trap is an instruction that raises an exception or a software
	// interrupt on purpose: int3, int n, int1, ud0, ud1, ud2, hlt.
	Trap
	// System is a control transfer the translator does not follow: far
	// jumps, calls and returns, iret, sysenter, sysexit, sysret, xbegin.
	System
)

var kindNames = [...]string{"plain", "jmp", "jcc", "call", "loop", "jmp-ind", "call-ind", "ret", "syscall", "trap", "system"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Prefix bits.
const (
	P66   = 1 << iota // operand size
	P67               // address size
	PF2               // REPNE, BND, or a mandatory prefix
	PF3               // REP, or a mandatory prefix
	PLock             // F0
	PSeg              // a segment override (Seg says which)
)

// Inst is a decoded instruction. All offsets count from its first byte.
type Inst struct {
	Len      uint8
	Encoding Encoding
	Map      Map
	// Op is the opcode byte within Map.
	Op byte
	// Prefixes holds the P* bits; Seg the last segment override byte
	// (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65) if PSeg is set.
	Prefixes uint8
	Seg      byte
	// REXOff is the offset of the REX prefix, or -1. REX holds its low
	// four bits (W R X B); for VEX and EVEX the equivalent bits,
	// un-inverted (R and X and B as register-number high bits).
	REXOff int8
	REX    uint8
	// VEXOff is the offset of the C4, C5 or 62 byte, for VEX and EVEX.
	VEXOff uint8
	// Vvvv is the VEX/EVEX vvvv register (un-inverted, EVEX V' not
	// included), or 0xff for legacy encodings.
	Vvvv uint8
	// ModRMOff is the offset of the ModRM byte, or 0 if there is none
	// (an opcode always precedes ModRM, so 0 is free to mean none).
	ModRMOff uint8
	ModRM    byte
	// DispOff and DispLen locate the displacement (DispLen 0, 1 or 4).
	DispOff, DispLen uint8
	// ImmOff and ImmLen locate the immediate or branch displacement
	// (ImmLen 0, 1, 2, 3 (enter), 4 or 8).
	ImmOff, ImmLen uint8
	Kind           Kind
	// Cond is the condition of a JccRel.
	Cond uint8
	// Rel is the branch displacement of JmpRel, JccRel, CallRel and
	// LoopRel, relative to the end of the instruction.
	Rel int32
}

// HasModRM reports whether the instruction has a ModRM byte.
func (i *Inst) HasModRM() bool { return i.ModRMOff != 0 }

// Mod returns the ModRM mod field.
func (i *Inst) Mod() uint8 { return i.ModRM >> 6 }

// RegField returns the ModRM reg field with REX.R (a register number or
// an opcode extension in its low three bits).
func (i *Inst) RegField() uint8 { return i.ModRM>>3&7 | i.REX>>2&1<<3 }

// RIPRelative reports whether the instruction has a RIP-relative memory
// operand: ModRM mod 00, rm 101, no SIB. Its disp32 is at DispOff and
// counts from the end of the instruction.
func (i *Inst) RIPRelative() bool {
	return i.ModRMOff != 0 && i.ModRM&0xc7 == 0x05
}

// Disp returns the displacement, sign-extended.
func (i *Inst) Disp(code []byte) int32 {
	switch i.DispLen {
	case 1:
		return int32(int8(code[i.DispOff]))
	case 4:
		return int32(binary.LittleEndian.Uint32(code[i.DispOff:]))
	}
	return 0
}

// Errors.
var (
	// ErrTruncated: the bytes end before the instruction does.
	ErrTruncated = errors.New("decode: truncated instruction")
	// ErrTooLong: more than 15 bytes.
	ErrTooLong = errors.New("decode: instruction longer than 15 bytes")
	// ErrInvalid: an opcode that is undefined in 64-bit mode.
	ErrInvalid = errors.New("decode: invalid opcode")
	// ErrUnsupported: a valid encoding this decoder does not handle
	// (APX, 16-bit near branches).
	ErrUnsupported = errors.New("decode: unsupported encoding")
)

// Error says which instruction bytes failed and why.
type Error struct {
	Bytes []byte
	Err   error
}

func (e *Error) Error() string { return fmt.Sprintf("%v: % x", e.Err, e.Bytes) }
func (e *Error) Unwrap() error { return e.Err }

// Decode decodes the instruction at the start of code. It never reads
// past len(code) nor past MaxLen bytes.
func Decode(code []byte) (Inst, error) {
	var in Inst
	err := decode(code, &in)
	return in, err
}

// DecodeInto is Decode writing into in, for callers that keep one Inst
// (it is 40 bytes; the copy shows in a tight loop).
func DecodeInto(code []byte, in *Inst) error { return decode(code, in) }

func fail(code []byte, err error) error {
	n := min(len(code), MaxLen)
	return &Error{Bytes: append([]byte(nil), code[:n]...), Err: err}
}

func decode(code []byte, in *Inst) error {
	*in = Inst{REXOff: -1, Vvvv: 0xff}
	n := len(code)
	if n > MaxLen {
		n = MaxLen
	}
	p := 0
	// Legacy prefixes and REX. A REX counts only if it comes last,
	// right before the opcode: one followed by any prefix is ignored.
prefixes:
	for ; p < n; p++ {
		switch b := code[p]; b {
		case 0x66:
			in.Prefixes |= P66
		case 0x67:
			in.Prefixes |= P67
		case 0xf2:
			in.Prefixes = in.Prefixes&^PF3 | PF2
		case 0xf3:
			in.Prefixes = in.Prefixes&^PF2 | PF3
		case 0xf0:
			in.Prefixes |= PLock
		case 0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65:
			in.Prefixes |= PSeg
			in.Seg = b
		case 0x40, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47,
			0x48, 0x49, 0x4a, 0x4b, 0x4c, 0x4d, 0x4e, 0x4f:
			in.REXOff, in.REX = int8(p), b&0x0f
			continue
		default:
			break prefixes
		}
		in.REXOff, in.REX = -1, 0
	}
	if p >= n {
		return truncated(code, n)
	}
	op := code[p]
	p++
	var flags uint8
	switch {
	case op == 0x0f:
		if p >= n {
			return truncated(code, n)
		}
		op = code[p]
		p++
		switch op {
		case 0x38:
			in.Map = Map0F38
			flags = fM
		case 0x3a:
			in.Map = Map0F3A
			flags = fM | fI8
		default:
			in.Map = Map0F
			flags = table0F[op]
		}
		if in.Map != Map0F {
			if p >= n {
				return truncated(code, n)
			}
			op = code[p]
			p++
		}
	case op == 0x8f && p < n && code[p]&0x38 != 0:
		// XOP (AMD): 8F with a ModRM reg field other than 0 (POP
		// r/m64 is 8F /0) is a three-byte prefix like VEX's C4.
		if in.REXOff >= 0 || in.Prefixes&(P66|PF2|PF3|PLock) != 0 {
			return fail(code, ErrInvalid)
		}
		var err error
		if p, flags, op, err = xop(code, n, p-1, in); err != nil {
			return err
		}
	case op == 0xc4 || op == 0xc5 || op == 0x62:
		if in.REXOff >= 0 || in.Prefixes&(P66|PF2|PF3|PLock) != 0 {
			// VEX and EVEX forbid REX and these prefixes.
			return fail(code, ErrInvalid)
		}
		var err error
		if p, flags, op, err = vex(code, n, p-1, in); err != nil {
			return err
		}
	default:
		in.Map = Map1Byte
		flags = table1[op]
	}
	in.Op = op
	if flags&fBad != 0 {
		// The instruction is its prefixes and the opcode: what follows
		// is not part of it.
		return fail(code[:p], ErrInvalid)
	}
	if in.Encoding == Legacy && in.Map == Map0F && op == 0x0f {
		// 3DNow!: ModRM, then the real opcode as an imm8 suffix.
		flags = fM | fI8
	}
	if flags&fM != 0 {
		if p >= n {
			return truncated(code, n)
		}
		in.ModRMOff = uint8(p)
		modrm := code[p]
		in.ModRM = modrm
		p++
		mod, rm := modrm>>6, modrm&7
		if in.Map == Map0F && in.Op >= 0x20 && in.Op <= 0x23 && in.Encoding == Legacy {
			mod = 3 // mov to or from CR/DR ignores mod: always registers
		}
		if mod != 3 {
			if rm == 4 {
				if p >= n {
					return truncated(code, n)
				}
				sib := code[p]
				p++
				if mod == 0 && sib&7 == 5 {
					in.DispLen = 4
				}
			} else if mod == 0 && rm == 5 {
				in.DispLen = 4
			}
			switch mod {
			case 1:
				in.DispLen = 1
			case 2:
				in.DispLen = 4
			}
			if in.DispLen != 0 {
				in.DispOff = uint8(p)
				p += int(in.DispLen)
			}
		}
	}
	// Immediates.
	imm := 0
	switch flags & fImm {
	case fI8:
		imm = 1
	case fI16:
		imm = 2
	case fI32:
		imm = 4
	case fIZ:
		imm = 4
		if in.Prefixes&P66 != 0 && in.REX&8 == 0 {
			imm = 2
		}
	case fIV:
		imm = 4
		if in.REX&8 != 0 {
			imm = 8
		} else if in.Prefixes&P66 != 0 {
			imm = 2
		}
	case fSpecial:
		imm = special(in)
		if imm < 0 {
			return fail(code, ErrInvalid)
		}
	}
	if imm > 0 {
		in.ImmOff = uint8(p)
		in.ImmLen = uint8(imm)
		p += imm
	}
	if p > n {
		return truncated(code, n)
	}
	in.Len = uint8(p)
	if in.Encoding == Legacy {
		return classify(code, in)
	}
	return nil
}

func truncated(code []byte, n int) error {
	if n == MaxLen {
		return fail(code, ErrTooLong)
	}
	return fail(code, ErrTruncated)
}

// vex decodes a VEX (C4, C5) or EVEX (62) prefix at code[at] and the
// opcode after it. It returns the position after the opcode, the opcode's
// flags and the opcode.
func vex(code []byte, n, at int, in *Inst) (int, uint8, byte, error) {
	in.VEXOff = uint8(at)
	p := at + 1
	var mapSel byte
	switch code[at] {
	case 0xc5:
		if p+1 >= n {
			return 0, 0, 0, truncated(code, n)
		}
		b1 := code[p]
		in.Encoding = VEX
		in.REX = (^b1 >> 7 & 1) << 2
		in.Vvvv = ^b1 >> 3 & 15
		mapSel = 1
		p++
	case 0xc4:
		if p+2 >= n {
			return 0, 0, 0, truncated(code, n)
		}
		in.Encoding = VEX
		mapSel = threeBytePayload(code[p], code[p+1], in)
		p += 2
	case 0x62:
		if p+3 >= n {
			return 0, 0, 0, truncated(code, n)
		}
		p0, p1 := code[p], code[p+1]
		if p1&0x04 == 0 {
			// The fixed bit of P1 must be 1 (a 0 is APX's
			// extended EVEX: not handled).
			return 0, 0, 0, fail(code, ErrUnsupported)
		}
		in.Encoding = EVEX
		in.REX = (^p0>>7&1)<<2 | (^p0>>6&1)<<1 | ^p0>>5&1 | (p1>>7)<<3
		in.Vvvv = ^p1 >> 3 & 15
		mapSel = p0 & 0x07
		if p0&0x08 != 0 {
			return 0, 0, 0, fail(code, ErrUnsupported)
		}
		p += 3
	}
	op := code[p]
	p++
	var flags uint8
	switch mapSel {
	case 1:
		in.Map = Map0F
		flags = fM
		switch op {
		case 0x70, 0x71, 0x72, 0x73, 0xc2, 0xc4, 0xc5, 0xc6:
			flags |= fI8
		case 0x77:
			if in.Encoding == VEX {
				flags = 0 // vzeroupper, vzeroall
			}
		}
	case 2:
		in.Map = Map0F38
		flags = fM
	case 3:
		in.Map = Map0F3A
		flags = fM | fI8
	case 5, 6:
		if in.Encoding != EVEX {
			return 0, 0, 0, fail(code, ErrInvalid)
		}
		in.Map = Map(mapSel)
		flags = fM
	default:
		return 0, 0, 0, fail(code, ErrUnsupported)
	}
	return p, flags, op, nil
}

// threeBytePayload decodes the two payload bytes that three-byte VEX
// (C4) and XOP (8F) share: inverted R, X, B and vvvv, and W, into in's
// REX bits and Vvvv; it returns the map select field.
func threeBytePayload(b1, b2 byte, in *Inst) (mapSel byte) {
	in.REX = (^b1>>7&1)<<2 | (^b1>>6&1)<<1 | ^b1>>5&1 | (b2>>7)<<3
	in.Vvvv = ^b2 >> 3 & 15
	return b1 & 0x1f
}

// xop decodes an XOP prefix (8F) at code[at] and the opcode after it:
// maps 8 (ModRM, imm8), 9 (ModRM) and 10 (ModRM, imm32).
func xop(code []byte, n, at int, in *Inst) (int, uint8, byte, error) {
	in.VEXOff = uint8(at)
	p := at + 1
	if p+2 >= n {
		return 0, 0, 0, truncated(code, n)
	}
	in.Encoding = XOP
	mapSel := threeBytePayload(code[p], code[p+1], in)
	p += 2
	op := code[p]
	p++
	switch mapSel {
	case 8:
		in.Map = MapXOP8
		return p, fM | fI8, op, nil
	case 9:
		in.Map = MapXOP9
		return p, fM, op, nil
	case 10:
		in.Map = MapXOPA
		return p, fM | fI32, op, nil
	}
	return 0, 0, 0, fail(code, ErrInvalid)
}

// special returns the immediate size of opcodes flagged fSpecial, or -1
// if the encoding is invalid.
func special(in *Inst) int {
	if in.Map == Map1Byte {
		switch in.Op {
		case 0xa0, 0xa1, 0xa2, 0xa3: // mov moffs
			if in.Prefixes&P67 != 0 {
				return 4
			}
			return 8
		case 0xc8: // enter iw, ib
			return 3
		case 0xf6: // test r/m8, imm8 for /0 and /1
			if in.ModRM>>3&7 <= 1 {
				return 1
			}
			return 0
		case 0xf7:
			if in.ModRM>>3&7 <= 1 {
				if in.Prefixes&P66 != 0 && in.REX&8 == 0 {
					return 2
				}
				return 4
			}
			return 0
		}
	}
	if in.Map == Map0F && in.Op == 0x78 {
		// vmread, or SSE4a extrq/insertq (66, F2) with ib, ib.
		if in.Prefixes&(P66|PF2) != 0 {
			return 2
		}
		return 0
	}
	return -1
}

// classify sets Kind, Cond and Rel of a legacy-encoded instruction.
func classify(code []byte, in *Inst) error {
	switch in.Map {
	case Map1Byte:
		switch op := in.Op; {
		case op >= 0x70 && op <= 0x7f:
			in.Kind, in.Cond = JccRel, op&15
			in.Rel = int32(int8(code[in.ImmOff]))
		case op == 0xeb:
			in.Kind = JmpRel
			in.Rel = int32(int8(code[in.ImmOff]))
		case op == 0xe9 || op == 0xe8:
			if in.Prefixes&P66 != 0 {
				// Intel ignores 66 on near branches in 64-bit mode,
				// AMD takes a rel16: refuse the ambiguity.
				return fail(code[:in.Len], ErrUnsupported)
			}
			in.Kind = JmpRel
			if op == 0xe8 {
				in.Kind = CallRel
			}
			in.Rel = int32(binary.LittleEndian.Uint32(code[in.ImmOff:]))
		case op >= 0xe0 && op <= 0xe3:
			in.Kind = LoopRel
			in.Rel = int32(int8(code[in.ImmOff]))
		case op == 0xc3 || op == 0xc2:
			in.Kind = Ret
		case op == 0xff:
			switch in.ModRM >> 3 & 7 {
			case 2:
				in.Kind = CallInd
			case 4:
				in.Kind = JmpInd
			case 3, 5:
				in.Kind = System
			case 7:
				return fail(code[:in.Len], ErrInvalid)
			}
		case op == 0xca || op == 0xcb || op == 0xcf:
			in.Kind = System
		case op == 0xcc || op == 0xcd || op == 0xf1 || op == 0xf4:
			in.Kind = Trap
		case op == 0xc6 || op == 0xc7:
			// mov r/m, imm is /0; C6 F8 is xabort, C7 F8 xbegin.
			if in.ModRM == 0xf8 {
				if op == 0xc7 {
					in.Kind = System
				}
			} else if in.ModRM>>3&7 != 0 {
				return fail(code[:in.Len], ErrInvalid)
			}
		case op == 0xfe && in.ModRM>>3&7 > 1:
			return fail(code[:in.Len], ErrInvalid)
		}
	case Map0F:
		switch op := in.Op; {
		case op >= 0x80 && op <= 0x8f:
			if in.Prefixes&P66 != 0 {
				return fail(code[:in.Len], ErrUnsupported)
			}
			in.Kind, in.Cond = JccRel, op&15
			in.Rel = int32(binary.LittleEndian.Uint32(code[in.ImmOff:]))
		case op == 0x05:
			in.Kind = Syscall
		case op == 0x0b || op == 0xb9 || op == 0xff:
			in.Kind = Trap
		case op == 0x07 || op == 0x34 || op == 0x35:
			in.Kind = System
		}
	}
	return nil
}
