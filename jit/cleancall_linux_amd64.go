package jit

import (
	"fmt"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
)

// Clean calls: a call from the code cache to a native function (a client
// library's, loaded privately into vmcode, so that the call is one rel32
// `call`) with the application's state kept around it, DynamoRIO's
// dr_insert_clean_call. The sequence, before the instruction at pc:
//
//	mov   [ctx.rsp], rsp          ; the application's stack is left alone
//	mov   rsp, ccstack.top        ; a stack of the machine's own
//	pushfq                        ; the flags, and DF clear for the C ABI
//	cld
//	mov   [ctx.r], r              ; each caller-saved r live at pc or read by an argument
//	sub   rsp, 8                  ; 16-byte alignment at the call
//	(FS := Go's, if the machine switches FS)
//	(xsave64 [ctx.xsave], if asked)
//	(push [rsp+8]; pop [ctx.flags], for ArgContext: every register saved)
//	lea   rax, [ea]               ; ArgEA, from the saved registers
//	mov   rdi.., args
//	call  fn                      ; rel32 when fn is in reach
//	(xrstor64 [ctx.xsave])
//	(FS := the application's)
//	(push [ctx.flags]; pop [rsp+8], for ArgContext)
//	mov   eax, [ctx.arrivals]     ; a signal came while the client ran:
//	or    eax, [ctx.posted]       ; single-step to the exact mark after
//	jz    1f                      ; this sequence, where it is delivered
//	or    byte [ctx.state], stepping
//	or    byte [rsp+9], 1         ; TF in the saved flags
//	1: add rsp, 8
//	popfq
//	mov   r, [ctx.r]              ; each register saved
//	mov   rsp, [ctx.rsp]
//
// The client's function runs with Go's FS (a signal handler of Go's may
// run on top of it), on the machine's clean-call stack, and must keep the
// C ABI's callee-saved registers and, unless the call saves the vector
// state, the vector registers (build it with -mgeneral-regs-only, or ask
// for CleanCallVector). A fault in it is not the application's: it
// crashes the process, as a fault of reachvm's own would.

// ccStackSize is the size of each machine's clean-call stack.
const ccStackSize = 256 << 10

// ctxPosted is set while the dispatcher, having posted an asynchronous
// signal for the thread, single-steps it to an exact mark: a step that
// runs into a clean call's function stops there (the signal layer stops
// stepping outside the cache), and the sequence after the call starts
// stepping again when it finds the word set.
const ctxPosted = sigtramp.HeaderEnd + 8

// argKind is what a clean call's argument is.
type argKind uint8

const (
	argConst argKind = iota
	argReg
	argPC
	argEA
	argContext
)

// Arg is an argument of a clean call: a constant, an application
// register's value, the instruction's address or its memory operand's
// effective address.
type Arg struct {
	kind argKind
	// v is the constant (argConst).
	v uint64
	// reg is the register (argReg).
	reg Reg
}

// ArgConst is the constant v.
func ArgConst(v int64) Arg { return Arg{kind: argConst, v: uint64(v)} }

// ArgReg is the application's value of register r before the
// instruction.
func ArgReg(r Reg) Arg { return Arg{kind: argReg, reg: r} }

// ArgPC is the instruction's application address.
func ArgPC() Arg { return Arg{kind: argPC} }

// ArgEA is the effective address of the instruction's explicit memory
// operand (its ModRM operand: base + index*scale + displacement, plus the
// FS base for an FS-relative one), as the instruction would compute it.
// An instruction without one fails the translation.
func ArgEA() Arg { return Arg{kind: argEA} }

// ArgContext is a pointer to the application's registers as they are
// before the instruction: rax..r15 (8 bytes each, in the hardware's
// order, Reg), then RFLAGS, 136 bytes, which the function may read and
// change: what it leaves there is what the application goes on with
// (except RFLAGS' trap flag, and rsp's change moves only the stack
// pointer). The registers are all saved and restored for such a call.
func ArgContext() Arg { return Arg{kind: argContext} }

// maxCallArgs is the number of arguments the C ABI passes in registers.
const maxCallArgs = 6

// argRegs are the C ABI's argument registers, in order.
var argRegs = [maxCallArgs]amd64.Reg{amd64.RDI, amd64.RSI, amd64.RDX, amd64.RCX, amd64.R8, amd64.R9}

// callerSaved are the registers a C function may change.
const callerSaved = 1<<RAX | 1<<RCX | 1<<RDX | 1<<RSI | 1<<RDI | 1<<R8 | 1<<R9 | 1<<R10 | 1<<R11

// CleanCall inserts, before instruction i, a call to the native function
// at fn with up to six arguments, the application's state kept around
// it. fn should be in vmcode (a privately loaded library's function),
// which makes the call a rel32 `call`; elsewhere it is an indirect call.
// See the package's notes on clean calls for what fn may and may not do.
func (b *Block) CleanCall(i int, fn uintptr, args ...Arg) {
	b.cleanCall("CleanCall", i, fn, false, args)
}

// CleanCallVector is CleanCall that also saves and restores the vector
// state (x87, SSE, AVX) around the call, for a function that uses it.
func (b *Block) CleanCallVector(i int, fn uintptr, args ...Arg) {
	b.cleanCall("CleanCallVector", i, fn, true, args)
}

func (b *Block) cleanCall(op string, i int, fn uintptr, vector bool, args []Arg) {
	if b.err != nil {
		return
	}
	switch {
	case i < 0 || i >= len(b.instrs):
		b.err = fmt.Errorf("jit: client: %s at instruction %d of a block of %d", op, i, len(b.instrs))
		return
	case fn == 0:
		b.err = fmt.Errorf("jit: client: %s of a nil function", op)
		return
	case len(args) > maxCallArgs:
		b.err = fmt.Errorf("jit: client: %s with %d arguments (at most %d)", op, len(args), maxCallArgs)
		return
	}
	for _, a := range args {
		if a.kind == argReg && a.reg > R15 {
			b.err = fmt.Errorf("jit: client: %s with an argument of register %v", op, a.reg)
			return
		}
		if a.kind == argEA {
			if _, err := effAddr(&b.instrs[i]); err != nil {
				b.err = fmt.Errorf("jit: client: %s with ArgEA: %w", op, err)
				return
			}
		}
	}
	b.ins = append(b.ins, insertion{at: i, kind: insertCleanCall, fn: fn, vector: vector, args: append([]Arg(nil), args...)})
}

// AddCell inserts, before instruction i, code that adds n to the 8-byte
// cell at address cell, as AddCounter does to a counter's: cell must be
// within rel32 reach of the code cache (in vmcode: a privately loaded
// library's data), locked makes the add atomic for cells that threads
// share. n must fit in 32 bits.
func (b *Block) AddCell(i int, cell uintptr, n int64, locked bool) {
	switch {
	case b.err != nil:
	case i < 0 || i >= len(b.instrs):
		b.err = fmt.Errorf("jit: client: AddCell at instruction %d of a block of %d", i, len(b.instrs))
	case cell == 0 || cell%8 != 0:
		b.err = fmt.Errorf("jit: client: AddCell of the cell at %#x, which is not an aligned 8-byte cell", cell)
	case n != int64(int32(n)):
		b.err = fmt.Errorf("jit: client: AddCell of %d, which does not fit in 32 bits", n)
	default:
		b.ins = append(b.ins, insertion{at: i, kind: insertCell, cell: cell, n: int32(n), locked: locked})
	}
}

// effAddr returns the memory operand of in as the assembler's Mem, for
// a lea; RIP-relative operands come back absolute (Mem.RIP).
func effAddr(in *Instr) (ea memOperand, err error) {
	d := &in.in
	if !d.HasModRM() || d.Mod() == 3 {
		return ea, fmt.Errorf("the instruction at %#x (% x) has no memory operand", in.pc, in.code)
	}
	if d.Prefixes&decode.PSeg != 0 && d.Seg == 0x65 {
		return ea, fmt.Errorf("the instruction at %#x (% x) is GS-relative, whose base reachvm does not track", in.pc, in.code)
	}
	ea.fs = d.Prefixes&decode.PSeg != 0 && d.Seg == 0x64
	ea.addr32 = d.Prefixes&decode.P67 != 0
	m := modrmMem(d, in.code, in.pc+uintptr(d.Len))
	if m.RIP {
		ea.rip, ea.abs = true, m.Target
		return ea, nil
	}
	ea.base, ea.index, ea.scale, ea.disp = -1, -1, m.Scale, m.Disp
	if m.Base != amd64.NoReg {
		ea.base = int8(m.Base)
	}
	if m.Index != amd64.NoReg {
		ea.index = int8(m.Index)
	}
	if d.Encoding != decode.Legacy && d.Map != decode.Map1Byte {
		// VSIB (gathers and scatters) has a vector index: no one
		// address.
		if isVSIB(d) {
			return ea, fmt.Errorf("the instruction at %#x (% x) has a vector index (VSIB): no one effective address", in.pc, in.code)
		}
	}
	return ea, nil
}

// isVSIB reports whether a VEX or EVEX instruction's SIB has a vector
// index: the gathers (0F38 90-93) and scatters (0F38 A0-A3), and the
// AVX-512 prefetches (0F38 C6, C7).
func isVSIB(d *decode.Inst) bool {
	if d.Map != decode.Map0F38 {
		return false
	}
	switch d.Op {
	case 0x90, 0x91, 0x92, 0x93, 0xa0, 0xa1, 0xa2, 0xa3, 0xc6, 0xc7:
		return true
	}
	return false
}

// memOperand is an instruction's memory operand, decoded for a lea.
type memOperand struct {
	// rip: the address is abs.
	rip bool
	abs uintptr
	// base and index are register numbers, or -1 for none; scale is
	// 1, 2, 4 or 8.
	base, index int8
	scale       uint8
	disp        int32
	// fs adds the application's FS base; addr32 truncates to 32 bits
	// (an address-size prefix).
	fs, addr32 bool
}

// emitCleanCall emits op's clean call before the instruction at pc.
func (t *translator) emitCleanCall(pc uintptr, in *Instr, op *insertion) error {
	m := t.m
	if m.ccStack == 0 {
		p, err := m.v.HeapAlloc(ccStackSize)
		if err != nil {
			return fmt.Errorf("jit: allocating the clean-call stack: %w", err)
		}
		m.ccStack = p
	}
	top := m.ccStack + ccStackSize
	a := t.a
	var err error
	try := func(e error) {
		if err == nil {
			err = e
		}
	}
	c := t.ctx

	// The registers to save: the caller-saved ones live here, and
	// those the arguments read (which read them from their slots,
	// since the FS switch and the argument moves overwrite them).
	save := uint16(callerSaved) &^ uint16(m.deadAt(pc))
	var ea memOperand
	needEA, needCtx := false, false
	for _, x := range op.args {
		switch x.kind {
		case argReg:
			save |= 1 << x.reg & callerSaved
		case argEA:
			needEA = true
		case argContext:
			needCtx = true
		}
	}
	if needCtx {
		save = 0xffff &^ (1 << RSP)
	}
	if needEA {
		ea, err = effAddr(in)
		if err != nil {
			return fmt.Errorf("jit: client: clean call with ArgEA: %w", err)
		}
		if ea.base >= 0 {
			save |= 1 << ea.base & callerSaved
		}
		if ea.index >= 0 {
			save |= 1 << ea.index & callerSaved
		}
	}
	// The sequence is not an instruction boundary: a signal in it
	// steps the thread to the exact mark after it.
	t.markFix(pc, none)
	try(a.MovStore(c(gpr(amd64.RSP)), amd64.RSP))
	a.MovImm64(amd64.RSP, uint64(top))
	a.Pushfq()
	a.Cld()
	for r := amd64.RAX; r <= amd64.R15; r++ {
		if save>>r&1 != 0 {
			try(a.MovStore(c(gpr(r)), r))
		}
	}
	a.SubRSP(8)
	if needCtx {
		// The flags beside the registers: push [rsp+8]; pop [ctx.flags].
		try(a.PushMem(amd64.M(amd64.RSP, 8)))
		try(a.PopMem(c(ctxFlags)))
	}
	emitSetFS(a, c, ctxHostFS, ctxAppFS, m.fs, try)
	if op.vector {
		t.emitVector(true, try)
	}
	// appReg loads the application's value of r into dst.
	appReg := func(dst amd64.Reg, r int8) {
		reg := amd64.Reg(r)
		switch {
		case reg == amd64.RSP || save>>r&1 != 0:
			try(a.MovLoad(dst, c(gpr(reg))))
		case dst != reg:
			a.MovRR(dst, reg)
		}
	}
	if needEA {
		t.emitEA(ea, appReg, try)
	}
	for k, x := range op.args {
		dst := argRegs[k]
		switch x.kind {
		case argConst:
			movImm(a, dst, x.v)
		case argPC:
			movImm(a, dst, uint64(pc))
		case argReg:
			appReg(dst, int8(x.reg))
		case argEA:
			a.MovRR(dst, amd64.RAX)
		case argContext:
			movImm(a, dst, uint64(m.ctx+ctxGPR))
		}
	}
	if e := a.CallRel32(op.fn); e != nil {
		a.MovImm64(amd64.RAX, uint64(op.fn))
		a.CallReg(amd64.RAX)
	}
	if op.vector {
		t.emitVector(false, try)
	}
	emitSetFS(a, c, ctxAppFS, ctxHostFS, m.fs, try)
	if needCtx {
		// The flags as the function left them, the trap flag not
		// theirs to set: push [ctx.flags]; pop [rsp+8] (pop's address
		// counts from the stack pointer after it).
		try(a.PushMem(c(ctxFlags)))
		try(a.PopMem(amd64.M(amd64.RSP, 8)))
		a.Raw(0x80, 0x64, 0x24, 0x09, 0xfe) // and byte [rsp+9], ~1: TF
	}
	a.Raw(0x8b, 0x05) // mov eax, [rip+arrivals]
	a.Raw(rel32To(a, sigtramp.OffArrivals+m.ctx, 0)...)
	a.Raw(0x0b, 0x05) // or eax, [rip+posted]
	a.Raw(rel32To(a, ctxPosted+m.ctx, 0)...)
	calm := a.JccShort(amd64.CondE)
	a.Raw(0x80, 0x0d) // or byte [rip+state], stepping
	a.Raw(rel32To(a, sigtramp.OffState+m.ctx, 1)...)
	a.Raw(sigtramp.StateStepping)
	a.Raw(0x80, 0x4c, 0x24, 0x09, 0x01) // or byte [rsp+9], 1: TF
	try(a.Bind(calm))
	a.AddRSP(8)
	a.Popfq()
	for r := amd64.RAX; r <= amd64.R15; r++ {
		if save>>r&1 != 0 {
			try(a.MovLoad(r, c(gpr(r))))
		}
	}
	try(a.MovLoad(amd64.RSP, c(gpr(amd64.RSP))))
	return err
}

// rel32To returns the 4-byte RIP-relative displacement to target of an
// operand placed at the assembler's current position, in an instruction
// whose bytes after the displacement number tail.
func rel32To(a *amd64.Assembler, target uintptr, tail int) []byte {
	d := int64(target) - int64(a.PC()+4+uintptr(tail))
	v := uint32(int32(d))
	return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)}
}

// movImm loads v into r in the shortest form.
func movImm(a *amd64.Assembler, r amd64.Reg, v uint64) {
	if v <= 0xffffffff {
		a.MovImm32(r, uint32(v))
		return
	}
	a.MovImm64(r, v)
}

// emitVector saves (save) or restores the application's vector state
// in the context's vector area, free while the thread is in the cache.
// It clobbers rax and rdx.
func (t *translator) emitVector(save bool, try func(error)) {
	a, vs := t.a, t.m.vs
	at := t.ctx(ctxXsave)
	if !vs.xsave {
		if save {
			try(a.Fxsave64(at))
		} else {
			try(a.Fxrstor64(at))
		}
		return
	}
	a.MovImm32(amd64.RAX, uint32(vs.mask()))
	a.MovImm32(amd64.RDX, uint32(vs.mask()>>32))
	if save {
		try(a.Xsave64(at))
	} else {
		try(a.Xrstor64(at))
	}
}

// emitEA computes ea into rax, the registers it reads taken by appReg.
// It clobbers r11.
func (t *translator) emitEA(ea memOperand, appReg func(dst amd64.Reg, r int8), try func(error)) {
	a := t.a
	if !ea.rip && ea.base >= 0 {
		appReg(amd64.RAX, ea.base)
	}
	if !ea.rip && ea.index >= 0 {
		appReg(amd64.R11, ea.index)
	}
	try(leaEA(a, amd64.RAX, ea, amd64.RAX, amd64.R11))
	if ea.fs {
		a.Raw(0x48, 0x03, 0x05) // add rax, [rip+appFS]
		a.Raw(rel32To(a, t.m.ctx+ctxAppFS, 0)...)
	}
}

// HasMemOperand reports whether the instruction has an explicit memory
// operand whose address ArgEA and RecordEA can compute: a ModRM memory
// operand, not GS-relative, not with a vector index.
func (i *Instr) HasMemOperand() bool {
	d := &i.in
	return d.HasModRM() && d.Mod() != 3 &&
		(d.Prefixes&decode.PSeg == 0 || d.Seg != 0x65) &&
		!(d.ModRM&7 == 4 && d.Encoding != decode.Legacy && isVSIB(d))
}

// leaEA emits dst := ea's address, less the FS base, its base and index
// registers' values taken from base and index (the operand's own, or
// where the caller put their application values), the flags left alone.
func leaEA(a *amd64.Assembler, dst amd64.Reg, ea memOperand, base, index amd64.Reg) error {
	if ea.rip {
		movImm(a, dst, uint64(ea.abs))
		return nil
	}
	m := amd64.Mem{Base: amd64.NoReg, Index: amd64.NoReg, Scale: ea.scale, Disp: ea.disp}
	if ea.base >= 0 {
		m.Base = base
	}
	if ea.index >= 0 {
		m.Index = index
	}
	if ea.addr32 {
		return a.Lea32(dst, m)
	}
	return a.Lea(dst, m)
}

// operandRegs returns ea's base and index registers as they are (any
// value where there is none: leaEA does not read it).
func operandRegs(ea memOperand) (base, index amd64.Reg) {
	return amd64.Reg(uint8(ea.base)), amd64.Reg(uint8(ea.index))
}
