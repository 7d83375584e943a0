package jit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
)

// Application threads (docs/ARCHITECTURE.md, section 14).
//
// A program's clone with CLONE_THREAD starts a thread under translation
// on an OS thread of its own: a goroutine locked to its OS thread for
// good (runtime.LockOSThread, never undone, so that the OS thread ends
// with it), running a machine of its own (newMachine with the program's
// machine as parent: the same vmcode.Code and Options, the same address
// space, codeSpace) with its own context, cache and signal state
// (mask, pending signals, alternate stack). What the threads share is the
// Program: its memory and brk, its signal dispositions and the signals
// sent to the process, its refusals.
//
// exit ends the calling thread (its CLONE_CHILD_CLEARTID word cleared and
// woken, as the kernel does, so that a join returns), exit_group and a
// fatal signal end them all: each other thread is told (Machine.work's
// workExit) and kicked (thread.kick), and ends at its next safe point,
// whether it was running translated code, blocked in a system call or
// waiting for a signal. Program.Run returns once every thread is gone:
// the exit_group's status, the fatal signal, or, when every thread
// called exit, the last one's status, as the kernel reports it.

// thread is one application thread of a Program.
type thread struct {
	// p is the program, m the machine running the thread: the
	// program's own for the thread Run started, a new one for each
	// clone. Immutable.
	p *Program
	m *Machine
	// tid is the kernel's id of the OS thread running it (what its
	// gettid gives). Immutable once the thread is in the program's set.
	tid int
	// sig is the thread's signal state. Guarded by p.sig.mu.
	sig sigThread
	// check is set while the thread has something to act on (a pending
	// signal it does not block, a mask to restore, a restart to decide):
	// the dispatcher then calls deliverPending before it enters the next
	// fragment. Set under p.sig.mu; read without it.
	check atomic.Bool
	// kicked is set while a kick is on its way to the thread: none other
	// is sent until the thread has looked at its flags again.
	kicked atomic.Bool
	// id is what the thread registered with the kernel (its clear-tid
	// word, its robust list: threadid_linux_amd64.go). Only the
	// thread's own goroutine uses it, or its parent's before it runs.
	id threadID
}

// exitThread ends a thread's dispatcher at the application's exit: the
// thread ends, and the program with it only if it was the last.
type exitThread struct{ code int }

func (e *exitThread) Error() string {
	return fmt.Sprintf("jit: an application thread exited with code %d", e.code)
}

// errExiting ends a thread's dispatcher when the program ends as a whole
// because of another thread (signals.result says why).
var errExiting = errors.New("jit: the program is ending")

// Kicks. A thread is sent one when another thread needs it to look at
// its flags soon: a signal for it, the program's end, a change to code it
// may be running. The kick is a real signal, kickSignal, queued to the
// thread's OS thread with a siginfo of reachvm's own (rt_tgsigqueueinfo,
// SI_QUEUE and kickMagic), that the signal layer takes as it takes the
// application's signals: out of translated code to the dispatcher, into
// the arrivals in reachvm's own code (where the gate, or the next entry
// into the cache, turns back), EINTR for a blocking system call. The
// dispatcher recognises it (Program.isKick) and only notes it; a system
// call it interrupted while the thread has no signal to take is made
// again. A real-time signal, so that kicks are queued, never merged with
// the application's own: the application never sees them.
const (
	kickSignal = unix.Signal(64)
	kickMagic  = 0x6b63_696b_6d76_7272 // "rrvmkick"
	siQueue    = -1
)

// kick makes the thread look at its flags soon (see above): no new kick
// is sent while one is on its way.
//
// Preconditions: the thread's OS thread lives: it is in its program's set
// (p.sig.mu held), or its machine is a member of its address space
// (codeSpace.mu held).
func (t *thread) kick() {
	if t.tid == 0 || !t.kicked.CompareAndSwap(false, true) {
		return
	}
	s := &t.p.sig
	info := newSigInfo(kickSignal, siQueue)
	info.setSender(s.pid, s.uid)
	binary.LittleEndian.PutUint64(info[24:], kickMagic)
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_TGSIGQUEUEINFO, uintptr(s.pid), uintptr(t.tid), uintptr(kickSignal), uintptr(unsafe.Pointer(&info)), 0, 0); e != 0 {
		t.kicked.Store(false)
	}
}

// isKick reports whether info is a kick's.
func (p *Program) isKick(info *SigInfo) bool {
	return info.Signo() == kickSignal && info.Code() == siQueue &&
		int(int32(binary.LittleEndian.Uint32(info[16:]))) == p.sig.pid && binary.LittleEndian.Uint64(info[24:]) == kickMagic
}

// isThread reports whether tid names one of the program's threads: its
// gettid, or for the main thread the process id too.
func (p *Program) isThread(tid int) bool {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	return tid == s.pid || p.threadLocked(tid) != nil
}

// threadLocked returns the live thread tid names, or nil: the one whose
// id it is (one may run on the process's first OS thread, whose id is
// the process id), else, for the process id, the main thread.
//
// Preconditions: p.sig.mu is held.
func (p *Program) threadLocked(tid int) *thread {
	s := &p.sig
	for _, t := range s.threads {
		if t.tid == tid {
			return t
		}
	}
	if tid == s.pid {
		for _, t := range s.threads {
			if t == s.main {
				return t
			}
		}
	}
	return nil
}

// Flags of clone (linux/sched.h).
const (
	cloneVM            = 0x00000100
	cloneFS            = 0x00000200
	cloneFiles         = 0x00000400
	cloneSighand       = 0x00000800
	clonePidfd         = 0x00001000
	clonePtrace        = 0x00002000
	cloneVfork         = 0x00004000
	cloneParent        = 0x00008000
	cloneThread        = 0x00010000
	cloneNewNS         = 0x00020000
	cloneSysVSem       = 0x00040000
	cloneSetTLS        = 0x00080000
	cloneParentSetTID  = 0x00100000
	cloneChildClearTID = 0x00200000
	cloneDetached      = 0x00400000
	cloneUntraced      = 0x00800000
	cloneChildSetTID   = 0x01000000
	cloneNewUser       = 0x10000000
	cloneNewPID        = 0x20000000
	cloneIO            = 0x80000000
	cloneSignal        = 0x000000ff

	// cloneThreadOK are the flags a thread reachvm starts may have:
	// what its OS thread shares with the process (VM, FS, FILES,
	// SIGHAND, THREAD, SYSVSEM) or ignores (DETACHED, PARENT with
	// THREAD; PTRACE and UNTRACED with no tracer; IO), and what it
	// emulates (the TLS and the tid words).
	cloneThreadOK = cloneVM | cloneFS | cloneFiles | cloneSighand | cloneThread | cloneSysVSem |
		cloneSetTLS | cloneParentSetTID | cloneChildClearTID | cloneChildSetTID |
		cloneDetached | cloneParent | clonePtrace | cloneUntraced | cloneIO | cloneSignal
	// cloneThreadNeeds are those it must have: its OS thread shares
	// them with every other thread of the process.
	cloneThreadNeeds = cloneVM | cloneFS | cloneFiles | cloneSighand
)

// clone is clone(flags, stack, ptid, ctid, tls) with CLONE_THREAD, made
// by t at the syscall instruction at pc (its registers in the context):
// it starts a new thread whose registers are t's at the call (vector
// state and flags too) but rax 0, rsp stack if given, rip after the
// syscall instruction and its FS base tls with CLONE_SETTLS, and returns
// the new thread's id once CLONE_PARENT_SETTID and CLONE_CHILD_SETTID
// wrote it, or -errno as the kernel would. Flags the kernel refuses give
// its EINVAL; flags reachvm cannot honour (a thread with files or a
// filesystem context of its own, CLONE_VFORK, namespaces) end the run
// with a *SyscallError naming them.
//
// Preconditions: t.m.mu is held; t's goroutine runs it.
func (t *thread) clone(a [6]uintptr, pc uintptr) (uint64, error) {
	return t.newThread(unix.SYS_CLONE, uint64(uint32(a[0])), a, pc)
}

// clone3 is clone3(args, size) with CLONE_THREAD, made by t at pc: the
// same as clone, with the arguments in a struct clone_args and checked as
// the kernel checks them (copy_clone_args_from_user, clone3_args_valid).
// done is false for a clone3 that is not a thread's (a process: fork).
//
// Preconditions: t.m.mu is held; t's goroutine runs it.
func (t *thread) clone3(a [6]uintptr, pc uintptr) (ret uint64, done bool, err error) {
	// struct clone_args: flags, pidfd, child_tid, parent_tid,
	// exit_signal, stack, stack_size, tls (CLONE_ARGS_SIZE_VER0), then
	// set_tid, set_tid_size (VER1), cgroup (VER2).
	const (
		verSize0 = 64
		verSize2 = 88
	)
	size := a[1]
	var b [verSize2]byte
	n := min(size, verSize2)
	if size < verSize0 || size > 4096 || !copyIn(a[0], b[:n]) {
		// The process path gives the kernel's errors for these.
		return 0, false, nil
	}
	le := binary.LittleEndian
	flags := le.Uint64(b[0:])
	if flags&cloneThread == 0 {
		return 0, false, nil
	}
	exitSignal, stack, stackSize := le.Uint64(b[32:]), uintptr(le.Uint64(b[40:])), uintptr(le.Uint64(b[48:]))
	switch {
	case flags&cloneSignal != 0, exitSignal != 0, le.Uint64(b[72:]) != 0:
		// The exit signal goes apart, and none for a thread; set_tid
		// needs a pid namespace of one's own.
		return errno(unix.EINVAL), true, nil
	case (stack == 0) != (stackSize == 0), stack+stackSize < stack:
		return errno(unix.EINVAL), true, nil
	}
	sp := uintptr(0)
	if stack != 0 {
		// The kernel starts the thread at the top of the stack.
		sp = stack + stackSize
	}
	args := [6]uintptr{0, sp, uintptr(le.Uint64(b[24:])), uintptr(le.Uint64(b[16:])), uintptr(le.Uint64(b[56:]))}
	ret, err = t.newThread(unix.SYS_CLONE3, flags, args, pc)
	return ret, true, err
}

// newThread is clone's and clone3's common part: flags and the stack,
// parent tid, child tid and tls arguments in a[1:5], in clone's order.
func (t *thread) newThread(nr uint64, flags uint64, a [6]uintptr, pc uintptr) (uint64, error) {
	name := "clone"
	if nr == unix.SYS_CLONE3 {
		name = "clone3"
	}
	stack, ptid, ctid, tls := a[1], a[2], a[3], a[4]
	// copy_process's checks, in its order.
	switch {
	case flags&cloneSighand == 0, flags&cloneVM == 0:
		return errno(unix.EINVAL), nil
	case flags&(cloneNewUser|cloneNewPID) != 0, flags&clonePidfd != 0:
		return errno(unix.EINVAL), nil
	}
	if bad := flags &^ cloneThreadOK; bad != 0 || flags&cloneThreadNeeds != cloneThreadNeeds {
		return 0, &SyscallError{PC: pc, Nr: nr, Name: fmt.Sprintf("%s (a thread with flags %#x: reachvm's threads share files, filesystem context and memory with the process, and are not vforks)", name, flags)}
	}
	fs := t.m.appFS()
	if flags&cloneSetTLS != 0 {
		// do_set_thread_area_64's check.
		if tls >= userAddrEnd {
			return errno(unix.EPERM), nil
		}
		fs = tls
	}
	p, m := t.p, t.m
	child := p.idleMachine()
	var err error
	if child == nil {
		child, err = newMachine(m.code, &m.opts, m)
		if err == nil {
			// Its cache's first unit now, so that a vmcode too full
			// for one fails the clone (as a resource limit does)
			// rather than the new thread's first translation.
			child.mu.Lock()
			_, err = child.unitWithRoom()
			child.mu.Unlock()
			if err != nil {
				_ = child.Close()
			}
		}
	}
	if err != nil {
		p.refuse("clone", stack, 0, unix.EAGAIN, "a new thread's machine: %v", err)
		return errno(unix.EAGAIN), nil
	}
	// The registers at the call, as the child's syscall returns them.
	copy(child.mem[ctxGPR:ctxGPR+16*8], m.mem[ctxGPR:ctxGPR+16*8])
	copy(child.mem[ctxFlags:ctxFlags+8], m.mem[ctxFlags:ctxFlags+8])
	copy(child.mem[ctxXsave:ctxXsave+child.lay.xsaveSize], m.mem[ctxXsave:ctxXsave+m.lay.xsaveSize])
	if stack != 0 {
		child.setReg(amd64.RSP, uint64(stack))
	}
	child.sysret(pc, 0)
	child.setAppFS(fs)
	nt := &thread{p: p, m: child}
	if flags&cloneChildClearTID != 0 {
		nt.id.clearTID = ctid
	}
	p.sig.mu.Lock()
	// A new thread inherits the mask; its alternate stack is off
	// (copy_process's sas_ss_reset for CLONE_VM).
	nt.sig.mask = t.sig.mask
	p.sig.mu.Unlock()
	started := make(chan int)
	go nt.run(pc+2, flags, ptid, ctid, started)
	tid := <-started
	if tid <= 0 {
		// The program is ending, or the thread could not listen for
		// signals: as for a fork when the parent is being killed.
		return errno(unix.EAGAIN), nil
	}
	return uint64(tid), nil
}

// run is a new thread's goroutine: it writes the tid words, joins the
// program, tells its parent (started: the tid, or 0 if it could not
// start), runs the thread from start, and ends it.
func (t *thread) run(start uintptr, flags uint64, ptid, ctid uintptr, started chan<- int) {
	// Never undone: the OS thread ends with the goroutine, and nothing
	// of the application's (its signal frames' alternate stack, its
	// FS) outlives the thread on an OS thread Go reuses.
	runtime.LockOSThread()
	p, m := t.p, t.m
	m.mu.Lock()
	t.tid = unix.Gettid()
	t.sig.tid = t.tid
	// The kernel writes the id at ptid before clone returns and at ctid
	// before the child runs, and goes on if it cannot.
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], uint32(t.tid))
	if flags&cloneParentSetTID != 0 {
		t.copyOut(ptid, b[:])
	}
	if flags&cloneChildSetTID != 0 {
		t.copyOut(ctid, b[:])
	}
	// Go's FS on this OS thread, which the routines put back at every
	// exit from the cache.
	m.setHostFS(m.hostFS())
	done, err := m.runningOn(sigtramp.AllCatchable())
	if err == nil && !p.addThread(t) {
		done()
		err = errExiting
	}
	if err != nil {
		st := m.takeStats()
		m.mu.Unlock()
		started <- 0
		p.threadEnded(m, &st, false)
		return
	}
	m.cs.join(m, t)
	m.clientThreadStart(t.tid)
	started <- t.tid
	_, err = m.dispatch(start)
	done()
	m.clientThreadExit()
	own := t.finish(err)
	st := m.takeStats()
	m.mu.Unlock()
	// Kept or closed before the thread leaves the set: Run, which
	// returns once the set is empty, then finds every machine idle.
	p.threadEnded(m, &st, true)
	t.gone(own)
}

// addThread puts t in the program's set, unless the program is ending.
func (p *Program) addThread(t *thread) bool {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exiting || !s.running {
		return false
	}
	s.threads = append(s.threads, t)
	t.recalcLocked()
	return true
}

// Idle machines. A thread's machine outlives the thread: the program
// keeps up to maxIdle of them (none with Program.noIdle), still members
// of its address space (told of every change to code, so that their
// translations stay right), for the threads it starts next, which then
// need no new context, routines and cache, and find translated the code
// the thread before ran. Run closes them when the program ends.
const maxIdle = 8

// takeStats returns the machine's counts since the last call, for the
// program's (the machine may serve another thread next).
//
// Preconditions: m.mu is held.
func (m *Machine) takeStats() Stats {
	st := m.stats
	m.stats = Stats{}
	return st
}

// threadEnded keeps m, the machine of a thread that ended (or, not ran,
// could not start), for the next thread, or closes it when the program
// keeps enough or is ending; the thread's counts st go to the program's.
func (p *Program) threadEnded(m *Machine, st *Stats, ran bool) {
	p.sig.mu.Lock()
	ending := p.sig.exiting || !p.sig.running
	p.sig.mu.Unlock()
	p.mu.Lock()
	p.threadStats.add(st)
	if ran {
		p.threadStats.Threads++
	}
	keep := !ending && !p.noIdle && len(p.idle) < maxIdle
	if keep {
		p.idle = append(p.idle, m)
	}
	p.mu.Unlock()
	if !keep {
		m.cs.leave(m)
		_ = m.Close()
	}
}

// idleMachine returns a machine an ended thread left, ready for a new
// thread, or nil.
func (p *Program) idleMachine() *Machine {
	for {
		p.mu.Lock()
		n := len(p.idle)
		if n == 0 {
			p.mu.Unlock()
			return nil
		}
		m := p.idle[n-1]
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		m.mu.Lock()
		closed := m.closed
		if !closed {
			// What the last thread left in the context: nothing
			// of the signal layer's is in progress.
			m.setCtxWord(sigtramp.OffState, 0)
			m.setCtxWord(sigtramp.OffForwarded, 0)
			m.stepping, m.oneShot = false, false
		}
		m.mu.Unlock()
		if !closed {
			return m
		}
		// Closed with its VMM or Code meanwhile.
		m.cs.leave(m)
	}
}

// closeIdle closes the machines ended threads left.
func (p *Program) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, m := range idle {
		m.cs.leave(m)
		_ = m.Close()
	}
}

// finish ends t, whose dispatcher stopped with err: at its own exit
// (*exitThread, whose code it returns), at the program's end that
// another thread started (errExiting), or with an end of the whole
// program (exit_group's *ExitError, a fatal signal's *SignalError, any
// other error), which the other threads are then told of. Its clear-tid
// word is cleared and woken (the kernel's mm_release, when other threads
// remain), and its machine leaves the address space. gone then takes it
// out of the program's set.
//
// Preconditions: t.m.mu is held; t's goroutine runs it.
func (t *thread) finish(err error) *exitThread {
	p := t.p
	var te *exitThread
	own := errors.As(err, &te)
	if !own && !errors.Is(err, errExiting) {
		p.endAll(t, err)
	}
	s := &p.sig
	s.mu.Lock()
	others := len(s.threads) > 1
	s.mu.Unlock()
	// The kernel's order (exit_mm_release): the robust list, then the
	// tid word.
	t.exitRobustList()
	if ctid := t.id.clearTID; ctid != 0 && others {
		var zero [4]byte
		if t.copyOut(ctid, zero[:]) {
			unix.RawSyscall6(unix.SYS_FUTEX, ctid, futexWake, 1, 0, 0, 0)
		}
	}
	m := t.m
	if m == p.m {
		m.cs.leave(m)
		if others {
			// The threads left go on changing code this machine no
			// longer hears of: its translations go now.
			m.flush()
		}
	} else {
		// A member still, as an idle machine (threadEnded), which
		// nothing kicks.
		m.cs.join(m, nil)
	}
	if own {
		return te
	}
	return nil
}

// gone takes t out of the program's set, own its exit if it ended with
// exit.
func (t *thread) gone(own *exitThread) {
	p := t.p
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.threads {
		if o == t {
			s.threads = append(s.threads[:i], s.threads[i+1:]...)
			break
		}
	}
	if own != nil {
		s.lastCode = own.code
	}
	if len(s.threads) == 0 {
		s.gone.Broadcast()
		return
	}
	// Signals for the process go to a thread that is still there
	// (the kernel's exit_signals).
	if s.shared.set != 0 {
		p.wakeLocked(s.shared.set, nil, nil)
	}
}

// endAll ends the program as a whole, with err as Run's result (the
// first such end wins): every thread but from is told to end and
// kicked.
func (p *Program) endAll(from *thread, err error) {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exiting {
		return
	}
	s.exiting, s.result = true, err
	for _, o := range s.threads {
		if o != from {
			o.m.work.Or(workExit)
			o.kick()
		}
	}
}

// wait waits until every thread of the program is gone and returns the
// run's result: the status of exit_group or of the last exit, or the
// error that ended the program.
func (p *Program) wait() (int, error) {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.threads) > 0 {
		s.gone.Wait()
	}
	if !s.exiting {
		return s.lastCode, nil
	}
	var ee *ExitError
	if errors.As(s.result, &ee) {
		return ee.Code, nil
	}
	return 0, s.result
}

// threadCall performs the thread system calls of a program's thread
// made at pc: clone and clone3 with CLONE_THREAD, and exit, which ends
// the thread alone. done is false for the other calls.
//
// Preconditions: t.m.mu is held; t's goroutine runs it.
func (t *thread) threadCall(nr uint64, a [6]uintptr, pc uintptr) (next uintptr, done bool, err error) {
	var ret uint64
	switch nr {
	case unix.SYS_EXIT:
		return 0, true, &exitThread{code: int(int32(a[0]))}
	case unix.SYS_CLONE:
		if a[0]&cloneThread == 0 {
			return 0, false, nil
		}
		if ret, err = t.clone(a, pc); err != nil {
			return 0, true, err
		}
	case unix.SYS_CLONE3:
		if ret, done, err = t.clone3(a, pc); !done || err != nil {
			return 0, done, err
		}
	default:
		return 0, false, nil
	}
	return t.m.sysret(pc, ret), true, nil
}
