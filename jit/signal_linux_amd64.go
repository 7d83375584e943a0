package jit

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawsig"
	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// A program's signals, emulated as the Linux kernel handles them
// (kernel/signal.c, arch/x86/kernel/signal*.c), in Go: the application's
// dispositions (rt_sigaction), each thread's mask, pending signals and
// alternate stack, delivery on the application's own stack in the
// kernel's rt_sigframe, and rt_sigreturn. No real signal disposition of
// the process changes: the application's handlers exist only here.
//
// Signals reach the emulation three ways: the application sends them to
// itself (kill, tgkill, tkill, rt_sigqueueinfo, rt_tgsigqueueinfo:
// sigcall_linux_amd64.go), an instruction faults (Program.faultTrap,
// called by the signal layer, jit/internal/sigtramp, with the fault
// translated back to the application's state), or a real signal arrives
// for the application (Program.post, from the signal layer). They are acted on at safe
// points, where the application's whole state is in the machine context:
// before the dispatcher enters a fragment (dispatch tests one flag,
// Program.sigPending) and, for a fault, at once.
//
// Default actions follow signal(7): terminate and core end the run with
// a *SignalError (reachvm run then dies of the same signal, so the core
// is dumped where the native process would dump one); ignore drops the
// signal; stop (SIGTSTP, SIGTTIN, SIGTTOU) stops the whole process with
// the real signal's default action, as the kernel stops a process that
// has no tracer (the kernel itself discards it for an orphaned process
// group), and the run goes on once the process is continued.

// SigInfo is the kernel's siginfo_t on x86-64 (128 bytes): si_signo,
// si_errno and si_code, then a union whose layout depends on the signal
// and the code. It is kept as the kernel's bytes, so that a handler is
// given exactly what the kernel gave (or would have given) it.
type SigInfo [128]byte

// Signo returns si_signo.
func (s *SigInfo) Signo() unix.Signal { return unix.Signal(int32(binary.LittleEndian.Uint32(s[0:]))) }

// Code returns si_code.
func (s *SigInfo) Code() int32 { return int32(binary.LittleEndian.Uint32(s[8:])) }

// Addr returns si_addr: the faulting address of SIGSEGV and SIGBUS, the
// faulting instruction of SIGILL, SIGFPE and SIGTRAP.
func (s *SigInfo) Addr() uintptr { return uintptr(binary.LittleEndian.Uint64(s[16:])) }

// SetAddr sets si_addr.
func (s *SigInfo) SetAddr(a uintptr) { binary.LittleEndian.PutUint64(s[16:], uint64(a)) }

// setSender sets si_pid and si_uid, the sender of a kill or a queued
// signal.
func (s *SigInfo) setSender(pid, uid int) {
	binary.LittleEndian.PutUint32(s[16:], uint32(pid))
	binary.LittleEndian.PutUint32(s[20:], uint32(uid))
}

// newSigInfo returns a siginfo with si_signo and si_code set, the rest
// zero.
func newSigInfo(sig unix.Signal, code int32) SigInfo {
	var s SigInfo
	binary.LittleEndian.PutUint32(s[0:], uint32(sig))
	binary.LittleEndian.PutUint32(s[8:], uint32(code))
	return s
}

// SignalError reports that a signal's default action ended the
// application (the native process would have died of it): Program.Run
// returns it, and `reachvm run` then dies of the same signal.
type SignalError struct {
	// Signal is the signal, Code its si_code.
	Signal unix.Signal
	Code   int32
	// PC is the application's PC when the signal came, Addr the fault
	// address (si_addr) of a fault.
	PC, Addr uintptr
	// Fault is set for a synchronous fault (SIGSEGV, SIGBUS, SIGFPE,
	// SIGILL, SIGTRAP raised by an instruction).
	Fault bool
	// Core is set when the signal's default action dumps core
	// (signal(7)'s "Core"), not only terminates.
	Core bool
	// Where names PC as module+offset when the module is known.
	Where string
}

func (e *SignalError) Error() string {
	where := e.Where
	if where == "" {
		where = fmt.Sprintf("%#x", e.PC)
	}
	if e.Fault {
		return fmt.Sprintf("jit: the application was killed by %v at %s (fault address %#x)", unix.SignalName(e.Signal), where, e.Addr)
	}
	return fmt.Sprintf("jit: the application was killed by %v at %s", unix.SignalName(e.Signal), where)
}

// Dispositions, sigaction flags, sigaltstack flags and si_codes, as the
// kernel's uapi headers define them for x86-64.
const (
	sigDFL = 0
	sigIGN = 1

	saNoCldStop     = 0x00000001
	saNoCldWait     = 0x00000002
	saSigInfo       = 0x00000004
	saExposeTagBits = 0x00000800
	saRestorer      = 0x04000000
	saOnStack       = 0x08000000
	saRestart       = 0x10000000
	saNoDefer       = 0x40000000
	saResetHand     = 0x80000000
	// saUAPI are the flags rt_sigaction keeps (UAPI_SA_FLAGS): the
	// kernel clears every other bit, so that a program can tell which
	// flags it knows.
	saUAPI = saNoCldStop | saNoCldWait | saSigInfo | saOnStack | saRestart | saNoDefer | saResetHand | saExposeTagBits | saRestorer

	ssOnStack    = 1
	ssDisable    = 2
	ssAutoDisarm = 1 << 31
	// minSigStkSz is the smallest alternate stack sigaltstack takes
	// (MINSIGSTKSZ on x86).
	minSigStkSz = 2048

	siUser  = 0
	siTkill = -6
	// SIGCHLD's si_codes for a child that stopped or continued.
	cldStopped   = 5
	cldContinued = 6
	// Fault si_codes the kernel's exception handlers give (and
	// segvAccErr, trapTrace).
	busAdrAln = 1
	fpeIntDiv = 1

	// nsig is the number of signals (_NSIG); sigRTMin the first
	// real-time one as the kernel counts (glibc reserves 32 and 33).
	nsig     = 64
	sigRTMin = 32
)

// sigBit returns sig's bit in a sigset (bit sig-1, as the kernel's).
func sigBit(sig unix.Signal) uint64 { return 1 << (uint(sig) - 1) }

// Signal sets the kernel treats apart.
var (
	// unblockable can be neither blocked, caught nor ignored.
	unblockable = sigBit(unix.SIGKILL) | sigBit(unix.SIGSTOP)
	// synchronous are taken before any other pending signal
	// (SYNCHRONOUS_MASK): those an instruction raises.
	synchronous = sigBit(unix.SIGSEGV) | sigBit(unix.SIGBUS) | sigBit(unix.SIGILL) |
		sigBit(unix.SIGTRAP) | sigBit(unix.SIGFPE) | sigBit(unix.SIGSYS)
	// stopSignals stop the process by default.
	stopSignals = sigBit(unix.SIGSTOP) | sigBit(unix.SIGTSTP) | sigBit(unix.SIGTTIN) | sigBit(unix.SIGTTOU)
)

// defaultAction is what SIG_DFL does with a signal (signal(7)).
type defaultAction uint8

const (
	actTerm defaultAction = iota
	actCore
	actIgnore
	actStop
	actCont
)

// defaultOf returns sig's default action.
func defaultOf(sig unix.Signal) defaultAction {
	switch sig {
	case unix.SIGQUIT, unix.SIGILL, unix.SIGTRAP, unix.SIGABRT, unix.SIGBUS, unix.SIGFPE,
		unix.SIGSEGV, unix.SIGXCPU, unix.SIGXFSZ, unix.SIGSYS:
		return actCore
	case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH:
		return actIgnore
	case unix.SIGCONT:
		return actCont
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		return actStop
	}
	return actTerm
}

// sigAction is one signal's disposition, as rt_sigaction sets it.
type sigAction struct {
	// handler is sigDFL, sigIGN or the handler's address.
	handler uintptr
	// flags are sa_flags, reduced to saUAPI.
	flags uint64
	// restorer is sa_restorer, where the handler returns to.
	restorer uintptr
	// mask is sa_mask, never holding SIGKILL or SIGSTOP.
	mask uint64
}

// ignores reports whether a disposes of sig without acting: SIG_IGN, or
// SIG_DFL for a signal whose default action is to ignore it (the
// kernel's sig_handler_ignored; SIGCONT counts, its continuing being done
// when it is sent).
func (a *sigAction) ignores(sig unix.Signal) bool {
	if a.handler == sigIGN {
		return true
	}
	d := defaultOf(sig)
	return a.handler == sigDFL && (d == actIgnore || d == actCont)
}

// sigEntry is one queued signal.
type sigEntry struct {
	info SigInfo
	// fault is set for a signal Program.fault raised: an instruction's.
	fault bool
}

// sigPending is a set of pending signals (the kernel's struct
// sigpending).
type sigPending struct {
	// set has the bit of every signal with an entry in queue.
	set uint64
	// queue holds the entries in the order they came: one at most per
	// standard signal, any number per real-time one.
	queue []sigEntry
}

// maxQueued bounds a pending queue, as RLIMIT_SIGPENDING bounds the
// kernel's: beyond it, a real-time signal is refused (EAGAIN for
// rt_sigqueueinfo) or dropped.
const maxQueued = 4096

// add queues e unless its standard signal is already pending (standard
// signals do not queue), and reports whether it did.
func (q *sigPending) add(e *sigEntry) bool {
	sig := e.info.Signo()
	if sig < sigRTMin && q.set&sigBit(sig) != 0 {
		return false
	}
	if len(q.queue) >= maxQueued {
		return false
	}
	q.queue = append(q.queue, *e)
	q.set |= sigBit(sig)
	return true
}

// take removes sig's first entry and returns it.
//
// Preconditions: sig is in q.set.
func (q *sigPending) take(sig unix.Signal) sigEntry {
	var e sigEntry
	i := 0
	for i < len(q.queue) && q.queue[i].info.Signo() != sig {
		i++
	}
	if i < len(q.queue) {
		e = q.queue[i]
		q.queue = append(q.queue[:i], q.queue[i+1:]...)
	} else {
		e.info = newSigInfo(sig, siUser)
	}
	q.set &^= sigBit(sig)
	for j := i; j < len(q.queue); j++ {
		if q.queue[j].info.Signo() == sig {
			q.set |= sigBit(sig)
			break
		}
	}
	return e
}

// flush drops every entry of the signals in set.
func (q *sigPending) flush(set uint64) {
	if q.set&set == 0 {
		return
	}
	kept := q.queue[:0]
	for _, e := range q.queue {
		if sigBit(e.info.Signo())&set == 0 {
			kept = append(kept, e)
		}
	}
	clear(q.queue[len(kept):])
	q.queue = kept
	q.set &^= set
}

// nextSignal returns the signal the kernel takes first among those in
// set (next_signal): a synchronous one if any, else the lowest.
func nextSignal(set uint64) unix.Signal {
	if set&synchronous != 0 {
		set &= synchronous
	}
	for sig := unix.Signal(1); sig <= nsig; sig++ {
		if set&sigBit(sig) != 0 {
			return sig
		}
	}
	return 0
}

// altStack is a thread's alternate signal stack (sigaltstack).
type altStack struct {
	sp, size uintptr
	// flags are ss_flags as given: SS_ONSTACK or 0, and SS_AUTODISARM.
	flags uint32
}

// contains reports whether sp lies on the stack (__on_sig_stack).
func (s *altStack) contains(sp uintptr) bool {
	return sp > s.sp && sp-s.sp <= s.size
}

// on reports whether sp counts as on the stack (on_sig_stack): never
// for a stack with SS_AUTODISARM, which is disarmed while in use.
func (s *altStack) on(sp uintptr) bool {
	return s.flags&ssAutoDisarm == 0 && s.contains(sp)
}

// state returns what sigaltstack reports in ss_flags at sp
// (sas_ss_flags).
func (s *altStack) state(sp uintptr) uint32 {
	if s.size == 0 {
		return ssDisable
	}
	if s.on(sp) {
		return ssOnStack
	}
	return 0
}

// trapState is what the kernel keeps of a thread's last hardware fault
// (thread.trap_nr, error_code and cr2) and writes into every signal
// frame's sigcontext, a fault's or not. cr2 changes with page faults
// only (trapno 14): another fault leaves the last one's.
type trapState struct {
	trapno, err, cr2 uint64
}

// Exception vectors and page-fault error code bits.
const (
	trapDE, trapDB, trapBP, trapUD, trapGP, trapPF, trapAC, trapXM = 0, 1, 3, 6, 13, 14, 17, 19

	pfProt, pfUser, pfInstr = 1, 4, 0x10
)

// restartKind is how the kernel restarts a system call a signal
// interrupted (its ERESTART* codes, as signal(7) lists the calls).
type restartKind uint8

const (
	// restartNever: the call fails with EINTR.
	restartNever restartKind = iota
	// restartSys: restarted after a handler with SA_RESTART, or when no
	// handler runs (ERESTARTSYS).
	restartSys
	// restartNoHandler: restarted only when no handler runs
	// (ERESTARTNOHAND, ERESTART_RESTARTBLOCK).
	restartNoHandler
	// restartAlways: restarted after a handler or without one
	// (ERESTARTNOINTR): a call the signal came before, which the
	// kernel had not begun (the gate's, errNotMade).
	restartAlways
)

// sysRestart is a system call that returned EINTR with a signal pending:
// the first delivery decides whether it restarts.
type sysRestart struct {
	// active is set while the decision is to be made.
	active bool
	kind   restartKind
	// nr is the call's number, pc its syscall instruction.
	nr uint64
	pc uintptr
}

// sigThread is one application thread's signal state.
type sigThread struct {
	// tid is the thread's kernel thread id (what gettid gives it).
	tid int
	// mask is the blocked set; never holds SIGKILL or SIGSTOP.
	mask uint64
	// pending are the signals sent to this thread alone.
	pending sigPending
	// alt is the alternate signal stack; size 0 when disabled.
	alt altStack
	// savedMask is the mask to restore once restoreMask is set
	// (rt_sigsuspend's, the kernel's saved_sigmask and
	// TIF_RESTORE_SIGMASK): the first frame saves it instead of mask.
	savedMask   uint64
	restoreMask bool
	// restart is the interrupted system call awaiting its restart
	// decision.
	restart sysRestart
	// trap is the last fault's machine state.
	trap trapState
}

// signals is a program's signal state, and its threads'.
type signals struct {
	// mu guards every field below and each thread's sig; it is never
	// held while the application runs. Threads take it from their own
	// goroutines.
	mu sync.Mutex
	// running is set while Program.Run runs the program.
	running bool
	// pid is the process's id and pgrp its group, uid its real user id:
	// what the application's getpid, getpgrp and getuid give.
	pid, pgrp, uid int
	// actions are the dispositions, indexed by signal-1.
	actions [nsig]sigAction
	// shared are the signals sent to the process.
	shared sigPending
	// initMask and initIgnored are the mask and the SIG_IGN
	// dispositions a run starts with (Program.Inherit: what an execve
	// kept), neither holding SIGKILL or SIGSTOP.
	initMask, initIgnored uint64
	// threads are the program's live threads, the one Run started
	// first: a thread is in it from before its clone returns in its
	// parent until its end, the kernel's or the program's, is over.
	// While in it, its OS thread lives, so it can be kicked.
	threads []*thread
	// main is the thread Run started, which the process id names too.
	main *thread
	// exiting is set once the program ends as a whole (exit_group, a
	// fatal signal, an error): no thread starts any more, and each one
	// ends at its next safe point. result is what Run returns then: an
	// *ExitError, a *SignalError or another error.
	exiting bool
	result  error
	// lastCode is the status of the last thread that ended with exit,
	// the program's when every thread did (as the kernel reports it).
	lastCode int
	// gone is broadcast, with mu, when threads becomes empty.
	gone sync.Cond
}

// resetSignals gives the program a new process's signal state with main
// its only thread: every disposition SIG_DFL, nothing blocked or
// pending, no alternate stack.
//
// Preconditions: called by Run on its locked OS thread, main's.
func (p *Program) resetSignals(main *thread) {
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gone.L = &s.mu
	s.actions = [nsig]sigAction{}
	for i := range s.actions {
		if s.initIgnored&(1<<i) != 0 {
			s.actions[i].handler = sigIGN
		}
	}
	s.shared = sigPending{}
	p.childWait(&s.actions[unix.SIGCHLD-1])
	main.tid = unix.Gettid()
	main.sig = sigThread{tid: main.tid, mask: s.initMask}
	s.threads, s.main = []*thread{main}, main
	s.exiting, s.result, s.lastCode = false, nil, 0
	s.pid, s.pgrp, s.uid = unix.Getpid(), unix.Getpgrp(), unix.Getuid()
	s.running = true
	main.recalcLocked()
}

// endSignals marks the run over: nothing is posted any more, and the
// kernel leaves the process's children to wait again.
func (p *Program) endSignals() {
	p.sig.mu.Lock()
	p.sig.running = false
	for _, t := range p.sig.threads {
		t.check.Store(false)
	}
	p.sig.mu.Unlock()
	p.childWait(&sigAction{})
}

// sigPending reports whether the thread has something to act on before
// it runs on: the dispatcher's test, once per fragment entered.
func (t *thread) sigPending() bool { return t.check.Load() }

// pendingLocked returns the signals pending for the thread: its own and
// the process's.
func (t *thread) pendingLocked() uint64 { return t.sig.pending.set | t.p.sig.shared.set }

// recalcLocked sets the dispatcher's flag when the thread has something
// to act on: a pending signal it does not block, a mask to restore or a
// restart to decide (the kernel's recalc_sigpending).
func (t *thread) recalcLocked() {
	th := &t.sig
	t.check.Store(t.pendingLocked()&^th.mask != 0 || th.restoreMask || th.restart.active)
}

// setMaskLocked sets the thread's mask, SIGKILL and SIGSTOP left out
// (set_current_blocked); signals for the process the thread now blocks
// go to another thread that takes them (retarget_shared_pending).
func (t *thread) setMaskLocked(mask uint64) {
	mask &^= unblockable
	blocked := mask &^ t.sig.mask
	t.sig.mask = mask
	t.recalcLocked()
	if set := t.p.sig.shared.set & blocked; set != 0 {
		t.p.wakeLocked(set, t, t)
	}
}

// sendLocked sends a signal to thread to, or to the process if to is
// nil, as the kernel's send_signal does: a stop signal discards a
// pending SIGCONT and SIGCONT discards pending stop signals; an ignored
// signal the target does not block is dropped; a standard signal already
// pending is not queued again. A thread that can take it is then told
// (complete_signal): to itself, or for the process one that does not
// block it, kicked unless it is from, the sender. It reports whether the
// signal was queued or dropped as the kernel would (false: the queue is
// full).
func (p *Program) sendLocked(e *sigEntry, to, from *thread) bool {
	s := &p.sig
	sig := e.info.Signo()
	switch {
	case sigBit(sig)&stopSignals != 0:
		s.shared.flush(sigBit(unix.SIGCONT))
		for _, t := range s.threads {
			t.sig.pending.flush(sigBit(unix.SIGCONT))
		}
	case sig == unix.SIGCONT:
		s.shared.flush(stopSignals)
		for _, t := range s.threads {
			t.sig.pending.flush(stopSignals)
		}
	}
	// The kernel's sig_ignored looks at the task the signal was sent to:
	// the thread, or for the process the one its pid names.
	target := to
	if target == nil {
		target = p.leaderLocked()
	}
	if target != nil && target.sig.mask&sigBit(sig) == 0 && s.actions[sig-1].ignores(sig) {
		return true
	}
	q := &s.shared
	if to != nil {
		q = &to.sig.pending
	}
	if !q.add(e) && (sig >= sigRTMin || q.set&sigBit(sig) == 0) {
		return false
	}
	if to != nil {
		to.recalcLocked()
		if to != from && to.check.Load() {
			to.kick()
		}
		return true
	}
	p.wakeLocked(sigBit(sig), nil, from)
	return true
}

// leaderLocked returns the thread the process's id names: the first
// one, Run's, while it lives, else the oldest.
func (p *Program) leaderLocked() *thread {
	if len(p.sig.threads) == 0 {
		return nil
	}
	return p.sig.threads[0]
}

// wakeLocked tells a thread other than not that takes one of the process
// signals in set that it has one: the leader if it can, else the first
// that does not block them (the kernel's complete_signal and
// retarget_shared_pending); kicked unless it is from.
func (p *Program) wakeLocked(set uint64, not, from *thread) {
	for _, t := range p.sig.threads {
		if t == not || t.sig.mask&set == set {
			continue
		}
		t.recalcLocked()
		if t != from {
			t.kick()
		}
		return
	}
}

// post queues a signal that really arrived for the application (a
// timer's SIGALRM, a kill from another process) on thread t, for
// delivery at the next safe point: the signal layer calls it
// (Machine.drainArrivals, on t's OS thread). A signal whose si_code is
// SI_TKILL goes to the thread, any other to the process. A kick
// (thread.kick) only clears the thread's kicked. Nothing is queued
// outside Program.Run.
func (t *thread) post(info *SigInfo) {
	p := t.p
	if p.isKick(info) {
		t.kicked.Store(false)
		return
	}
	sig := info.Signo()
	if sig < 1 || sig > nsig || sigBit(sig)&unblockable != 0 {
		return
	}
	s := &p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	// A child's stop or continuation is not signalled to a program that
	// asked for SA_NOCLDSTOP (the kernel's do_notify_parent_cldstop):
	// the real SIGCHLD came to the signal layer, whose action has no
	// such flag.
	if sig == unix.SIGCHLD && s.actions[sig-1].flags&saNoCldStop != 0 {
		if c := info.Code(); c == cldStopped || c == cldContinued {
			return
		}
	}
	var to *thread
	if info.Code() == siTkill {
		to = t
	}
	p.sendLocked(&sigEntry{info: *info}, to, t)
}

// fault delivers a synchronous signal the application raised at pc (the
// application's state is in the context, as at the faulting instruction)
// and returns where to continue: the handler's first instruction, or an
// error that ends the run (a *SignalError for the default action). The
// sigcontext's trapno, err and cr2 are derived from the siginfo; the
// signal layer, which has the real ones, calls faultTrap instead.
func (t *thread) fault(info *SigInfo, pc uintptr) (uintptr, error) {
	return t.faultTrap(info, pc, trapOf(info))
}

// faultTrap is fault with the fault's machine state given.
func (t *thread) faultTrap(info *SigInfo, pc uintptr, trap trapState) (uintptr, error) {
	sig := info.Signo()
	if sig < 1 || sig > nsig || sigBit(sig)&unblockable != 0 {
		return 0, fmt.Errorf("jit: a fault with signal %d at %#x", int(sig), pc)
	}
	s := &t.p.sig
	s.mu.Lock()
	th := &t.sig
	th.trap.trapno, th.trap.err = trap.trapno, trap.err
	if trap.trapno == trapPF {
		th.trap.cr2 = trap.cr2
	}
	// force_sig_info: a blocked or ignored fault cannot be left pending
	// (the instruction would fault again): it goes back to SIG_DFL and
	// is unblocked.
	act := &s.actions[sig-1]
	if blocked := th.mask&sigBit(sig) != 0; blocked || act.handler == sigIGN {
		act.handler = sigDFL
		th.mask &^= sigBit(sig)
	}
	e := sigEntry{info: *info, fault: true}
	th.pending.add(&e)
	t.recalcLocked()
	s.mu.Unlock()
	return t.deliverPending(pc)
}

// trapOf derives the fault state the kernel would have recorded from a
// fault's siginfo: the exception vector, and cr2 for a page fault. The
// page fault's error code is not in the siginfo: it is 4 (a user-mode
// access), with the present bit for SEGV_ACCERR.
func trapOf(info *SigInfo) trapState {
	code := info.Code()
	switch info.Signo() {
	case unix.SIGSEGV:
		switch code {
		case siKernel:
			return trapState{trapno: trapGP}
		case segvAccErr:
			return trapState{trapno: trapPF, err: pfUser | pfProt, cr2: uint64(info.Addr())}
		}
		return trapState{trapno: trapPF, err: pfUser, cr2: uint64(info.Addr())}
	case unix.SIGBUS:
		if code == busAdrAln {
			return trapState{trapno: trapAC}
		}
		return trapState{trapno: trapPF, err: pfUser | pfProt, cr2: uint64(info.Addr())}
	case unix.SIGFPE:
		if code == fpeIntDiv {
			return trapState{trapno: trapDE}
		}
		return trapState{trapno: trapXM}
	case unix.SIGILL:
		return trapState{trapno: trapUD}
	case unix.SIGTRAP:
		if code == trapTrace {
			return trapState{trapno: trapDB}
		}
		return trapState{trapno: trapBP}
	}
	return trapState{}
}

// deliverPending acts on every signal the thread can take at pc, the
// application's next instruction, with its state in the context (the
// kernel's get_signal loop, on the way back to user mode): an ignored
// one is dropped, a default action taken, and for each handler a frame
// is pushed, the next one on top of the last (the innermost handler runs
// first). It returns where the application goes on, or the
// *SignalError of a default action that ends it.
func (t *thread) deliverPending(pc uintptr) (uintptr, error) {
	s := &t.p.sig
	s.mu.Lock()
	defer s.mu.Unlock()
	th := &t.sig
	restart := th.restart
	th.restart = sysRestart{}
	handled := false
	for {
		ready := t.pendingLocked() &^ th.mask
		if ready == 0 {
			break
		}
		// The thread's own signals first, then the process's.
		var e sigEntry
		if own := th.pending.set &^ th.mask; own != 0 {
			e = th.pending.take(nextSignal(own))
		} else {
			e = s.shared.take(nextSignal(ready))
		}
		sig := e.info.Signo()
		act := &s.actions[sig-1]
		quiet := act.handler == sigIGN || act.handler == sigDFL && (defaultOf(sig) == actIgnore || defaultOf(sig) == actCont)
		if !quiet && t.clientSignal(&e, pc) {
			continue
		}
		switch act.handler {
		case sigIGN:
			continue
		case sigDFL:
			switch defaultOf(sig) {
			case actIgnore, actCont:
				continue
			case actStop:
				// The whole process stops, and the run goes on when
				// it is continued.
				s.mu.Unlock()
				err := rawsig.Stop(sig)
				s.mu.Lock()
				if err != nil {
					return 0, fmt.Errorf("jit: stopping for %v: %w", unix.SignalName(sig), err)
				}
				continue
			}
			t.recalcLocked()
			return 0, t.killed(&e, pc)
		}
		ka := *act
		if ka.flags&saResetHand != 0 {
			act.handler = sigDFL
		}
		if !handled && restart.active {
			// The interrupted system call: restarted (back at its
			// syscall instruction with its number in rax) or failed
			// with EINTR (already in rax), before the frame saves the
			// registers.
			if restart.kind == restartAlways || restart.kind == restartSys && ka.flags&saRestart != 0 {
				t.m.setReg(amd64.RAX, restart.nr)
				pc = restart.pc
			}
		}
		handled = true
		next, ok := t.setupFrameLocked(sig, &e.info, &ka, pc)
		if !ok {
			// The frame could not be written (force_sigsegv): SIGSEGV
			// instead, fatal if it was SIGSEGV that could not be
			// delivered.
			t.forceSegvLocked(sig == unix.SIGSEGV)
			continue
		}
		pc = next
		// signal_delivered: the handler's mask, and the saved mask
		// now lives in the frame.
		mask := th.mask | ka.mask
		if ka.flags&saNoDefer == 0 {
			mask |= sigBit(sig)
		}
		th.restoreMask = false
		t.setMaskLocked(mask)
		if th.alt.flags&ssAutoDisarm != 0 {
			th.alt = altStack{}
		}
	}
	if !handled && restart.active && restart.kind != restartNever {
		t.m.setReg(amd64.RAX, restart.nr)
		pc = restart.pc
	}
	if th.restoreMask {
		th.restoreMask = false
		t.setMaskLocked(th.savedMask)
	}
	t.recalcLocked()
	return pc, nil
}

// forceSegvLocked raises SIGSEGV with SI_KERNEL for the thread (the
// kernel's force_sig(SIGSEGV) for a frame it cannot write or read): if
// SIGSEGV is blocked or ignored, or fatal is set, its disposition goes
// back to SIG_DFL and it is unblocked.
func (t *thread) forceSegvLocked(fatal bool) {
	s := &t.p.sig
	act := &s.actions[unix.SIGSEGV-1]
	if fatal || t.sig.mask&sigBit(unix.SIGSEGV) != 0 || act.handler == sigIGN {
		act.handler = sigDFL
		t.sig.mask &^= sigBit(unix.SIGSEGV)
	}
	e := sigEntry{info: newSigInfo(unix.SIGSEGV, siKernel)}
	t.sig.pending.add(&e)
	t.recalcLocked()
}

// killed returns the *SignalError of e's default action at pc.
func (t *thread) killed(e *sigEntry, pc uintptr) error {
	sig := e.info.Signo()
	err := &SignalError{Signal: sig, Code: e.info.Code(), PC: pc, Core: defaultOf(sig) == actCore}
	if e.fault {
		err.Fault, err.Addr = true, e.info.Addr()
	}
	err.Where = t.m.where(pc)
	return err
}

// waitSignal blocks the application thread until a signal in want is
// pending for it, or until deadline passes (a zero deadline waits for
// ever), or the program ends, and reports whether one is: rt_sigsuspend,
// pause and rt_sigtimedwait wait here. A signal already pending ends the
// wait at once; otherwise the thread sleeps in Machine.waitSignal until a
// real signal arrives for it (the signal layer posts it: another
// thread's signal comes with a kick), and looks again.
//
// Preconditions: p.sig.mu is not held; t's goroutine runs it.
func (t *thread) waitSignal(want uint64, deadline time.Time) bool {
	s := &t.p.sig
	for {
		t.kicked.Store(false)
		s.mu.Lock()
		got := t.pendingLocked()&want != 0
		s.mu.Unlock()
		if got {
			return true
		}
		if t.m.work.Load()&workExit != 0 {
			return false
		}
		var timeout *unix.Timespec
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			ts := unix.NsecToTimespec(left.Nanoseconds())
			timeout = &ts
		}
		t.m.waitSignal(timeout)
	}
}
