package jit

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/mem"
)

// pendingExit is an exit of the fragment being built.
type pendingExit struct {
	kind   exitKind
	target uintptr
	// fix is the rel32 branch that leads to the exit (linked now if the
	// target already has a fragment); hasFix is false for exits reached
	// by falling into the stub.
	fix    amd64.Fixup
	hasFix bool
	// linked is the fragment the branch was bound to at translation
	// time (self for a branch to the block's own start).
	linked *fragment
	// stubOff is the stub's offset in the fragment; inline stubs
	// (an indirect site's learn exit) are emitted by the site itself.
	stubOff int
	inline  bool
	// ic is the site of an exitLearn.
	ic *icSite
	// why and bytes explain an exitBad: what is wrong, and the
	// instruction's bytes (what the decoder looked at, if it could not
	// decode them; none if there is no code at target).
	why   string
	bytes []byte
}

// translator builds one fragment. It is reused across blocks so that its
// buffers are allocated once.
type translator struct {
	m     *Machine
	a     *amd64.Assembler
	exits []pendingExit
	in    decode.Inst
	// mangled counts RIP-relative operands that were out of reach,
	// slotBranches the branches through a slot gone on through.
	mangled, slotBranches int
	// instrs counts the block's application instructions.
	instrs int
	// firstExit is the number of the block's first exit.
	firstExit uint32
	// bbs counts the fragment's basic blocks, heads their first
	// addresses.
	bbs   int
	heads []uintptr
	// rets are the return addresses of the calls the fragment followed
	// into their callee, innermost last.
	rets []uintptr
	// cold emits code placed after the body, off the hot path.
	cold []func() error
	// prefix is the length of the fragment's indirect-branch prefix,
	// codeLen the length of its code (what follows is literals).
	prefix, codeLen int
	// indexSaved is set between saveTableIndex's store of an index and
	// the copy of the load it precedes (trackLoad4).
	indexSaved bool
	// tagDead are the registers dead at the fragment's tag (deadAt),
	// set before block.
	tagDead decode.Regs
	// narrow is set when the fragment's code lies below 2 GiB: its
	// indirect-branch sites then compare 32-bit targets (site.go).
	narrow bool
	// hitJmps holds the sites' slot jumps until their cold code binds
	// them.
	hitJmps []amd64.Fixup
	// scratch holds one rewritten instruction.
	scratch [32]byte
	// lits are 64-bit constants placed after the stubs.
	lits []literal
	// marks map the fragment's code back to the application's state
	// (xlate_linux_amd64.go), in emission order.
	marks []mark
	// pages are the application pages the fragment's translation read,
	// each once: its instructions' and those the analyses (deadAt,
	// flagsDeadAt) decoded. Reset by fragmentFor.
	pages []uintptr
	// transient is set for a fragment run once and kept nowhere
	// (Machine.oneShot): one instruction, linked to nothing, not even
	// to itself.
	transient bool
	// room is the space the fragment has in its unit, from t.a.Base.
	room uintptr
	// facts is what the fragment's straight-line path has established
	// about the registers so far (jumptable_linux_amd64.go).
	facts facts
	// tables are the fragment's translated jump tables, laid out after
	// its literals.
	tables []pendingTable
	// cb is the client's basic block being emitted (block_linux_amd64.go),
	// with Options.Client.Block.
	cb clientBlockState
}

// literal is a 64-bit constant of the literal pool, read by the
// instruction whose rel32 ends at ref (a buffer offset). A site's slot
// literal (ic set) is patched when the slot learns its target: its offset
// goes to ic.slots[k].cmpOff once the pool is laid out.
type literal struct {
	v   uint64
	ref int
	ic  *icSite
	k   int
}

// pushReturn pushes the application's return address: `push imm32` when
// it is a sign-extended 32-bit value, else `push qword [rip+literal]`.
// One 8-byte store either way, so that the callee's return, which loads
// the 8 bytes back, is forwarded from the store buffer (a push of the low
// half and a 4-byte store of the high half made every return stall).
func (t *translator) pushReturn(ret uintptr) {
	a := t.a
	if int64(ret) >= -1<<31 && int64(ret) < 1<<31 {
		a.PushImm32(int32(ret))
		return
	}
	_ = a.PushMem(amd64.RIPRel(a.PC())) // displacement fixed by literals
	t.lits = append(t.lits, literal{v: uint64(ret), ref: a.Len()})
}

// literals emits the literal pool, 8-byte aligned, and points each
// reference at its constant.
func (t *translator) literals() {
	t.codeLen = t.a.Len()
	if len(t.lits) == 0 {
		return
	}
	a := t.a
	for a.Len()%8 != 0 {
		a.Int3()
	}
	for _, l := range t.lits {
		at := a.Len()
		v := l.v
		a.Raw(byte(v), byte(v>>8), byte(v>>16), byte(v>>24), byte(v>>32), byte(v>>40), byte(v>>48), byte(v>>56))
		putRel32(a.Bytes()[l.ref-4:], int32(at-l.ref))
		if l.ic != nil {
			l.ic.slots[l.k].cmpOff = int32(at)
		}
	}
}

// ctx returns the RIP-relative operand of context field off.
func (t *translator) ctx(off uintptr) amd64.Mem { return amd64.RIPRel(t.m.ctx + off) }

// errFull means the fragment does not fit in what is left of the unit.
var errFull = errors.New("jit: unit full")

// block translates the code at tag into t.a, whose base is the
// fragment's executable address, self.entry. firstExit is the number the
// fragment's first exit will have; room is the space left in the unit.
//
// A fragment is a superblock: it starts as a basic block and goes on
// through the fall-through of conditional branches (the taken side
// becomes an exit), through direct jumps and through direct calls (after
// pushing the return address), as DynamoRIO's block builder elides jumps
// and calls, up to Options.MaxBlocks basic blocks and MaxBlockInstrs
// instructions. It ends at an indirect branch, a return, a system call,
// an instruction it cannot translate, a jump to code it already holds
// or that another fragment starts (see follow), or its limits.
func (t *translator) block(tag uintptr, self *fragment, firstExit uint32, room uintptr) error {
	t.exits = t.exits[:0]
	t.lits = t.lits[:0]
	t.marks = t.marks[:0]
	t.mangled, t.slotBranches, t.instrs, t.bbs = 0, 0, 0, 1
	t.firstExit = firstExit
	t.heads = append(t.heads[:0], tag)
	t.rets, t.cold, t.hitJmps = t.rets[:0], t.cold[:0], t.hitJmps[:0]
	t.narrow = tag < low
	t.room = room
	t.facts.reset()
	t.indexSaved = false
	t.tables = t.tables[:0]
	a := t.a
	t.iblPrefix(tag)
	pc := tag
	opts := &t.m.opts
	var code []byte
	var codeBase uintptr
	client := opts.Client != nil && opts.Client.Block != nil
	modules := opts.Client != nil && (opts.Client.ModuleLoad != nil || opts.Client.ModuleUnload != nil)
	t.cb.next, t.cb.b.instrs = 0, t.cb.b.instrs[:0]
	for {
		if modules && (pc < t.m.cmodLo || pc >= t.m.cmodHi) {
			t.m.clientModule(pc)
		}
		if client && t.cb.next >= len(t.cb.b.instrs) {
			max := opts.MaxBlockInstrs - t.instrs
			if t.transient {
				max = 1
			}
			ok, err := t.clientBlock(pc, max, t.instrs == 0)
			if err != nil {
				return err
			}
			if !ok {
				t.jmpExit(pc)
				break
			}
		}
		if pc < codeBase || pc-codeBase >= uintptr(len(code)) {
			c, err := t.m.codes.at(pc)
			if err != nil {
				// Code mapped here later must not find this exit.
				t.note(pc, pc+1)
				t.exitBad(pc, nil, err.Error())
				break
			}
			code, codeBase = c, pc
		}
		off := pc - codeBase
		in := &t.in
		if client && t.cb.next < len(t.cb.b.instrs) && t.cb.b.instrs[t.cb.next].pc == pc {
			// The client's block decoded it, moments ago.
			*in = t.cb.b.instrs[t.cb.next].in
		} else if err := decode.DecodeInto(code[off:], in); err != nil {
			t.note(pc, pc+min(decode.MaxLen, uintptr(len(code))-off))
			t.markExact(pc)
			if errors.Is(err, decode.ErrInvalid) {
				// The processor raises SIGILL here: so does ud2,
				// which the signal layer maps back to pc.
				a.Raw(0x0f, 0x0b)
				t.jmpExit(pc)
				break
			}
			var de *decode.Error
			if errors.As(err, &de) {
				t.exitBad(pc, de.Bytes, de.Err.Error())
			} else {
				t.exitBad(pc, nil, err.Error())
			}
			break
		}
		b := code[off : off+uintptr(in.Len)]
		next := pc + uintptr(in.Len)
		t.note(pc, next)
		t.instrs++
		start, nexits, nlits, nmarks := a.Len(), len(t.exits), len(t.lits), len(t.marks)
		if client && t.cb.next == 0 && len(t.cb.b.instrs) > 0 && t.cb.b.instrs[0].pc == pc {
			t.markBlock(pc)
		} else {
			t.markExact(pc)
		}
		if opts.Client != nil && opts.Client.wraps.Load() != nil {
			if _, ok := opts.Client.wrapped(pc); ok {
				t.exits = append(t.exits, pendingExit{kind: exitWrap, target: pc, fix: a.JmpLabel(), hasFix: true})
			}
		}
		if client {
			if err := t.clientInsert(pc); err != nil {
				return err
			}
		}
		// stop: the fragment has no room for more code; full: nor for
		// another basic block. A transient fragment holds one
		// instruction.
		stop := t.instrs >= opts.MaxBlockInstrs || t.transient ||
			uintptr(a.Len())+uintptr(len(t.exits)+2)*stubLen+512 > room
		full := stop || t.bbs >= opts.MaxBlocks
		done := true
		var err error
		switch in.Kind {
		case decode.Plain:
			done = false
			if t.m.fs == fsMangle && isSegFS(in) {
				err = t.fsRelative(b, in, next)
			} else if in.RIPRelative() {
				err = t.ripRelative(b, in, next)
			} else {
				err = t.saveTableIndex(b, in)
				a.Raw(b...)
			}
			t.trackInst(b, in, next)
		case decode.JmpRel:
			target := next + uintptr(int64(in.Rel))
			if !full && t.follow(target, true) {
				pc = target
				continue
			}
			t.jmpExit(target)
		case decode.JccRel:
			t.jccExit(amd64.Cond(in.Cond), next+uintptr(int64(in.Rel)))
			t.trackJcc(in.Cond)
			if !full && t.follow(next, true) {
				pc = next
				continue
			}
			t.jmpExit(next)
		case decode.CallRel:
			t.pushReturn(next)
			target := next + uintptr(int64(in.Rel))
			if !full && t.follow(target, false) {
				t.rets = append(t.rets, next)
				pc = target
				continue
			}
			t.jmpExit(target)
		case decode.LoopRel:
			err = t.loop(b, in, next)
		case decode.JmpInd, decode.CallInd:
			if t.m.fs == fsMangle && isSegFS(in) && in.Mod() != 3 {
				err = t.unsupported(pc, b, "an FS-relative indirect branch")
				break
			}
			call := in.Kind == decode.CallInd
			if slot, target, ok := t.slotTarget(b, in, next); ok && pc != tag && !full && (call || len(t.rets) > 0) {
				// A call through a slot, or a PLT's jump inside a
				// followed call: on into the callee, whose return
				// is then inlined. Not in a fragment the branch
				// starts: that is where a guard's miss goes.
				var on bool
				if on, err = t.slotBranch(in, pc, slot, target); err != nil {
					break
				}
				if on {
					t.slotBranches++
					if call {
						t.pushReturn(next)
						t.rets = append(t.rets, next)
					}
					pc = target
					continue
				}
			}
			if in.Kind == decode.JmpInd {
				var ok bool
				if ok, err = t.jumpTableSite(b, in, next); ok || err != nil {
					break
				}
			}
			err = t.indirect(b, in, next, in.Kind == decode.CallInd)
		case decode.Ret:
			// The inline return's compare changes the flags.
			t.facts.cmp.valid = false
			if n := len(t.rets); n > 0 {
				want := t.rets[n-1]
				t.rets = t.rets[:n-1]
				if err = t.inlineRet(b, in, pc, want); err == nil && !full && t.follow(want, false) {
					pc = want
					continue
				}
				if err == nil {
					t.jmpExit(want)
				}
				break
			}
			err = t.ret(b, in, pc)
		case decode.Syscall:
			t.instrs--
			t.exits = append(t.exits, pendingExit{kind: exitSyscall, target: pc, fix: a.JmpLabel(), hasFix: true})
		case decode.Trap:
			// Raised for real, in the cache: the signal layer
			// translates the signal back. int 0x80 would be a
			// system call the dispatcher never sees.
			if in.Op == 0xcd && in.ImmLen == 1 && b[in.ImmOff] == 0x80 {
				t.instrs--
				t.exitBad(pc, b, "int 0x80, a 32-bit system call")
				break
			}
			a.Raw(b...)
			t.markExact(next)
			t.jmpExit(next)
		default:
			t.instrs--
			t.exitBad(pc, b, fmt.Sprintf("%v instruction", in.Kind))
		}
		if err != nil {
			var ue *UnsupportedError
			if !errors.As(err, &ue) {
				return err
			}
			// Stop before the instruction: the run fails only if
			// execution gets there.
			a.Truncate(start)
			t.exits = t.exits[:nexits]
			t.lits = t.lits[:nlits]
			t.marks = t.marks[:nmarks]
			t.markExact(pc)
			t.instrs--
			t.exitBad(pc, b, ue.What)
			break
		}
		if done {
			break
		}
		pc = next
		if stop {
			t.jmpExit(pc)
			break
		}
	}
	// A cold path may add cold paths of its own (an inline return's
	// miss emits a whole return site, whose learn and lookup paths are
	// cold too): they run in turn, to the last.
	for i := 0; i < len(t.cold); i++ {
		if err := t.cold[i](); err != nil {
			return err
		}
	}
	if err := t.stubs(tag, self, firstExit); err != nil {
		return err
	}
	t.literals()
	t.emitTables(self)
	return nil
}

// follow reports whether the fragment goes on at target, a new basic
// block: not one it already holds (a loop, which a branch back to the
// fragment handles), and only where target is code. A jump's target or
// a conditional branch's fall-through that already starts a live
// fragment is linked to instead (when linked is set): a copy of it in
// this one would only add translation, cache and memory for the direct
// jump it saves. (python3's start translated 11% fewer instructions,
// into 11% less cache, with as many exits.) A call's target is followed
// all the same, since the callee's return is then inlined here, a
// compare with a constant, where the callee's own fragment returns
// through an inline cache its other callers share.
func (t *translator) follow(target uintptr, linked bool) bool {
	for _, h := range t.heads {
		if h == target {
			return false
		}
	}
	if _, err := t.m.codes.at(target); err != nil {
		return false
	}
	if linked {
		if f := t.m.frags[target]; f != nil && !f.dead {
			return false
		}
	}
	t.heads = append(t.heads, target)
	t.bbs++
	return true
}

// iblPrefix emits the fragment's indirect-branch entry, where the table
// lookup enters it: it restores the registers the lookup borrowed,
//
//	mov rax, [ctx.rax]; mov rcx, [ctx.rcx]; mov rdx, [ctx.rdx]
//
// (only rax when the table is below 2 GiB: the lookup restores the
// others before jumping), leaving out those dead at tag. Direct links and the dispatcher enter
// after it (fragment.body).
func (t *translator) iblPrefix(tag uintptr) {
	regs, n := t.m.iblRestores(t.tagDead)
	for _, r := range regs[:n] {
		_ = t.a.MovLoad(r, t.ctx(gpr(r)))
	}
	t.prefix = t.a.Len()
}

// iblRestores returns the registers the prefix of a fragment whose tag
// has the dead registers dead restores, n of them, each a 7-byte load.
func (m *Machine) iblRestores(dead decode.Regs) (regs [3]amd64.Reg, n int) {
	all := []amd64.Reg{amd64.RAX, amd64.RCX, amd64.RDX}
	if m.absTable() {
		all = all[:1] // the lookup restored rcx and rdx
	}
	for _, r := range all {
		if !dead.Has(uint8(r)) {
			regs[n] = r
			n++
		}
	}
	return regs, n
}

// jmpExit emits `jmp rel32` to a direct exit.
func (t *translator) jmpExit(target uintptr) {
	t.exits = append(t.exits, pendingExit{kind: exitDirect, target: target, fix: t.a.JmpLabel(), hasFix: true})
}

// jccExit emits `jcc rel32` to a direct exit.
func (t *translator) jccExit(cc amd64.Cond, target uintptr) {
	t.exits = append(t.exits, pendingExit{kind: exitDirect, target: target, fix: t.a.JccLabel(cc), hasFix: true})
}

// exitBad ends the block with an exit that fails the run at pc, where
// the instruction b is, for the reason why. b is copied.
func (t *translator) exitBad(pc uintptr, b []byte, why string) {
	t.exits = append(t.exits, pendingExit{kind: exitBad, target: pc, why: why, bytes: append([]byte(nil), b...), fix: t.a.JmpLabel(), hasFix: true})
}

// stubs emits the exit stubs after the body and points each exit branch
// at its stub, or straight at the target's fragment when there is one
// (linking at translation time).
func (t *translator) stubs(tag uintptr, self *fragment, firstExit uint32) error {
	a := t.a
	for i := range t.exits {
		e := &t.exits[i]
		if e.inline {
			continue
		}
		if e.hasFix {
			// Only a direct exit continues at its target: a system
			// call or a bad instruction goes to the dispatcher even
			// when it is the block's first instruction (bound to the
			// fragment's start, it would run the fragment forever).
			var f *fragment
			if e.kind == exitDirect {
				f = t.m.frags[e.target]
				if e.target == tag {
					f = self
				}
			}
			if t.transient {
				f = nil
			}
			if f == self {
				// A branch back to the fragment's own start.
				if err := a.BindAt(e.fix, t.prefix); err != nil {
					return err
				}
				e.linked = f
			} else if f != nil {
				if err := a.BindTarget(e.fix, f.body()); err != nil {
					return err
				}
				e.linked = f
			} else if err := a.Bind(e.fix); err != nil {
				return err
			}
		}
		e.stubOff = a.Len()
		if e.kind == exitDirect {
			// Where the dispatcher goes on: a block's start.
			t.markBlock(e.target)
		} else {
			t.markExact(e.target)
		}
		if err := a.MovStore(t.ctx(gpr(amd64.RAX)), amd64.RAX); err != nil {
			return err
		}
		t.markFix(e.target, inCtx(amd64.RAX))
		a.MovImm32(amd64.RAX, firstExit+uint32(i))
		if err := a.JmpRel32(t.m.gen.fret); err != nil {
			return err
		}
	}
	return nil
}

// loop translates loop, loope, loopne and jrcxz, which exist only with a
// rel8: the instruction keeps its prefixes (67 makes them test ecx) and
// branches over a jmp to the fall-through exit to a jmp to the taken one.
//
//	loop  taken      ; rel8
//	jmp   fallthrough-exit
//	taken: jmp target-exit
func (t *translator) loop(b []byte, in *decode.Inst, next uintptr) error {
	a := t.a
	a.Raw(b[:in.ImmOff]...)
	taken := a.Len()
	a.Raw(0)
	t.jmpExit(next)
	d := a.Len() - (taken + 1)
	a.Bytes()[taken] = byte(int8(d))
	t.jmpExit(next + uintptr(int64(in.Rel)))
	return nil
}

// ripRelative copies an instruction with a RIP-relative operand, with its
// displacement re-encoded for the instruction's new address when the
// target is within rel32 reach of it (always, for code in vmcode), and
// otherwise rewritten to go through a scratch register holding the
// absolute address (DynamoRIO's mangle_rel_addr).
func (t *translator) ripRelative(b []byte, in *decode.Inst, next uintptr) error {
	if in.Prefixes&decode.P67 != 0 {
		return t.unsupported(next-uintptr(in.Len), b, "a RIP-relative operand with a 32-bit address size")
	}
	target := next + uintptr(int64(in.Disp(b)))
	a := t.a
	newNext := a.PC() + uintptr(in.Len)
	if d, ok := mem.Rel32(newNext, target); ok {
		start := a.Len()
		a.Raw(b...)
		out := a.Bytes()[start:]
		putRel32(out[in.DispOff:], d)
		return nil
	}
	t.mangled++
	// lea r64, [rip+X] becomes mov r64, imm64.
	if in.Encoding == decode.Legacy && in.Map == decode.Map1Byte && in.Op == 0x8d && in.REX&8 != 0 && in.Prefixes&decode.P66 == 0 {
		a.MovImm64(amd64.Reg(in.RegField()), uint64(target))
		return nil
	}
	s, ok := scratchFor(in)
	if !ok {
		return t.unsupported(next-uintptr(in.Len), b, "no free scratch register for a far RIP-relative operand")
	}
	if err := a.MovStore(t.ctx(ctxSpill), s); err != nil {
		return err
	}
	spilled := none
	spilled.spill = int8(s)
	pc := next - uintptr(in.Len)
	t.markFix(pc, spilled)
	a.MovImm64(s, uint64(target))
	a.Raw(rewriteRM(t.scratch[:0], b, in, s)...)
	t.markFix(next, spilled)
	return a.MovLoad(s, t.ctx(ctxSpill))
}

// scratchFor picks a register the instruction does not name: not its
// ModRM reg, not its VEX.vvvv, and not rbx for cmpxchg8b/16b (which uses
// it implicitly). rsi, rdi and rbx are never implicit operands of an
// instruction with a memory ModRM otherwise, and at most two of them can be
// named, so one is always free.
func scratchFor(in *decode.Inst) (amd64.Reg, bool) {
	for _, s := range []amd64.Reg{amd64.RSI, amd64.RDI, amd64.RBX} {
		if uint8(s) == in.RegField() || in.Vvvv != 0xff && uint8(s) == in.Vvvv {
			continue
		}
		if s == amd64.RBX && in.Map == decode.Map0F && in.Op == 0xc7 {
			continue
		}
		return s, true
	}
	return 0, false
}

// rewriteRM appends to dst the instruction b with its RIP-relative
// operand replaced by [s] (ModRM mod 00, rm s, no displacement): the REX,
// VEX, EVEX or XOP B bit is cleared so that rm names s itself (s < 8).
func rewriteRM(dst, b []byte, in *decode.Inst, s amd64.Reg) []byte {
	dst = append(dst, b[:in.ModRMOff]...)
	switch in.Encoding {
	case decode.Legacy:
		if in.REXOff >= 0 {
			dst[in.REXOff] &^= 1
		}
	case decode.VEX:
		if b[in.VEXOff] == 0xc4 {
			dst[in.VEXOff+1] |= 0x20 // ~B
		}
	case decode.EVEX, decode.XOP:
		dst[in.VEXOff+1] |= 0x20 // ~B
	}
	dst = append(dst, in.ModRM&0x38|byte(s&7))
	if in.ImmLen != 0 {
		dst = append(dst, b[in.ImmOff:in.ImmOff+in.ImmLen]...)
	}
	return dst
}

// unsupported reports an instruction the translator cannot handle.
func (t *translator) unsupported(pc uintptr, b []byte, what string) error {
	return &UnsupportedError{PC: pc, Bytes: append([]byte(nil), b...), What: what}
}

// UnsupportedError is an application instruction the translator does not
// handle; Run stops with it when execution reaches the instruction.
type UnsupportedError struct {
	PC    uintptr
	Bytes []byte
	What  string
}

func (e *UnsupportedError) Error() string {
	if len(e.Bytes) == 0 {
		return fmt.Sprintf("jit: unsupported instruction at %#x: %s", e.PC, e.What)
	}
	return fmt.Sprintf("jit: unsupported instruction at %#x (% x): %s", e.PC, e.Bytes, e.What)
}

func putRel32(b []byte, d int32) {
	b[0], b[1], b[2], b[3] = byte(d), byte(d>>8), byte(d>>16), byte(d>>24)
}
