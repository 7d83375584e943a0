package decode

import (
	"fmt"
	"strings"
)

// Register names by class and size, for String.
var (
	gpr64 = [16]string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
	gpr32 = [16]string{"eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d", "r12d", "r13d", "r14d", "r15d"}
	gpr16 = [16]string{"ax", "cx", "dx", "bx", "sp", "bp", "si", "di", "r8w", "r9w", "r10w", "r11w", "r12w", "r13w", "r14w", "r15w"}
	gpr8  = [16]string{"al", "cl", "dl", "bl", "spl", "bpl", "sil", "dil", "r8b", "r9b", "r10b", "r11b", "r12b", "r13b", "r14b", "r15b"}
	gprHi = [4]string{"ah", "ch", "dh", "bh"}
	segs  = [6]string{"es", "cs", "ss", "ds", "fs", "gs"}
)

// RegName returns the Intel name of register n of class c and size bytes
// ("eax", "xmm3", "k1"); "?" for a combination that does not exist.
func RegName(c RegClass, n uint8, size uint16) string {
	switch c {
	case RegGPR:
		if n < 16 {
			switch size {
			case 1:
				return gpr8[n]
			case 2:
				return gpr16[n]
			case 4:
				return gpr32[n]
			case 8:
				return gpr64[n]
			}
		}
	case RegGPRHigh:
		if n < 4 {
			return gprHi[n]
		}
	case RegMMX:
		return fmt.Sprintf("mm%d", n)
	case RegXMM:
		return fmt.Sprintf("xmm%d", n)
	case RegYMM:
		return fmt.Sprintf("ymm%d", n)
	case RegZMM:
		return fmt.Sprintf("zmm%d", n)
	case RegMask:
		return fmt.Sprintf("k%d", n)
	case RegX87:
		return fmt.Sprintf("st(%d)", n)
	case RegSeg:
		if n < 6 {
			return segs[n]
		}
	}
	return "?"
}

// String returns "r", "w", "rw", or "-" for no access.
func (a Access) String() string {
	switch a {
	case Read:
		return "r"
	case Write:
		return "w"
	case Read | Write:
		return "rw"
	}
	return "-"
}

var flagNames = [6]string{"CF", "PF", "AF", "ZF", "SF", "OF"}

// String returns the flags' names joined by "|", "all" for the six, or
// "-" for none.
func (f FlagSet) String() string {
	if f == 0 {
		return "-"
	}
	if f == FlagsAll {
		return "all"
	}
	var s []string
	for i, n := range flagNames {
		if f&(1<<i) != 0 {
			s = append(s, n)
		}
	}
	return strings.Join(s, "|")
}

// String formats the memory operand as [seg:base+index*scale+disp]/size,
// with "a32 " before it for a 67 prefix.
func (m Mem) String() string {
	var b strings.Builder
	if m.Addr32 {
		b.WriteString("a32 ")
	}
	b.WriteByte('[')
	switch m.Seg {
	case SegFS:
		b.WriteString("fs:")
	case SegGS:
		b.WriteString("gs:")
	}
	plus := ""
	if m.RIP {
		b.WriteString("rip")
		plus = "+"
	}
	if m.Base != NoReg {
		b.WriteString(gpr64[m.Base&15])
		plus = "+"
	}
	if m.Index != NoReg {
		fmt.Fprintf(&b, "%s%s*%d", plus, gpr64[m.Index&15], m.Scale)
		plus = "+"
	}
	switch {
	case m.Disp < 0:
		fmt.Fprintf(&b, "-%#x", uint64(-m.Disp))
	case m.Disp > 0 || plus == "":
		fmt.Fprintf(&b, "%s%#x", plus, m.Disp)
	}
	fmt.Fprintf(&b, "]/%d", m.Size)
	return b.String()
}

// String formats the operands for tests and debugging: the mnemonic,
// each explicit operand as ACCESS:TEXT (r, w, rw or - for an address
// only), the implicit memory operands after "|", and the flags read and
// written: `add rw:[rdi+0x8]/4, r:eax ; flags r=- w=all`.
func (o *Ops) String() string {
	var b strings.Builder
	if o.Lock {
		b.WriteString("lock ")
	}
	b.WriteString(o.Mnemonic)
	for i := 0; i < int(o.NArgs); i++ {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		a := o.Args[i]
		b.WriteString(a.Access.String() + ":")
		switch a.Kind {
		case ArgReg:
			b.WriteString(RegName(a.Class, a.Reg, a.Size))
		case ArgImm:
			fmt.Fprintf(&b, "%#x", a.Imm)
		case ArgRel:
			fmt.Fprintf(&b, ".%+d", a.Imm)
		case ArgMem:
			b.WriteString(o.Mems[a.Mem].String())
		}
	}
	sep := " | "
	for i := 0; i < int(o.NMems); i++ {
		if m := o.Mems[i]; m.Implicit {
			b.WriteString(sep + m.Access.String() + ":" + m.String())
			sep = ", "
		}
	}
	fmt.Fprintf(&b, " ; flags r=%v w=%v", o.FlagsRead, o.FlagsWritten)
	return b.String()
}
