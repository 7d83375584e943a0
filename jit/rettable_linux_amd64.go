package jit

import (
	"encoding/binary"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
)

// The return table: how a return whose inline cache misses finds its
// target's fragment with one register borrowed.
//
// A return that is polymorphic (a function called from many places:
// free, malloc, memcpy) misses its site's inline cache on most calls. The
// indirect-branch table's lookup borrows rax, rcx and rdx, and each is a
// store and a load on the path of the value it carries: rax and rdx hold
// the function's result, which the caller reads next. A return has
// more room: the psABI gives the flags no role across it, and its target
// is on the stack, where it can be compared in place. So a return goes
// through a table of cache addresses indexed by its target's low bits,
//
//	mov  [ctx.rcx], rcx
//	mov  qword [ctx.site], exit   ; the site, for a miss
//	movzx ecx, word [rsp]         ; the target's low 16 bits
//	and  ecx, rtEntries-1
//	lea  rsp, [rsp+8]             ; the return's pop
//	jmp  [rcx*8+rt]               ; one indirect jump per site
//
// and the entry leads to the return entry of a fragment, which checks
// that the target is its own before going on, as DynamoRIO's IBL
// targets check their tag:
//
//	cmp  qword [rsp-8], tag       ; mov rcx, tag; cmp rcx, [rsp-8] above 2 GiB
//	jne  retMiss
//	mov  rcx, [ctx.rcx]           ; left out when rcx is dead at tag
//	jmp  body
//
// An entry that leads to no fragment leads to retMiss (gencode), which
// looks the target up in the indirect-branch table and exits to the
// dispatcher on a miss, naming the site (ctxSite), as the site's own
// lookup would. Entries are filled by the dispatcher, from the fragments
// that have a return entry: those whose tag follows a call instruction
// (isReturnAddress), each given one in its cold code. The table holds
// cache addresses only; the application's stack keeps the application's
// return addresses, so that longjmp, stack switching, signal frames and
// threads see what they see natively.
//
// The table is used where the tables lie below 2 GiB (addressed with a
// 32-bit displacement, as reachvm run places vmcode), for returns without
// an immediate and without Options.StrictFlags; Options.NoReturnTable
// turns it off, the baseline it is measured against.

// rtBits is the number of target bits that index the return table:
// 4,096 entries, 32 KiB, which the machine writes at start (every entry
// leads to retMiss) and at each flush.
const (
	rtBits    = 12
	rtEntries = 1 << rtBits
)

// emitRetMiss emits the return table's miss routine (see gencode.retMiss)
// into a: rdx takes the target, and the indirect-branch table's lookup
// follows, as a site's.
func emitRetMiss(a *amd64.Assembler, ctx uintptr, l layout, iblMiss uintptr) error {
	var errs firstErr
	try := errs.try
	c := func(off uintptr) amd64.Mem { return amd64.RIPRel(ctx + off) }
	table := int32(ctx + l.ibl)
	try(a.MovStore(c(gpr(amd64.RDX)), amd64.RDX))
	try(a.MovLoad(amd64.RDX, amd64.M(amd64.RSP, -8)))
	try(a.MovStore(c(gpr(amd64.RAX)), amd64.RAX))
	a.Movzx16(amd64.RAX, amd64.RDX)
	try(a.Lea32(amd64.RAX, amd64.MI(amd64.RAX, amd64.RAX, 1, 0)))
	try(a.MovLoad(amd64.RCX, amd64.Mem{Base: amd64.NoReg, Index: amd64.RAX, Scale: 8, Disp: table}))
	try(a.Lea(amd64.RCX, amd64.MI(amd64.RCX, amd64.RDX, 1, 0)))
	hit := a.Jrcxz()
	try(a.MovLoad(amd64.RAX, c(ctxSite)))
	try(a.JmpRel32(iblMiss))
	try(a.Bind(hit))
	try(a.MovLoad(amd64.RCX, c(gpr(amd64.RCX))))
	try(a.MovLoad(amd64.RDX, c(gpr(amd64.RDX))))
	try(a.JmpMem(amd64.Mem{Base: amd64.NoReg, Index: amd64.RAX, Scale: 8, Disp: table + 8}))
	return errs.err
}

// rtOn reports whether returns go through the return table.
func (m *Machine) rtOn() bool {
	return m.gen.retMiss != 0 && !m.opts.NoReturnTable && !m.opts.StrictFlags
}

// rtSite reports whether site s takes the return table when its inline
// cache misses.
func (t *translator) rtSite(s *site, ic *icSite) bool {
	return s.kind == siteRet && s.pop == 0 && !ic.keep && t.m.rtOn()
}

// resetRT points every entry of the return table at retMiss.
func (m *Machine) resetRT() {
	if m.gen.retMiss == 0 {
		return
	}
	rt := m.mem[m.lay.rt : m.lay.rt+8*rtEntries]
	for i := 0; i < len(rt); i += 8 {
		binary.LittleEndian.PutUint64(rt[i:], uint64(m.gen.retMiss))
	}
}

// rtSlot returns the return table's entry for target.
func (m *Machine) rtSlot(target uintptr) []byte {
	at := m.lay.rt + 8*(target&(rtEntries-1))
	return m.mem[at : at+8]
}

// setRT points the return table's entry for f's tag at f's return entry,
// if f has one; only where the entry leads to no fragment yet unless
// replace.
func (m *Machine) setRT(f *fragment, replace bool) {
	if f.retOff == 0 || f.dead || !m.rtOn() {
		return
	}
	e := m.rtSlot(f.tag)
	if !replace && binary.LittleEndian.Uint64(e) != uint64(m.gen.retMiss) {
		return
	}
	binary.LittleEndian.PutUint64(e, uint64(f.entry+uintptr(f.retOff)))
}

// clearRT points the return table's entry for f's tag back at retMiss if
// it leads to f.
func (m *Machine) clearRT(f *fragment) {
	if f.retOff == 0 || m.gen.retMiss == 0 {
		return
	}
	e := m.rtSlot(f.tag)
	if binary.LittleEndian.Uint64(e) == uint64(f.entry+uintptr(f.retOff)) {
		binary.LittleEndian.PutUint64(e, uint64(m.gen.retMiss))
	}
}

// rtJump emits a return site's jump through the return table (see the
// top of the file). On entry the application's state is the one before
// the return.
//
// saved, when not nil, is a jump that enters it with the application's
// rcx already in the context (and rcx free).
func (t *translator) rtJump(s *site, ic *icSite, saved *amd64.Fixup) error {
	a := t.a
	var errs firstErr
	try := errs.try
	try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	t.markFix(s.pc, inCtx(amd64.RCX))
	if saved != nil {
		try(a.Bind(*saved))
	}
	t.exits = append(t.exits, pendingExit{kind: exitSiteMiss, ic: ic, stubOff: a.Len(), inline: true})
	try(a.MovStoreImm32(t.ctx(ctxSite), int32(t.firstExit+uint32(len(t.exits)-1))))
	a.Raw(0x0f, 0xb7, 0x0c, 0x24) // movzx ecx, word [rsp]
	if rtBits < 16 {
		a.Raw(0x81, 0xe1) // and ecx, imm32
		a.Raw(binary.LittleEndian.AppendUint32(nil, rtEntries-1)...)
	}
	try(a.Lea(amd64.RSP, amd64.M(amd64.RSP, 8)))
	t.markFix(s.pc, fix{rsp: -8, inCtx: 1 << amd64.RCX, spill: noSpill})
	try(a.JmpMem(amd64.Mem{Base: amd64.NoReg, Index: amd64.RCX, Scale: 8, Disp: int32(t.m.ctx + t.m.lay.rt)}))
	return errs.err
}

// retEntry queues, for the cold code of a fragment whose tag follows a
// call, the return entry the return table leads to (see the top of the
// file): the return done, its target at [rsp-8], the application's rcx in
// the context.
func (t *translator) retEntry(tag uintptr) {
	if !t.m.rtOn() || t.transient || !t.m.isReturnAddress(tag) {
		return
	}
	rcxDead := t.tagDead.Has(uint8(amd64.RCX))
	t.cold = append(t.cold, func() error {
		a := t.a
		var errs firstErr
		try := errs.try
		t.retOff = a.Len()
		t.markFix(tag, inCtx(amd64.RCX))
		if tag < low {
			try(a.CmpMemImm32(amd64.M(amd64.RSP, -8), int32(tag)))
		} else {
			a.MovImm64(amd64.RCX, uint64(tag))
			try(a.CmpRegMem(amd64.RCX, amd64.M(amd64.RSP, -8)))
		}
		try(a.JccRel32(amd64.CondNE, t.m.gen.retMiss))
		if !rcxDead {
			try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		}
		t.markFix(tag, none)
		body := a.JmpLabel()
		try(a.BindAt(body, t.prefix))
		return errs.err
	})
}

// isReturnAddress reports whether the bytes before pc end with a call
// instruction, as a return address's do: a call rel32, or an indirect
// call through a register or memory (FF /2). A guess, read from the page
// pc is on: a wrong one costs a return entry that is never used, or a
// return that takes the indirect-branch table.
func (m *Machine) isReturnAddress(pc uintptr) bool {
	if pc&(mem.PageSize-1) < 7 {
		return false
	}
	c, err := m.codes.at(pc - 7)
	if err != nil || len(c) < 7 {
		return false
	}
	b := c[:7]
	if b[2] == 0xe8 {
		return true // call rel32
	}
	// FF /2 with a ModRM n bytes before pc, n its length with the
	// ModRM: mod 3 (a register) 2, mod 0 1..2 (+SIB, rip+disp32 6),
	// mod 1 3..4, mod 2 6..7.
	call := func(n int) (modrm byte, ok bool) {
		i := 7 - n
		if b[i] != 0xff || b[i+1]>>3&7 != 2 {
			return 0, false
		}
		return b[i+1], true
	}
	if r, ok := call(2); ok && (r>>6 == 3 || r>>6 == 0 && r&7 != 4 && r&7 != 5) {
		return true
	}
	if r, ok := call(3); ok && (r>>6 == 1 && r&7 != 4 || r>>6 == 0 && r&7 == 4) {
		return true
	}
	if r, ok := call(4); ok && r>>6 == 1 && r&7 == 4 {
		return true
	}
	if r, ok := call(6); ok && (r>>6 == 2 && r&7 != 4 || r>>6 == 0 && r&7 == 5) {
		return true
	}
	if r, ok := call(7); ok && (r>>6 == 2 && r&7 == 4 || r>>6 == 0 && r&7 == 4) {
		return true
	}
	return false
}
