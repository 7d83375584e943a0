package jit

import (
	"strings"

	"github.com/reachvm/reachvm/jit/internal/decode"
)

// An instruction's operands, as a client sees them at translation time:
// its mnemonic, its explicit operands, every memory location it reads or
// writes (explicit and implicit: the stack slot of push, pop, call and
// ret, the [rsi] and [rdi] of string instructions) and the arithmetic
// flags it reads and writes. They are decoded on the first call to any of
// the accessors and kept with the Instr for the rest of the event; none
// of it costs anything when the translated code runs.

// Flags is a set of the arithmetic flags.
type Flags uint8

// The arithmetic flags.
const (
	CF Flags = 1 << iota
	PF
	AF
	ZF
	SF
	OF

	// AllFlags is all six.
	AllFlags = CF | PF | AF | ZF | SF | OF
)

// flagNames are the flags' names, by bit.
var flagNames = [6]string{"CF", "PF", "AF", "ZF", "SF", "OF"}

// String returns the flags' names joined by "|" ("CF|ZF"), or "-" for
// none.
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	var s []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return strings.Join(s, "|")
}

// OperandKind is what an operand is.
type OperandKind uint8

const (
	// OperandReg is a register: Class and Reg.
	OperandReg OperandKind = iota + 1
	// OperandImm is an immediate: Imm.
	OperandImm
	// OperandMem is a memory operand: MemRefs()[Mem].
	OperandMem
	// OperandTarget is a relative branch's target: Target.
	OperandTarget
)

// RegClass is a register file.
type RegClass uint8

const (
	// ClassGPR is the general registers: Reg is RAX..R15, Size 1, 2, 4
	// or 8 (al, ax, eax, rax).
	ClassGPR RegClass = iota + 1
	// ClassGPRHigh is ah, ch, dh, bh: Reg is RAX..RBX, the register
	// whose second byte it is.
	ClassGPRHigh
	// ClassMMX is mm0-mm7.
	ClassMMX
	// ClassXMM, ClassYMM and ClassZMM are the vector registers 0-31.
	ClassXMM
	ClassYMM
	ClassZMM
	// ClassMask is the AVX-512 mask registers k0-k7.
	ClassMask
	// ClassX87 is st(0)-st(7), numbered from the x87 stack's top.
	ClassX87
	// ClassSeg is es, cs, ss, ds, fs, gs (0-5).
	ClassSeg
)

// Operand is an explicit operand of an instruction: one its encoding
// names, in Intel order, destination first.
type Operand struct {
	Kind OperandKind
	// Class and Reg name an OperandReg's register.
	Class RegClass
	Reg   Reg
	// Size is the operand's size in bytes: a register's width, a memory
	// operand's access size, an immediate's encoded size; 0 for an
	// OperandTarget.
	Size int
	// Imm is an OperandImm's value: an 8-bit one sign-extended where
	// the instruction sign-extends it to a wider operand (add rax, -1)
	// and zero-extended where it does not (mov al, 0xff, shift counts,
	// selectors); a 16- or 32-bit one sign-extended, but ret's and
	// enter's, which are unsigned; the encoded bits are Imm's low Size
	// bytes.
	Imm int64
	// Target is an OperandTarget's application address.
	Target uintptr
	// Mem indexes MemRefs() for an OperandMem.
	Mem int
	// Read and Write say whether the instruction reads the operand's
	// value and whether it writes (maybe partly, maybe conditionally)
	// the operand. Both are false for lea's memory operand, which is an
	// address only.
	Read, Write bool
}

// RegName returns an OperandReg's register name ("eax", "xmm3", "k1").
func (o Operand) RegName() string {
	return decode.RegName(decode.RegClass(o.Class), uint8(o.Reg), uint16(o.Size))
}

// Seg is a memory reference's segment, where it matters in 64-bit mode:
// FS and GS have a base (the thread pointer, for FS); the others do not.
type Seg uint8

const (
	SegNone Seg = iota
	SegFS
	SegGS
)

// MemRef is a memory location an instruction accesses, or whose address
// it computes (AddressOnly), all its registers as they are before the
// instruction: its address is Base + Index * Scale + Disp, truncated to
// 32 bits if Addr32, plus Seg's base.
type MemRef struct {
	// Seg is SegFS or SegGS for an fs: or gs: operand, else SegNone.
	Seg Seg
	// Base and Index are the address registers; HasBase and HasIndex say
	// whether there are any. Scale is 1, 2, 4 or 8 if HasIndex, else 0.
	Base, Index       Reg
	HasBase, HasIndex bool
	Scale             uint8
	// Disp is the displacement; for a RIPRelative reference, the
	// address itself (the instruction's end plus the encoded
	// displacement), with HasBase and HasIndex false.
	Disp        int64
	RIPRelative bool
	// Addr32 marks an address-size prefix: the address is the low 32
	// bits of the sum.
	Addr32 bool
	// Size is the number of bytes accessed from the address (for a
	// masked vector access, the most it may access); 0 if AddressOnly.
	Size int
	// Read and Write say whether the memory is read and whether it is
	// written (add [m], r: both; mov [m], r: Write; cmp [m], r: Read).
	Read, Write bool
	// AddressOnly marks an address the instruction computes without
	// accessing it: lea, nop r/m, prefetch, clflush. Read and Write are
	// false.
	AddressOnly bool
	// Implicit marks a reference no operand names: the stack slot
	// push, call, pushf and enter write ([rsp-8]; [rsp-2] for a 16-bit
	// push) and pop, ret, popf read ([rsp]), leave's [rbp], string
	// instructions' [rsi] and [rdi] (movs and cmps list [rsi] first). A string instruction with a rep prefix (its Mnemonic
	// starts with "rep") accesses its references rcx times, moving on
	// by Size each time.
	Implicit bool
}

// The conversions from decode's types rely on both numbering alike: an
// index out of range here fails the build.
var (
	_ = [1]int{}[OF-Flags(decode.FlagOF)+CF-Flags(decode.FlagCF)+ZF-Flags(decode.FlagZF)]
	_ = [1]int{}[ClassSeg-RegClass(decode.RegSeg)+ClassGPR-RegClass(decode.RegGPR)+ClassZMM-RegClass(decode.RegZMM)]
	_ = [1]int{}[SegGS-Seg(decode.SegGS)+SegFS-Seg(decode.SegFS)]
)

// decoded is an Instr's operand decode, made on first use.
type decoded struct {
	// ops is decode.Operands's result.
	ops decode.Ops
	// err is decode.Operands's error: the instruction is not covered.
	err error
	// operands and mems are ops converted, nil if err is set.
	operands []Operand
	mems     []MemRef
}

// decoded decodes the instruction's operands, once per event.
func (i *Instr) decoded() *decoded {
	if i.dec != nil {
		return i.dec
	}
	d := &decoded{}
	d.ops, d.err = decode.Operands(i.code, &i.in)
	i.dec = d
	if d.err != nil {
		return d
	}
	end := int64(i.pc) + int64(i.in.Len)
	o := &d.ops
	d.mems = make([]MemRef, o.NMems)
	for k, m := range o.Mems[:o.NMems] {
		r := &d.mems[k]
		r.Seg = Seg(m.Seg)
		if m.Base != decode.NoReg {
			r.Base, r.HasBase = Reg(m.Base), true
		}
		if m.Index != decode.NoReg {
			r.Index, r.HasIndex, r.Scale = Reg(m.Index), true, m.Scale
		}
		r.Disp, r.RIPRelative, r.Addr32 = m.Disp, m.RIP, m.Addr32
		if m.RIP {
			r.Disp += end
		}
		r.Size = int(m.Size)
		r.Read, r.Write = m.Access&decode.Read != 0, m.Access&decode.Write != 0
		r.AddressOnly, r.Implicit = m.AddrOnly, m.Implicit
	}
	d.operands = make([]Operand, o.NArgs)
	for k, a := range o.Args[:o.NArgs] {
		op := &d.operands[k]
		op.Size = int(a.Size)
		op.Read, op.Write = a.Access&decode.Read != 0, a.Access&decode.Write != 0
		switch a.Kind {
		case decode.ArgReg:
			op.Kind, op.Class, op.Reg = OperandReg, RegClass(a.Class), Reg(a.Reg)
		case decode.ArgImm:
			op.Kind, op.Imm = OperandImm, a.Imm
		case decode.ArgMem:
			op.Kind, op.Mem = OperandMem, int(a.Mem)
		case decode.ArgRel:
			op.Kind, op.Target = OperandTarget, uintptr(end+a.Imm)
		}
	}
	return d
}

// Mnemonic returns the instruction's lower-case Intel mnemonic ("mov",
// "vpaddd", "movsd" for both the SSE move and the string move), with the
// repeat prefix of a string instruction ("rep movsb", "repne scasb") but
// not a lock prefix. It is also set for most instructions OperandsErr
// refuses; "" for the few the decoder cannot name.
func (i *Instr) Mnemonic() string { return i.decoded().ops.Mnemonic }

// OperandsErr returns why Operands, MemRefs, FlagsRead and FlagsWritten
// do not describe the instruction, or nil. The decoder refuses, rather
// than guesses, instructions whose operands it does not know (gathers and
// scatters, xsave, maskmovdqu, bt with a register bit offset into
// memory, XOP, system instructions): a client that must see every memory
// access treats such an instruction on its own.
func (i *Instr) OperandsErr() error { return i.decoded().err }

// Lock reports a lock prefix.
func (i *Instr) Lock() bool { return i.decoded().ops.Lock }

// Operands returns the instruction's explicit operands, destination
// first, as objdump's Intel syntax lists them (with the fixed registers
// it shows, such as shl's cl, and an EVEX mask register after the operand
// it masks); nil if OperandsErr is not. Registers the instruction uses
// without naming them (mul's rdx:rax, cmpxchg's rax, a string
// instruction's rcx, rsi and rdi) are not listed; the memory it so
// accesses is, in MemRefs. The caller must not change them nor keep them
// after the event.
func (i *Instr) Operands() []Operand { return i.decoded().operands }

// MemRefs returns the memory locations the instruction reads or writes
// (or computes the address of), explicit operands first, then implicit
// ones; nil if OperandsErr is not. The caller must not change them nor
// keep them after the event.
func (i *Instr) MemRefs() []MemRef { return i.decoded().mems }

// FlagsRead returns the arithmetic flags the instruction reads. For an
// instruction OperandsErr refuses, all six: the answer that keeps a
// liveness analysis safe.
func (i *Instr) FlagsRead() Flags {
	d := i.decoded()
	if d.err != nil {
		return AllFlags
	}
	return Flags(d.ops.FlagsRead)
}

// FlagsWritten returns the arithmetic flags the instruction may write
// (set, clear or leave undefined). A shift or rotate by an immediate
// count that masks to 0 writes none; by cl, those its other counts
// write. For an instruction OperandsErr refuses, none.
func (i *Instr) FlagsWritten() Flags {
	d := i.decoded()
	if d.err != nil {
		return 0
	}
	return Flags(d.ops.FlagsWritten)
}
