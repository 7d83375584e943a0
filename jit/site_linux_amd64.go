package jit

import (
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/mem"
)

// Indirect branches: returns, indirect calls and indirect jumps.
//
// Each one becomes a site: an inline cache of up to Options.InlineCache
// targets it has learned (CallInlineCache for calls), compared in turn and
// jumped to directly, in front of the shared table of DynamoRIO's IBL
// (16-byte entries {-tag, fragment} indexed by the target's low 16 bits),
// whose hits jump through a per-site indirect jmp so that the processor
// predicts each site on its own.
//
// Returns and calls take the cmp form (cmpSite): the target is compared
// where it is, in its register or memory operand, with no register
// borrowed and, the flags being dead across calls and returns by the
// psABI, none saved; a hit is a je straight to the fragment. Indirect
// jumps, across which the flags may be live (a switch's jump table), and
// the few calls and returns the cmp form cannot take compare through a
// borrowed register, rcx, with flag-free instructions:
//
// In the narrow form, used where the code lives below 2 GiB (a static
// executable, or vmcode placed low, as DynamoRIO's vm_base 0x3f000000
// places it), targets fit a 32-bit displacement:
//
//	mov  [ctx.rcx], rcx
//	mov  rcx, [rsp]           ; a return's target (mov rcx, r/m for calls and jumps)
//	lea  rcx, [rcx+d1]        ; rcx = target-pred1
//	jrcxz hit1
//	lea  rcx, [rcx+d2]        ; rcx = target-pred2
//	jrcxz hit2
//	jmp  learn                ; patched to lookup once every slot is set
//	hit1: lea rsp, [rsp+8]    ; the return's pop (push A for a call)
//	mov  rcx, [ctx.rcx]       ; a no-op when rcx is dead at the target
//	jmp  fragment1            ; rel32
//
// In the wide form, for code above 2 GiB, each slot is `mov rcx, -pred
// (imm64); lea rcx, [rcx+reg]`, reg the register a `jmp reg` or `call
// reg` names, or else rdx, into which the target is loaded. Empty slots
// hold values that match no canonical address.
//
// The learn and lookup paths sit out of line (in the fragment's cold
// code). The dispatcher fills a slot each time the site exits through
// learn, and points learn at lookup once every slot is filled.

// siteKind says which instruction a site translates.
type siteKind uint8

const (
	siteRet siteKind = iota
	siteCall
	siteJmp
)

// site describes one indirect branch being translated.
type site struct {
	kind siteKind
	// b and in are the call's or jump's instruction (for its r/m
	// operand), next the address after it (the return address of a
	// call, and what RIP-relative operands count from).
	b    []byte
	in   *decode.Inst
	next uintptr
	// pop is what a return adds to rsp besides the return address (ret
	// imm16).
	pop int32
	// pc is the branch's own address, which the state-translation
	// marks of the site's code stand for.
	pc uintptr
	// noIC makes the site learn no targets: a jump table's site, whose
	// table links its targets instead (jt).
	noIC bool
	jt   *jumpTable
}

// siteForm is the shape of an emitted site.
type siteForm uint8

const (
	formWide   siteForm = iota // 64-bit targets in rdx, compared through rcx
	formNarrow                 // 32-bit targets compared through rcx
	formCmp                    // returns and calls compared in place with cmp
)

// icSite locates the patchable parts of an emitted site, as offsets in
// its fragment until install makes them addresses.
type icSite struct {
	form siteForm
	// narrow is set for the 32-bit forms. keep is set for a cmp site
	// that saves the flags (Options.StrictFlags), whose hits go through
	// stubs; lit for one whose slots compare a register with 64-bit
	// literals; rdx for a wide site that borrows rdx, which its hits
	// restore after rcx.
	narrow, keep, lit, rdx bool
	// n is the number of slots in use (fewer than len(slots) once a
	// narrow site stops learning), filled how many are set.
	n, filled int
	// slots are the site's inline-cache slots, allocated to the number
	// the site was made with: sites are many (every return has one),
	// and most have two.
	slots []icSlot
	// learnEnd is the end of the rel32 jump to learn, which is patched
	// to lookupOff when the slots are full.
	learnEnd, lookupOff int
	// headOff is the site's head up to the first slot's branch, which a
	// jump to demoteOff replaces when the site proves polymorphic
	// (headLen bytes); extra counts the new targets it has sent to the
	// table since its slots filled.
	headOff, headLen, extra, demoteOff int
	// base is the fragment's entry once installed, owner the fragment.
	base  uintptr
	unit  *codeUnit
	owner *fragment
	// pc, kind and pop are the branch's (site's): a target the
	// processor refuses (not canonical) faults at the branch, with its
	// stack effect, which the site has done by its exit, undone.
	pc   uintptr
	kind siteKind
	pop  int32
	// jt is the jump table whose entries for targets without a
	// fragment lead to the site, nil for an ordinary site.
	jt *jumpTable
	// visits is the index of the site's visit counter
	// (learn_linux_amd64.go), -1 for none: a site without one exits
	// to learn at each visit of its learn path.
	visits int32
}

// icSlot is one inline-cache slot of a site: pred its target, and the
// offsets in the fragment of its patchable parts. cmpOff is the slot's
// patchable constant: the imm64 (-pred) of a wide slot, the disp32 of a
// narrow one, the imm32 of a cmp slot (its low half when wide, hiOff the
// high, -1 otherwise) or its 64-bit literal. hitEnd is the end of the
// slot's rel32 jump (a cmp slot's je, or its stub's jmp), restoreOff the
// offset of its 7-byte restores (rcx, then rdx for the wide form), which
// become no-ops when the target does not read the register, or of a
// strict cmp stub's 9 bytes. Offsets fit 32 bits: a fragment lies in one
// code unit.
type icSlot struct {
	pred                              uintptr
	cmpOff, hiOff, hitEnd, restoreOff int32
}

// maxInlineCache bounds the slots of a cmp-form site, maxRCXSlots those
// of the other forms, whose jrcxz reach their hits with a rel8.
const (
	maxInlineCache = 8
	maxRCXSlots    = 4
)

// slots returns how many targets site s learns: Options.
// CallInlineCache for calls, InlineCache for the rest, at most max; none
// for a jump table's.
func (t *translator) slots(s *site, max int) int {
	if s.noIC {
		return 0
	}
	n := t.m.opts.InlineCache
	if s.kind == siteCall {
		n = t.m.opts.CallInlineCache
	}
	return min(n, max)
}

// low is the bound under which an address fits a sign-extended 32-bit
// displacement.
const low = 1 << 31

// narrowDisp returns the displacements of a narrow site's slots for its
// filled preds: after slot j the register holds target-q[j], where q[j]
// is pred j for a filled slot and -2-j (no canonical address) for an
// empty one.
func narrowDisp(ic *icSite) [maxInlineCache]int32 {
	var d [maxInlineCache]int32
	prev := int64(0)
	for j := range ic.n {
		q := int64(-2 - j)
		if j < ic.filled {
			q = int64(ic.slots[j].pred)
		}
		d[j] = int32(prev - q)
		prev = q
	}
	return d
}

// loadOperand emits `mov dst, r/m` for the operand of an indirect call or
// jump (FF /2 or FF /4), evaluated with the application's registers: the
// same ModRM, SIB and displacement with the reg field set to dst, a
// RIP-relative displacement re-encoded (or, far, the absolute address
// loaded first). BND (F2) and NOTRACK (3E) prefixes are dropped.
func (t *translator) loadOperand(dst amd64.Reg, s *site) error {
	a, b, in := t.a, s.b, s.in
	pc := s.next - uintptr(in.Len)
	if in.Prefixes&decode.P66 != 0 || in.Encoding != decode.Legacy {
		return t.unsupported(pc, b, "a 16-bit or non-legacy indirect branch")
	}
	if in.RIPRelative() {
		if in.Prefixes&(decode.P67|decode.PSeg) != 0 && in.Seg != 0x3e && in.Seg != 0x2e {
			return t.unsupported(pc, b, "a segment or 32-bit RIP-relative indirect branch")
		}
		target := s.next + uintptr(int64(in.Disp(b)))
		// mov dst, [rip+disp32] is 7 bytes.
		if _, ok := mem.Rel32(a.PC()+7, target); ok {
			return a.MovLoad(dst, amd64.RIPRel(target))
		}
		t.mangled++
		a.MovImm64(dst, uint64(target))
		return a.MovLoad(dst, amd64.M(dst, 0))
	}
	out := t.scratch[:0]
	if in.Prefixes&decode.P67 != 0 {
		out = append(out, 0x67)
	}
	if in.Prefixes&decode.PSeg != 0 && (in.Seg == 0x64 || in.Seg == 0x65) {
		out = append(out, in.Seg)
	}
	out = append(out, 0x48|in.REX&3|byte(dst>>3)<<2, 0x8b, in.ModRM&0xc7|byte(dst&7)<<3)
	out = append(out, b[in.ModRMOff+1:in.Len]...)
	a.Raw(out...)
	return nil
}

// indirect translates an indirect call or jump.
func (t *translator) indirect(b []byte, in *decode.Inst, next uintptr, call bool) error {
	s := &site{kind: siteJmp, b: b, in: in, next: next, pc: next - uintptr(in.Len)}
	if call {
		s.kind = siteCall
	}
	return t.site(s, false)
}

// ret translates a return.
func (t *translator) ret(b []byte, in *decode.Inst, pc uintptr) error {
	s := &site{kind: siteRet, pc: pc}
	if in.ImmLen == 2 {
		s.pop = int32(uint16(b[in.ImmOff]) | uint16(b[in.ImmOff+1])<<8)
	}
	return t.site(s, false)
}

// site emits an indirect-branch site. rcxSaved says the application's
// rcx is already in the context (and rcx free to use).
func (t *translator) site(s *site, rcxSaved bool) error {
	if !rcxSaved && s.kind != siteJmp && t.slots(s, maxInlineCache) > 0 && t.cmpable(s) {
		return t.cmpSite(s)
	}
	if t.narrow {
		return t.narrowSite(s, rcxSaved)
	}
	return t.wideSite(s, rcxSaved)
}

// cmpable reports whether a return or call can take the cmp form, which
// compares the target where it is, with no register: a return's address
// must stay in the red zone once popped (ret imm16 of at most 120), and a
// call's operand must not be the stack slot the form pushes over (rsp
// itself, or a quadword just below it), nor through FS or GS, nor
// RIP-relative out of reach. An operand addressed through rsp is fine,
// its displacement adjusted for the push.
func (t *translator) cmpable(s *site) bool {
	if s.kind == siteRet {
		return t.m.opts.StrictFlags || 8+s.pop <= redZone
	}
	in := s.in
	// 2E and 3E (CET's NOTRACK) are no-ops in 64-bit mode; FS and GS
	// would need the segment on the compares.
	if in.Prefixes&(decode.P66|decode.P67) != 0 || in.Encoding != decode.Legacy ||
		in.Prefixes&decode.PSeg != 0 && (in.Seg == 0x64 || in.Seg == 0x65) {
		return false
	}
	if in.Mod() == 3 {
		return in.ModRM&7|in.REX&1<<3 != byte(amd64.RSP)
	}
	if m := operandMem(s); !m.RIP && m.Base == amd64.RSP &&
		(m.Disp > 1<<31-1-8 || m.Index == amd64.NoReg && m.Disp < 0 && m.Disp > -16) {
		return false // no room to adjust for the push, or pushed over
	}
	if in.RIPRelative() {
		target := s.next + uintptr(int64(in.Disp(s.b)))
		_, ok := mem.Rel32(t.a.PC()+256, target)
		_, ok2 := mem.Rel32(t.a.PC(), target)
		return ok && ok2
	}
	return true
}

// redZone is the psABI's 128 bytes below rsp that no signal handler or
// interrupt touches: a popped return address there can still be read.
const redZone = 128

// operandMem returns a call's memory operand as an amd64.Mem, a
// RIP-relative one as its absolute target.
func operandMem(s *site) amd64.Mem { return modrmMem(s.in, s.b, s.next) }

// modrmMem returns the ModRM memory operand of the instruction in (its
// bytes b, the next instruction at next) as an amd64.Mem, a RIP-relative
// one as its absolute target.
//
// Preconditions: in has a ModRM memory operand (mod != 3).
func modrmMem(in *decode.Inst, b []byte, next uintptr) amd64.Mem {
	if in.RIPRelative() {
		return amd64.RIPRel(next + uintptr(int64(in.Disp(b))))
	}
	m := amd64.Mem{Base: amd64.NoReg, Index: amd64.NoReg, Disp: in.Disp(b)}
	rm := in.ModRM & 7
	if rm != 4 {
		m.Base = amd64.Reg(rm | in.REX&1<<3)
		return m
	}
	sib := b[in.ModRMOff+1]
	if idx := sib>>3&7 | in.REX>>1&1<<3; idx != 4 {
		m.Index, m.Scale = amd64.Reg(idx), 1<<(sib>>6)
	}
	if base := sib & 7; !(base == 5 && in.Mod() == 0) {
		m.Base = amd64.Reg(base | in.REX&1<<3)
	}
	return m
}

// cmpSlot emits slot k of a cmp-form site: the compare of the target
// with the slot's constant (which matches nothing until the slot learns
// a target) and the je to its hit. The target is where the site's head
// left it: a return's address at [rsp+8] below the pushed flags, or at
// [rsp-8-pop] once popped; a call's operand, rsp-relative ones adjusted
// for the 8 bytes pushed. The compare is
//
//	cmp  <target>, imm32          ; 32-bit targets (sign-extended)
//	cmp  reg, [rip+literal]       ; 64-bit targets in a register
//	cmp  dword <target>, lo       ; 64-bit targets in memory, a half at
//	jne  next                     ;  a time
//	cmp  dword <target+4>, hi
//
// and its constants' offsets go to ic.slots[k].cmpOff (and hiOff[k]); a
// literal's once the pool is laid out.
func (t *translator) cmpSlot(s *site, ic *icSite, k int) (amd64.Fixup, error) {
	a := t.a
	var errs firstErr
	try := errs.try
	ic.slots[k].hiOff = -1
	var reg amd64.Reg = amd64.NoReg
	var m amd64.Mem
	switch {
	case s.kind == siteRet && ic.keep:
		m = amd64.M(amd64.RSP, 8)
	case s.kind == siteRet:
		m = amd64.M(amd64.RSP, -8-s.pop)
	case s.in.Mod() == 3:
		reg = amd64.Reg(s.in.ModRM&7 | s.in.REX&1<<3)
	default:
		m = operandMem(s)
		if !m.RIP && m.Base == amd64.RSP {
			m.Disp += 8 // the flags or the return address pushed
		}
	}
	switch {
	case ic.narrow && reg != amd64.NoReg:
		a.CmpRegImm32(reg, -1)
		ic.slots[k].cmpOff = int32(a.Len() - 4)
	case ic.narrow:
		try(a.CmpMemImm32(m, -1))
		ic.slots[k].cmpOff = int32(a.Len() - 4)
	case reg != amd64.NoReg:
		ic.lit = true
		try(a.CmpRegMem(reg, amd64.RIPRel(a.PC()))) // fixed by literals
		t.lits = append(t.lits, literal{v: ^uint64(0), ref: a.Len(), ic: ic, k: k})
	default:
		try(a.CmpMem32Imm32(m, -1))
		ic.slots[k].cmpOff = int32(a.Len() - 4)
		next := a.JccShort(amd64.CondNE)
		m4 := m
		if m4.RIP {
			m4.Target += 4
		} else {
			m4.Disp += 4
		}
		try(a.CmpMem32Imm32(m4, -1))
		ic.slots[k].hiOff = int32(a.Len() - 4)
		hit := a.JccLabel(amd64.CondE)
		try(a.Bind(next))
		return hit, errs.err
	}
	return a.JccLabel(amd64.CondE), errs.err
}

// cmpSite emits the cmp form of a return or call site, which borrows no
// register: the target is compared where it is, against each slot in
// turn. By default the flags are dead here (the psABI gives them no role
// across a call or a return: the fuzz tests' abi programs keep that
// rule), so the site does the branch's stack effect first and each slot's
// je goes straight to its fragment:
//
//	push ret                  ; a return: lea rsp, [rsp+8+pop]
//	cmp  rax, pred1           ; a return: cmp qword [rsp-8-pop], pred1
//	je   fragment1            ; (above 2 GiB: see cmpSlot)
//	cmp  rax, pred2
//	je   fragment2
//	jmp  learn                ; patched to lookup once every slot is set
//
// A call through a table of functions then costs a compare and a
// predicted branch per slot tried and nothing else: no flags saved, no
// register spilled, no jump but the one to the callee.
//
// With Options.StrictFlags the flags are pushed below rsp first, where
// nothing is live at a return (the callee's frame is gone) or at a call
// (the call's own push overwrites it), and the hits go through stubs:
//
//	pushfq
//	cmp  qword [rsp+8], pred1 ; a call: cmp <its operand>, pred1
//	je   hit1
//	...
//	jmp  learn
//	hit1: lea rsp, [rsp+16]   ; drop the flags and pop (a call: drop the
//	jmp  fragment1            ;  flags and push its return address)
//
// where the stub keeps the compare's flags only if the target overwrites
// them before reading them (checked when the slot is learned) and pops
// them otherwise (popfq; lea rsp, [rsp+8]). The learn and lookup paths
// out of line undo the head (popfq, or the stack effect) first; popfq is
// slow (microcoded), so a strict site that sends a new target to the
// table once its slots are full is demoted at once to go, before any
// compare, to a lookup with the flags untouched.
func (t *translator) cmpSite(s *site) error {
	a := t.a
	var errs firstErr
	try := errs.try
	n := t.slots(s, maxInlineCache)
	keep := t.m.opts.StrictFlags
	ic := &icSite{form: formCmp, narrow: t.narrow, keep: keep, n: n, slots: make([]icSlot, n), pc: s.pc, kind: s.kind, pop: s.pop}
	ic.headOff = a.Len()
	head := none
	if keep {
		a.Pushfq()
		head.rsp = 8
	} else {
		try(t.stackEffect(s, 1))
		head.rsp = 8
		if s.kind == siteRet {
			head.rsp = -(8 + s.pop)
		}
	}
	t.markFix(s.pc, head)
	var hits [maxInlineCache]amd64.Fixup
	for k := range n {
		hit, e := t.cmpSlot(s, ic, k)
		try(e)
		hits[k] = hit
		if k == 0 {
			// The head a demotion replaces: the pushfq or the stack
			// effect, and the first compare.
			ic.headLen = a.Len() - ic.headOff
		}
	}
	learn := a.JmpLabel()
	ic.learnEnd = learn.End()
	for k := range n {
		if !keep {
			ic.slots[k].hitEnd = int32(hits[k].End())
			t.hitJmps = append(t.hitJmps, hits[k])
			continue
		}
		try(a.Bind(hits[k]))
		ic.slots[k].restoreOff = int32(a.Len())
		// 9 bytes either way: lea rsp, [rsp+drop]; nop, or, when
		// learned for a target that reads the flags, popfq; lea.
		switch s.kind {
		case siteRet:
			a.LeaRSP32(16 + s.pop)
			a.Nop(1)
		case siteCall:
			a.LeaRSP32(8)
			a.Nop(1)
			t.markFix(s.pc, none)
			t.pushReturn(s.next)
		}
		j := a.JmpLabel()
		ic.slots[k].hitEnd = int32(j.End())
		t.hitJmps = append(t.hitJmps, j)
	}
	// Off the hot path, the head is undone first (popfq, or the stack
	// effect); a demoted site jumps in after that, from its head, with
	// the flags and the stack the application's.
	t.coldPaths(s, head, ic, learn, func() error {
		if keep {
			a.Popfq()
			return nil
		}
		return t.stackEffect(s, -1)
	}, func() error { return t.toRDX(s, false) })
	return errs.err
}

// stackEffect emits a return's pop (lea rsp, [rsp+8+pop]) or a call's
// push of its return address, dir 1, or undoes it, dir -1, all without
// the flags.
func (t *translator) stackEffect(s *site, dir int32) error {
	a := t.a
	switch {
	case s.kind == siteRet:
		return a.Lea(amd64.RSP, amd64.M(amd64.RSP, dir*(8+s.pop)))
	case s.kind == siteCall && dir > 0:
		t.pushReturn(s.next)
	case s.kind == siteCall:
		return a.Lea(amd64.RSP, amd64.M(amd64.RSP, 8))
	}
	return nil
}

// toRDX emits the start of the learn and lookup paths: rdx holds the
// target, the application's rdx and rcx are in the context (and rcx in
// rcx), and rsp is the application's after the branch (the return
// popped, the call's return address pushed). On entry rdx is the
// application's, and so is rcx unless borrowed: the application's rcx is
// then in the context, and is loaded back for the branch's operand.
func (t *translator) toRDX(s *site, borrowed bool) error {
	a := t.a
	var err error
	if borrowed {
		err = a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX)))
	} else {
		err = a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX)
	}
	if err != nil {
		return err
	}
	if err := a.MovStore(t.ctx(gpr(amd64.RDX)), amd64.RDX); err != nil {
		return err
	}
	t.markFix(s.pc, none)
	return t.finishBranch(s, amd64.RDX)
}

// finishBranch moves the branch's target into r (r's own value already
// saved) and does the branch's stack effect: a return pops, a call
// pushes its return address.
func (t *translator) finishBranch(s *site, r amd64.Reg) error {
	a := t.a
	switch s.kind {
	case siteRet:
		a.Pop(r)
		if s.pop != 0 {
			return a.Lea(amd64.RSP, amd64.M(amd64.RSP, s.pop))
		}
	case siteCall:
		if err := t.loadOperand(r, s); err != nil {
			return err
		}
		t.markFix(s.pc, inCtx(r))
		t.pushReturn(s.next)
	case siteJmp:
		return t.loadOperand(r, s)
	}
	return nil
}

// narrowSite emits the 32-bit form.
func (t *translator) narrowSite(s *site, rcxSaved bool) error {
	a := t.a
	var errs firstErr
	try := errs.try
	n := t.slots(s, maxRCXSlots)
	ic := &icSite{form: formNarrow, narrow: true, n: n, slots: make([]icSlot, n), pc: s.pc, kind: s.kind, pop: s.pop, jt: s.jt}
	if !rcxSaved {
		try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	}
	if n > 0 {
		ic.headOff = a.Len()
		switch s.kind {
		case siteRet:
			try(a.MovLoad(amd64.RCX, amd64.M(amd64.RSP, 0)))
		default:
			// The operand is evaluated with the application's
			// registers: rcx is still its own here.
			try(t.loadOperand(amd64.RCX, s))
		}
	}
	t.markFix(s.pc, inCtx(amd64.RCX))
	disp := narrowDisp(ic)
	var hits [maxInlineCache]amd64.Fixup
	for k := range n {
		// lea rcx, [rcx+disp32]: the displacement is the last 4 bytes.
		try(a.Lea(amd64.RCX, amd64.M(amd64.RCX, 0x7fffffff)))
		ic.slots[k].cmpOff = int32(a.Len() - 4)
		putRel32(a.Bytes()[ic.slots[k].cmpOff:], disp[k])
		if k == 0 {
			// The head a demotion replaces: the load and the
			// first compare.
			ic.headLen = a.Len() - ic.headOff
		}
		hits[k] = a.Jrcxz()
	}
	learn := a.JmpLabel()
	ic.learnEnd = learn.End()
	for k := range n {
		try(a.Bind(hits[k]))
		switch s.kind {
		case siteRet:
			try(a.Lea(amd64.RSP, amd64.M(amd64.RSP, 8+s.pop)))
		case siteCall:
			t.pushReturn(s.next)
		}
		ic.slots[k].restoreOff = int32(a.Len())
		try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		j := a.JmpLabel()
		ic.slots[k].hitEnd = int32(j.End())
		t.hitJmps = append(t.hitJmps, j)
	}
	t.coldPaths(s, inCtx(amd64.RCX), ic, learn, nil, func() error { return t.toRDX(s, true) })
	return errs.err
}

// wideSite emits the 64-bit form. The target of a jump or call through a
// register is compared in that register, the application's own, so that
// only rcx is borrowed: a switch's `jmp rax` then leaves rdx alone, where
// a restore on every hit would put a store-load round trip into whatever
// rdx carries (an interpreter's stack pointer). Other targets are loaded
// into rdx, saved first.
func (t *translator) wideSite(s *site, rcxSaved bool) error {
	a := t.a
	var errs firstErr
	try := errs.try
	n := t.slots(s, maxRCXSlots)
	tr := amd64.RDX
	if s.kind != siteRet && s.in.Mod() == 3 {
		if r := amd64.Reg(s.in.ModRM&7 | s.in.REX&1<<3); r != amd64.RCX && r != amd64.RSP {
			tr = r
		}
	}
	ic := &icSite{n: n, slots: make([]icSlot, n), rdx: tr == amd64.RDX, pc: s.pc, kind: s.kind, pop: s.pop, jt: s.jt}
	if !rcxSaved {
		try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	}
	switch {
	case ic.rdx:
		try(a.MovStore(t.ctx(gpr(amd64.RDX)), amd64.RDX))
		try(t.finishBranch(s, amd64.RDX))
	case s.kind == siteCall:
		t.pushReturn(s.next)
	}
	t.markFix(s.pc, inCtx(amd64.RCX, amd64.RDX))
	ic.headOff = a.Len()
	ic.headLen = 10
	var hits [maxInlineCache]amd64.Fixup
	for k := range n {
		a.MovImm64(amd64.RCX, 1) // -1: no target matches
		ic.slots[k].cmpOff = int32(a.Len() - 8)
		try(a.Lea(amd64.RCX, amd64.MI(amd64.RCX, tr, 1, 0)))
		hits[k] = a.Jrcxz()
	}
	learn := a.JmpLabel()
	ic.learnEnd = learn.End()
	for k := range n {
		try(a.Bind(hits[k]))
		ic.slots[k].restoreOff = int32(a.Len())
		try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		if ic.rdx {
			try(a.MovLoad(amd64.RDX, t.ctx(gpr(amd64.RDX))))
		}
		j := a.JmpLabel()
		ic.slots[k].hitEnd = int32(j.End())
		t.hitJmps = append(t.hitJmps, j)
	}
	// The learn and lookup paths take the target in rdx.
	t.coldPaths(s, inCtx(amd64.RCX, amd64.RDX), ic, learn, nil, func() error {
		if ic.rdx {
			return nil
		}
		err := a.MovStore(t.ctx(gpr(amd64.RDX)), amd64.RDX)
		a.MovRR(amd64.RDX, tr)
		return err
	})
	return errs.err
}

// coldPaths queues a site's learn and lookup paths for the cold code:
//
//	learn:  undo; enter; exit to the dispatcher, which fills a slot
//	lookup: undo
//	demote: enter; the table lookup
//
// undo (nil for none) takes back what the site's head did before its
// compares; enter leaves the target in rdx with the application's rcx
// and rdx in the context. The slots' hit jumps go to learn until the
// slots learn their targets (an empty slot matches nothing, so they are
// never taken), the jump to learn goes to lookup once every slot is set,
// and a site that proves polymorphic jumps from its head to demote. A
// site with no slots goes straight to the lookup. The hit jumps are the
// site's last n in t.hitJmps.
func (t *translator) coldPaths(s *site, head fix, ic *icSite, learn amd64.Fixup, undo, enter func() error) {
	a := t.a
	hits := t.hitJmps[len(t.hitJmps)-ic.n:]
	t.cold = append(t.cold, func() error {
		var errs firstErr
		try := errs.try
		learnOff := a.Len()
		// toLookup goes on to the lookup from a learn path that does
		// not learn this time.
		var toLookup *amd64.Fixup
		ic.visits = -1
		if ic.n > 0 {
			try(a.Bind(learn))
			t.markFix(s.pc, head)
			if undo != nil {
				try(undo())
				t.markFix(s.pc, none)
			}
			try(enter())
			if k, ok := t.m.visitCounter(); ok {
				// rcx is free: the application's is in the
				// context.
				ic.visits = k
				doLearn, err := t.countVisit(k)
				try(err)
				j := a.JmpLabel()
				toLookup = &j
				try(a.Bind(doLearn))
			}
			try(t.learnExit(ic))
		}
		for _, h := range hits {
			try(a.BindAt(h, learnOff))
		}
		ic.lookupOff = a.Len()
		if ic.n == 0 {
			try(a.Bind(learn))
		}
		t.markFix(s.pc, head)
		if undo != nil {
			try(undo())
			t.markFix(s.pc, none)
		}
		ic.demoteOff = a.Len()
		if undo == nil {
			// A demoted site jumps here from its head, before
			// anything was borrowed.
			t.markFix(s.pc, none)
		}
		try(enter())
		if toLookup != nil {
			try(a.Bind(*toLookup))
		}
		try(t.lookup(ic))
		return errs.err
	})
}

// firstErr keeps the first error of a run of emits, so that an emitting
// function reads as the instructions it emits: try(a.X(...)) each, and
// return errs.err at the end.
type firstErr struct{ err error }

func (f *firstErr) try(e error) {
	if f.err == nil {
		f.err = e
	}
}

// learnExit emits a site's learn exit: rdx holds the target, the
// application's rcx is in rcx and in the context, its rdx in the context.
//
//	mov [ctx.next], rdx; mov rdx, [ctx.rdx]; mov [ctx.rax], rax
//	mov eax, exit; jmp fcache_return
func (t *translator) learnExit(ic *icSite) error {
	a := t.a
	var errs firstErr
	try := errs.try
	try(a.MovStore(t.ctx(ctxNext), amd64.RDX))
	try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
	try(a.MovLoad(amd64.RDX, t.ctx(gpr(amd64.RDX))))
	try(a.MovStore(t.ctx(gpr(amd64.RAX)), amd64.RAX))
	t.exits = append(t.exits, pendingExit{kind: exitLearn, ic: ic, stubOff: a.Len(), inline: true})
	a.MovImm32(amd64.RAX, t.firstExit+uint32(len(t.exits)-1))
	try(a.JmpRel32(t.m.gen.fret))
	return errs.err
}

// lookup emits the table lookup for the target in rdx, with the
// application's rcx and rdx in the context:
//
//	mov  [ctx.rax], rax
//	movzx eax, dx
//	lea  eax, [rax+rax]        ; 2*index: entries are two quadwords
//	mov  rcx, [rax*8+table]    ; -tag (lea rcx, [rip+table] first if the
//	lea  rcx, [rcx+rdx]        ;  table is above 2 GiB)
//	jrcxz hit
//	mov  eax, exit; jmp iblMiss
//	hit: mov rcx, [ctx.rcx]; mov rdx, [ctx.rdx]
//	jmp  [rax*8+table+8]       ; the fragment's prefix restores rax
//
// (above 2 GiB the table's address takes a register, rcx, and the prefix
// restores all three).
func (t *translator) lookup(ic *icSite) error {
	a := t.a
	var errs firstErr
	try := errs.try
	table := t.m.ctx + t.m.lay.ibl
	try(a.MovStore(t.ctx(gpr(amd64.RAX)), amd64.RAX))
	a.Movzx16(amd64.RAX, amd64.RDX)
	try(a.Lea32(amd64.RAX, amd64.MI(amd64.RAX, amd64.RAX, 1, 0)))
	absolute := t.m.absTable()
	if absolute {
		try(a.MovLoad(amd64.RCX, amd64.Mem{Base: amd64.NoReg, Index: amd64.RAX, Scale: 8, Disp: int32(table)}))
	} else {
		try(a.Lea(amd64.RCX, amd64.RIPRel(table)))
		try(a.MovLoad(amd64.RCX, amd64.MI(amd64.RCX, amd64.RAX, 8, 0)))
	}
	try(a.Lea(amd64.RCX, amd64.MI(amd64.RCX, amd64.RDX, 1, 0)))
	hit := a.Jrcxz()
	t.exits = append(t.exits, pendingExit{kind: exitSiteMiss, ic: ic, stubOff: a.Len(), inline: true})
	a.MovImm32(amd64.RAX, t.firstExit+uint32(len(t.exits)-1))
	try(a.JmpRel32(t.m.gen.iblMiss))
	try(a.Bind(hit))
	if absolute {
		// rcx and rdx are restored here, ahead of the jump, which
		// needs only rax: the fragment's prefix restores rax.
		try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		try(a.MovLoad(amd64.RDX, t.ctx(gpr(amd64.RDX))))
		try(a.JmpMem(amd64.Mem{Base: amd64.NoReg, Index: amd64.RAX, Scale: 8, Disp: int32(table + 8)}))
	} else {
		try(a.Lea(amd64.RCX, amd64.RIPRel(table+8)))
		try(a.JmpMem(amd64.MI(amd64.RCX, amd64.RAX, 8, 0)))
	}
	return errs.err
}

// inlineRet translates the return of a callee the fragment followed into
// from a direct call whose return address is want: "return-address
// translation at the call site". The return address on the stack is
// compared with want and on a match the fragment goes on at want's code
// (its caller's continuation, in the same fragment when there is room);
// any other address takes an ordinary return site, out of line:
//
//	cmp  qword [rsp], want    ; each half if want is above 2 GiB
//	jne  site                 ; out of line
//	lea  rsp, [rsp+8]
//
// With Options.StrictFlags the flags are pushed first, as in cmpSite
// (pushfq; the compare at [rsp+8]; the miss pops them), and the hit drops
// them (lea rsp, [rsp+16]) or, if want's code reads them, pops them.
//
// With the inline caches off (InlineCache -1), the address is popped into
// a register dead at want if there is one (rdx otherwise) and compared
// through rcx.
func (t *translator) inlineRet(b []byte, in *decode.Inst, pc, want uintptr) error {
	s := &site{kind: siteRet, pc: pc}
	if in.ImmLen == 2 {
		s.pop = int32(uint16(b[in.ImmOff]) | uint16(b[in.ImmOff+1])<<8)
	}
	a := t.a
	var errs firstErr
	try := errs.try
	if t.m.opts.InlineCache > 0 {
		keep := t.m.opts.StrictFlags
		at := int32(0)
		if keep {
			a.Pushfq()
			at = 8
			t.markFix(pc, fix{rsp: 8, spill: noSpill})
		}
		var miss []amd64.Fixup
		if want < low {
			try(a.CmpMemImm32(amd64.M(amd64.RSP, at), int32(want)))
			miss = append(miss, a.JccLabel(amd64.CondNE))
		} else {
			try(a.CmpMem32Imm32(amd64.M(amd64.RSP, at), int32(uint32(want))))
			miss = append(miss, a.JccLabel(amd64.CondNE))
			try(a.CmpMem32Imm32(amd64.M(amd64.RSP, at+4), int32(uint32(uint64(want)>>32))))
			miss = append(miss, a.JccLabel(amd64.CondNE))
		}
		drop := 8 + s.pop
		switch {
		case keep && t.m.flagsDeadAt(want):
			drop += 8
		case keep:
			a.Popfq()
		}
		try(a.Lea(amd64.RSP, amd64.M(amd64.RSP, drop)))
		t.cold = append(t.cold, func() error {
			for _, f := range miss {
				if err := a.Bind(f); err != nil {
					return err
				}
			}
			if keep {
				t.markFix(pc, fix{rsp: 8, spill: noSpill})
				a.Popfq()
			}
			t.markFix(pc, none)
			return t.site(s, false)
		})
		return errs.err
	}
	dead := t.m.deadAt(want)
	// Borrow registers dead at want where there are any, so that the
	// hit path restores nothing: a restore is a store-load round trip
	// in the dependency chain of whatever value the register carries.
	r := amd64.RDX
	for _, c := range []amd64.Reg{amd64.RDX, amd64.RAX, amd64.RSI, amd64.RDI, amd64.R8, amd64.R9, amd64.R10, amd64.R11} {
		if dead.Has(uint8(c)) {
			r = c
			break
		}
	}
	try(a.MovStore(t.ctx(gpr(r)), r))
	a.Pop(r)
	t.markFix(pc, inCtx(r, amd64.RCX))
	if s.pop != 0 {
		try(a.Lea(amd64.RSP, amd64.M(amd64.RSP, s.pop)))
	}
	try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	if d := -int64(want); d >= -low && d < low {
		try(a.Lea(amd64.RCX, amd64.M(r, int32(d))))
	} else {
		a.MovImm64(amd64.RCX, uint64(d))
		try(a.Lea(amd64.RCX, amd64.MI(amd64.RCX, r, 1, 0)))
	}
	hit := a.Jrcxz()
	other := a.JmpLabel()
	try(a.Bind(hit))
	if !dead.Has(uint8(amd64.RCX)) {
		try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
	}
	if !dead.Has(uint8(r)) {
		try(a.MovLoad(r, t.ctx(gpr(r))))
	}
	t.cold = append(t.cold, func() error {
		if err := a.Bind(other); err != nil {
			return err
		}
		// Undo the pop: the site pops again.
		if s.pop != 0 {
			if err := a.Lea(amd64.RSP, amd64.M(amd64.RSP, -s.pop)); err != nil {
				return err
			}
		}
		a.Push(r)
		if err := a.MovLoad(r, t.ctx(gpr(r))); err != nil {
			return err
		}
		t.markFix(pc, inCtx(amd64.RCX))
		return t.site(s, true)
	})
	return errs.err
}
