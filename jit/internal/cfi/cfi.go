// Package cfi reads and writes DWARF call frame information on x86-64:
// the rules that say, at each instruction of a function, where the
// caller's frame is (the CFA) and where the caller's registers and the
// return address were saved. It parses .eh_frame and .debug_frame
// (Parse), tells the row in force at an address (Table.Row), and writes
// a .debug_frame whose rows are given address by address (Encoder): the
// jit copies the application's rows onto the translated copy of each
// instruction, so that a debugger unwinds through the code cache as
// through the application itself.
package cfi

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
)

// NumRegs is the number of DWARF register columns a Row keeps: rax, rdx,
// rcx, rbx, rsi, rdi, rbp, rsp, r8 to r15 (0 to 15) and the return
// address (16). Rules for other columns (vector registers, which the
// psABI does not preserve across calls) are read and dropped.
const NumRegs = 17

// RA is the return address's column.
const RA = 16

// RuleKind says how a register of the caller is recovered.
type RuleKind uint8

const (
	// Unspecified: no rule (the CIE gives none).
	Unspecified RuleKind = iota
	// Undefined: the value is lost (the outermost frame's return
	// address).
	Undefined
	// SameValue: the register holds the caller's value.
	SameValue
	// Offset: saved at CFA+N.
	Offset
	// ValOffset: the value is CFA+N.
	ValOffset
	// Register: held in register Reg.
	Register
	// Expression: saved at the address the DWARF expression Expr
	// computes.
	Expression
	// ValExpression: the value is what Expr computes.
	ValExpression
)

// Rule is one register's rule. Expr is a string so that rules, and rows,
// compare with ==.
type Rule struct {
	Kind RuleKind
	N    int64
	Reg  uint64
	Expr string
}

// CFA is the rule for the canonical frame address: register Reg plus Off,
// or, when Expr is not empty, the value of the DWARF expression Expr.
type CFA struct {
	Reg  uint64
	Off  int64
	Expr string
}

// Row is the unwinding rule at one address.
type Row struct {
	CFA  CFA
	Regs [NumRegs]Rule
}

// Table is the call frame information of one section.
type Table struct {
	// fdes are sorted by lo; they do not overlap in well-formed input
	// (lookups take the first that covers an address).
	fdes []*fde
}

// cie is a Common Information Entry.
type cie struct {
	codeAlign uint64
	dataAlign int64
	// enc is the encoding of the FDEs' addresses (.eh_frame's 'R'
	// augmentation); aug says their augmentation data has a length
	// ('z').
	enc  byte
	aug  bool
	init []byte
}

// fde is a Frame Description Entry: the rules for [lo, hi).
type fde struct {
	lo, hi uint64
	cie    *cie
	insns  []byte
	// rows are the rows in force from each at, computed on first use;
	// bad is set if the instructions could not be run.
	rows []row
	bad  bool
	done bool
}

type row struct {
	at uint64
	r  Row
}

// Pointer encodings (DW_EH_PE_*) that .eh_frame uses.
const (
	peAbsptr  = 0x00
	peULEB    = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSLEB    = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c
	pePCRel   = 0x10
	peOmit    = 0xff
	peFormat  = 0x0f
	peApplied = 0x70
)

// Parse reads the call frame information in sec, a .eh_frame (eh) or a
// .debug_frame section loaded at addr (which .eh_frame's PC-relative
// addresses count from). An entry that cannot be read ends the parse with
// an error; FDEs whose addresses use an encoding it does not know are
// skipped.
func Parse(sec []byte, addr uint64, eh bool) (*Table, error) {
	t := &Table{}
	cies := map[uint64]*cie{}
	for off := uint64(0); off < uint64(len(sec)); {
		r := reader{b: sec, off: off}
		length := uint64(r.u32())
		dwarf64 := false
		if length == 0xffffffff {
			length, dwarf64 = r.u64(), true
		}
		if r.err != nil {
			return nil, fmt.Errorf("cfi: entry at %#x: %w", off, r.err)
		}
		if length == 0 {
			if eh {
				break // .eh_frame's terminator
			}
			off = r.off
			continue
		}
		start := r.off
		end := start + length
		if end < start || end > uint64(len(sec)) {
			return nil, fmt.Errorf("cfi: entry at %#x: length %#x past the section's end", off, length)
		}
		r.b = sec[:end]
		idPos := r.off
		var id uint64
		if dwarf64 {
			id = r.u64()
		} else {
			id = uint64(r.u32())
		}
		isCIE := (eh && id == 0) || (!eh && (id == 0xffffffff || dwarf64 && id == ^uint64(0)))
		if isCIE {
			c, err := parseCIE(&r)
			if err != nil {
				return nil, fmt.Errorf("cfi: CIE at %#x: %w", off, err)
			}
			cies[off] = c
		} else {
			cieOff := id
			if eh {
				cieOff = idPos - id
			}
			c := cies[cieOff]
			if c == nil {
				// A CIE after its FDE: read it where it is.
				var err error
				if c, err = cieAt(sec, cieOff, eh); err != nil {
					return nil, fmt.Errorf("cfi: FDE at %#x: CIE at %#x: %w", off, cieOff, err)
				}
				cies[cieOff] = c
			}
			f, ok, err := parseFDE(&r, c, addr, eh)
			if err != nil {
				return nil, fmt.Errorf("cfi: FDE at %#x: %w", off, err)
			}
			if ok && f.hi > f.lo {
				t.fdes = append(t.fdes, f)
			}
		}
		off = end
	}
	sort.SliceStable(t.fdes, func(i, j int) bool { return t.fdes[i].lo < t.fdes[j].lo })
	return t, nil
}

// cieAt reads the CIE at off.
func cieAt(sec []byte, off uint64, eh bool) (*cie, error) {
	r := reader{b: sec, off: off}
	length := uint64(r.u32())
	dwarf64 := length == 0xffffffff
	if dwarf64 {
		length = r.u64()
	}
	end := r.off + length
	if r.err != nil || end < r.off || end > uint64(len(sec)) {
		return nil, errors.New("truncated")
	}
	r.b = sec[:end]
	var id uint64
	if dwarf64 {
		id = r.u64()
	} else {
		id = uint64(r.u32())
	}
	if eh && id != 0 || !eh && id != 0xffffffff && id != ^uint64(0) {
		return nil, errors.New("not a CIE")
	}
	return parseCIE(&r)
}

func parseCIE(r *reader) (*cie, error) {
	c := &cie{enc: peAbsptr}
	version := r.u8()
	if version != 1 && version != 3 && version != 4 {
		return nil, fmt.Errorf("version %d", version)
	}
	augStr := r.cstr()
	if version == 4 {
		if as := r.u8(); as != 8 {
			return nil, fmt.Errorf("address size %d", as)
		}
		r.u8() // segment selector size
	}
	c.codeAlign = r.uleb()
	c.dataAlign = r.sleb()
	if version == 1 {
		r.u8()
	} else {
		r.uleb()
	}
	if len(augStr) > 0 {
		if augStr[0] != 'z' {
			if augStr != "eh" {
				return nil, fmt.Errorf("augmentation %q", augStr)
			}
			r.u64() // the eh_data pointer of old GCC
		} else {
			c.aug = true
			n := r.uleb()
			end := r.off + n
			for _, ch := range augStr[1:] {
				switch ch {
				case 'R':
					c.enc = r.u8()
				case 'L':
					r.u8()
				case 'P':
					enc := r.u8()
					r.pointer(enc, 0)
				case 'S', 'B':
				default:
					// Unknown: the length lets us skip the rest.
				}
			}
			if end < r.off || end > uint64(len(r.b)) {
				return nil, errors.New("augmentation data past the entry")
			}
			r.off = end
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	c.init = r.b[r.off:]
	return c, nil
}

func parseFDE(r *reader, c *cie, addr uint64, eh bool) (*fde, bool, error) {
	enc := byte(peUdata8)
	if eh {
		enc = c.enc
	}
	if enc&0x80 != 0 || enc&peApplied != 0 && enc&peApplied != pePCRel {
		return nil, false, nil
	}
	lo, ok := r.pointer(enc, addr)
	size, _ := r.pointer(enc&peFormat, 0)
	if c.aug {
		if n := r.uleb(); r.need(n) {
			r.off += n
		}
	}
	if r.err != nil {
		return nil, false, r.err
	}
	if !ok {
		return nil, false, nil
	}
	return &fde{lo: lo, hi: lo + size, cie: c, insns: r.b[r.off:]}, true, nil
}

// Row returns the row in force at pc, and false if no FDE covers pc or its
// instructions cannot be run. The row is the table's: read it, do not
// change it.
func (t *Table) Row(pc uint64) (*Row, bool) {
	i := sort.Search(len(t.fdes), func(i int) bool { return t.fdes[i].hi > pc })
	for ; i < len(t.fdes) && t.fdes[i].lo <= pc; i++ {
		f := t.fdes[i]
		if pc >= f.hi {
			continue
		}
		if !f.done {
			f.rows, f.bad = run(f)
			f.done = true
		}
		if f.bad || len(f.rows) == 0 {
			return nil, false
		}
		j := sort.Search(len(f.rows), func(j int) bool { return f.rows[j].at > pc })
		if j == 0 {
			return nil, false
		}
		return &f.rows[j-1].r, true
	}
	return nil, false
}

// Covers reports whether some FDE covers pc.
func (t *Table) Covers(pc uint64) bool {
	i := sort.Search(len(t.fdes), func(i int) bool { return t.fdes[i].hi > pc })
	return i < len(t.fdes) && t.fdes[i].lo <= pc
}

// DWARF call frame instructions.
const (
	cfaAdvanceLoc        = 0x40
	cfaOffset            = 0x80
	cfaRestore           = 0xc0
	cfaNop               = 0x00
	cfaSetLoc            = 0x01
	cfaAdvanceLoc1       = 0x02
	cfaAdvanceLoc2       = 0x03
	cfaAdvanceLoc4       = 0x04
	cfaOffsetExtended    = 0x05
	cfaRestoreExtended   = 0x06
	cfaUndefined         = 0x07
	cfaSameValue         = 0x08
	cfaRegister          = 0x09
	cfaRememberState     = 0x0a
	cfaRestoreState      = 0x0b
	cfaDefCFA            = 0x0c
	cfaDefCFARegister    = 0x0d
	cfaDefCFAOffset      = 0x0e
	cfaDefCFAExpression  = 0x0f
	cfaExpression        = 0x10
	cfaOffsetExtendedSF  = 0x11
	cfaDefCFASF          = 0x12
	cfaDefCFAOffsetSF    = 0x13
	cfaValOffset         = 0x14
	cfaValOffsetSF       = 0x15
	cfaValExpression     = 0x16
	cfaGNUArgsSize       = 0x2e
	cfaGNUNegOffsetExtnd = 0x2f
)

// run executes the CIE's initial instructions and the FDE's, and returns
// the rows from lo to hi; bad if an instruction is unknown or malformed.
func run(f *fde) ([]row, bool) {
	var init Row
	if _, ok := execute(f.cie, f.cie.init, &init, nil, 0, 0, nil); !ok {
		return nil, true
	}
	cur := init
	rows, ok := execute(f.cie, f.insns, &cur, &init, f.lo, f.hi, nil)
	return rows, !ok
}

// execute runs insns on cur from location loc. With init nil it runs a CIE's
// initial instructions (no advances). Otherwise it appends a row each
// time the location moves, and the last row, and returns them.
func execute(c *cie, insns []byte, cur *Row, init *Row, loc, hi uint64, rows []row) ([]row, bool) {
	r := reader{b: insns}
	var stack []Row
	emit := func(next uint64) bool {
		if init == nil {
			return false // an advance among a CIE's initial instructions
		}
		if next > loc {
			rows = append(rows, row{at: loc, r: *cur})
			loc = next
		}
		return true
	}
	set := func(reg uint64, rule Rule) {
		if reg < NumRegs {
			cur.Regs[reg] = rule
		}
	}
	for r.off < uint64(len(r.b)) && r.err == nil {
		op := r.u8()
		switch op & 0xc0 {
		case cfaAdvanceLoc:
			if !emit(loc + uint64(op&0x3f)*c.codeAlign) {
				return nil, false
			}
			continue
		case cfaOffset:
			set(uint64(op&0x3f), Rule{Kind: Offset, N: int64(r.uleb()) * c.dataAlign})
			continue
		case cfaRestore:
			reg := uint64(op & 0x3f)
			if init != nil && reg < NumRegs {
				cur.Regs[reg] = init.Regs[reg]
			}
			continue
		}
		switch op {
		case cfaNop:
		case cfaSetLoc:
			// .debug_frame's addresses; .eh_frame's GCC never emits
			// set_loc.
			if !emit(r.u64()) {
				return nil, false
			}
		case cfaAdvanceLoc1:
			if !emit(loc + uint64(r.u8())*c.codeAlign) {
				return nil, false
			}
		case cfaAdvanceLoc2:
			if !emit(loc + uint64(r.u16())*c.codeAlign) {
				return nil, false
			}
		case cfaAdvanceLoc4:
			if !emit(loc + uint64(r.u32())*c.codeAlign) {
				return nil, false
			}
		case cfaOffsetExtended:
			reg := r.uleb()
			set(reg, Rule{Kind: Offset, N: int64(r.uleb()) * c.dataAlign})
		case cfaRestoreExtended:
			reg := r.uleb()
			if init != nil && reg < NumRegs {
				cur.Regs[reg] = init.Regs[reg]
			}
		case cfaUndefined:
			set(r.uleb(), Rule{Kind: Undefined})
		case cfaSameValue:
			set(r.uleb(), Rule{Kind: SameValue})
		case cfaRegister:
			reg := r.uleb()
			set(reg, Rule{Kind: Register, Reg: r.uleb()})
		case cfaRememberState:
			stack = append(stack, *cur)
		case cfaRestoreState:
			if len(stack) == 0 {
				return nil, false
			}
			*cur = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		case cfaDefCFA:
			cur.CFA = CFA{Reg: r.uleb(), Off: int64(r.uleb())}
		case cfaDefCFASF:
			reg := r.uleb()
			cur.CFA = CFA{Reg: reg, Off: r.sleb() * c.dataAlign}
		case cfaDefCFARegister:
			if cur.CFA.Expr != "" {
				return nil, false
			}
			cur.CFA.Reg = r.uleb()
		case cfaDefCFAOffset:
			if cur.CFA.Expr != "" {
				return nil, false
			}
			cur.CFA.Off = int64(r.uleb())
		case cfaDefCFAOffsetSF:
			if cur.CFA.Expr != "" {
				return nil, false
			}
			cur.CFA.Off = r.sleb() * c.dataAlign
		case cfaDefCFAExpression:
			cur.CFA = CFA{Expr: string(r.block())}
		case cfaExpression:
			reg := r.uleb()
			set(reg, Rule{Kind: Expression, Expr: string(r.block())})
		case cfaValExpression:
			reg := r.uleb()
			set(reg, Rule{Kind: ValExpression, Expr: string(r.block())})
		case cfaOffsetExtendedSF:
			reg := r.uleb()
			set(reg, Rule{Kind: Offset, N: r.sleb() * c.dataAlign})
		case cfaValOffset:
			reg := r.uleb()
			set(reg, Rule{Kind: ValOffset, N: int64(r.uleb()) * c.dataAlign})
		case cfaValOffsetSF:
			reg := r.uleb()
			set(reg, Rule{Kind: ValOffset, N: r.sleb() * c.dataAlign})
		case cfaGNUArgsSize:
			r.uleb()
		case cfaGNUNegOffsetExtnd:
			reg := r.uleb()
			set(reg, Rule{Kind: Offset, N: -int64(r.uleb()) * c.dataAlign})
		default:
			return nil, false
		}
	}
	if r.err != nil {
		return nil, false
	}
	if init != nil && hi > loc {
		rows = append(rows, row{at: loc, r: *cur})
	}
	return rows, true
}

// reader reads little-endian values and LEB128s; the first read past the
// end sets err and every later one returns zero.
type reader struct {
	b   []byte
	off uint64
	err error
}

func (r *reader) need(n uint64) bool {
	if r.err != nil {
		return false
	}
	if r.off+n < r.off || r.off+n > uint64(len(r.b)) {
		r.err = errors.New("truncated")
		return false
	}
	return true
}

func (r *reader) u8() byte {
	if !r.need(1) {
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	r.off += 2
	return binary.LittleEndian.Uint16(r.b[r.off-2:])
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	r.off += 4
	return binary.LittleEndian.Uint32(r.b[r.off-4:])
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	r.off += 8
	return binary.LittleEndian.Uint64(r.b[r.off-8:])
}

func (r *reader) uleb() uint64 {
	var v uint64
	for shift := uint(0); ; shift += 7 {
		b := r.u8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		if b&0x80 == 0 {
			return v
		}
	}
}

func (r *reader) sleb() int64 {
	var v int64
	var shift uint
	for {
		b := r.u8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= int64(b&0x7f) << shift
		}
		shift += 7
		if b&0x80 == 0 {
			if shift < 64 && b&0x40 != 0 {
				v |= -1 << shift
			}
			return v
		}
	}
}

func (r *reader) cstr() string {
	start := r.off
	for r.err == nil {
		if r.u8() == 0 && r.err == nil {
			return string(r.b[start : r.off-1])
		}
	}
	return ""
}

func (r *reader) block() []byte {
	n := r.uleb()
	if !r.need(n) {
		return nil
	}
	r.off += n
	return r.b[r.off-n : r.off]
}

// pointer reads a value in encoding enc; base is the section's address,
// for PC-relative values. ok is false for an encoding it does not know.
func (r *reader) pointer(enc byte, base uint64) (uint64, bool) {
	if enc == peOmit {
		return 0, true
	}
	pos := base + r.off
	var v uint64
	switch enc & peFormat {
	case peAbsptr, peUdata8, peSdata8:
		v = r.u64()
	case peULEB:
		v = r.uleb()
	case peUdata2:
		v = uint64(r.u16())
	case peUdata4:
		v = uint64(r.u32())
	case peSLEB:
		v = uint64(r.sleb())
	case peSdata2:
		v = uint64(int64(int16(r.u16())))
	case peSdata4:
		v = uint64(int64(int32(r.u32())))
	default:
		return 0, false
	}
	switch enc & peApplied {
	case 0:
	case pePCRel:
		v += pos
	default:
		return 0, false
	}
	return v, true
}
