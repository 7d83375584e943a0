package decode

// Operands: what an instrumentation client asks of an instruction beyond
// its length — mnemonic, operands, memory references and flag effects.
//
// The translator does not need any of it, so none of it is on the
// translator's path: clients call Operands at translation time, once per
// instruction they look at. x86asm (v0.32, which decodes VEX and EVEX
// too) names the instruction and lists its explicit operands; this
// file then
//
//   - recomputes every ModRM memory operand's effective address from the
//     ModRM, SIB and displacement bytes the length decoder located
//     (x86asm drops the RIP base of VEX and EVEX operands), keeping only
//     x86asm's EVEX disp8*N scaling, which it checks;
//   - says for each operand whether it is read, written or both, and adds
//     the implicit memory operands (the stack slot of push, pop, call and
//     ret; the [rsi] and [rdi] of string instructions);
//   - says which arithmetic flags are read and written;
//
// from tables keyed by x86asm's opcode. An instruction whose opcode no
// table covers fails with ErrNotCovered naming it: a client never gets a
// guess.

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/arch/x86/x86asm"
)

// ErrNotCovered: a valid instruction whose operands Operands does not
// describe (the wrapped error's text names it).
var ErrNotCovered = errors.New("decode: operands not covered")

// FlagSet is a set of arithmetic flags.
type FlagSet uint8

// The arithmetic flags.
const (
	FlagCF FlagSet = 1 << iota
	FlagPF
	FlagAF
	FlagZF
	FlagSF
	FlagOF

	// FlagsAll is all six.
	FlagsAll = FlagCF | FlagPF | FlagAF | FlagZF | FlagSF | FlagOF
)

// ArgKind is the kind of an explicit operand.
type ArgKind uint8

const (
	ArgReg ArgKind = iota + 1 // a register: Class and Reg
	ArgImm                    // an immediate: Imm
	ArgMem                    // a memory operand: Mems[Mem]
	ArgRel                    // a relative branch target: Imm, from the instruction's end
)

// RegClass is a register file.
type RegClass uint8

const (
	RegGPR     RegClass = iota + 1 // general registers 0-15 (rax..r15), Size 1, 2, 4 or 8
	RegGPRHigh                     // ah, ch, dh, bh: Reg 0-3 names the register they are the second byte of
	RegMMX                         // mm0-mm7
	RegXMM                         // xmm0-xmm31
	RegYMM                         // ymm0-ymm31
	RegZMM                         // zmm0-zmm31
	RegMask                        // k0-k7
	RegX87                         // st(0)-st(7), relative to the stack top
	RegSeg                         // es, cs, ss, ds, fs, gs (0-5)
)

// Access says whether an operand is read, written or both.
type Access uint8

const (
	Read  Access = 1 << iota // the operand's value is used
	Write                    // the operand is (maybe partly, maybe conditionally) written
)

// Seg is a memory operand's segment, as far as it matters in 64-bit mode:
// only FS and GS have a base.
type Seg uint8

const (
	SegNone Seg = iota
	SegFS
	SegGS
)

// NoReg marks an absent base or index register.
const NoReg = 0xff

// Arg is an explicit operand: one the encoding names (ModRM, VEX.vvvv,
// opcode register bits, immediates, branch displacements), in Intel
// order, destination first.
type Arg struct {
	Kind ArgKind
	// Class and Reg name the register of an ArgReg.
	Class RegClass
	Reg   uint8
	// Mem indexes Ops.Mems for an ArgMem.
	Mem uint8
	// Access is Read, Write or both; 0 for a memory operand that is not
	// accessed (lea's), and for ArgImm and ArgRel it is Read.
	Access Access
	// Size is the operand's size in bytes (a register's width, a memory
	// operand's access size, an immediate's encoded size); 0 for ArgRel.
	Size uint16
	// Imm is an ArgImm's value: an 8-bit one sign-extended where the
	// instruction sign-extends it to a wider operand (add rax, -1) and
	// zero-extended where it does not (mov al, 0xff, shift counts,
	// selectors); a 16- or 32-bit one sign-extended, but ret's and
	// enter's, which are unsigned; the encoded bits are Imm's low Size
	// bytes. For an ArgRel, the displacement from the instruction's end.
	Imm int64
}

// Mem is a memory operand, explicit or implicit.
type Mem struct {
	// Seg is SegFS or SegGS with a 64 or 65 override; SegNone otherwise
	// (other segments have base 0).
	Seg Seg
	// Base and Index are general register numbers (0-15), NoReg when
	// absent. Scale is 1, 2, 4 or 8 when Index is present, 0 otherwise.
	Base, Index uint8
	Scale       uint8
	// RIP marks a RIP-relative operand: Base and Index are NoReg and Disp
	// counts from the end of the instruction.
	RIP bool
	// Addr32 marks a 67 prefix: the address is the low 32 bits of the
	// sum, zero-extended.
	Addr32 bool
	// Implicit marks an operand the encoding does not name (a stack slot,
	// a string instruction's [rsi] or [rdi]): it has no Arg.
	Implicit bool
	// AddrOnly marks an operand whose address is computed but whose
	// memory is not accessed (lea, nop, prefetch, clflush): Access is 0.
	AddrOnly bool
	// Access is Read, Write or both.
	Access Access
	// Size is the number of bytes accessed, starting at the address (for
	// a masked vector access, the most it may access).
	Size uint16
	// Disp is the displacement, sign-extended (EVEX disp8 scaled by N).
	Disp int64
}

// MaxArgs and MaxMems bound Ops' operand lists.
const (
	MaxArgs = 5
	MaxMems = 3
)

// Ops is what Operands finds.
type Ops struct {
	// Mnemonic is the lower-case Intel mnemonic ("mov", "vpaddd",
	// "movsd" for both the SSE move and the string move of dwords). A
	// string instruction with a repeat prefix is named with it: "rep
	// movsb", "rep stosq", "repe cmpsb", "repne scasb". A lock prefix is
	// not part of it (Lock).
	Mnemonic string
	// Lock reports a lock prefix.
	Lock bool
	// Rep reports a repeat prefix on a string instruction (also in the
	// mnemonic): the memory operands then repeat rcx times, each step
	// moving rsi and rdi by Size.
	Rep bool
	// Args are the explicit operands, Args[:NArgs]; Mems the memory
	// operands, explicit and implicit, Mems[:NMems].
	NArgs, NMems uint8
	Args         [MaxArgs]Arg
	Mems         [MaxMems]Mem
	// FlagsRead and FlagsWritten are the arithmetic flags the instruction
	// reads and the ones it may write (set, clear or leave undefined). A
	// shift or rotate by an immediate that masks to 0 writes none; by CL
	// it may write those its non-zero counts write.
	FlagsRead, FlagsWritten FlagSet
}

// Operands describes the instruction in, which Decode found at the start
// of code. It fails with an *Error wrapping ErrNotCovered for an
// instruction it does not describe; Mnemonic is then still set if x86asm
// names the instruction, and the rest of Ops is to be ignored.
//
// Preconditions: in is Decode's result for code.
func Operands(code []byte, in *Inst) (Ops, error) {
	var o Ops
	err := operands(code, in, &o)
	return o, err
}

// notCovered is the error for an instruction named name.
func notCovered(code []byte, in *Inst, name string) error {
	return &Error{Bytes: append([]byte(nil), code[:in.Len]...), Err: fmt.Errorf("%w: %s", ErrNotCovered, name)}
}

func operands(code []byte, in *Inst, o *Ops) error {
	if int(in.Len) > len(code) || in.Len == 0 {
		return fail(code, ErrTruncated)
	}
	code = code[:in.Len]
	if name := noOperandOp(in); name != "" {
		o.Mnemonic = name
		return nil
	}
	if in.Encoding == Legacy && in.Map == Map0F38 && in.Op == 0xf6 && in.Prefixes&(P66|PF3) != 0 {
		return adx(code, in, o)
	}
	xi, err := x86asm.Decode(code, 64)
	if err != nil || xi.Len != int(in.Len) || in.Encoding == XOP || prefixedAE(in) {
		return notCovered(code, in, opcodeName(in))
	}
	n := 0
	for n < len(xi.Args) && xi.Args[n] != nil {
		n++
	}
	if xi.Op == x86asm.RDRAND && n == 0 && in.REX&8 != 0 {
		// x86asm drops rdrand's 64-bit register.
		xi.Args[0], n = x86asm.RAX+x86asm.Reg(in.ModRM&7|in.REX&1<<3), 1
	}
	o.Mnemonic = mnemonic(xi.Op)
	if xi.Op == x86asm.CLFLUSH && in.Prefixes&P66 != 0 {
		o.Mnemonic = "clflushopt" // x86asm's name ignores the 66
	}
	info, ok := opInfoOf(xi.Op, in, code, n)
	if !ok {
		return notCovered(code, in, o.Mnemonic)
	}
	o.Lock = in.Prefixes&PLock != 0
	o.FlagsRead, o.FlagsWritten = info.read, info.write
	if info.pat == pString {
		return stringOp(code, in, xi, o)
	}
	if n > MaxArgs {
		return notCovered(code, in, o.Mnemonic)
	}
	for i := 0; i < n; i++ {
		a := &o.Args[i]
		switch x := xi.Args[i].(type) {
		case x86asm.Reg:
			a.Kind = ArgReg
			if !regOf(x, a) {
				return notCovered(code, in, o.Mnemonic+" "+x.String())
			}
		case x86asm.Imm:
			a.Kind, a.Imm, a.Access = ArgImm, int64(x), Read
			a.Size = uint16(in.ImmLen)
			if in.ImmLen == 3 { // enter iw, ib
				a.Size = 2
				if i == 1 {
					a.Size = 1
				}
			}
			switch {
			case xi.Op == x86asm.RET || xi.Op == x86asm.LRET || xi.Op == x86asm.ENTER:
				a.Imm &= 1<<(8*a.Size) - 1 // unsigned counts
			case a.Size == 2:
				a.Imm = int64(int16(a.Imm))
			case a.Size == 4:
				a.Imm = int64(int32(a.Imm))
			}
		case x86asm.Rel:
			a.Kind, a.Imm, a.Access = ArgRel, int64(x), Read
		case x86asm.Mem:
			var m Mem
			switch {
			case o.NMems != 0:
				return notCovered(code, in, o.Mnemonic+" with two memory operands")
			case in.Encoding == Legacy && in.Map == Map1Byte && in.Op >= 0xa0 && in.Op <= 0xa3:
				// mov with a moffs: an absolute address.
				m = Mem{Base: NoReg, Index: NoReg, Disp: x.Disp, Addr32: in.Prefixes&P67 != 0, Seg: segOf(in)}
			case !in.HasModRM() || in.Mod() == 3:
				return notCovered(code, in, o.Mnemonic+" memory operand without ModRM")
			default:
				var err error
				if m, err = modrmMem(code, in, x); err != nil {
					return err
				}
			}
			if xi.Op == x86asm.POP && m.Base == 4 || bitOffset(xi) {
				// pop [rsp+d] addresses its operand with rsp
				// after the pop, which MemRef cannot say; bt
				// [m], r addresses memory past the operand by
				// r/8.
				return notCovered(code, in, o.Mnemonic+" memory operand")
			}
			size, ok := memSize(xi, info)
			if !ok {
				return notCovered(code, in, o.Mnemonic+" memory size")
			}
			m.Size = size
			a.Kind, a.Mem, a.Size = ArgMem, o.NMems, size
			o.Mems[o.NMems] = m
			o.NMems++
		default:
			return notCovered(code, in, o.Mnemonic)
		}
	}
	o.NArgs = uint8(n)
	if err := access(code, in, xi, info, o); err != nil {
		return err
	}
	return implicit(code, in, xi, info, o)
}

// noOperandOp names the instructions that have no explicit operands and
// touch no flags or memory that x86asm does not decode (ENDBR64,
// ENDBR32, RDPKRU, WRPKRU) or names otherwise (int3, int1: "int 3",
// "icebp"); "" for others.
func noOperandOp(in *Inst) string {
	if in.Encoding != Legacy {
		return ""
	}
	if in.Map == Map1Byte {
		switch in.Op {
		case 0xcc:
			return "int3"
		case 0xf1:
			return "int1"
		}
		return ""
	}
	switch {
	case in.Map != Map0F:
		return ""
	case in.Op == 0x1e && in.Prefixes&PF3 != 0 && in.ModRM == 0xfa:
		return "endbr64"
	case in.Op == 0x1e && in.Prefixes&PF3 != 0 && in.ModRM == 0xfb:
		return "endbr32"
	case in.Op == 0x01 && in.ModRM == 0xee:
		return "rdpkru"
	case in.Op == 0x01 && in.ModRM == 0xef:
		return "wrpkru"
	}
	return ""
}

// opcodeName names an instruction x86asm does not decode by its encoding,
// map and opcode ("vex 0f3a 6b").
func opcodeName(in *Inst) string {
	enc := [...]string{Legacy: "legacy", VEX: "vex", EVEX: "evex", XOP: "xop"}[in.Encoding]
	m := map[Map]string{Map1Byte: "", Map0F: "0f ", Map0F38: "0f38 ", Map0F3A: "0f3a ", Map5: "map5 ", Map6: "map6 ", MapXOP8: "map8 ", MapXOP9: "map9 ", MapXOPA: "map10 "}[in.Map]
	return fmt.Sprintf("%s %s%02x not decoded by x86asm", enc, m, in.Op)
}

// prefixedAE reports 0F AE with a 66, F2 or F3 prefix but clflushopt
// (66 0F AE /7 m8): x86asm drops those prefixes and names another
// instruction (incssp lfence, umwait and tpause mfence, clwb and clrssbsy
// xsaveopt).
func prefixedAE(in *Inst) bool {
	if in.Encoding != Legacy || in.Map != Map0F || in.Op != 0xae || in.Prefixes&(P66|PF2|PF3) == 0 {
		return false
	}
	return !(in.Prefixes&(PF2|PF3) == 0 && in.Mod() != 3 && in.ModRM>>3&7 == 7)
}

// adx describes ADCX (66 0F 38 F6) and ADOX (F3 0F 38 F6), which x86asm
// does not decode: add with the carry in CF or OF, r32/64 += r/m32/64.
func adx(code []byte, in *Inst, o *Ops) error {
	o.Mnemonic, o.FlagsRead, o.FlagsWritten = "adcx", FlagCF, FlagCF
	if in.Prefixes&PF3 != 0 {
		o.Mnemonic, o.FlagsRead, o.FlagsWritten = "adox", FlagOF, FlagOF
	}
	size := uint16(4)
	if in.REX&8 != 0 {
		size = 8
	}
	o.Args[0] = Arg{Kind: ArgReg, Class: RegGPR, Reg: in.RegField(), Size: size, Access: Read | Write}
	if in.Mod() == 3 {
		o.Args[1] = Arg{Kind: ArgReg, Class: RegGPR, Reg: in.ModRM&7 | in.REX&1<<3, Size: size, Access: Read}
	} else {
		m, err := modrmMem(code, in, x86asm.Mem{})
		if err != nil {
			return err
		}
		m.Size, m.Access = size, Read
		o.Mems[0], o.NMems = m, 1
		o.Args[1] = Arg{Kind: ArgMem, Size: size, Access: Read}
	}
	o.NArgs = 2
	return nil
}

// regOf fills a's Class, Reg and Size for x86asm register r; false for
// registers clients have no use for (control, debug, descriptor tables).
func regOf(r x86asm.Reg, a *Arg) bool {
	set := func(c RegClass, n x86asm.Reg, size uint16) bool {
		a.Class, a.Reg, a.Size = c, uint8(n), size
		return true
	}
	switch {
	case r >= x86asm.AL && r <= x86asm.BL:
		return set(RegGPR, r-x86asm.AL, 1)
	case r >= x86asm.AH && r <= x86asm.BH:
		return set(RegGPRHigh, r-x86asm.AH, 1)
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return set(RegGPR, r-x86asm.SPB+4, 1)
	case r >= x86asm.AX && r <= x86asm.R15W:
		return set(RegGPR, r-x86asm.AX, 2)
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return set(RegGPR, r-x86asm.EAX, 4)
	case r >= x86asm.RAX && r <= x86asm.R15:
		return set(RegGPR, r-x86asm.RAX, 8)
	case r >= x86asm.F0 && r <= x86asm.F7:
		return set(RegX87, r-x86asm.F0, 10)
	case r >= x86asm.M0 && r <= x86asm.M7:
		return set(RegMMX, r-x86asm.M0, 8)
	case r >= x86asm.X0 && r <= x86asm.X31:
		return set(RegXMM, r-x86asm.X0, 16)
	case r >= x86asm.Y0 && r <= x86asm.Y31:
		return set(RegYMM, r-x86asm.Y0, 32)
	case r >= x86asm.Z0 && r <= x86asm.Z31:
		return set(RegZMM, r-x86asm.Z0, 64)
	case r >= x86asm.K0 && r <= x86asm.K7:
		return set(RegMask, r-x86asm.K0, 8)
	case r >= x86asm.ES && r <= x86asm.GS:
		return set(RegSeg, r-x86asm.ES, 2)
	}
	return false
}

// segOf returns the segment a 64 or 65 prefix selects.
func segOf(in *Inst) Seg {
	if in.Prefixes&PSeg != 0 {
		switch in.Seg {
		case 0x64:
			return SegFS
		case 0x65:
			return SegGS
		}
	}
	return SegNone
}

// bitOffset reports a bit-test instruction with a memory operand and a
// register bit offset.
func bitOffset(xi x86asm.Inst) bool {
	switch xi.Op {
	case x86asm.BT, x86asm.BTS, x86asm.BTR, x86asm.BTC:
		_, reg := xi.Args[1].(x86asm.Reg)
		_, mem := xi.Args[0].(x86asm.Mem)
		return reg && mem
	}
	return false
}

// modrmMem decodes the ModRM memory operand of in from its bytes; x is
// x86asm's view of it, whose displacement is taken only for EVEX's
// compressed disp8 (checked to be a power-of-two multiple of the byte).
//
// Preconditions: in has a ModRM byte with mod != 3.
func modrmMem(code []byte, in *Inst, x x86asm.Mem) (Mem, error) {
	m := Mem{Base: NoReg, Index: NoReg, Addr32: in.Prefixes&P67 != 0, Seg: segOf(in)}
	mod, rm := in.Mod(), in.ModRM&7
	switch {
	case rm == 4:
		sib := code[in.ModRMOff+1]
		if idx := sib>>3&7 | in.REX>>1&1<<3; idx != 4 {
			m.Index, m.Scale = idx, 1<<(sib>>6)
		}
		if base := sib & 7; !(base == 5 && mod == 0) {
			m.Base = base | in.REX&1<<3
		}
	case mod == 0 && rm == 5:
		m.RIP = true
	default:
		m.Base = rm | in.REX&1<<3
	}
	m.Disp = int64(in.Disp(code))
	if in.Encoding == EVEX && in.DispLen == 1 && x.Disp != m.Disp {
		n := x.Disp / m.Disp
		if m.Disp == 0 || n*m.Disp != x.Disp || n <= 0 || n > 64 || n&(n-1) != 0 {
			return Mem{}, &Error{Bytes: append([]byte(nil), code...), Err: fmt.Errorf("%w: EVEX disp8 %d scaled to %d", ErrNotCovered, m.Disp, x.Disp)}
		}
		m.Disp = x.Disp
	}
	return m, nil
}

// memSize returns the size of an explicit memory operand: the table's
// where it overrides x86asm's, x86asm's otherwise; false if neither knows.
func memSize(xi x86asm.Inst, info opInfo) (uint16, bool) {
	if info.mem != 0 {
		return info.mem, true
	}
	if info.pat == pAddr || info.pat == pNoAccess {
		return 0, true
	}
	if xi.MemBytes <= 0 {
		switch xi.Op {
		case x86asm.FLD, x86asm.FSTP, x86asm.FBLD, x86asm.FBSTP:
			// The 80-bit forms (m80fp, m80bcd), which x86asm
			// leaves unsized.
			return 10, true
		}
		return 0, false
	}
	return uint16(xi.MemBytes), true
}

// pattern is how an instruction accesses its explicit operands.
type pattern uint8

const (
	// pW: the first operand written, the others read (mov, movzx,
	// setcc, most VEX and EVEX forms: their destination is a whole
	// register).
	pW pattern = iota + 1
	// pRW: the first operand read and written, the others read (add,
	// legacy SSE arithmetic, FMA).
	pRW
	// pR: all read (cmp, test, push, jmp r/m).
	pR
	// pXchg: the first two read and written (xchg, xadd).
	pXchg
	// pMerge: the first operand written if it is memory, read and
	// written if it is a register (movlps, movhps, movhlps: a load or a
	// register move keeps the rest of the register).
	pMerge
	// pScalarMove: movss and movsd, whose load zeroes the rest of the
	// register and whose register move keeps it: the first operand
	// written if the second is memory or it is, read and written if both
	// are registers.
	pScalarMove
	// pWW: the first two written, the others read (mulx).
	pWW
	// pAddr: like pW, but the memory operand's address is computed and
	// the memory not accessed (lea).
	pAddr
	// pNoAccess: no operand is accessed; a memory operand's address is
	// computed (nop r/m, prefetch, clflush, ud0, ud1).
	pNoAccess
	// pString: a string instruction; its operands are implicit.
	pString
	// pNone: no explicit operands.
	pNone
)

// stack is what an instruction does to the stack.
type stack uint8

const (
	stkNone  stack = iota
	stkPush        // writes [rsp-size]
	stkPop         // reads [rsp]
	stkLeave       // reads [rbp]
)

// opInfo is what the tables know of an opcode.
type opInfo struct {
	// pat is how the explicit operands are accessed.
	pat pattern
	// read and write are the arithmetic flags read and (maybe) written.
	read, write FlagSet
	// mem overrides x86asm's memory operand size when not 0.
	mem uint16
	// stk is the implicit stack access.
	stk stack
	// vex marks the VEX and EVEX opcodes: an instruction's encoding
	// must agree with its opcode's table.
	vex bool
	// x87 marks an x87 arithmetic opcode: its memory operand, alone,
	// is a source.
	x87 bool
	// known marks an entry that is filled.
	known bool
}

func opInfoOf(op x86asm.Op, in *Inst, code []byte, nargs int) (opInfo, bool) {
	t := tables()
	if int(op) >= len(t.info) || !t.info[op].known {
		return opInfo{}, false
	}
	info := t.info[op]
	if info.vex != (in.Encoding == VEX || in.Encoding == EVEX) {
		return opInfo{}, false
	}
	switch op {
	case x86asm.SHL, x86asm.SHR, x86asm.SAR, x86asm.ROL, x86asm.ROR, x86asm.RCL, x86asm.RCR:
		// A count that masks to 0 touches no flags.
		if in.Map == Map1Byte && (in.Op == 0xc0 || in.Op == 0xc1) && code[in.ImmOff]&shiftCountMask(in) == 0 {
			info.read, info.write = 0, 0
		}
	case x86asm.SHLD, x86asm.SHRD:
		if in.Op == 0xa4 || in.Op == 0xac {
			if code[in.ImmOff]&shiftCountMask(in) == 0 {
				info.read, info.write = 0, 0
			}
		}
	case x86asm.FLDENV, x86asm.FNSTENV, x86asm.FRSTOR, x86asm.FNSAVE:
		if in.Prefixes&P66 != 0 {
			// The 16-bit images, 14 and 94 bytes: not tabled.
			return opInfo{}, false
		}
	case x86asm.IMUL:
		// imul r/m (rdx:rax = rax * r/m), imul r, r/m, imul r, r/m, imm.
		switch nargs {
		case 1:
			info.pat = pR
		case 3:
			info.pat = pW
		}
	}
	return info, true
}

// access sets the explicit operands' Access (and their memory operands')
// from the opcode's pattern.
func access(code []byte, in *Inst, xi x86asm.Inst, info opInfo, o *Ops) error {
	n := int(o.NArgs)
	for i := 0; i < n; i++ {
		a := &o.Args[i]
		var acc Access
		switch info.pat {
		case pW, pAddr:
			acc = Read
			if i == 0 {
				acc = Write
			}
		case pRW:
			acc = Read
			if i == 0 {
				acc = Read | Write
			}
		case pR:
			acc = Read
		case pNoAccess:
			acc = 0
		case pXchg:
			acc = Read
			if i <= 1 {
				acc = Read | Write
			}
		case pWW:
			acc = Read
			if i <= 1 {
				acc = Write
			}
		case pMerge:
			acc = Read
			if i == 0 {
				acc = Read | Write
				if a.Kind == ArgMem {
					acc = Write
				}
			}
		case pScalarMove:
			acc = Read
			if i == 0 {
				acc = Read | Write
				if a.Kind == ArgMem || o.Args[1].Kind == ArgMem {
					acc = Write
				}
			}
		case pNone:
			return notCovered(code, in, o.Mnemonic+" with operands")
		}
		if (a.Kind == ArgImm || a.Kind == ArgRel) && info.pat != pNoAccess {
			acc = Read
		}
		if i == 0 && acc&Write != 0 && in.Encoding == EVEX && a.Kind == ArgReg && a.Class != RegMask {
			// Merge-masking keeps the destination's masked-off
			// elements.
			if p2 := code[in.VEXOff+3]; p2&7 != 0 && p2&0x80 == 0 {
				acc |= Read
			}
		}
		if acc&Write != 0 && a.Kind == ArgReg && (a.Class == RegGPRHigh || a.Class == RegGPR && a.Size <= 2) {
			// A write to an 8- or 16-bit register keeps the rest.
			acc |= Read
		}
		if info.x87 && a.Kind == ArgMem && acc&Write != 0 && info.pat == pRW {
			// fadd m32 and the like: the stack top is the destination.
			acc = Read
		}
		a.Access = acc
		if a.Kind == ArgMem {
			m := &o.Mems[a.Mem]
			if info.pat == pAddr || info.pat == pNoAccess {
				m.AddrOnly, a.Access, m.Access = true, 0, 0
			} else {
				m.Access = acc
			}
		}
	}
	if info.pat == pAddr && o.NMems == 0 {
		return notCovered(code, in, o.Mnemonic+" without memory operand")
	}
	return nil
}

// implicit adds the implicit memory operands: stack slots.
func implicit(code []byte, in *Inst, xi x86asm.Inst, info opInfo, o *Ops) error {
	size := uint16(8)
	if in.Prefixes&P66 != 0 && (xi.Op == x86asm.PUSH || xi.Op == x86asm.POP || xi.Op == x86asm.PUSHF || xi.Op == x86asm.POPF) {
		size = 2
	}
	m := Mem{Base: 4, Index: NoReg, Implicit: true, Size: size}
	switch info.stk {
	case stkNone:
		return nil
	case stkPush:
		m.Disp, m.Access = -int64(size), Write
	case stkPop:
		m.Access = Read
	case stkLeave:
		m.Base, m.Access = 5, Read
	}
	if xi.Op == x86asm.ENTER && code[in.ImmOff+2]&31 != 0 {
		// A nesting level copies frame pointers too.
		return notCovered(code, in, "enter with a nesting level")
	}
	if int(o.NMems) >= MaxMems {
		return notCovered(code, in, o.Mnemonic)
	}
	o.Mems[o.NMems] = m
	o.NMems++
	return nil
}

// stringOp fills o for a string instruction: no explicit operands, the
// implicit [rsi] (segment overridable) and [rdi].
func stringOp(code []byte, in *Inst, xi x86asm.Inst, o *Ops) error {
	name := o.Mnemonic
	var size uint16
	switch name[len(name)-1] {
	case 'b':
		size = 1
	case 'w':
		size = 2
	case 'd':
		size = 4
	case 'q':
		size = 8
	}
	src := Mem{Base: 6, Index: NoReg, Implicit: true, Size: size, Access: Read, Addr32: in.Prefixes&P67 != 0, Seg: segOf(in)}
	dst := Mem{Base: 7, Index: NoReg, Implicit: true, Size: size, Addr32: in.Prefixes&P67 != 0}
	cmp := false
	switch {
	case strings.HasPrefix(name, "movs"):
		dst.Access = Write
		o.Mems[0], o.Mems[1], o.NMems = src, dst, 2
	case strings.HasPrefix(name, "stos"):
		dst.Access = Write
		o.Mems[0], o.NMems = dst, 1
	case strings.HasPrefix(name, "lods"):
		o.Mems[0], o.NMems = src, 1
	case strings.HasPrefix(name, "scas"):
		dst.Access = Read
		o.Mems[0], o.NMems = dst, 1
		cmp = true
	case strings.HasPrefix(name, "cmps"):
		dst.Access = Read
		o.Mems[0], o.Mems[1], o.NMems = src, dst, 2
		cmp = true
	default:
		return notCovered(code, in, name)
	}
	switch {
	case in.Prefixes&PF3 != 0 && cmp:
		o.Mnemonic, o.Rep = "repe "+name, true
	case in.Prefixes&PF2 != 0 && cmp:
		o.Mnemonic, o.Rep = "repne "+name, true
	case in.Prefixes&(PF2|PF3) != 0:
		o.Mnemonic, o.Rep = "rep "+name, true
	}
	return nil
}

// opTables are the per-opcode tables, built on first use.
type opTables struct {
	// names are the lower-case mnemonics by x86asm opcode.
	names []string
	info  []opInfo
	// missing are names in the tables that x86asm has no opcode for
	// (TestOpTables requires none).
	missing []string
}

var tables = sync.OnceValue(buildTables)

// mnemonic returns op's lower-case mnemonic.
func mnemonic(op x86asm.Op) string {
	t := tables()
	if int(op) < len(t.names) && t.names[op] != "" {
		return t.names[op]
	}
	return strings.ToLower(op.String())
}

func buildTables() *opTables {
	t := &opTables{}
	n := int(x86asm.VZEROUPPER) + 1
	t.names = make([]string, n)
	t.info = make([]opInfo, n)
	byName := map[string]x86asm.Op{}
	for op := 1; op < n; op++ {
		s := x86asm.Op(op).String()
		if strings.HasPrefix(s, "Op(") {
			continue
		}
		byName[s] = x86asm.Op(op)
		name := strings.ToLower(s)
		name = strings.TrimSuffix(name, "_xmm") // movsd_xmm, cmpsd_xmm
		t.names[op] = name
	}
	set := func(names string, info opInfo) {
		info.known = true
		for _, s := range strings.Fields(names) {
			op, ok := byName[s]
			if !ok {
				t.missing = append(t.missing, s)
				continue
			}
			t.info[op] = info
		}
	}
	for _, g := range legacyGroups {
		set(g.names, g.info)
	}
	// Conditional instructions read the flags their condition tests.
	for cc, f := range condFlags {
		set("J"+cc, opInfo{pat: pR, read: f})
		set("SET"+cc, opInfo{pat: pW, read: f})
		set("CMOV"+cc, opInfo{pat: pRW, read: f})
	}
	for cc, f := range map[string]FlagSet{"B": FlagCF, "E": FlagZF, "BE": FlagCF | FlagZF, "U": FlagPF} {
		set("FCMOV"+cc, opInfo{pat: pRW, read: f})
		set("FCMOVN"+cc, opInfo{pat: pRW, read: f})
	}
	for s, info := range extraVEX {
		info.vex = true
		set(s, info)
	}
	// VEX and EVEX: families by name.
	for s, op := range byName {
		if t.info[op].known {
			continue
		}
		if info, ok := avxInfo(s); ok {
			info.known, info.vex = true, true
			t.info[op] = info
		}
	}
	return t
}

// condFlags are the flags each condition code reads.
var condFlags = map[string]FlagSet{
	"O": FlagOF, "NO": FlagOF, "B": FlagCF, "AE": FlagCF, "E": FlagZF, "NE": FlagZF,
	"BE": FlagCF | FlagZF, "A": FlagCF | FlagZF, "S": FlagSF, "NS": FlagSF, "P": FlagPF, "NP": FlagPF,
	"L": FlagSF | FlagOF, "GE": FlagSF | FlagOF, "LE": FlagZF | FlagSF | FlagOF, "G": FlagZF | FlagSF | FlagOF,
}

const (
	allButCF = FlagsAll &^ FlagCF
	lahfSet  = FlagSF | FlagZF | FlagAF | FlagPF | FlagCF
)

// legacyGroups are the legacy-encoded opcodes covered, grouped by how
// they access their operands and flags (Intel SDM vol. 2: a flag left
// undefined counts as written).
var legacyGroups = []struct {
	names string
	info  opInfo
}{
	// Integer.
	{"MOV MOVZX MOVSX MOVSXD MOVBE CDQE", opInfo{pat: pW}},
	{"CBW CWDE CWD CDQ CQO", opInfo{pat: pNone}},
	{"LEA", opInfo{pat: pAddr}},
	{"ADD SUB AND OR XOR NEG", opInfo{pat: pRW, write: FlagsAll}},
	{"ADC SBB", opInfo{pat: pRW, read: FlagCF, write: FlagsAll}},
	{"INC DEC", opInfo{pat: pRW, write: allButCF}},
	{"NOT BSWAP", opInfo{pat: pRW}},
	{"CMP TEST", opInfo{pat: pR, write: FlagsAll}},
	{"SHL SHR SAR SHLD SHRD", opInfo{pat: pRW, write: FlagsAll}},
	{"ROL ROR", opInfo{pat: pRW, write: FlagCF | FlagOF}},
	{"RCL RCR", opInfo{pat: pRW, read: FlagCF, write: FlagCF | FlagOF}},
	{"BT", opInfo{pat: pR, write: FlagsAll &^ FlagZF}},
	{"BTS BTR BTC", opInfo{pat: pRW, write: FlagsAll &^ FlagZF}},
	{"BSF BSR TZCNT LZCNT POPCNT", opInfo{pat: pW, write: FlagsAll}},
	{"MUL DIV IDIV", opInfo{pat: pR, write: FlagsAll}},
	{"IMUL", opInfo{pat: pRW, write: FlagsAll}}, // fixed up by imulPattern
	{"XCHG", opInfo{pat: pXchg}},
	{"XADD", opInfo{pat: pXchg, write: FlagsAll}},
	{"CMPXCHG", opInfo{pat: pRW, write: FlagsAll}},
	{"CMPXCHG8B", opInfo{pat: pRW, write: FlagZF, mem: 8}},
	{"CMPXCHG16B", opInfo{pat: pRW, write: FlagZF, mem: 16}},
	{"CRC32", opInfo{pat: pRW}},

	{"RDRAND", opInfo{pat: pW, write: FlagsAll}},
	{"CLC STC", opInfo{pat: pNone, write: FlagCF}},
	{"CMC", opInfo{pat: pNone, read: FlagCF, write: FlagCF}},
	{"CLD STD PAUSE HLT UD2 CPUID RDTSC RDTSCP XGETBV LFENCE MFENCE SFENCE XEND FWAIT EMMS", opInfo{pat: pNone}},
	{"UD0 UD1 NOP", opInfo{pat: pNoAccess}},
	{"INT", opInfo{pat: pR}},
	{"SYSCALL", opInfo{pat: pNone, read: FlagsAll}},
	{"LAHF", opInfo{pat: pNone, read: lahfSet}},
	{"SAHF", opInfo{pat: pNone, write: lahfSet}},
	{"XTEST", opInfo{pat: pNone, write: FlagsAll}},
	{"XBEGIN XABORT", opInfo{pat: pR}},
	// Control transfer and the stack.
	{"JMP", opInfo{pat: pR}},
	{"CALL", opInfo{pat: pR, stk: stkPush}},
	{"RET", opInfo{pat: pR, stk: stkPop}},
	{"JRCXZ JECXZ LOOP", opInfo{pat: pR}},
	{"LOOPE LOOPNE", opInfo{pat: pR, read: FlagZF}},
	{"PUSH", opInfo{pat: pR, stk: stkPush}},
	{"POP", opInfo{pat: pW, stk: stkPop}},
	{"PUSHFQ PUSHF", opInfo{pat: pNone, read: FlagsAll, stk: stkPush}},
	{"POPFQ POPF", opInfo{pat: pNone, write: FlagsAll, stk: stkPop}},
	{"ENTER", opInfo{pat: pR, stk: stkPush}},
	{"LEAVE", opInfo{pat: pNone, stk: stkLeave}},
	// String instructions.
	{"MOVSB MOVSW MOVSD MOVSQ STOSB STOSW STOSD STOSQ LODSB LODSW LODSD LODSQ", opInfo{pat: pString}},
	{"SCASB SCASW SCASD SCASQ CMPSB CMPSW CMPSD CMPSQ", opInfo{pat: pString, write: FlagsAll}},
	// Hints and cache control: an address, no access.
	{"PREFETCHT0 PREFETCHT1 PREFETCHT2 PREFETCHNTA PREFETCHW CLFLUSH", opInfo{pat: pNoAccess}},
	// State save and restore.
	{"FXSAVE FXSAVE64", opInfo{pat: pW, mem: 512}},
	{"FXRSTOR FXRSTOR64", opInfo{pat: pR, mem: 512}},
	{"LDMXCSR", opInfo{pat: pR, mem: 4}},
	{"STMXCSR", opInfo{pat: pW, mem: 4}},
	// SSE and MMX: moves and conversions write their destination whole.
	{"MOVAPS MOVAPD MOVUPS MOVUPD MOVDQA MOVDQU MOVD MOVQ MOVNTDQ MOVNTI MOVNTPS MOVNTPD MOVNTQ MOVNTDQA LDDQU " +
		"MOVMSKPS MOVMSKPD PMOVMSKB PSHUFD PSHUFLW PSHUFHW PSHUFW MOVDDUP MOVSHDUP MOVSLDUP " +
		"CVTDQ2PD CVTDQ2PS CVTPD2PS CVTPS2PD CVTPS2PI CVTPI2PD CVTPD2PI CVTTPD2PI CVTTPS2PI CVTSD2SI CVTSS2SI CVTTSD2SI CVTTSS2SI " +
		"CVTPD2DQ CVTPS2DQ CVTTPD2DQ CVTTPS2DQ SQRTPS SQRTPD RSQRTPS RCPPS ROUNDPS ROUNDPD " +
		"PEXTRB PEXTRW PEXTRD PEXTRQ EXTRACTPS AESIMC AESKEYGENASSIST PHMINPOSUW " +
		"PMOVZXBW PMOVZXBD PMOVZXBQ PMOVZXWD PMOVZXWQ PMOVZXDQ PMOVSXBW PMOVSXBD PMOVSXBQ PMOVSXWD PMOVSXWQ PMOVSXDQ " +
		"PABSB PABSW PABSD MOVQ2DQ MOVDQ2Q", opInfo{pat: pW}},
	{"MOVSS MOVSD_XMM", opInfo{pat: pScalarMove}},
	{"MOVLPS MOVHPS MOVLPD MOVHPD MOVHLPS MOVLHPS", opInfo{pat: pMerge}},
	// SSE arithmetic, logic, shuffles: destination read and written.
	{"ADDPS ADDPD ADDSS ADDSD SUBPS SUBPD SUBSS SUBSD MULPS MULPD MULSS MULSD DIVPS DIVPD DIVSS DIVSD " +
		"MINPS MINPD MINSS MINSD MAXPS MAXPD MAXSS MAXSD SQRTSS SQRTSD RSQRTSS RCPSS ROUNDSS ROUNDSD " +
		"ANDPS ANDPD ANDNPS ANDNPD ORPS ORPD XORPS XORPD CMPPS CMPPD CMPSS CMPSD_XMM " +
		"ADDSUBPS ADDSUBPD HADDPS HADDPD HSUBPS HSUBPD DPPS DPPD BLENDPS BLENDPD BLENDVPS BLENDVPD PBLENDVB PBLENDW " +
		"UNPCKLPS UNPCKLPD UNPCKHPS UNPCKHPD SHUFPS SHUFPD INSERTPS " +
		"CVTSI2SS CVTSI2SD CVTSD2SS CVTSS2SD CVTPI2PS " +
		"PADDB PADDW PADDD PADDQ PADDSB PADDSW PADDUSB PADDUSW PSUBB PSUBW PSUBD PSUBQ PSUBSB PSUBSW PSUBUSB PSUBUSW " +
		"PAND PANDN POR PXOR PCMPEQB PCMPEQW PCMPEQD PCMPEQQ PCMPGTB PCMPGTW PCMPGTD PCMPGTQ " +
		"PMINUB PMINUW PMINUD PMINSB PMINSW PMINSD PMAXUB PMAXUW PMAXUD PMAXSB PMAXSW PMAXSD PAVGB PAVGW " +
		"PMULLW PMULLD PMULHW PMULHUW PMULUDQ PMULDQ PMULHRSW PMADDWD PMADDUBSW PSADBW MPSADBW " +
		"PACKSSWB PACKSSDW PACKUSWB PACKUSDW PUNPCKLBW PUNPCKLWD PUNPCKLDQ PUNPCKLQDQ PUNPCKHBW PUNPCKHWD PUNPCKHDQ PUNPCKHQDQ " +
		"PSHUFB PALIGNR PSIGNB PSIGNW PSIGND PHADDW PHADDD PHADDSW PHSUBW PHSUBD PHSUBSW " +
		"PSLLW PSLLD PSLLQ PSLLDQ PSRLW PSRLD PSRLQ PSRLDQ PSRAW PSRAD " +
		"PINSRB PINSRW PINSRD PINSRQ " +
		"AESENC AESENCLAST AESDEC AESDECLAST PCLMULQDQ SHA1MSG1 SHA1MSG2 SHA1NEXTE SHA1RNDS4 SHA256MSG1 SHA256MSG2 SHA256RNDS2", opInfo{pat: pRW}},
	{"COMISS COMISD UCOMISS UCOMISD PTEST", opInfo{pat: pR, write: FlagsAll}},
	{"PCMPISTRI PCMPESTRI PCMPISTRM PCMPESTRM", opInfo{pat: pR, write: FlagsAll}},
	// x87: sizes come from x86asm but for the environment images.
	{"FLD FILD FBLD FLDCW FCOM FCOMP FICOM FICOMP FUCOM FUCOMP FXAM FTST", opInfo{pat: pR}},
	{"FST FSTP FIST FISTP FISTTP FBSTP FNSTCW FNSTSW", opInfo{pat: pW}},
	{"FLDENV", opInfo{pat: pR, mem: 28}},
	{"FNSTENV", opInfo{pat: pW, mem: 28}},
	{"FRSTOR", opInfo{pat: pR, mem: 108}},
	{"FNSAVE", opInfo{pat: pW, mem: 108}},
	{"FADD FMUL FSUB FSUBR FDIV FDIVR FIADD FIMUL FISUB FISUBR FIDIV FIDIVR FADDP FMULP FSUBP FSUBRP FDIVP FDIVRP", opInfo{pat: pRW, x87: true}},
	{"FXCH", opInfo{pat: pXchg}},
	{"FCOMI FCOMIP FUCOMI FUCOMIP", opInfo{pat: pR, write: FlagsAll}},
	{"FCOMPP FUCOMPP FLD1 FLDZ FLDPI FLDL2E FLDL2T FLDLG2 FLDLN2 FCHS FABS F2XM1 FYL2X FYL2XP1 FPTAN FPATAN FXTRACT FPREM FPREM1 FSQRT FSINCOS FRNDINT FSCALE FSIN FCOS FNCLEX FNINIT FNOP FDECSTP FINCSTP", opInfo{pat: pNone}},
	{"FFREE FFREEP", opInfo{pat: pW}},
}

// avxInfo classifies a VEX or EVEX opcode by its family; false for the
// ones not covered: gathers and scatters (vector indices), compress and
// expand (sizes that depend on the mask), vmaskmovdqu (an implicit
// [rdi]), the 4FMAPS and 4VNNIW forms (blocks of four registers),
// vp2intersect (two mask destinations), and the VMX instructions.
func avxInfo(s string) (opInfo, bool) {
	has := func(prefixes ...string) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(s, p) {
				return true
			}
		}
		return false
	}
	switch {
	case !has("V", "K") || strings.Contains(s, "GATHER") || strings.Contains(s, "SCATTER") ||
		strings.Contains(s, "COMPRESS") || strings.Contains(s, "EXPAND") || has("VMASKMOVDQU", "V4F", "VP4", "VERR", "VERW", "VMCALL", "VMLAUNCH", "VMRESUME", "VMXO", "VMREAD", "VMWRITE", "VMPTR", "VMCLEAR", "VMFUNC", "VMLOAD", "VMSAVE", "VMRUN", "VMMCALL", "VP2INTERSECT"):
		return opInfo{}, false
	case s == "VZEROUPPER" || s == "VZEROALL":
		return opInfo{pat: pNone}, true
	case has("VPTEST") && !has("VPTESTM", "VPTESTNM"), has("VTESTP", "VUCOMI", "VCOMI", "VPCMPISTR", "VPCMPESTR", "KORTEST", "KTEST"):
		return opInfo{pat: pR, write: FlagsAll}, true
	case s == "VLDMXCSR":
		return opInfo{pat: pR, mem: 4}, true
	case s == "VSTMXCSR":
		return opInfo{pat: pW, mem: 4}, true
	case has("VFMADD", "VFMSUB", "VFNMADD", "VFNMSUB", "VPDPB", "VPDPW", "VPMADD52", "VPERMI2", "VPERMT2", "VPTERNLOG", "VPSHLDV", "VPSHRDV", "VDPBF16", "VDPPHPS", "VFCMADD", "VFMADDC",
		"VFIXUPIMM", "VSHA512", "VSM3"):
		return opInfo{pat: pRW}, true
	}
	return opInfo{pat: pW}, true
}

// extraVEX are the VEX-encoded general-register instructions (BMI1,
// BMI2), whose x86asm names do not start with V.
var extraVEX = map[string]opInfo{
	"ANDN": {pat: pW, write: FlagsAll}, "BEXTR": {pat: pW, write: FlagsAll}, "BZHI": {pat: pW, write: FlagsAll},
	"BLSI": {pat: pW, write: FlagsAll}, "BLSR": {pat: pW, write: FlagsAll}, "BLSMSK": {pat: pW, write: FlagsAll},
	"MULX": {pat: pWW}, "PDEP": {pat: pW}, "PEXT": {pat: pW}, "RORX": {pat: pW},
	"SARX": {pat: pW}, "SHLX": {pat: pW}, "SHRX": {pat: pW},
}
