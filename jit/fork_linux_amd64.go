package jit

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
)

// New processes (docs/ARCHITECTURE.md, section "Processes"). After fork
// only the forking thread exists in the child, and a Go runtime whose
// other threads are gone cannot go on: so the child is detached to
// native execution at exactly the application's state. Go prepares a
// block (below) with everything the child needs; an assembly routine
// (fork_linux_amd64.s) makes the application's own fork, vfork, clone or
// clone3 call with it, returns the result to Go in the parent, and in
// the child installs the application's signal dispositions and FS base
// and jumps to the application through rt_sigreturn. The child runs no
// Go code and no translated code: it is the application, natively.

// The fork block, in vmheap (Machine.forkBlk), read by the assembly
// routine through go_asm.h: the system call, the parent's saved mask,
// the child's FS base, its dispositions, and an rt_sigframe holding its
// mask, alternate stack, registers, flags and vector state.
const (
	// forkOffNr is the system call's number, forkOffArgs its six
	// arguments, as the application made it.
	forkOffNr   = 0x00
	forkOffArgs = 0x08
	// forkOffOldMask is the parent thread's mask while every signal is
	// blocked across the call; forkOffAllMask holds that full mask.
	forkOffOldMask = 0x38
	forkOffAllMask = 0x40
	// forkOffFS is the child's FS base: the application's (Go's is the
	// one the forking thread has).
	forkOffFS = 0x48
	// forkOffActions are the child's dispositions, the kernel's struct
	// sigaction (handler, flags, restorer, mask) for signals 1 to 64.
	forkOffActions = 0x80
	// forkOffFrame is the rt_sigframe the child returns through;
	// forkOffXsave its XSAVE area, 64-byte aligned.
	forkOffFrame = forkOffActions + nsig*32
	forkOffXsave = (forkOffFrame + frameSize + 63) &^ 63
)

// forkABI0 is the address of fork_linux_amd64.s's routine, called with
// the C ABI (internal/native).
var forkABI0 uintptr

// processCall performs the process system calls of the program at pc:
// fork, vfork, clone and clone3 of a process (fork), execve and execveat
// (exec_linux_amd64.go). done is false for any other call.
//
// Preconditions: the machine runs p (Program.Run).
func (p *Program) processCall(t *thread, nr uint64, a [6]uintptr, pc uintptr) (next uintptr, done bool, err error) {
	switch nr {
	case unix.SYS_FORK, unix.SYS_VFORK, unix.SYS_CLONE, unix.SYS_CLONE3:
		next, err = p.fork(t, nr, a, pc)
		return next, true, err
	case unix.SYS_EXECVE, unix.SYS_EXECVEAT:
		next, err = p.execve(t, nr, a, pc)
		return next, true, err
	}
	return 0, false, nil
}

// cloneOf is what fork needs of a process-creating call: its flags
// (the exit signal in the low byte, as clone's), the child's stack
// pointer (0: the parent's) and, with CLONE_SETTLS, its FS base. errno
// is set for a clone3 argument structure the kernel would refuse before
// doing anything.
func cloneOf(nr uint64, a [6]uintptr) (flags uint64, sp, tls uintptr, errno unix.Errno) {
	switch nr {
	case unix.SYS_FORK:
		return uint64(unix.SIGCHLD), 0, 0, 0
	case unix.SYS_VFORK:
		return unix.CLONE_VM | unix.CLONE_VFORK | uint64(unix.SIGCHLD), 0, 0, 0
	case unix.SYS_CLONE:
		// clone(flags, newsp, parent_tid, child_tid, tls): the kernel
		// takes the flags' low 32 bits.
		return uint64(uint32(a[0])), a[1], a[4], 0
	}
	// clone3(args, size): struct clone_args, whose first 64 bytes
	// (CLONE_ARGS_SIZE_VER0) hold what is read here.
	const verSize0 = 64
	if a[1] < verSize0 {
		return 0, 0, 0, unix.EINVAL
	}
	if a[1] > 4096 {
		return 0, 0, 0, unix.E2BIG
	}
	var b [verSize0]byte
	if !copyIn(a[0], b[:]) {
		return 0, 0, 0, unix.EFAULT
	}
	flags = binary.LittleEndian.Uint64(b[0:])
	exitSignal := binary.LittleEndian.Uint64(b[32:])
	stack, size := uintptr(binary.LittleEndian.Uint64(b[40:])), uintptr(binary.LittleEndian.Uint64(b[48:]))
	// clone3 takes the exit signal apart: the CSIGNAL bits of its
	// flags are refused, but CLONE_NEWTIME, which shares them.
	if flags&(0xff&^unix.CLONE_NEWTIME) != 0 || exitSignal > nsig {
		return 0, 0, 0, unix.EINVAL
	}
	if stack != 0 {
		// The kernel starts the child at the top of the stack.
		sp = stack + size
	}
	return flags | exitSignal, sp, uintptr(binary.LittleEndian.Uint64(b[56:])), 0
}

// fork makes the process-creating call nr (arguments a) at pc for the
// application, and returns where the parent goes on, with the child's
// id or the error in rax. The child is detached to native execution at
// the instruction after the call, with rax 0, the stack the call gives
// it, and the application's registers, flags, vector state, FS base,
// signal dispositions, mask and alternate stack. A thread (CLONE_THREAD)
// and a child that would share the memory or the signal handlers with
// the still translated parent (CLONE_VM without CLONE_VFORK,
// CLONE_SIGHAND) end the run with a *SyscallError.
//
// Preconditions: the machine runs p (Program.Run), on its locked thread.
func (p *Program) fork(t *thread, nr uint64, a [6]uintptr, pc uintptr) (uintptr, error) {
	m := t.m
	flags, childSP, tls, e := cloneOf(nr, a)
	if e != 0 {
		return m.sysret(pc, errno(e)), nil
	}
	name := "clone3"
	switch nr {
	case unix.SYS_FORK:
		name = "fork"
	case unix.SYS_VFORK:
		name = "vfork"
	case unix.SYS_CLONE:
		name = "clone"
	}
	switch {
	case flags&unix.CLONE_THREAD != 0:
		return 0, &SyscallError{PC: pc, Nr: nr, Name: name + " (a thread)"}
	case flags&unix.CLONE_SIGHAND != 0 && flags&unix.CLONE_VM == 0:
		// The kernel's own check, before anything.
		return m.sysret(pc, errno(unix.EINVAL)), nil
	case flags&unix.CLONE_SIGHAND != 0:
		return 0, &SyscallError{PC: pc, Nr: nr, Name: name + " of a process sharing the signal handlers (CLONE_SIGHAND)"}
	case flags&unix.CLONE_VM != 0 && flags&unix.CLONE_VFORK == 0:
		return 0, &SyscallError{PC: pc, Nr: nr, Name: name + " of a process sharing the memory without CLONE_VFORK"}
	}
	// The child gets the pages reachvm write-protected as the
	// application has them: it runs natively, where no write of its
	// may fault for reachvm. With CLONE_VM they are the parent's own
	// pages, which must not lose their protection behind the
	// translator's back while translations of them live.
	// Those of every thread's machine: the child gets this thread only,
	// but all the memory.
	if m.cs.nwp.Load() != 0 {
		m.willWrite(mem.Range{Start: 0, End: userAddrEnd})
	}
	blk, err := m.forkBlock()
	if err != nil {
		return 0, err
	}
	fs := m.appFS()
	if flags&unix.CLONE_SETTLS != 0 {
		fs = tls
	}
	p.fillForkBlock(t, blk, nr, a, pc, childSP, fs, flags&unix.CLONE_CLEAR_SIGHAND != 0)
	ret := uint64(native.Call1(forkABI0, blk))
	if int64(ret) > 0 {
		m.stats.Forks++
	}
	return m.sysret(pc, ret), nil
}

// forkBlock returns the machine's fork block, allocating it in vmheap the
// first time.
//
// Preconditions: m.mu is held.
func (m *Machine) forkBlock() (uintptr, error) {
	if m.forkBlk != 0 {
		return m.forkBlk, nil
	}
	size := forkOffXsave + xstateFrameOf(m.vs).size
	blk, err := m.v.HeapAlloc(size)
	if err != nil {
		return 0, fmt.Errorf("jit: allocating the fork block: %w", err)
	}
	m.forkBlk, m.forkBlkSize = blk, size
	return blk, nil
}

// fillForkBlock writes the block at blk for the call nr (arguments a) at
// pc: the child's stack pointer is childSP (0: the application's), its FS
// base fs, and with clearHandlers its handlers are
// reset to SIG_DFL as CLONE_CLEAR_SIGHAND asks.
func (p *Program) fillForkBlock(t *thread, blk uintptr, nr uint64, a [6]uintptr, pc, childSP, fs uintptr, clearHandlers bool) {
	m := t.m
	b := rawmem.Bytes(blk, forkOffXsave)
	le := binary.LittleEndian
	le.PutUint64(b[forkOffNr:], nr)
	for i, v := range a {
		le.PutUint64(b[forkOffArgs+8*i:], uint64(v))
	}
	le.PutUint64(b[forkOffOldMask:], 0)
	le.PutUint64(b[forkOffAllMask:], ^uint64(0))
	le.PutUint64(b[forkOffFS:], uint64(fs))

	s := &p.sig
	s.mu.Lock()
	for i := range nsig {
		act := s.actions[i]
		if clearHandlers && act.handler != sigIGN {
			act = sigAction{}
		}
		o := forkOffActions + 32*i
		le.PutUint64(b[o:], uint64(act.handler))
		le.PutUint64(b[o+8:], act.flags)
		le.PutUint64(b[o+16:], uint64(act.restorer))
		le.PutUint64(b[o+24:], act.mask)
	}
	mask, alt := t.sig.mask, t.sig.alt
	s.mu.Unlock()

	// The frame rt_sigreturn takes, as a handler's would be: the
	// registers as the kernel leaves them in the child (rax 0, rcx the
	// return address, r11 the flags), the flags, the vector state.
	x := xstateFrameOf(m.vs)
	frame := blk + forkOffFrame
	fp := blk + forkOffXsave
	uc := frame + frameUC
	sc := uc + ucMContext
	// Not the trap flag: single-stepping the application is not
	// emulated, and the dispatcher's stepping may have left it in the
	// context's flags; the child would die of its trap.
	flags := le.Uint64(m.mem[ctxFlags:]) &^ (flagTF | flagRF)
	userAccess(func() {
		clear(rawmem.Bytes(frame, frameSize))
		x.save(fp, m.mem[ctxXsave:ctxXsave+m.lay.xsaveSize])
		put64(uc+ucFlags, x.ucFlags)
		if alt.size == 0 {
			put32(uc+ucStack+ssFlags, ssDisable)
		} else {
			put64(uc+ucStack+ssSP, uint64(alt.sp))
			put32(uc+ucStack+ssFlags, alt.flags)
			put64(uc+ucStack+ssSize, uint64(alt.size))
		}
		for i, r := range scRegs {
			v := m.reg(r)
			switch r {
			case amd64.RAX:
				v = 0
			case amd64.RCX:
				v = uint64(pc + 2)
			case amd64.R11:
				v = flags
			case amd64.RSP:
				if childSP != 0 {
					v = uint64(childSP)
				}
			}
			put64(sc+8*uintptr(i), v)
		}
		put64(sc+scRIP, uint64(pc+2))
		put64(sc+scFlags, flags)
		put16(sc+scCS, userCS)
		put16(sc+scSS, userDS)
		put64(sc+scFPState, uint64(fp))
		put64(uc+ucSigmask, mask)
	})
}
