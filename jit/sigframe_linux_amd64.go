package jit

import (
	"encoding/binary"
	"runtime"
	"runtime/debug"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
)

// The signal frame, as the kernel writes it on x86-64
// (arch/x86/kernel/signal_64.c, x64_setup_rt_frame, and
// arch/x86/kernel/fpu/signal.c): from the new stack pointer up,
//
//	struct rt_sigframe {
//		char *pretcode;              // sa_restorer: the handler's return address
//		struct ucontext uc;          // uc_flags, uc_link, uc_stack, uc_mcontext, uc_sigmask
//		struct siginfo info;         // written with SA_SIGINFO only
//	};
//
// then padding, then the XSAVE area (64-byte aligned, the
// FP_XSTATE_MAGIC1 software bytes in its legacy area and FP_XSTATE_MAGIC2
// after it), below the interrupted stack pointer less the 128-byte red
// zone (or the top of the alternate stack). The frame is aligned so that
// rsp+8 is a multiple of 16 at the handler's first instruction, as after
// a call. The kernel writes field by field; so does this: the bytes it
// leaves alone (padding, sigcontext's reserved words, the siginfo without
// SA_SIGINFO) keep what the stack held.
const (
	// frameSize is sizeof(struct rt_sigframe); frameUC and frameInfo
	// the offsets of uc and info.
	frameSize = 440
	frameUC   = 8
	frameInfo = 312

	// Offsets in struct ucontext.
	ucFlags    = 0
	ucLink     = 8
	ucStack    = 16
	ucMContext = 40
	ucSigmask  = 296

	// Offsets in stack_t.
	ssSP    = 0
	ssFlags = 8
	ssSize  = 16

	// Offsets in struct sigcontext (uc_mcontext), after the sixteen
	// general registers in scRegs' order.
	scRIP     = 128
	scFlags   = 136
	scCS      = 144
	scGS      = 146
	scFS      = 148
	scSS      = 150
	scErr     = 152
	scTrapno  = 160
	scOldmask = 168
	scCR2     = 176
	scFPState = 184
	// scCopy is what rt_sigreturn reads of it (up to reserved1).
	scCopy = 192

	// The selectors a 64-bit handler runs with (__USER_CS, __USER_DS).
	userCS = 0x33
	userDS = 0x2b

	// uc_flags bits.
	ucFPXState        = 1
	ucSigcontextSS    = 2
	ucStrictRestoreSS = 4

	// The XSAVE area's software bytes (struct _fpx_sw_bytes, at 464 in
	// the legacy area) and magic numbers.
	fpxSW          = 464
	fpXStateMagic1 = 0x46505853
	fpXStateMagic2 = 0x46505845
	// xsaveHeader is the XSAVE header's offset, xsaveMin the legacy area
	// and the header.
	xsaveHeader = 512
	xsaveMin    = 576

	// Flags bits.
	flagTF = 0x100
	flagDF = 0x400
	flagRF = 0x10000
	// fixFlags are the flags rt_sigreturn takes from the frame
	// (FIX_EFLAGS: AC OF DF TF SF ZF AF PF CF RF) but TF: single-stepping
	// is not emulated, and a TF set in the context would trap in
	// reachvm's own context switch.
	fixFlags = 0x40000 | 0x800 | 0x400 | 0x80 | 0x40 | 0x10 | 0x4 | 0x1 | 0x10000
)

// scRegs are the general registers in sigcontext's order.
var scRegs = [16]amd64.Reg{
	amd64.R8, amd64.R9, amd64.R10, amd64.R11, amd64.R12, amd64.R13, amd64.R14, amd64.R15,
	amd64.RDI, amd64.RSI, amd64.RBP, amd64.RBX, amd64.RDX, amd64.RAX, amd64.RCX, amd64.RSP,
}

// xstateFrame is the kernel's XSAVE area in a signal frame, for the
// machine's vector state.
type xstateFrame struct {
	// xsave is set when the frame holds an XSAVE area, not an FXSAVE one.
	xsave bool
	// userSize is the kernel's fpstate->user_size: the standard-form
	// XSAVE size of userFeatures, the components it saves in a frame
	// (XCR0 without the AMX tile data, which a process must ask for).
	userSize     uintptr
	userFeatures uint64
	// xcr0 is the enabled components: XRSTOR refuses an XSTATE_BV with
	// any other.
	xcr0 uint64
	// ctxMask is what the machine context holds (vectorState.mask);
	// comps their areas past the legacy one and the header.
	ctxMask uint64
	comps   []xcomp
	// size is the frame's XSAVE part (xstate_sigframe_size): userSize
	// and MAGIC2, or the 512 bytes of FXSAVE.
	size uintptr
	// ucFlags is uc_flags for the frame.
	ucFlags uint64
	// mxcsrMask is the MXCSR bits the processor accepts.
	mxcsrMask uint32
}

// xcomp is one XSAVE component's place in the standard form.
type xcomp struct {
	bit       uint
	off, size uintptr
}

// xstateFrames caches the frame layout per vector state (one per
// processor, in practice).
var xstateFrames sync.Map

// xstateFrameOf returns the signal frame's XSAVE layout for vs.
func xstateFrameOf(vs vectorState) *xstateFrame {
	if x, ok := xstateFrames.Load(vs); ok {
		return x.(*xstateFrame)
	}
	x := &xstateFrame{xsave: vs.xsave, xcr0: vs.xcr0, ctxMask: vs.mask()}
	var area [512 + 16]byte
	at := (16 - uintptr(unsafe.Pointer(&area[0]))%16) % 16
	fxsave(&area[at])
	x.mxcsrMask = binary.LittleEndian.Uint32(area[at+28:])
	if x.mxcsrMask == 0 {
		x.mxcsrMask = 0xffbf
	}
	if !vs.xsave {
		x.userSize, x.userFeatures, x.size = 512, 3, 512
		x.ucFlags = ucSigcontextSS | ucStrictRestoreSS
	} else {
		const xtileData = 1 << 18
		x.userFeatures = vs.xcr0 &^ xtileData
		x.userSize = xsaveMin
		for bit := uint(2); bit < 63; bit++ {
			if x.userFeatures&(1<<bit) == 0 {
				continue
			}
			size, off, _, _ := cpuid(0xd, uint32(bit))
			x.userSize = max(x.userSize, uintptr(off)+uintptr(size))
			if x.ctxMask&(1<<bit) != 0 {
				x.comps = append(x.comps, xcomp{bit: bit, off: uintptr(off), size: uintptr(size)})
			}
		}
		x.size = x.userSize + 4
		x.ucFlags = ucFPXState | ucSigcontextSS | ucStrictRestoreSS
	}
	v, _ := xstateFrames.LoadOrStore(vs, x)
	return v.(*xstateFrame)
}

// save writes the vector state of the context area into the frame's
// XSAVE area at fp, as copy_fpstate_to_sigframe does: the legacy area,
// the software bytes, the header (XSTATE_BV with x87 and SSE always
// set, for programs that edit the legacy area only), each component,
// and MAGIC2 at the end. Components the context does not hold are
// written in their initial state.
//
// Preconditions: inside userAccess; fp is 64-byte aligned.
func (x *xstateFrame) save(fp uintptr, area []byte) {
	userWrite(fp, area[:fpxSW])
	var sw [48]byte
	binary.LittleEndian.PutUint32(sw[0:], fpXStateMagic1)
	binary.LittleEndian.PutUint32(sw[4:], uint32(x.userSize+4))
	binary.LittleEndian.PutUint64(sw[8:], x.userFeatures)
	binary.LittleEndian.PutUint32(sw[16:], uint32(x.userSize))
	userWrite(fp+fpxSW, sw[:])
	if !x.xsave {
		return
	}
	var hdr [64]byte
	bv := binary.LittleEndian.Uint64(area[xsaveHeader:])&x.ctxMask | 3
	binary.LittleEndian.PutUint64(hdr[:], bv)
	userWrite(fp+xsaveHeader, hdr[:])
	// Components the context does not hold: zero, their bit clear.
	clear(rawmem.Bytes(fp+xsaveMin, x.userSize-xsaveMin))
	for _, c := range x.comps {
		userWrite(fp+c.off, area[c.off:c.off+c.size])
	}
	put32(fp+x.userSize, fpXStateMagic2)
}

// restore loads the frame's XSAVE area at fp into the context area, as
// rt_sigreturn does (fpu__restore_sig): none (fp 0) resets the vector
// state; software bytes without the magic numbers restore the legacy
// area alone (x87 and SSE), the rest initial; otherwise the components
// the software bytes name, as XSTATE_BV says, the others initial. It
// reports false where the kernel's XRSTOR or FXRSTOR would fault, which
// rt_sigreturn turns into SIGSEGV: a misaligned area, one that cannot be
// read, reserved MXCSR bits, a header XRSTOR refuses (a compacted one
// among them).
//
// Preconditions: inside userAccess.
func (x *xstateFrame) restore(fp uintptr, area []byte) bool {
	if fp == 0 {
		resetVectorState(area)
		return true
	}
	if fp%16 != 0 {
		return false
	}
	var legacy [512]byte
	userRead(legacy[:], fp)
	features := uint64(3)
	fxOnly := true
	if x.xsave {
		sw := legacy[fpxSW:]
		size := uintptr(binary.LittleEndian.Uint32(sw[16:]))
		if binary.LittleEndian.Uint32(sw[0:]) == fpXStateMagic1 && size >= xsaveMin && size <= x.userSize &&
			size <= uintptr(binary.LittleEndian.Uint32(sw[4:])) &&
			binary.LittleEndian.Uint32(rawmem.Bytes(fp+size, 4)) == fpXStateMagic2 {
			fxOnly = false
			features = binary.LittleEndian.Uint64(sw[8:]) & x.xcr0
		}
	}
	mxcsr := binary.LittleEndian.Uint32(legacy[24:])
	if features&6 != 0 && mxcsr&^x.mxcsrMask != 0 {
		return false
	}
	var bv uint64
	if fxOnly {
		bv = 3
	} else {
		if fp%64 != 0 {
			return false
		}
		var hdr [64]byte
		userRead(hdr[:], fp+xsaveHeader)
		bv = binary.LittleEndian.Uint64(hdr[:])
		for _, b := range hdr[8:] {
			if b != 0 {
				return false
			}
		}
		if bv&^x.xcr0 != 0 {
			return false
		}
		bv &= features
	}
	if !x.xsave {
		copy(area[:fpxSW], legacy[:fpxSW])
		return true
	}
	var comps [][]byte
	for _, c := range x.comps {
		var b []byte
		if features&(1<<c.bit) != 0 {
			b = make([]byte, c.size)
			userRead(b, fp+c.off)
		}
		comps = append(comps, b)
	}
	// Everything read: now the context changes.
	resetVectorState(area)
	copy(area[:fpxSW], legacy[:fpxSW])
	if features&6 == 0 {
		binary.LittleEndian.PutUint32(area[24:], initialMXCSR)
	}
	for i, c := range x.comps {
		if comps[i] != nil {
			copy(area[c.off:c.off+c.size], comps[i])
		}
	}
	binary.LittleEndian.PutUint64(area[xsaveHeader:], bv&x.ctxMask)
	return true
}

// userAccess runs f, which reads or writes the application's memory at
// addresses the application gave, and reports whether it completed:
// false if it faulted (a bad pointer, a read-only or unmapped page),
// where the kernel's copy_to_user or copy_from_user would fail with
// EFAULT.
func userAccess(f func()) (ok bool) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			if _, fault := r.(runtime.Error); !fault {
				panic(r)
			}
			ok = false
		}
	}()
	f()
	return true
}

// Reads and writes of the application's memory.
//
// Preconditions: inside userAccess.
func get32(a uintptr) uint32    { return binary.LittleEndian.Uint32(rawmem.Bytes(a, 4)) }
func get64(a uintptr) uint64    { return binary.LittleEndian.Uint64(rawmem.Bytes(a, 8)) }
func put16(a uintptr, v uint16) { binary.LittleEndian.PutUint16(rawmem.Bytes(a, 2), v) }
func put32(a uintptr, v uint32) { binary.LittleEndian.PutUint32(rawmem.Bytes(a, 4), v) }
func put64(a uintptr, v uint64) { binary.LittleEndian.PutUint64(rawmem.Bytes(a, 8), v) }

// userRead fills b from the application's memory at a, userWrite
// writes b there. They are not inlined: the compiler (go1.26) fails on
// a copy of constant size from or to a rawmem slice.
//
// Preconditions: inside userAccess.
//
//go:noinline
func userRead(b []byte, a uintptr) { copy(b, rawmem.Bytes(a, uintptr(len(b)))) }

//go:noinline
func userWrite(a uintptr, b []byte) { copy(rawmem.Bytes(a, uintptr(len(b))), b) }

// copyIn reads len(b) bytes of the application's memory at a. A null
// pointer fails before any access: the page is never mapped, and a nil
// slice of non-zero length is fatal under the race detector's pointer
// checks rather than a fault userAccess recovers from.
func copyIn(a uintptr, b []byte) bool {
	if a == 0 && len(b) != 0 {
		return false
	}
	return userAccess(func() { userRead(b, a) })
}

// copyOut writes b into the application's memory at a (a null pointer
// fails as copyIn's does).
func (t *thread) copyOut(a uintptr, b []byte) bool {
	if a == 0 && len(b) != 0 {
		return false
	}
	t.willWrite(a, uintptr(len(b)))
	return userAccess(func() { userWrite(a, b) })
}

// willWrite makes the code pages in [a, a+n) that reachvm write-protected
// (to see the program change its code) writable again before reachvm
// writes there for the program: a signal frame, a system call's result.
// The write would otherwise fault in Go, and the program get EFAULT or
// SIGSEGV where it natively gets its data.
func (t *thread) willWrite(a, n uintptr) {
	if m := t.m; m.cs.nwp.Load() != 0 && n != 0 && a+n > a {
		m.willWrite(mem.Range{Start: pageOf(a), End: a + n})
	}
}

// setupFrameLocked pushes the frame of a handler for sig on the
// application's stack, or on the alternate stack with SA_ONSTACK when
// not already on it (get_sigframe), and points the context at the
// handler: rdi the signal, rsi the siginfo, rdx the ucontext, rax 0, the
// direction, resume and trap flags clear, the vector state initial
// (fpu__clear_user_states). pc is where the application was to go on.
// It returns the handler's address, or false where the kernel fails to
// set up the frame: no SA_RESTORER (x86-64 requires one), an alternate
// stack that would overflow, a stack that cannot be written.
//
// Preconditions: t.p.sig.mu is held.
func (t *thread) setupFrameLocked(sig unix.Signal, info *SigInfo, ka *sigAction, pc uintptr) (uintptr, bool) {
	m := t.m
	th := &t.sig
	if ka.flags&saRestorer == 0 {
		return 0, false
	}
	x := xstateFrameOf(m.vs)
	rsp := uintptr(m.reg(amd64.RSP))
	nested := th.alt.on(rsp)
	sp := rsp - 128
	entering := false
	if ka.flags&saOnStack != 0 && th.alt.state(sp) == 0 {
		sp = th.alt.sp + th.alt.size
		entering = true
	}
	fp := (sp - x.size) &^ 63
	frame := (fp-frameSize)&^15 - 8
	if (nested || entering) && !th.alt.contains(frame) {
		return 0, false
	}
	oldmask := th.mask
	if th.restoreMask {
		oldmask = th.savedMask
	}
	area := m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize]
	flags := binary.LittleEndian.Uint64(m.mem[ctxFlags:])
	if fp+x.size > frame {
		t.willWrite(frame, fp+x.size-frame)
	}
	ok := userAccess(func() {
		x.save(fp, area)
		uc := frame + frameUC
		put64(uc+ucFlags, x.ucFlags)
		put64(uc+ucLink, 0)
		put64(uc+ucStack+ssSP, uint64(th.alt.sp))
		put32(uc+ucStack+ssFlags, th.alt.flags)
		put64(uc+ucStack+ssSize, uint64(th.alt.size))
		put64(frame, uint64(ka.restorer))
		sc := uc + ucMContext
		for i, r := range scRegs {
			put64(sc+8*uintptr(i), m.reg(r))
		}
		put64(sc+scTrapno, th.trap.trapno)
		put64(sc+scErr, th.trap.err)
		put64(sc+scRIP, uint64(pc))
		put64(sc+scFlags, flags)
		put16(sc+scCS, userCS)
		put16(sc+scGS, 0)
		put16(sc+scFS, 0)
		put16(sc+scSS, userDS)
		put64(sc+scFPState, uint64(fp))
		put64(sc+scOldmask, oldmask)
		put64(sc+scCR2, th.trap.cr2)
		put64(uc+ucSigmask, oldmask)
		if ka.flags&saSigInfo != 0 {
			userWrite(frame+frameInfo, info[:])
		}
	})
	if !ok {
		return 0, false
	}
	resetVectorState(area)
	m.setReg(amd64.RDI, uint64(sig))
	m.setReg(amd64.RAX, 0)
	m.setReg(amd64.RSI, uint64(frame+frameInfo))
	m.setReg(amd64.RDX, uint64(frame+frameUC))
	m.setReg(amd64.RSP, uint64(frame))
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], flags&^(flagDF|flagRF|flagTF))
	return ka.handler, true
}

// sigreturn is rt_sigreturn, the system call at pc: it takes the frame
// below the stack pointer (the handler's ret popped pretcode) and
// restores from it the mask, the general registers, the flags rt_sigreturn
// restores, the vector state and the alternate stack, and returns the
// frame's rip: the application goes on there with the frame's rax, not a
// system call's result. A frame it cannot read or take is a bad frame,
// as for the kernel: SIGSEGV, and rax 0.
func (t *thread) sigreturn(pc uintptr) uintptr {
	m := t.m
	s := &t.p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	sp := uintptr(m.reg(amd64.RSP))
	frame := sp - 8
	uc := frame + frameUC
	var set uint64
	if !userAccess(func() { set = get64(uc + ucSigmask); _ = get64(uc + ucFlags) }) {
		return t.badFrameLocked(pc, false)
	}
	t.setMaskLocked(set)
	var sc [scCopy]byte
	if !copyIn(uc+ucMContext, sc[:]) {
		return t.badFrameLocked(pc, false)
	}
	for i, r := range scRegs {
		m.setReg(r, binary.LittleEndian.Uint64(sc[8*i:]))
	}
	flags := binary.LittleEndian.Uint64(m.mem[ctxFlags:])
	flags = flags&^fixFlags | binary.LittleEndian.Uint64(sc[scFlags:])&fixFlags
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], flags)
	rip := uintptr(binary.LittleEndian.Uint64(sc[scRIP:]))
	x := xstateFrameOf(m.vs)
	area := m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize]
	fp := uintptr(binary.LittleEndian.Uint64(sc[scFPState:]))
	restored := false
	if !userAccess(func() { restored = x.restore(fp, area) }) || !restored {
		m.setReg(amd64.RAX, 0)
		return t.badFrameLocked(rip, true)
	}
	var st [24]byte
	if !copyIn(uc+ucStack, st[:]) {
		m.setReg(amd64.RAX, 0)
		return t.badFrameLocked(rip, true)
	}
	// restore_altstack, any error but a fault ignored. The stack
	// pointer it checks is the one rt_sigreturn was called with, the
	// frame's, not the restored one: so Linux 6.18 behaves (a handler
	// on the alternate stack cannot replace it through uc_stack, one on
	// the ordinary stack can, wherever the restored rsp points).
	t.setAltStackLocked(uintptr(binary.LittleEndian.Uint64(st[ssSP:])), binary.LittleEndian.Uint32(st[ssFlags:]),
		uintptr(binary.LittleEndian.Uint64(st[ssSize:])), sp)
	return rip
}

// badFrameLocked is a bad rt_sigreturn frame: SIGSEGV for the thread,
// and rt_sigreturn returns 0. With restored, the registers already came
// from the frame and the application goes on at next (the frame's rip);
// otherwise the call at next returns as any system call does.
//
// Preconditions: t.p.sig.mu is held.
func (t *thread) badFrameLocked(next uintptr, restored bool) uintptr {
	t.forceSegvLocked(false)
	if restored {
		return next
	}
	return t.m.sysret(next, 0)
}

// setAltStackLocked is do_sigaltstack's setting part at stack pointer
// sp: it fails with EPERM on the alternate stack in use, EINVAL for flags
// other than SS_ONSTACK, SS_DISABLE and SS_AUTODISARM, ENOMEM for a stack
// under MINSIGSTKSZ.
//
// Preconditions: t.p.sig.mu is held.
func (t *thread) setAltStackLocked(ssp uintptr, flags uint32, size, sp uintptr) unix.Errno {
	th := &t.sig
	if th.alt.on(sp) {
		return unix.EPERM
	}
	mode := flags &^ ssAutoDisarm
	if mode != ssDisable && mode != ssOnStack && mode != 0 {
		return unix.EINVAL
	}
	if th.alt.sp == ssp && th.alt.size == size && th.alt.flags == flags {
		return 0
	}
	if mode == ssDisable {
		ssp, size = 0, 0
	} else if size < minSigStkSz {
		return unix.ENOMEM
	}
	th.alt = altStack{sp: ssp, size: size, flags: flags}
	return 0
}
