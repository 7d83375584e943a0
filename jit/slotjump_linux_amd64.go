package jit

import (
	"encoding/binary"
	"errors"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
)

// Jumps and calls through a slot: a PLT entry's `jmp [rip+GOT]`, and a
// `call [rip+slot]` (code built with -fno-plt, a call through a global
// function pointer).
//
// A call to a function of another module, or to an exported function of
// the caller's own without -fvisibility or -Bsymbolic, goes through the
// PLT: a direct call to a stub whose indirect jump reads the target from
// the GOT. A superblock follows the direct call into the stub and would
// end at its jump, an inline-cache site, the callee a fragment of its
// own, as the callee of a call through a slot is. The callee's return,
// which comes back to every caller, is then an inline-cache site too, and
// for a small function called from many places (jq's jv_get_kind, a libc
// allocator) it turns polymorphic: a table lookup and an indirect jump
// the processor mispredicts, where natively the return stack predicts
// it. So for a call through a slot, and for a jump through one inside a
// followed call, the translator reads the slot and, when it holds code,
// goes on translating there, as for a direct branch, behind a guard that
// the slot still holds it:
//
//	cmp  qword [slot], target ; imm32, or through rcx for a 64-bit target
//	jne  exit                 ; to the branch itself
//	push next                 ; a call's return address
//	...                       ; the callee, its return inlined
//
// The compare changes the flags, which the psABI gives no role across a
// call, and which the jump's target is checked to overwrite before any
// read. With Options.StrictFlags the guard is flag-free, as a site's
// compare, and only for targets below 2 GiB:
//
//	mov  [ctx.rcx], rcx
//	mov  rcx, [slot]
//	lea  rcx, [rcx-target]
//	jrcxz hit
//	jmp  miss                 ; out of line: rcx back, then the exit
//	hit: mov rcx, [ctx.rcx]
//
// The slot may change (lazy binding resolves it at the first call, a
// program may rewrite a function pointer): the guard then misses, to a
// fragment that starts at the branch, which has the ordinary site the
// branch would have had. A branch that starts its fragment is never gone
// on through, or a miss there would lead back to the same guard.
//
// jq on 100,000 objects: 1.46x native to 1.08x (CPU time, best of 9
// interleaved runs, --no-slot-branches the baseline); python3's start-up
// makes 1,485 guards and 3% less cache.

// slotTarget returns the slot the indirect jump or call in (its bytes b,
// next the address after it) reads through a RIP-relative operand, and
// the target the slot holds now.
func (t *translator) slotTarget(b []byte, in *decode.Inst, next uintptr) (slot, target uintptr, ok bool) {
	if t.m.opts.NoSlotBranches || t.transient ||
		in.Kind != decode.JmpInd && in.Kind != decode.CallInd || in.Encoding != decode.Legacy || !in.RIPRelative() ||
		in.Prefixes&(decode.P66|decode.P67|decode.PSeg|decode.PLock|decode.PF3) != 0 {
		return 0, 0, false
	}
	slot = next + uintptr(int64(in.Disp(b)))
	var w [8]byte
	if !copyIn(slot, w[:]) {
		return 0, 0, false
	}
	target = uintptr(binary.LittleEndian.Uint64(w[:]))
	return slot, target, target != 0
}

// slotBranch goes on through the branch in at pc to target, slot's
// value now, if it can: it emits the guard (see the top of the file) and
// reports true, the caller then going on at target's code, or emits
// nothing and reports false.
func (t *translator) slotBranch(in *decode.Inst, pc, slot, target uintptr) (bool, error) {
	if !t.follow(target, false) {
		return false, nil
	}
	ok, err := t.slotGuard(in, pc, slot, target)
	if !ok || err != nil {
		// Not followed after all.
		t.heads = t.heads[:len(t.heads)-1]
		t.bbs--
	}
	return ok, err
}

// slotGuard emits the guard that slot holds target, whose miss leaves for
// the branch at pc, or, when no form of it can be emitted here, nothing.
func (t *translator) slotGuard(in *decode.Inst, pc, slot, target uintptr) (bool, error) {
	a := t.a
	// The slot as an operand: RIP-relative, or absolute when low.
	operand := func(emit func(amd64.Mem) error) error {
		err := emit(amd64.RIPRel(slot))
		var re *amd64.ReachError
		if errors.As(err, &re) && slot < low {
			err = emit(amd64.Abs32(int32(slot)))
		}
		return err
	}
	start, nmarks := a.Len(), len(t.marks)
	undo := func() {
		a.Truncate(start)
		t.marks = t.marks[:nmarks]
	}
	if !t.m.opts.StrictFlags && (in.Kind == decode.CallInd || t.m.flagsDeadAt(target)) {
		if int64(target) < 1<<31 {
			if err := operand(func(m amd64.Mem) error { return a.CmpMemImm32(m, int32(target)) }); err != nil {
				undo()
				return false, nil
			}
		} else {
			var errs firstErr
			errs.try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
			t.markFix(pc, inCtx(amd64.RCX))
			a.MovImm64(amd64.RCX, uint64(target))
			if errs.err != nil || operand(func(m amd64.Mem) error { return a.CmpRegMem(amd64.RCX, m) }) != nil {
				undo()
				return false, errs.err
			}
			if err := a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))); err != nil {
				return false, err
			}
			t.markExact(pc)
		}
		t.jccExit(amd64.CondNE, pc)
		return true, nil
	}
	if target >= low {
		return false, nil
	}
	var errs firstErr
	try := errs.try
	try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	t.markFix(pc, inCtx(amd64.RCX))
	if err := operand(func(m amd64.Mem) error { return a.MovLoad(amd64.RCX, m) }); err != nil || errs.err != nil {
		undo()
		return false, errs.err
	}
	try(a.Lea(amd64.RCX, amd64.M(amd64.RCX, -int32(target))))
	hit := a.Jrcxz()
	miss := a.JmpLabel()
	try(a.Bind(hit))
	try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
	t.cold = append(t.cold, func() error {
		if err := a.Bind(miss); err != nil {
			return err
		}
		t.markFix(pc, inCtx(amd64.RCX))
		if err := a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))); err != nil {
			return err
		}
		t.markExact(pc)
		t.jmpExit(pc)
		return nil
	})
	return true, errs.err
}
