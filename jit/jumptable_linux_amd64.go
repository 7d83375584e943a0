package jit

import (
	"encoding/binary"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/mem"
)

// Jump tables: a switch compiled to an indirect jump through a table of
// read-only targets, indexed by a register of known range, is translated
// into an indirect jump through a table of cache addresses indexed by the
// same register:
//
//	movzx edx, r15b                 ; copied
//	movsxd rax, dword [rcx+rdx*4]   ; copied (rcx = lea [rip+T])
//	add rax, rcx                    ; copied
//	jmp rax                         ; becomes: jmp qword [xtable+rdx*8]
//
// so that the dispatch of an interpreter's switch costs what it costs
// natively, one indirect jump predicted by the processor, where a site
// would compare its inline cache, save registers, hash the target and
// load a table entry (a line that competes with the program's data for
// the cache). The application's registers and flags are left as the
// copied instructions made them, so the target's fragment is entered at
// its body. The translated table's entries start at the fragment of each
// target, or, for a target with none yet, at an ordinary site for the
// jump, with no inline cache, whose misses come back to the dispatcher;
// the entries for a target are patched when its fragment is installed
// (Machine.linkTables), and go back to the site when it is deleted.
//
// The forms recognised, on the fragment's own straight-line path (every
// instruction before the jump in the fragment ran before it, in order,
// so facts established there hold at the jump):
//
//	jmp  qword [T + idx*8]                          ; T absolute, or base+disp with base = lea [rip+X]
//	mov  r, qword [T + idx*8]; ...; jmp r
//	movsxd r, dword [B + idx*4]; ...; add r, B; jmp r  ; B = lea [rip+T], the PIC form
//	movsxd r, dword [B + r*4]; add r, B; jmp r          ; the same, r its own index (gcc's)
//
// where idx's range is bounded by what defined it (movzx from a byte, a
// 32-bit and with a constant) or by a `cmp idx, imm; ja` (or jae) whose
// fall-through the fragment followed, carried through 32-bit register
// moves. The table must lie in memory that is readable and not writable
// (a file's or an anonymous read-only mapping); its pages go into the
// fragment's (translator.pages), so that a change to them (munmap,
// mprotect, mremap) deletes the fragment like a change to its code.
//
// In the last form the index is gone by the jump: the load is preceded by
// a store of it to the context (ctxTableIndex), and the jump borrows rax
// to index the translated table with it,
//
//	mov [ctx.rax], rax; mov rax, [ctx.index]; jmp [xtable+rax*8]
//
// whose entries lead to the targets' indirect-branch prefixes, which give
// rax back (unless it is dead there), and, for targets with no fragment,
// to a restore of rax before the ordinary site. The saved index is
// trusted only on the fragment's straight-line path from its store (one
// such store is trusted at a time): a signal handler run in between
// resumes the application through a new fragment starting at the
// interrupted instruction, whose path holds no store.
//
// The translated table needs an absolute 32-bit address: the cache must
// lie below 2 GiB (reachvm run places vmcode there); elsewhere the
// jump takes an ordinary site.

// maxJumpTable bounds the entries of a translated table (a range larger
// than that, a 16-bit index, takes an ordinary site).
const maxJumpTable = 1024

// jumpTable is a translated jump table: n cache addresses at xtable, one
// per index, for the application targets in targets.
type jumpTable struct {
	// targets are the application addresses the entries stand for, read
	// from the application's table at translation time.
	targets []uintptr
	// tableOff is the offset of the translated table in its fragment
	// until install, xtable its address after; fallback is the
	// address of the ordinary site entries without a fragment go to
	// (an offset until install).
	tableOff, fallbackOff int
	xtable, fallback      uintptr
	// owner is the fragment holding the table, unit its unit.
	owner *fragment
	unit  *codeUnit
	// prefix is set for a table whose jump borrows rax (the saved
	// index's form): its entries lead to the targets' indirect-branch
	// prefixes, which give rax back, not to their bodies.
	prefix bool
}

// entry returns where jt's entries for f lead.
func (jt *jumpTable) entry(f *fragment) uintptr {
	if jt.prefix {
		return f.entry
	}
	return f.body()
}

// setEntry points entry i of tab at to.
func (tab *jumpTable) setEntry(i int, to uintptr) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(to))
	tab.unit.write(tab.xtable+8*uintptr(i), b[:])
}

// regFact is what the translator knows of a register's value at the
// current point of a fragment's straight-line path.
type regFact struct {
	kind factKind
	// val is a constant's value (factConst), or the table's address.
	val uintptr
	// max bounds the register's value (unsigned, 64 bits) for
	// factBound; max32 and max8 bound its low 32 and 8 bits, whatever
	// the kind (^0 for unknown).
	max         uint64
	max32, max8 uint64
	// idx and n are a table load's index register and its range
	// [0, n); base is the register the table's address was read from
	// (noBase when it was a constant), whose value val was guessed
	// from and which the jump compares with it before using the
	// translated table.
	idx, base uint8
	n         int
	// guess is the base register's value the table was read at.
	guess uintptr
	// saved is set for a table load whose index register was its
	// destination: the index is in ctxTableIndex, and idx means
	// nothing. At most one fact has it.
	saved bool
}

// noBase marks a table address known as a constant.
const noBase = 0xff

type factKind uint8

const (
	factNone factKind = iota
	// factConst: the register holds val.
	factConst
	// factBound: the register's value is at most max.
	factBound
	// factLoad8: the register holds qword [val + idx*8].
	factLoad8
	// factLoad4: the register holds sign-extended dword [val + idx*4].
	factLoad4
	// factRel4: the register holds val + sign-extended dword [val +
	// idx*4].
	factRel4
)

// cmpFact is the compare of the instruction before: register reg's low
// width bits against the unsigned imm.
type cmpFact struct {
	valid bool
	reg   uint8
	width uint8
	imm   uint64
}

// facts is the straight-line state of the fragment being translated.
type facts struct {
	r   [16]regFact
	cmp cmpFact
}

func unknownFact() regFact { return regFact{max: ^uint64(0), max32: ^uint64(0), max8: ^uint64(0)} }

// reset forgets everything.
func (fs *facts) reset() {
	for i := range fs.r {
		fs.r[i] = unknownFact()
	}
	fs.cmp.valid = false
}

// clobber forgets register r and every fact that depends on it.
func (fs *facts) clobber(r uint8) {
	fs.r[r] = unknownFact()
	for i := range fs.r {
		if k := fs.r[i].kind; (k == factLoad8 || k == factLoad4 || k == factRel4) && (fs.r[i].idx == r && !fs.r[i].saved || fs.r[i].base == r) {
			fs.r[i] = unknownFact()
		}
	}
}

// copyReg records a register move into dst from src: the whole fact of
// a 64-bit move when it is a constant or a bound, src's low 32 bits'
// bound for a 32-bit one (which zero-extends).
func (fs *facts) copyReg(dst, src uint8, w bool) {
	f := fs.r[src]
	fs.clobber(dst)
	if w {
		if f.kind == factConst || f.kind == factBound {
			fs.r[dst] = f
		}
		return
	}
	fs.setBound(dst, f.max32)
}

// bound returns the bound of register r's full value.
func (fs *facts) bound(r uint8) uint64 {
	f := &fs.r[r]
	switch f.kind {
	case factBound:
		// A compare of the low bits bounds the whole when the bits
		// above them are known to be zero.
		switch {
		case f.max <= 255:
			return min(f.max, f.max8)
		case f.max <= 1<<32-1:
			return min(f.max, f.max32)
		}
		return f.max
	case factConst:
		return uint64(f.val)
	}
	return ^uint64(0)
}

// setBound records that r was written whole with a value at most max.
func (fs *facts) setBound(r uint8, max uint64) {
	fs.clobber(r)
	f := &fs.r[r]
	f.kind, f.max = factBound, max
	f.max32 = min(max, 1<<32-1)
	f.max8 = min(max, 255)
}

// track updates the facts for a copied instruction b (decoded in) at
// pc, whose next instruction is at next.
func (t *translator) track(b []byte, in *decode.Inst, next uintptr) {
	fs := &t.facts
	fs.cmp.valid = false
	if in.Encoding != decode.Legacy || in.Prefixes&(decode.PF2|decode.PF3|decode.PLock|decode.PSeg|decode.P67) != 0 {
		if _, _, ok := decode.Effects(b, in); ok {
			return // a nop
		}
		fs.reset()
		return
	}
	w := in.REX&8 != 0
	w16 := in.Prefixes&decode.P66 != 0 && !w
	reg := in.RegField()
	rm := uint8(0xff)
	if in.HasModRM() && in.Mod() == 3 {
		rm = in.ModRM&7 | in.REX&1<<3
	}
	// write forgets what the instruction writes: register r, and
	// without a REX prefix the register whose second byte (ah..bh) a
	// byte operand r of 4 to 7 would name.
	write := func(r uint8) {
		if r == 0xff {
			return
		}
		fs.clobber(r)
		if in.REXOff < 0 && r >= 4 && r < 8 {
			fs.clobber(r - 4)
		}
	}
	switch in.Map {
	case decode.Map1Byte:
		op := in.Op
		switch {
		case op == 0x90 && in.REX&1 == 0:
			return
		case op <= 0x3f && op&7 <= 5 && op != 0x0f:
			alu := op >> 3
			switch op & 7 {
			case 0, 1:
				if alu != 7 {
					write(rm)
				}
			case 2, 3:
				if alu != 7 {
					write(reg)
				}
			case 4, 5:
				if alu == 7 {
					// cmp al/eax/rax, imm
					imm, width := t.immOf(b, in, op == 0x3c)
					fs.cmp = cmpFact{valid: true, reg: 0, width: width, imm: imm}
					return
				}
				write(0)
			}
			return
		case op >= 0x50 && op <= 0x57: // push
			return
		case op >= 0x58 && op <= 0x5f: // pop
			write(op&7 | in.REX&1<<3)
			return
		case op == 0x63: // movsxd r, r/m32
			write(reg)
			return
		case op == 0x80 || op == 0x81 || op == 0x83:
			ext := in.ModRM >> 3 & 7
			if ext == 7 {
				if rm != 0xff && !w16 {
					imm, width := t.immOf(b, in, op == 0x80)
					if width == 8 && in.REXOff < 0 && rm >= 4 {
						return // ah..bh
					}
					fs.cmp = cmpFact{valid: true, reg: rm, width: width, imm: imm}
				}
				return
			}
			write(rm)
			if ext == 4 && rm != 0xff && op != 0x80 && !w16 {
				// and r32/r64, imm: the result is at most imm when
				// the immediate is not negative.
				imm, _ := t.immOf(b, in, false)
				if int64(imm) >= 0 && (imm < 1<<31 || !w) {
					fs.setBound(rm, imm)
				}
			}
			return
		case op == 0x84 || op == 0x85 || op == 0xa8 || op == 0xa9:
			return
		case op == 0x86 || op == 0x87:
			write(reg)
			write(rm)
			return
		case op == 0x88 || op == 0x89 || op == 0x8a || op == 0x8b:
			t.trackMov(b, in, op, reg, rm, w, w16)
			return
		case op == 0x8d: // lea
			write(reg)
			if in.RIPRelative() && w {
				f := &fs.r[reg]
				f.kind, f.val = factConst, next+uintptr(int64(in.Disp(b)))
			}
			return
		case op == 0x98:
			write(0)
			return
		case op == 0x99:
			write(2)
			return
		case op >= 0xb0 && op <= 0xbf:
			r := op&7 | in.REX&1<<3
			if op < 0xb8 && in.REXOff < 0 && r >= 4 {
				r -= 4
			}
			write(r)
			return
		case op == 0xc0 || op == 0xc1 || op == 0xd0 || op == 0xd1 || op == 0xc6 || op == 0xc7:
			write(rm)
			return
		case op == 0xf6 || op == 0xf7:
			switch ext := in.ModRM >> 3 & 7; ext {
			case 0, 1: // test
				return
			case 2, 3: // not, neg
				write(rm)
				return
			}
			write(0)
			write(2)
			return
		case op == 0xff:
			if ext := in.ModRM >> 3 & 7; ext <= 1 {
				write(rm)
				return
			}
		}
	case decode.Map0F:
		op := in.Op
		switch {
		case op == 0x1f:
			return
		case op >= 0x40 && op <= 0x4f, op == 0xaf:
			write(reg)
			return
		case op >= 0x90 && op <= 0x9f:
			write(rm)
			return
		case op == 0xb6 || op == 0xb7 || op == 0xbe || op == 0xbf:
			// movzx r32, r/m8 (r/m16): at most 255 (65535), or what
			// the source byte is known to be below.
			var max uint64 = ^uint64(0)
			switch {
			case op == 0xb6 && !w16:
				max = 255
				if rm != 0xff && !(in.REXOff < 0 && rm >= 4) {
					max = min(max, fs.r[rm].max8)
				}
			case op == 0xb7 && !w16:
				max = 65535
			}
			if max != ^uint64(0) {
				fs.setBound(reg, max)
			} else {
				write(reg)
			}
			return
		}
	}
	// Anything else may write any register.
	fs.reset()
}

// trackMov handles mov (88, 89, 8A, 8B).
func (t *translator) trackMov(b []byte, in *decode.Inst, op, reg, rm uint8, w, w16 bool) {
	fs := &t.facts
	switch op {
	case 0x88:
		if rm != 0xff {
			fs.clobber(rm)
			if in.REXOff < 0 && rm >= 4 && rm < 8 {
				fs.clobber(rm - 4) // ah..bh
			}
		}
		return
	case 0x8a:
		fs.clobber(reg)
		if in.REXOff < 0 && reg >= 4 && reg < 8 {
			fs.clobber(reg - 4)
		}
		return
	case 0x89:
		if rm == 0xff {
			return // a store
		}
		if w16 {
			fs.clobber(rm)
			return
		}
		// mov rm, reg: a copy.
		fs.copyReg(rm, reg, w)
		return
	}
	// 8B: mov reg, r/m.
	if w16 {
		fs.clobber(reg)
		return
	}
	if rm != 0xff {
		fs.copyReg(reg, rm, w)
		return
	}
	fs.clobber(reg)
	if !w {
		fs.setBound(reg, 1<<32-1)
		return
	}
	if tab, idx, base, guess, n, ok := t.tableOperand(b, in, 8); ok && idx != reg && base != reg {
		f := &fs.r[reg]
		f.kind, f.val, f.idx, f.base, f.guess, f.n = factLoad8, tab, idx, base, guess, n
	}
}

// immOf returns an ALU instruction's immediate as an unsigned value of
// the operand's width, and the width: 8 for a byte operation (byteOp),
// else 16, 32 or 64, the immediate sign-extended to it.
func (t *translator) immOf(b []byte, in *decode.Inst, byteOp bool) (uint64, uint8) {
	var v int64
	switch in.ImmLen {
	case 1:
		v = int64(int8(b[in.ImmOff]))
	case 2:
		v = int64(int16(binary.LittleEndian.Uint16(b[in.ImmOff:])))
	case 4:
		v = int64(int32(binary.LittleEndian.Uint32(b[in.ImmOff:])))
	}
	switch {
	case byteOp:
		return uint64(uint8(v)), 8
	case in.REX&8 != 0:
		return uint64(v), 64
	case in.Prefixes&decode.P66 != 0:
		return uint64(uint16(v)), 16
	}
	return uint64(uint32(v)), 32
}

// trackJcc updates the facts for a conditional branch whose fall-through
// the fragment follows: after `cmp r, imm`, ja (jae) not taken bounds r
// by imm (imm-1).
func (t *translator) trackJcc(cond uint8) {
	fs := &t.facts
	c := fs.cmp
	fs.cmp.valid = false
	if !c.valid {
		return
	}
	max := c.imm
	switch cond {
	case 0x7: // ja: not taken when r <= imm
	case 0x3: // jae: not taken when r < imm
		if max == 0 {
			return
		}
		max--
	default:
		return
	}
	f := &fs.r[c.reg]
	switch c.width {
	case 8:
		f.max8 = min(f.max8, max)
	case 32:
		f.max32 = min(f.max32, max)
		f.max8 = min(f.max8, max)
	case 64:
		if f.kind == factNone || f.kind == factBound {
			f.kind = factBound
			f.max = min(f.max, max)
		}
		f.max32 = min(f.max32, max)
		f.max8 = min(f.max8, max)
	}
}

// trackAdd handles `add r64, r64` for the PIC form: a factLoad4 plus
// its own table's address becomes a factRel4. It returns false when the
// instruction is not such an add (track then handles it).
func (t *translator) trackAdd(b []byte, in *decode.Inst) bool {
	if in.Encoding != decode.Legacy || in.Map != decode.Map1Byte || in.REX&8 == 0 ||
		in.Prefixes != 0 || !in.HasModRM() || in.Mod() != 3 || (in.Op != 0x01 && in.Op != 0x03) {
		return false
	}
	reg := in.RegField()
	rm := in.ModRM&7 | in.REX&1<<3
	dst, src := rm, reg
	if in.Op == 0x03 {
		dst, src = reg, rm
	}
	fs := &t.facts
	d, s := fs.r[dst], fs.r[src]
	fs.cmp.valid = false
	fs.clobber(dst)
	same := d.base == noBase && s.kind == factConst && s.val == d.val || d.base != noBase && d.base == src
	if d.kind == factLoad4 && same && (d.idx != dst || d.saved) {
		f := &fs.r[dst]
		f.kind, f.val, f.idx, f.base, f.guess, f.n, f.saved = factRel4, d.val, d.idx, d.base, d.guess, d.n, d.saved
	}
	return true
}

// trackLoad4 handles `movsxd r64, dword [B + idx*4]` for the PIC form.
// It returns false when the instruction is not one.
func (t *translator) trackLoad4(b []byte, in *decode.Inst) bool {
	if in.Encoding != decode.Legacy || in.Map != decode.Map1Byte || in.Op != 0x63 || in.REX&8 == 0 ||
		in.Prefixes != 0 || !in.HasModRM() || in.Mod() == 3 {
		return false
	}
	reg := in.RegField()
	tab, idx, base, guess, n, ok := t.tableOperand(b, in, 4)
	fs := &t.facts
	fs.cmp.valid = false
	saved := t.indexSaved
	t.indexSaved = false
	if saved {
		// The store just emitted replaces whatever index was saved
		// before.
		for i := range fs.r {
			if fs.r[i].saved {
				fs.r[i] = unknownFact()
			}
		}
	}
	fs.clobber(reg)
	if ok && base != reg && (idx != reg || saved) {
		f := &fs.r[reg]
		f.kind, f.val, f.idx, f.base, f.guess, f.n, f.saved = factLoad4, tab, idx, base, guess, n, saved
	}
	return true
}

// saveTableIndex emits, before a copied `movsxd r64, dword [B + r*4]`
// that may load a jump table's entry over its own index register, the
// store of the index to ctxTableIndex that the jump through the table
// will read (see the top of the file), and tells trackLoad4 so.
func (t *translator) saveTableIndex(b []byte, in *decode.Inst) error {
	if t.transient || t.m.opts.NoJumpTables || !t.m.absTable() || t.a.Base+t.room >= low ||
		in.Encoding != decode.Legacy || in.Map != decode.Map1Byte || in.Op != 0x63 || in.REX&8 == 0 ||
		in.Prefixes != 0 || !in.HasModRM() || in.Mod() == 3 {
		return nil
	}
	reg := in.RegField()
	if _, idx, base, _, _, ok := t.tableOperand(b, in, 4); !ok || idx != reg || base == reg {
		return nil
	}
	t.indexSaved = true
	return t.a.MovStore(t.ctx(ctxTableIndex), amd64.Reg(reg))
}

// tableOperand decodes a memory operand [base + idx*scale + disp] with
// scale elem, base absent or a register holding a known constant and
// idx a register of known range, into the table's address, the index
// register and the number of entries.
func (t *translator) tableOperand(b []byte, in *decode.Inst, elem uint8) (tab uintptr, idx, baseReg uint8, guess uintptr, n int, ok bool) {
	if in.Mod() == 3 || in.ModRM&7 != 4 || in.Prefixes&decode.P67 != 0 || fsOrGS(in) {
		return 0, 0, 0, 0, 0, false
	}
	sib := b[in.ModRMOff+1]
	if 1<<(sib>>6) != elem {
		return 0, 0, 0, 0, 0, false
	}
	idx = sib>>3&7 | in.REX>>1&1<<3
	if idx == 4 {
		return 0, 0, 0, 0, 0, false
	}
	fs := &t.facts
	tab, baseReg = uintptr(int64(in.Disp(b))), noBase
	if base := sib & 7; !(base == 5 && in.Mod() == 0) {
		r := base | in.REX&1<<3
		if r == idx || r == uint8(amd64.RSP) {
			return 0, 0, 0, 0, 0, false
		}
		if fs.r[r].kind == factConst {
			tab += fs.r[r].val
		} else {
			// Set before the fragment: guessed from its value now,
			// the fragment's entry (fragments are translated when
			// execution reaches them), and checked by the jump.
			guess = uintptr(t.m.reg(amd64.Reg(r)))
			tab += guess
			baseReg = r
		}
	}
	max := fs.bound(idx)
	if max >= maxJumpTable {
		return 0, 0, 0, 0, 0, false
	}
	return tab, idx, baseReg, guess, int(max) + 1, true
}

// fsOrGS reports whether the instruction has an FS or GS override (the
// others are no-ops in 64-bit mode, 3E also CET's NOTRACK).
func fsOrGS(in *decode.Inst) bool {
	return in.Prefixes&decode.PSeg != 0 && (in.Seg == 0x64 || in.Seg == 0x65)
}

// trackInst updates the facts for a copied plain instruction.
func (t *translator) trackInst(b []byte, in *decode.Inst, next uintptr) {
	if t.trackLoad4(b, in) || t.trackAdd(b, in) {
		return
	}
	t.track(b, in, next)
}

// jumpTableSite translates an indirect jump whose target comes from a
// jump table (see the top of the file), reporting false, having emitted
// nothing, when it is not one the translator can take.
func (t *translator) jumpTableSite(b []byte, in *decode.Inst, next uintptr) (bool, error) {
	if t.transient || t.m.opts.NoJumpTables || in.Encoding != decode.Legacy ||
		in.Prefixes&(decode.P66|decode.P67) != 0 || fsOrGS(in) {
		return false, nil
	}
	// The translated table is addressed absolutely: the fragment and
	// its table must lie below 2 GiB.
	if t.a.Base+t.room >= low {
		return false, nil
	}
	var tab, guess uintptr
	var idx, base uint8
	var n int
	var rel, saved bool
	fs := &t.facts
	if in.Mod() == 3 {
		f := fs.r[in.ModRM&7|in.REX&1<<3]
		switch f.kind {
		case factLoad8:
		case factRel4:
			rel = true
		default:
			return false, nil
		}
		tab, idx, base, guess, n, saved = f.val, f.idx, f.base, f.guess, f.n, f.saved
	} else {
		var ok bool
		if tab, idx, base, guess, n, ok = t.tableOperand(b, in, 8); !ok {
			return false, nil
		}
	}
	if base != noBase && (idx == uint8(amd64.RCX) && !saved || base == uint8(amd64.RCX)) {
		return false, nil // the guard borrows rcx
	}
	elem := uintptr(8)
	if rel {
		elem = 4
	}
	raw, ok := t.readOnly(tab, uintptr(n)*elem)
	if !ok {
		return false, nil
	}
	targets := make([]uintptr, n)
	for i := range targets {
		if rel {
			targets[i] = tab + uintptr(int64(int32(binary.LittleEndian.Uint32(raw[4*i:]))))
		} else {
			targets[i] = uintptr(binary.LittleEndian.Uint64(raw[8*i:]))
		}
	}
	t.note(tab, tab+uintptr(n)*elem)
	a := t.a
	var errs firstErr
	try := errs.try
	var other amd64.Fixup
	pc := next - uintptr(in.Len)
	flagsGuard := base != noBase && t.flagsDeadAtAll(targets)
	if saved && base != noBase && !flagsGuard {
		// Borrowing rcx for the guard and rax for the index costs
		// more than a site, whose inline cache does well on a
		// switch with few successors per copy (k_interp:
		// BenchmarkJumpTables).
		return false, nil
	}
	switch {
	case flagsGuard:
		// The guess must hold, compared with the flags, which no
		// target reads before writing them all:
		//
		//	cmp base, [rip+guess]; jne site; jmp [xtable+idx*8]
		//
		// Not exact in between: a signal is delivered at the target.
		t.markFix(pc, none)
		try(a.CmpRegMem(amd64.Reg(base), amd64.RIPRel(a.PC()))) // fixed by literals
		t.lits = append(t.lits, literal{v: uint64(guess), ref: a.Len()})
		other = a.JccLabel(amd64.CondNE)
	case base != noBase:
		// The guess must hold: base - guess is 0, computed in rcx,
		// borrowed, the flags untouched.
		//
		//	mov [ctx.rcx], rcx; mov rcx, -guess; lea rcx, [rcx+base]
		//	jrcxz hit; mov rcx, [ctx.rcx]; jmp site
		//	hit: mov rcx, [ctx.rcx]; jmp [xtable+idx*8]
		try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
		t.markFix(pc, inCtx(amd64.RCX))
		a.MovImm64(amd64.RCX, uint64(-int64(guess)))
		try(a.Lea(amd64.RCX, amd64.MI(amd64.RCX, amd64.Reg(base), 1, 0)))
		hit := a.Jrcxz()
		try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		t.markExact(pc)
		other = a.JmpLabel()
		try(a.Bind(hit))
		t.markFix(pc, inCtx(amd64.RCX))
		try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		t.markExact(pc)
	}
	index := amd64.Reg(idx)
	if saved {
		try(a.MovStore(t.ctx(gpr(amd64.RAX)), amd64.RAX))
		t.markFix(pc, inCtx(amd64.RAX))
		try(a.MovLoad(amd64.RAX, t.ctx(ctxTableIndex)))
		index = amd64.RAX
	}
	// jmp qword [disp32 + idx*8]: the displacement is fixed once the
	// table's place is known.
	try(a.JmpMem(amd64.Mem{Base: amd64.NoReg, Index: index, Scale: 8, Disp: 0x7fffffff}))
	if errs.err != nil {
		return false, errs.err
	}
	jt := &jumpTable{targets: targets, fallbackOff: a.Len(), prefix: saved}
	t.tables = append(t.tables, pendingTable{jt: jt, dispEnd: a.Len()})
	if saved {
		// Entries of targets with no fragment: rax back first.
		t.markFix(pc, inCtx(amd64.RAX))
		if err := a.MovLoad(amd64.RAX, t.ctx(gpr(amd64.RAX))); err != nil {
			return false, err
		}
	}
	if base != noBase {
		if err := a.Bind(other); err != nil {
			return false, err
		}
	}
	// The ordinary site, with no inline cache: where the entries of
	// targets with no fragment yet go (with the compare's flags after a
	// flags guard: not exact).
	if flagsGuard {
		t.markFix(pc, none)
	} else {
		t.markExact(pc)
	}
	st := &site{kind: siteJmp, b: b, in: in, next: next, pc: next - uintptr(in.Len), noIC: true, jt: jt}
	return true, t.site(st, false)
}

// flagsDeadAtAll reports whether the flags are dead at every target
// (Machine.flagsDeadAt).
func (t *translator) flagsDeadAtAll(targets []uintptr) bool {
	if t.m.opts.StrictFlags {
		return false
	}
	for _, tg := range targets {
		if !t.m.flagsDeadAt(tg) {
			return false
		}
	}
	return true
}

// pendingTable is a translated table of the fragment being built, whose
// jump's displacement ends at dispEnd.
type pendingTable struct {
	jt      *jumpTable
	dispEnd int
}

// emitTables lays out the fragment's translated tables after its code,
// 8-byte aligned, and fixes the jumps' displacements: each entry starts
// at its target's fragment, if it has one, or at the site.
func (t *translator) emitTables(self *fragment) {
	a := t.a
	for _, p := range t.tables {
		for a.Len()%8 != 0 {
			a.Int3()
		}
		jt := p.jt
		jt.tableOff = a.Len()
		putRel32(a.Bytes()[p.dispEnd-4:], int32(a.PC()))
		fallback := a.Base + uintptr(jt.fallbackOff)
		for _, target := range jt.targets {
			to := fallback
			if f := t.m.frags[target]; f != nil && !f.dead {
				to = jt.entry(f)
			} else if target == self.tag && jt.prefix {
				to = a.Base
			} else if target == self.tag {
				to = a.Base + uintptr(t.prefix)
			}
			var e [8]byte
			binary.LittleEndian.PutUint64(e[:], uint64(to))
			a.Raw(e[:]...)
		}
	}
}

// readOnly returns the n bytes at p if they lie in one application
// mapping that is readable and not writable (a file's or anonymous,
// private), whose contents only a memory call can change.
func (t *translator) readOnly(p, n uintptr) ([]byte, bool) {
	if n == 0 || p+n < p {
		return nil, false
	}
	s, ok := t.m.v.Space().Lookup(p)
	if !ok || s.Kind != aspacem.KindFile && s.Kind != aspacem.KindAnon ||
		s.Prot&mem.ProtRead == 0 || s.Prot&mem.ProtWrite != 0 || p+n > s.End {
		return nil, false
	}
	return rawmem.Bytes(p, n), true
}

// installTables records the tables of f, just installed, and links the
// entries of other fragments' tables that wait for f's tag.
func (m *Machine) installTables(f *fragment) {
	t := &m.t
	if len(t.tables) > 0 && m.waiting == nil {
		m.waiting = make(map[uintptr][]*jumpTable)
	}
	for _, p := range t.tables {
		jt := p.jt
		jt.xtable = f.entry + uintptr(jt.tableOff)
		jt.fallback = f.entry + uintptr(jt.fallbackOff)
		jt.owner, jt.unit = f, f.unit
		m.stats.JumpTables++
		for _, target := range jt.targets {
			g := m.frags[target]
			if target == f.tag {
				g = f
			}
			if g != nil && !g.dead {
				g.tables = appendOnce(g.tables, jt)
				continue
			}
			m.waiting[target] = appendOnce(m.waiting[target], jt)
		}
	}
	if f.dead {
		return
	}
	if w := m.waiting[f.tag]; w != nil {
		delete(m.waiting, f.tag)
		for _, jt := range w {
			m.linkTable(jt, f)
		}
	}
}

// appendOnce appends jt to s unless it is already its last element
// (entries for one target are usually consecutive).
func appendOnce(s []*jumpTable, jt *jumpTable) []*jumpTable {
	if n := len(s); n > 0 && s[n-1] == jt {
		return s
	}
	for _, x := range s {
		if x == jt {
			return s
		}
	}
	return append(s, jt)
}

// linkTable points the entries of jt for f's tag at f.
func (m *Machine) linkTable(jt *jumpTable, f *fragment) {
	if jt.owner == nil || jt.owner.dead || f.dead {
		return
	}
	linked := false
	for i, target := range jt.targets {
		if target == f.tag {
			jt.setEntry(i, jt.entry(f))
			linked = true
		}
	}
	if linked {
		f.tables = appendOnce(f.tables, jt)
		m.stats.Links++
	}
}

// unlinkTables sends the entries that lead to f, being deleted, back to
// their sites, and has them wait for f's tag's next fragment.
func (m *Machine) unlinkTables(f *fragment) {
	for _, jt := range f.tables {
		if jt.owner == nil || jt.owner.dead {
			continue
		}
		for i, target := range jt.targets {
			if target == f.tag {
				jt.setEntry(i, jt.fallback)
			}
		}
		if m.waiting == nil {
			m.waiting = make(map[uintptr][]*jumpTable)
		}
		m.waiting[f.tag] = appendOnce(m.waiting[f.tag], jt)
	}
	f.tables = nil
}
