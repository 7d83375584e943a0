package jit

import (
	"fmt"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// Meta instructions: code a client writes itself at an insertion point
// (Block.InsertMeta), with scratch registers reserved the way
// DynamoRIO's drreg reserves them: a register dead at the instruction if
// there is one (nothing to save), else one whose application value is
// kept in its context slot until the insertion's end. The instructions
// are the ones that leave the arithmetic flags alone (moves, loads,
// stores, lea), so an insertion never saves the flags; a client that
// needs arithmetic on them uses a counter or a clean call.
//
// A meta instruction that faults (a load from a bad address) is the
// client's bug; the signal layer takes it for the application's fault at
// the instruction, with the application's state made exact.

// Meta writes the meta instructions of one insertion. Its methods
// record the first error, which fails the translation.
type Meta struct {
	t  *translator
	pc uintptr
	in *Instr
	// dead are the registers dead at pc; reserved those handed out,
	// spilled those of them whose application values wait in their
	// context slots.
	dead, reserved, spilled uint16
	err                     error
}

// InsertMeta inserts, before instruction i, the meta instructions fn
// writes. fn runs when the block is emitted, after the Block event
// returned, and must not keep m.
func (b *Block) InsertMeta(i int, fn func(m *Meta)) {
	switch {
	case b.err != nil:
	case i < 0 || i >= len(b.instrs):
		b.err = fmt.Errorf("jit: client: InsertMeta at instruction %d of a block of %d", i, len(b.instrs))
	case fn == nil:
		b.err = fmt.Errorf("jit: client: InsertMeta of a nil function")
	default:
		b.ins = append(b.ins, insertion{at: i, kind: insertMeta, meta: fn})
	}
}

// emitMeta emits op's meta instructions before the instruction at pc,
// then restores the registers it spilled.
func (t *translator) emitMeta(pc uintptr, in *Instr, op *insertion, dead uint16) error {
	m := &Meta{t: t, pc: pc, in: in, dead: dead}
	t.markFix(pc, none)
	op.meta(m)
	for r := amd64.RAX; r <= amd64.R15; r++ {
		if m.spilled>>r&1 != 0 {
			m.try(t.a.MovLoad(r, t.ctx(gpr(r))))
		}
	}
	return m.err
}

func (m *Meta) try(err error) {
	if m.err == nil && err != nil {
		m.err = err
	}
}

func (m *Meta) fail(format string, args ...any) {
	if m.err == nil {
		m.err = fmt.Errorf("jit: client: meta instructions at %#x: "+format, append([]any{m.pc}, args...)...)
	}
}

// ReserveReg returns a register the insertion may use until its end: one
// dead at the instruction if there is one, else one whose application
// value goes to its context slot now and comes back at the end. It
// returns RSP (never a scratch register) and fails the translation when
// every register is reserved.
func (m *Meta) ReserveReg() Reg {
	best := -1
	for r := 0; r < 16; r++ {
		if r == int(RSP) || m.reserved>>r&1 != 0 {
			continue
		}
		if m.dead>>r&1 != 0 {
			best = r
			break
		}
		if best < 0 {
			best = r
		}
	}
	if best < 0 {
		m.fail("no register left to reserve")
		return RSP
	}
	m.reserved |= 1 << best
	if m.dead>>best&1 == 0 {
		m.spilled |= 1 << best
		m.try(m.t.a.MovStore(m.t.ctx(gpr(amd64.Reg(best))), amd64.Reg(best)))
	}
	return Reg(best)
}

// scratch checks that r is one of the insertion's reserved registers.
func (m *Meta) scratch(r Reg, op string) bool {
	if r > R15 || m.reserved>>r&1 == 0 {
		m.fail("%s writes %v, which is not reserved", op, r)
		return false
	}
	return true
}

// reg checks that r is a general register.
func (m *Meta) reg(r Reg, op string) bool {
	if r > R15 {
		m.fail("%s of %v", op, r)
		return false
	}
	return true
}

// AppReg sets dst, a reserved register, to the application's value of r
// before the instruction (r's context slot if the insertion reserved
// and spilled r, r itself otherwise).
func (m *Meta) AppReg(dst, r Reg) {
	if !m.scratch(dst, "AppReg") || !m.reg(r, "AppReg") {
		return
	}
	switch {
	case m.spilled>>r&1 != 0:
		m.try(m.t.a.MovLoad(dst.hw(), m.t.ctx(gpr(r.hw()))))
	case m.reserved>>r&1 != 0:
		m.fail("AppReg of %v, reserved where it was dead: it has no application value", r)
	case dst != r:
		m.t.a.MovRR(dst.hw(), r.hw())
	}
}

// MovImm sets dst, a reserved register, to v.
func (m *Meta) MovImm(dst Reg, v uint64) {
	if m.scratch(dst, "MovImm") {
		movImm(m.t.a, dst.hw(), v)
	}
}

// Load sets dst, a reserved register, to the 8 bytes at base+disp.
func (m *Meta) Load(dst, base Reg, disp int32) {
	if m.scratch(dst, "Load") && m.reg(base, "Load") {
		m.try(m.t.a.MovLoad(dst.hw(), amd64.M(base.hw(), disp)))
	}
}

// Store writes src's 8 bytes to base+disp.
func (m *Meta) Store(base Reg, disp int32, src Reg) {
	if m.reg(base, "Store") && m.reg(src, "Store") {
		m.try(m.t.a.MovStore(amd64.M(base.hw(), disp), src.hw()))
	}
}

// AddImm adds v to dst, a reserved register (a lea: the flags stay).
func (m *Meta) AddImm(dst Reg, v int32) {
	if m.scratch(dst, "AddImm") {
		m.try(m.t.a.Lea(dst.hw(), amd64.M(dst.hw(), v)))
	}
}

// LoadEA sets dst, a reserved register, to the effective address of the
// instruction's explicit memory operand, as ArgEA computes it. The
// operand's registers must not be ones the insertion changed.
func (m *Meta) LoadEA(dst Reg) {
	if !m.scratch(dst, "LoadEA") {
		return
	}
	ea, err := effAddr(m.in)
	if err != nil {
		m.fail("LoadEA: %v", err)
		return
	}
	for _, r := range []int8{ea.base, ea.index} {
		if r >= 0 && m.reserved>>r&1 != 0 {
			m.fail("LoadEA: the operand's register %v is reserved", Reg(r))
			return
		}
	}
	a := m.t.a
	base, index := operandRegs(ea)
	m.try(leaEA(a, dst.hw(), ea, base, index))
	if ea.fs {
		// lea dst, [dst + appFS] needs the base in a register: take it
		// through the context's FS slot with a second reserved one.
		tmp := m.ReserveReg()
		m.try(a.MovLoad(tmp.hw(), m.t.ctx(ctxAppFS)))
		m.try(a.Lea(dst.hw(), amd64.MI(dst.hw(), tmp.hw(), 1, 0)))
	}
}
