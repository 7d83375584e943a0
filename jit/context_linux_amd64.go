package jit

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
	"github.com/reachvm/reachvm/mem"
)

// The machine context: the application's registers while it is outside
// the cache, the host's while it is inside, spill slots and the
// indirect-branch table. It lives in a read-write vmcode slot beside the
// cache, so emitted code names every field RIP-relatively: no register or
// segment is needed to find it, and FS is the application's while its
// code runs. One Machine runs one application thread, so absolute slots
// are enough: a program's threads each get a Machine of their own
// (DynamoRIO, whose threads share code, reaches its per-thread slots
// through a segment instead).
const (
	// ctxGPR is the application's general registers, rax..r15 in
	// ModRM order, 8 bytes each.
	ctxGPR = 0x000
	// ctxFlags is the application's RFLAGS.
	ctxFlags = 0x080
	// ctxNext is the application address to continue at after an
	// indirect-branch miss.
	ctxNext = 0x088
	// ctxHostRSP is the host stack pointer saved by enter.
	ctxHostRSP = 0x090
	// ctxHostFCW and ctxHostMXCSR are the host's x87 control word and
	// MXCSR, which the C ABI makes callee-saved.
	ctxHostFCW   = 0x098
	ctxHostMXCSR = 0x09c
	// ctxTarget is the cache address enter jumps to.
	ctxTarget = 0x0a0
	// ctxExit is the exit number fcache_return hands back to Go.
	ctxExit = 0x0a8
	// ctxSpill is the scratch register's slot while a far RIP-relative
	// operand is rewritten to go through it.
	ctxSpill = 0x0b0
	// 0x0b8 up to sigtramp.HeaderEnd: the signal layer's fields
	// (package sigtramp's Off* constants), which its handlers read and
	// write; among them the application's and Go's FS bases
	// (fs_linux_amd64.go).
	ctxAppFS  = sigtramp.OffAppFS
	ctxHostFS = sigtramp.OffHostFS
	// ctxTableIndex is the index of a jump-table load that overwrites
	// its own index register, saved before it (jumptable_linux_amd64.go).
	ctxTableIndex = sigtramp.HeaderEnd
	// ctxXsave is the application's vector state (XSAVE or FXSAVE
	// area), 64-byte aligned.
	ctxXsave = 0x140
)

// Indirect-branch table: iblEntries 16-byte entries {-tag, fragment},
// indexed by the low 16 bits of the application target. Tags are stored
// negated so that `lea rcx, [rcx+rdx]` computes target-tag without the
// flags, and jrcxz tests it: the lookup, like everything the translator
// inserts, leaves the application's flags alone, so nothing needs saving
// them. Tag and fragment share a cache line.
const (
	iblBits    = 16
	iblEntries = 1 << iblBits
)

// gpr returns the context slot of register r.
func gpr(r amd64.Reg) uintptr { return ctxGPR + 8*uintptr(r) }

// layout places the variable parts of the data slot.
type layout struct {
	// xsaveSize is the application save area's size.
	xsaveSize uintptr
	// hostInit is an XSAVE area whose header marks every component as
	// in its initial state and whose MXCSR is the host's: one XRSTOR of
	// it on the way out hands Go clean vector registers, cleared upper
	// halves and its own MXCSR.
	hostInit uintptr
	// sys is the system-call gate's block: the call's number and its
	// six arguments, 8 bytes each (gencode.gate).
	sys uintptr
	// sig is the signal area (package sigtramp's Area* offsets):
	// the interrupted state of a thread the signal layer sent back to
	// the dispatcher, and the signals that arrived for the application.
	sig uintptr
	// ibl is the indirect-branch table, visits the sites' visit
	// counters (learn_linux_amd64.go).
	ibl, visits uintptr
	// size is the data slot's size.
	size uintptr
}

// padTo returns the bytes of padding that bring n up to a multiple of a
// (a power of two).
func padTo(n, a int) int {
	end, _ := mem.AlignUp(uint(n), uint(a)) // code offsets: no overflow
	return int(end) - n
}

func newLayout(vs vectorState) layout {
	var l layout
	l.xsaveSize, _ = mem.AlignUp(uintptr(vs.size), 64)
	l.hostInit = ctxXsave + l.xsaveSize
	l.sys, _ = mem.AlignUp(l.hostInit+640, 64)
	l.sig, _ = mem.AlignUp(l.sys+8*gateWords, 64)
	l.ibl, _ = mem.AlignUp(l.sig+sigtramp.AreaXsave+l.xsaveSize, 4096)
	l.visits = l.ibl + 16*iblEntries
	l.size = l.visits + 8*maxVisitCounters
	return l
}

// initialMXCSR and initialFCW are the power-on values, which the C ABI
// expects at a program's start.
const (
	initialMXCSR = 0x1f80
	initialFCW   = 0x037f
	// initialFlags has only the reserved bit 1 and IF set.
	initialFlags = 0x202
)

// gencode holds the addresses of the routines emitted once per Machine.
type gencode struct {
	// enter is `uint64 enter(void *fragment)`, called from Go: it saves
	// the host's callee-saved registers, loads the application's
	// registers, flags and vector state from the context and jumps to
	// the fragment on the application's stack.
	enter uintptr
	// fret is fcache_return, reached by a jmp from exit stubs with the
	// application's rax in the context and the exit number in eax: it
	// saves the application's state, restores the host's and returns
	// the exit number to Go.
	fret uintptr
	// iblMiss is where an indirect-branch lookup goes when the table
	// has no entry: rdx holds the target, eax the site's exit number,
	// the application's rax, rcx and rdx are in the context.
	iblMiss uintptr
	// nativeRet is the return address RunNative gives a native call.
	nativeRet uintptr
	// sigexit is where the signal layer sends a thread it takes out of
	// translated code, on the host stack: it restores the host's state
	// and returns exitSignal, the interrupted state left in the signal
	// area, the application's context untouched.
	sigexit uintptr
	// resume is `uint64 resume(void)`, called from Go like enter: it
	// goes back to the interrupted state in the signal area, registers,
	// flags (with the trap flag when the dispatcher single-steps) and
	// vector state, through iretq, which sets rip, rsp and the flags at
	// once.
	resume uintptr
	// gate is `uint64 gate(void)`, called from Go: the system call in
	// the context's block (layout.sys), made unless a signal for the
	// application arrived first (the context's arrivals), in which case
	// it returns -errNotMade without making it. [gateCheck, gateSys] is
	// the window between the look at the arrivals and the syscall
	// instruction: the signal layer sends a thread a signal interrupts
	// there to gateEINTR (sigtramp.KindGate), so that a signal that
	// comes just before a blocking call is taken before it, as natively,
	// instead of waiting for the call to end.
	gate, gateCheck, gateSys, gateEINTR uintptr
}

// gateWords is the size of the gate's block in words: the number and
// six arguments.
const gateWords = 7

// errNotMade is what the gate returns (negated) for a call it did not
// make because a signal came first: the kernel's ERESTARTNOINTR, which no
// system call returns to user space.
const errNotMade = unix.Errno(513)

// Exits of fragments are numbered from 1; exitNative ends a RunNative
// call, exitSignal a signal the signal layer took.
const (
	exitNative = 0xffffffff
	exitSignal = 0xfffffffe
	// exitArrived turns an entry back: a signal arrived.
	exitArrived = 0xfffffffd
)

// emitGencode emits enter, fcache_return and the IBL miss routine into a,
// whose base is their executable address; ctx is the context's address.
func emitGencode(a *amd64.Assembler, ctx uintptr, l layout, vs vectorState, fs fsSwitch) (gencode, error) {
	var g gencode
	var errs firstErr
	try := errs.try
	c := func(off uintptr) amd64.Mem { return amd64.RIPRel(ctx + off) }
	hostSaved := []amd64.Reg{amd64.RBP, amd64.RBX, amd64.R12, amd64.R13, amd64.R14, amd64.R15}

	// saveHost pushes the host's callee-saved registers and keeps its
	// stack pointer and control words; restoreHost gives Go back clean
	// vector registers and its control words.
	saveHost := func() {
		for _, r := range hostSaved {
			a.Push(r)
		}
		try(a.MovStore(c(ctxHostRSP), amd64.RSP))
		try(a.Fnstcw(c(ctxHostFCW)))
		try(a.Stmxcsr(c(ctxHostMXCSR)))
		if vs.xsave {
			// The host's MXCSR goes into the clean area that
			// fcache_return restores.
			try(a.Stmxcsr(c(l.hostInit + 24)))
		}
	}
	restoreHost := func() {
		if vs.xsave {
			a.MovImm32(amd64.RAX, uint32(vs.mask()))
			a.MovImm32(amd64.RDX, uint32(vs.mask()>>32))
			try(a.Xrstor64(c(l.hostInit)))
		} else {
			a.Fninit()
			try(a.Ldmxcsr(c(ctxHostMXCSR)))
		}
		try(a.Fldcw(c(ctxHostFCW)))
	}

	// enter(rdi = fragment).
	g.enter = a.PC()
	saveHost()
	try(a.MovStore(c(ctxTarget), amd64.RDI))
	// A signal that came for the application after the dispatcher
	// last looked (recorded in the arrivals while this thread ran Go
	// code) turns the entry back before anything of the application's
	// is loaded; one that comes from here on finds the thread in these
	// routines, and the handler steps it into the cache and out again.
	try(a.CmpMemImm32(c(sigtramp.OffArrivals), 0))
	arrived := a.JccLabel(amd64.CondNE)
	emitSetFS(a, c, ctxAppFS, ctxHostFS, fs, try)
	if vs.xsave {
		a.MovImm32(amd64.RAX, uint32(vs.mask()))
		a.MovImm32(amd64.RDX, uint32(vs.mask()>>32))
		try(a.Xrstor64(c(ctxXsave)))
	} else {
		try(a.Fxrstor64(c(ctxXsave)))
	}
	try(a.PushMem(c(ctxFlags)))
	a.Popfq()
	for r := amd64.RAX; r <= amd64.R15; r++ {
		if r != amd64.RSP {
			try(a.MovLoad(r, c(gpr(r))))
		}
	}
	try(a.MovLoad(amd64.RSP, c(gpr(amd64.RSP))))
	try(a.JmpMem(c(ctxTarget)))
	try(a.Bind(arrived))
	a.MovImm32(amd64.RAX, exitArrived)
	for i := len(hostSaved) - 1; i >= 0; i-- {
		a.Pop(hostSaved[i])
	}
	a.Ret()

	// fcache_return (eax = exit number, application rax in the
	// context). Nothing here may change the flags before pushfq.
	a.Nop(padTo(a.Len(), 16))
	g.fret = a.PC()
	try(a.MovStore(c(ctxExit), amd64.RAX))
	for r := amd64.RCX; r <= amd64.R15; r++ {
		try(a.MovStore(c(gpr(r)), r))
	}
	try(a.MovLoad(amd64.RSP, c(ctxHostRSP)))
	a.Pushfq()
	try(a.PopMem(c(ctxFlags)))
	a.Cld()
	if vs.xsave {
		a.MovImm32(amd64.RAX, uint32(vs.mask()))
		a.MovImm32(amd64.RDX, uint32(vs.mask()>>32))
		try(a.Xsave64(c(ctxXsave)))
	} else {
		try(a.Fxsave64(c(ctxXsave)))
	}
	emitSetFS(a, c, ctxHostFS, ctxAppFS, fs, try)
	restoreHost()
	try(a.MovLoad(amd64.RAX, c(ctxExit)))
	for i := len(hostSaved) - 1; i >= 0; i-- {
		a.Pop(hostSaved[i])
	}
	a.Ret()

	// IBL miss (rdx = target, eax = the site's exit).
	a.Nop(padTo(a.Len(), 16))
	g.iblMiss = a.PC()
	try(a.MovStore(c(ctxNext), amd64.RDX))
	try(a.MovLoad(amd64.RCX, c(gpr(amd64.RCX))))
	try(a.MovLoad(amd64.RDX, c(gpr(amd64.RDX))))
	try(a.JmpRel32(g.fret))

	// Native return (RunNative).
	a.Nop(padTo(a.Len(), 16))
	g.nativeRet = a.PC()
	try(a.MovStore(c(gpr(amd64.RAX)), amd64.RAX))
	a.MovImm32(amd64.RAX, exitNative)
	try(a.JmpRel32(g.fret))

	// sigexit: on the host stack, every other register the
	// interrupted code's.
	a.Nop(padTo(a.Len(), 16))
	g.sigexit = a.PC()
	a.Cld()
	emitSetFS(a, c, ctxHostFS, ctxAppFS, fs, try)
	restoreHost()
	a.MovImm32(amd64.RAX, exitSignal)
	for i := len(hostSaved) - 1; i >= 0; i-- {
		a.Pop(hostSaved[i])
	}
	a.Ret()

	// resume: enter's prologue, then the interrupted state through an
	// iretq frame {rip, cs, rflags, rsp, ss} on the host stack.
	a.Nop(padTo(a.Len(), 16))
	g.resume = a.PC()
	saveHost()
	emitSetFS(a, c, ctxAppFS, ctxHostFS, fs, try)
	area := func(off uintptr) amd64.Mem { return c(l.sig + off) }
	sreg := func(i int) amd64.Mem { return area(sigtramp.AreaRegs + 8*uintptr(i)) }
	if vs.xsave {
		a.MovImm32(amd64.RAX, uint32(vs.mask()))
		a.MovImm32(amd64.RDX, uint32(vs.mask()>>32))
		try(a.Xrstor64(area(sigtramp.AreaXsave)))
	} else {
		try(a.Fxrstor64(area(sigtramp.AreaXsave)))
	}
	a.Raw(0x8c, 0xd0) // mov eax, ss
	a.Push(amd64.RAX)
	try(a.PushMem(sreg(sigtramp.RegRSP)))
	try(a.PushMem(sreg(sigtramp.RegEFLAGS)))
	a.Raw(0x8c, 0xc8) // mov eax, cs
	a.Push(amd64.RAX)
	try(a.PushMem(sreg(sigtramp.RegRIP)))
	for i, r := range sigRegOrder {
		if r != amd64.RSP {
			try(a.MovLoad(r, sreg(i)))
		}
	}
	a.Raw(0x48, 0xcf) // iretq

	// gate: every register it changes is the C ABI's caller-saved.
	a.Nop(padTo(a.Len(), 16))
	g.gate = a.PC()
	sys := func(i int) amd64.Mem { return c(l.sys + 8*uintptr(i)) }
	for i, r := range []amd64.Reg{amd64.RDI, amd64.RSI, amd64.RDX, amd64.R10, amd64.R8, amd64.R9} {
		try(a.MovLoad(r, sys(1+i)))
	}
	try(a.MovLoad(amd64.RAX, sys(0)))
	g.gateCheck = a.PC()
	try(a.CmpMemImm32(c(sigtramp.OffArrivals), 0))
	early := a.JccLabel(amd64.CondNE)
	g.gateSys = a.PC()
	a.Raw(0x0f, 0x05) // syscall
	a.Ret()
	try(a.Bind(early))
	g.gateEINTR = a.PC()
	a.MovImm64(amd64.RAX, errno(errNotMade))
	a.Ret()
	if err := errs.err; err != nil {
		return gencode{}, fmt.Errorf("jit: emitting the context switch: %w", err)
	}
	return g, nil
}

// sigRegOrder are the general registers in the order of the signal
// frame's mcontext (sigtramp.Reg*).
var sigRegOrder = [...]amd64.Reg{
	amd64.R8, amd64.R9, amd64.R10, amd64.R11, amd64.R12, amd64.R13, amd64.R14, amd64.R15,
	amd64.RDI, amd64.RSI, amd64.RBP, amd64.RBX, amd64.RDX, amd64.RAX, amd64.RCX, amd64.RSP,
}

// resetVectorState writes the application's initial vector state into the
// save area: every XSAVE component in its initial state, MXCSR and the x87
// control word at their power-on values.
func resetVectorState(area []byte) {
	clear(area)
	binary.LittleEndian.PutUint16(area[0:], initialFCW)
	binary.LittleEndian.PutUint32(area[24:], initialMXCSR)
}
