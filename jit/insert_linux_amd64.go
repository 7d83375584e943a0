package jit

import (
	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// arenaFor returns the arena holding c's cells for code of this machine.
func (m *Machine) arenaFor(c *Counter) *cellArena {
	if c.scope == Shared {
		return m.cs.sharedCells()
	}
	if m.cells == nil {
		m.cells = newCellArena(m.v)
	}
	return m.cells
}

// emitCounter emits code that adds n to c's cell, before the instruction
// at pc; flagsDead says whether the flags are dead there.
func (t *translator) emitCounter(pc uintptr, c *Counter, n int32, flagsDead bool) error {
	cell, err := t.m.arenaFor(c).cell(c)
	if err != nil {
		return err
	}
	return t.emitAdd(pc, cell, n, c.scope == Shared, flagsDead)
}

// emitAdd emits code that adds n to the 8-byte cell at address cell,
// which must be within rel32 reach of the code cache, before the
// instruction at pc; locked makes the add atomic.
//
//	add      qword [rip+cell], n      ; flags dead (lock add if locked)
//
//	mov      [ctx.spill], rax         ; flags live, not locked
//	mov      rax, [rip+cell]
//	lea      rax, [rax+n]
//	mov      [rip+cell], rax
//	mov      rax, [ctx.spill]
//
//	mov      [ctx.spill], rax         ; flags live, locked
//	lahf
//	seto     al
//	lock add qword [rip+cell], n
//	add      al, 0x7f                 ; OF back (al was 0 or 1)
//	sahf                              ; SF ZF AF PF CF back
//	mov      rax, [ctx.spill]
//
// Nothing in it can fault (the cell is committed read-write memory); an
// asynchronous signal inside a sequence that borrows rax is delivered
// once the thread steps to the instruction's exact mark.
func (t *translator) emitAdd(pc, cell uintptr, n int32, locked, flagsDead bool) error {
	a := t.a
	at := amd64.RIPRel(cell)
	shared := locked
	if flagsDead {
		if shared {
			return a.LockAddMemImm(at, n)
		}
		return a.AddMemImm(at, n)
	}
	if err := a.MovStore(t.ctx(ctxSpill), amd64.RAX); err != nil {
		return err
	}
	spilled := none
	spilled.spill = int8(amd64.RAX)
	t.markFix(pc, spilled)
	if shared {
		a.Lahf()
		a.SetoAL()
		if err := a.LockAddMemImm(at, n); err != nil {
			return err
		}
		a.Raw(0x04, 0x7f) // add al, 0x7f
		a.Sahf()
	} else {
		if err := a.MovLoad(amd64.RAX, at); err != nil {
			return err
		}
		if err := a.Lea(amd64.RAX, amd64.M(amd64.RAX, n)); err != nil {
			return err
		}
		if err := a.MovStore(at, amd64.RAX); err != nil {
			return err
		}
	}
	return a.MovLoad(amd64.RAX, t.ctx(ctxSpill))
}
