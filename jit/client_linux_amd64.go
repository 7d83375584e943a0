package jit

import (
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// Client is an instrumentation tool: the events it takes, each optional.
// A nil field costs nothing; the events that happen at translation time
// (Block) cost nothing per execution of the code they saw, only what
// they insert does.
//
// The callbacks run on the application thread the event is about, in Go,
// with Go's FS, outside translated code, and with that thread's machine
// busy: they must not call the Machine or the Program. Threads of a
// program run their events concurrently; a client guards what its
// callbacks share.
type Client struct {
	// Block is called when the translator builds a basic block: the
	// straight-line code from an address up to and including its first
	// control transfer (any branch, call, return or system call) or the
	// fragment's length limit. b lists the instructions; the client may
	// insert code before any of them (Block.AddCounter, Block.CleanCall).
	// It may be called more than once for the same code (after the code
	// changed, a flush, for another thread, or when a translation is made
	// again): each call's insertions apply to the translation it is
	// called for.
	Block func(b *Block)
	// ThreadStart is called when an application thread starts, before
	// its first instruction runs: the program's first thread in
	// Program.Run, each clone of a thread before the new thread runs.
	ThreadStart func(t *Thread)
	// ThreadExit is called when a thread ends (its exit, the program's
	// exit_group, a fatal signal), while its per-thread counters still
	// hold its own counts (Thread.Value).
	ThreadExit func(t *Thread)
	// SyscallPre is called before each system call the application
	// makes, with its number and arguments, which it may change, or it
	// may skip the call (Syscall.Skip).
	SyscallPre func(s *Syscall)
	// SyscallPost is called after each system call that was made (not
	// skipped, and not one that ends the thread), with its result,
	// which it may change.
	SyscallPost func(s *Syscall)
	// Exit is called once when a program's run ends, after every
	// thread's ThreadExit.
	Exit func(e *ExitEvent)
	// ModuleLoad is called once for each file of code (Module) before
	// the translator translates its first block: the client may look
	// up the module's functions. ModuleUnload is called when the
	// application unmaps the module's first mapping. The two are
	// called one at a time for the whole program.
	ModuleLoad   func(mod *Module)
	ModuleUnload func(mod *Module)
	// Signal is called before a signal is delivered to the application
	// (its handler run, or its default action taken; not for one it
	// ignores), with the thread's state at the instruction it comes at.
	// The client may suppress it (SignalEvent.Suppress): an asynchronous
	// signal is then dropped; a fault's instruction runs again, and
	// faults again unless the client's own code made it not to.
	Signal func(s *SignalEvent)

	// wraps are the functions Wrap wrapped, nil before the first.
	wraps atomic.Pointer[wrapTable]
}

// SignalEvent is a signal about to be delivered.
type SignalEvent struct {
	Thread *Thread
	// Info is the signal's siginfo (Signo, Code, Addr).
	Info SigInfo
	// PC is the application's instruction the signal comes at: the
	// faulting one for a fault.
	PC uintptr
	// Fault is set for a synchronous signal the instruction at PC
	// raised.
	Fault    bool
	suppress bool
}

// Suppress drops the signal: it is not delivered.
func (s *SignalEvent) Suppress() { s.suppress = true }

// Thread is an application thread, as a client sees it.
type Thread struct {
	// TID is the thread's id (gettid).
	TID int
	// Data is the client's own per-thread data: nil at ThreadStart,
	// kept for the thread's life. Only callbacks on the thread touch it.
	Data any
	// m is the machine running the thread.
	m *Machine
}

// Value returns the thread's own part of the counter c: what this
// thread's code added to it (a Shared counter has no per-thread part:
// its whole value).
func (t *Thread) Value(c *Counter) uint64 {
	if c.scope == Shared {
		return c.Value()
	}
	return t.m.cells.value(c)
}

// Syscall is a system call as SyscallPre and SyscallPost see it.
type Syscall struct {
	// Thread is the calling thread.
	Thread *Thread
	// Nr is the call's number; Args its six arguments, rdi, rsi, rdx,
	// r10, r8, r9. SyscallPre may change both: the call made is the
	// changed one.
	Nr   uint64
	Args [6]uintptr
	// Result is the call's result (a negated errno on failure), valid
	// in SyscallPost, which may change it.
	Result uint64
	// skip is set by Skip.
	skip bool
}

// Skip makes the call not happen: the application sees result as its
// return value. Only SyscallPre may skip a call, and not exit or
// exit_group.
func (s *Syscall) Skip(result uint64) {
	s.skip, s.Result = true, result
}

// ExitEvent is the end of a program's run.
type ExitEvent struct {
	// Status is the exit status Program.Run returns; Err its error (a
	// *SignalError for a fatal signal), nil for an exit.
	Status int
	Err    error
}

// clientThread returns the client's view of the thread m runs.
func (m *Machine) clientThread() *Thread {
	if m.cthread == nil {
		m.cthread = &Thread{m: m}
	}
	return m.cthread
}

// clientThreadStart gives the client the start of the thread m now runs,
// tid.
func (m *Machine) clientThreadStart(tid int) {
	c := m.opts.Client
	if c == nil {
		return
	}
	t := m.clientThread()
	t.TID, t.Data = tid, nil
	if c.ThreadStart != nil {
		c.ThreadStart(t)
	}
}

// clientThreadExit gives the client the end of the thread m ran, then
// moves the thread's counts into their counters' totals, so that the
// machine starts its next thread at zero.
func (m *Machine) clientThreadExit() {
	c := m.opts.Client
	if c == nil || m.cthread == nil {
		return
	}
	m.flushTraces()
	if c.ThreadExit != nil {
		c.ThreadExit(m.cthread)
	}
	m.cells.fold(false)
	m.cthread.Data = nil
}

// syscallArgRegs are the registers of a system call's arguments.
var syscallArgRegs = [6]amd64.Reg{amd64.RDI, amd64.RSI, amd64.RDX, amd64.R10, amd64.R8, amd64.R9}

// clientSyscall makes the system call at pc with the client's
// SyscallPre and SyscallPost around it. SyscallPost sees the calls that
// return to the instruction after the syscall: not rt_sigreturn, exit,
// exit_group, nor an execve that succeeded, nor a call a signal handler
// interrupted.
func (m *Machine) clientSyscall(pc uintptr, c *Client) (uintptr, error) {
	s := Syscall{Thread: m.clientThread(), Nr: m.reg(amd64.RAX)}
	for i, r := range syscallArgRegs {
		s.Args[i] = uintptr(m.reg(r))
	}
	if c.SyscallPre != nil {
		c.SyscallPre(&s)
		ends := s.Nr == unix.SYS_EXIT || s.Nr == unix.SYS_EXIT_GROUP
		if s.skip && !ends {
			return m.sysret(pc, s.Result), nil
		}
		m.setReg(amd64.RAX, s.Nr)
		for i, r := range syscallArgRegs {
			m.setReg(r, uint64(s.Args[i]))
		}
	}
	next, err := m.syscallMade(pc)
	if c.SyscallPost == nil || err != nil || next != pc+2 {
		return next, err
	}
	s.Result = m.reg(amd64.RAX)
	r := s.Result
	c.SyscallPost(&s)
	if s.Result != r {
		m.setReg(amd64.RAX, s.Result)
	}
	return next, nil
}

// clientSignal gives the client's Signal event e, about to be delivered
// at pc, and reports whether the client suppressed it.
//
// Preconditions: t.p.sig.mu is held (the client must not call into the
// program).
func (t *thread) clientSignal(e *sigEntry, pc uintptr) bool {
	c := t.m.opts.Client
	if c == nil || c.Signal == nil {
		return false
	}
	ev := SignalEvent{Thread: t.m.clientThread(), Info: e.info, PC: pc, Fault: e.fault}
	c.Signal(&ev)
	return ev.suppress
}
