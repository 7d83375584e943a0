package jit

import (
	"errors"
	"fmt"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
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
	why    string
}

// translator builds one fragment. It is reused across blocks so that its
// buffers are allocated once.
type translator struct {
	m     *Machine
	a     *amd64.Assembler
	exits []pendingExit
	in    decode.Inst
	// mangled counts RIP-relative operands that were out of reach.
	mangled int
	// instrs counts the block's application instructions.
	instrs int
	// scratch holds one rewritten instruction.
	scratch [32]byte
}

// ctx returns the RIP-relative operand of context field off.
func (t *translator) ctx(off uintptr) amd64.Mem { return amd64.RIPRel(t.m.ctx + off) }

// errFull means the fragment does not fit in what is left of the unit.
var errFull = errors.New("jit: unit full")

// block translates the basic block at tag into t.a, whose base is the
// fragment's executable address, self.entry. firstExit is the number the
// block's first exit stub will have. code holds the readable bytes from
// tag on.
func (t *translator) block(tag uintptr, code []byte, self *fragment, firstExit uint32, room uintptr) error {
	t.exits = t.exits[:0]
	t.mangled, t.instrs = 0, 0
	a := t.a
	pc := tag
	opts := &t.m.opts
	for {
		off := pc - tag
		in := &t.in
		if off >= uintptr(len(code)) {
			t.exitBad(pc, "code ends (no executable mapping)")
			break
		}
		if err := decode.DecodeInto(code[off:], in); err != nil {
			t.exitBad(pc, err.Error())
			break
		}
		b := code[off : off+uintptr(in.Len)]
		next := pc + uintptr(in.Len)
		t.instrs++
		start, nexits := a.Len(), len(t.exits)
		done := true
		var err error
		switch in.Kind {
		case decode.Plain:
			done = false
			if in.RIPRelative() {
				err = t.ripRelative(b, in, next)
			} else {
				a.Raw(b...)
			}
		case decode.JmpRel:
			t.jmpExit(next + uintptr(int64(in.Rel)))
		case decode.JccRel:
			t.jccExit(amd64.Cond(in.Cond), next+uintptr(int64(in.Rel)))
			t.jmpExit(next)
		case decode.CallRel:
			a.Push64(uint64(next))
			t.jmpExit(next + uintptr(int64(in.Rel)))
		case decode.LoopRel:
			err = t.loop(b, in, next)
		case decode.JmpInd, decode.CallInd:
			err = t.indirect(b, in, next, in.Kind == decode.CallInd)
		case decode.Ret:
			err = t.ret(b, in)
		case decode.Syscall:
			t.instrs--
			t.exits = append(t.exits, pendingExit{kind: exitSyscall, target: pc})
		default:
			t.instrs--
			t.exitBad(pc, fmt.Sprintf("%v instruction % x", in.Kind, b))
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
			t.instrs--
			t.exitBad(pc, ue.What+fmt.Sprintf(" (% x)", b))
			break
		}
		if done {
			break
		}
		pc = next
		if t.instrs >= opts.MaxBlockInstrs || uintptr(a.Len())+uintptr(len(t.exits)+1)*stubLen+256 > room {
			t.jmpExit(pc)
			break
		}
	}
	return t.stubs(tag, self, firstExit)
}

// jmpExit emits `jmp rel32` to a direct exit.
func (t *translator) jmpExit(target uintptr) {
	t.exits = append(t.exits, pendingExit{kind: exitDirect, target: target, fix: t.a.JmpLabel(), hasFix: true})
}

// jccExit emits `jcc rel32` to a direct exit.
func (t *translator) jccExit(cc amd64.Cond, target uintptr) {
	t.exits = append(t.exits, pendingExit{kind: exitDirect, target: target, fix: t.a.JccLabel(cc), hasFix: true})
}

// exitBad ends the block with an exit that fails the run at pc.
func (t *translator) exitBad(pc uintptr, why string) {
	t.exits = append(t.exits, pendingExit{kind: exitBad, target: pc, why: why})
}

// stubs emits the exit stubs after the body and points each exit branch
// at its stub, or straight at the target's fragment when there is one
// (linking at translation time).
func (t *translator) stubs(tag uintptr, self *fragment, firstExit uint32) error {
	a := t.a
	for i := range t.exits {
		e := &t.exits[i]
		if e.hasFix {
			f := t.m.frags[e.target]
			if e.target == tag {
				f = self
			}
			if f != nil && e.kind == exitDirect {
				if err := a.BindTarget(e.fix, f.entry); err != nil {
					return err
				}
				e.linked = f
			} else if err := a.Bind(e.fix); err != nil {
				return err
			}
		}
		// A stub reached by falling into it (syscall, bad) must come
		// right after the body: it is the first, and only, such exit.
		if err := a.MovStore(t.ctx(gpr(amd64.RAX)), amd64.RAX); err != nil {
			return err
		}
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
	if d, ok := amd64.Rel32(newNext, target); ok {
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
	a.MovImm64(s, uint64(target))
	a.Raw(rewriteRM(t.scratch[:0], b, in, s)...)
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

// loadTarget emits `mov rdx, r/m` for the operand of an indirect call or
// jump (FF /2 or FF /4), evaluated with the application's registers: the
// same ModRM, SIB and displacement with the reg field set to rdx, a
// RIP-relative displacement re-encoded (or, far, the absolute address
// loaded first). BND (F2) and NOTRACK (3E) prefixes are dropped.
func (t *translator) loadTarget(b []byte, in *decode.Inst, next uintptr) error {
	a := t.a
	if in.Prefixes&(decode.P66) != 0 || in.Encoding != decode.Legacy {
		return t.unsupported(next-uintptr(in.Len), b, "a 16-bit or non-legacy indirect branch")
	}
	if in.RIPRelative() {
		if in.Prefixes&(decode.P67|decode.PSeg) != 0 && in.Seg != 0x3e && in.Seg != 0x2e {
			return t.unsupported(next-uintptr(in.Len), b, "a segment or 32-bit RIP-relative indirect branch")
		}
		target := next + uintptr(int64(in.Disp(b)))
		// mov rdx, [rip+disp32] is 7 bytes.
		if _, ok := amd64.Rel32(a.PC()+7, target); ok {
			return a.MovLoad(amd64.RDX, amd64.RIPRel(target))
		}
		t.mangled++
		a.MovImm64(amd64.RDX, uint64(target))
		return a.MovLoad(amd64.RDX, amd64.M(amd64.RDX, 0))
	}
	out := t.scratch[:0]
	if in.Prefixes&decode.P67 != 0 {
		out = append(out, 0x67)
	}
	if in.Prefixes&decode.PSeg != 0 && (in.Seg == 0x64 || in.Seg == 0x65) {
		out = append(out, in.Seg)
	}
	out = append(out, 0x48|in.REX&3, 0x8b, in.ModRM&0xc7|byte(amd64.RDX)<<3)
	out = append(out, b[in.ModRMOff+1:in.Len]...)
	a.Raw(out...)
	return nil
}

// indirect translates `call r/m` and `jmp r/m`: the target goes to rdx,
// a call pushes the application's return address (after the operand is
// evaluated, as the processor does), and the inline lookup jumps to the
// target's fragment.
func (t *translator) indirect(b []byte, in *decode.Inst, next uintptr, call bool) error {
	a := t.a
	if err := a.MovStore(t.ctx(gpr(amd64.RDX)), amd64.RDX); err != nil {
		return err
	}
	if err := t.loadTarget(b, in, next); err != nil {
		return err
	}
	if call {
		a.Push64(uint64(next))
	}
	return t.lookup()
}

// ret translates `ret` and `ret imm16`: the application's return address
// is popped into rdx (the stack is the application's, unchanged) and
// looked up like any indirect target.
func (t *translator) ret(b []byte, in *decode.Inst) error {
	a := t.a
	if err := a.MovStore(t.ctx(gpr(amd64.RDX)), amd64.RDX); err != nil {
		return err
	}
	a.Pop(amd64.RDX)
	if in.ImmLen == 2 {
		n := int32(uint16(b[in.ImmOff]) | uint16(b[in.ImmOff+1])<<8)
		if err := a.Lea(amd64.RSP, amd64.M(amd64.RSP, n)); err != nil {
			return err
		}
	}
	return t.lookup()
}

// lookup emits the inline indirect-branch lookup for the target in rdx,
// with the application's rdx already in the context: it saves rax and
// rcx, indexes the table with the target's low 16 bits, and on a hit
// restores the three registers and jumps through a per-site indirect jmp
// (so the processor predicts each site on its own); on a miss it goes to
// iblMiss. No instruction here reads or writes the flags.
//
//	mov  [ctx.rax], rax
//	mov  [ctx.rcx], rcx
//	movzx ecx, dx
//	lea  rax, [rip+tags]
//	mov  rax, [rax+rcx*8]     ; -tag
//	lea  rax, [rax+rdx]       ; target-tag
//	xchg rax, rcx             ; rcx = target-tag, rax = index
//	jrcxz hit
//	jmp  iblMiss
//	hit: lea rcx, [rip+targets]
//	mov  rcx, [rcx+rax*8]
//	mov  [ctx.ibl], rcx
//	mov  rax, [ctx.rax]; mov rcx, [ctx.rcx]; mov rdx, [ctx.rdx]
//	jmp  [ctx.ibl]
func (t *translator) lookup() error {
	a := t.a
	var err error
	try := func(e error) {
		if err == nil {
			err = e
		}
	}
	try(a.MovStore(t.ctx(gpr(amd64.RAX)), amd64.RAX))
	try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	a.Movzx16(amd64.RCX, amd64.RDX)
	try(a.Lea(amd64.RAX, amd64.RIPRel(t.m.ctx+t.m.lay.iblTags)))
	try(a.MovLoad(amd64.RAX, amd64.MI(amd64.RAX, amd64.RCX, 8, 0)))
	try(a.Lea(amd64.RAX, amd64.MI(amd64.RAX, amd64.RDX, 1, 0)))
	a.Xchg(amd64.RAX, amd64.RCX)
	hit := a.Jrcxz()
	try(a.JmpRel32(t.m.gen.iblMiss))
	try(a.Bind(hit))
	try(a.Lea(amd64.RCX, amd64.RIPRel(t.m.ctx+t.m.lay.iblTargets)))
	try(a.MovLoad(amd64.RCX, amd64.MI(amd64.RCX, amd64.RAX, 8, 0)))
	try(a.MovStore(t.ctx(ctxIBLTarget), amd64.RCX))
	try(a.MovLoad(amd64.RAX, t.ctx(gpr(amd64.RAX))))
	try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
	try(a.MovLoad(amd64.RDX, t.ctx(gpr(amd64.RDX))))
	try(a.JmpMem(t.ctx(ctxIBLTarget)))
	return err
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
	return fmt.Sprintf("jit: unsupported instruction at %#x (% x): %s", e.PC, e.Bytes, e.What)
}

func putRel32(b []byte, d int32) {
	b[0], b[1], b[2], b[3] = byte(d), byte(d>>8), byte(d>>16), byte(d>>24)
}
