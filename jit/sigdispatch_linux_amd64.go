package jit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
	"github.com/reachvm/reachvm/mem"
)

// The dispatcher's side of the signal layer (package sigtramp): signals
// the handlers took for the application, translated back to the
// application's state and handed to the program's signal emulation.

// si_code values the dispatcher looks at.
const (
	trapTrace  = 2 // TRAP_TRACE: a single step
	segvMapErr = 1 // SEGV_MAPERR: no mapping
	segvAccErr = 2 // SEGV_ACCERR: a mapping that does not allow it
)

func (m *Machine) ctxWord(off uintptr) uint64 {
	return binary.LittleEndian.Uint64(m.mem[off:])
}

func (m *Machine) setCtxWord(off uintptr, v uint64) {
	binary.LittleEndian.PutUint64(m.mem[off:], v)
}

// initSignals fills the context's signal-layer fields and registers the
// routines with the layer, installing its handlers the first time.
func (m *Machine) initSignals() error {
	if err := sigtramp.Install(); err != nil {
		return fmt.Errorf("jit: %w", err)
	}
	m.setCtxWord(sigtramp.OffArea, uint64(m.ctx+m.lay.sig))
	m.setCtxWord(sigtramp.OffXsaveSize, uint64(m.lay.xsaveSize))
	return m.registerRoutines()
}

// registerRoutines tells the signal layer where the routines are: their
// region, the gate's window, the exits it sends threads to. Emitted
// again, they are registered again.
func (m *Machine) registerRoutines() error {
	m.setCtxWord(sigtramp.OffExit, uint64(m.gen.sigexit))
	m.setCtxWord(sigtramp.OffGateEINTR, uint64(m.gen.gateEINTR))
	if m.genUnit.sigRegion >= 0 {
		sigtramp.Unregister(m.genUnit.sigRegion)
		m.genUnit.sigRegion = -1
	}
	if m.gateRegion >= 0 {
		sigtramp.Unregister(m.gateRegion)
		m.gateRegion = -1
	}
	// The routines up to the gate; the gate's window apart, and the rest
	// of the gate in no region (a signal there is one in Go code's
	// system call).
	h, err := sigtramp.Register(m.genUnit.exec, m.gen.gate, m.ctx, sigtramp.KindRoutines)
	if err != nil {
		return fmt.Errorf("jit: %w", err)
	}
	m.genUnit.sigRegion = h
	if m.gateRegion, err = sigtramp.Register(m.gen.gateCheck, m.gen.gateSys+1, m.ctx, sigtramp.KindGate); err != nil {
		m.gateRegion = -1
		return fmt.Errorf("jit: %w", err)
	}
	return nil
}

// registerUnit attributes u's code to the machine in the signal layer.
func (m *Machine) registerUnit(u *codeUnit, kind uintptr) error {
	h, err := sigtramp.Register(u.exec, u.exec+u.size, m.ctx, kind)
	if err != nil {
		return fmt.Errorf("jit: %w", err)
	}
	u.sigRegion = h
	return nil
}

// runningOn marks the context as run by the calling thread (locked to
// it), listening for the asynchronous signals in listen, until the
// returned function undoes it.
func (m *Machine) runningOn(listen uint64) (func(), error) {
	if listen != 0 {
		if err := sigtramp.Listen(listen); err != nil {
			return nil, fmt.Errorf("jit: %w", err)
		}
	}
	m.setCtxWord(sigtramp.OffListen, listen)
	m.setCtxWord(sigtramp.OffTid, uint64(unix.Gettid()))
	return func() {
		m.setCtxWord(sigtramp.OffTid, 0)
		m.setCtxWord(sigtramp.OffListen, 0)
		if listen != 0 {
			sigtramp.Unlisten(listen)
		}
		m.drainArrivals()
	}, nil
}

// arrivals returns the counter of signals the handler recorded while the
// thread was outside the cache.
func (m *Machine) arrivals() *uint64 {
	return (*uint64)(unsafe.Pointer(&m.mem[sigtramp.OffArrivals]))
}

// drainArrivals hands the recorded signals to the program. The handler
// appends on this same thread, so it can only come between the copy and
// the reset, which the compare-and-swap then sees.
func (m *Machine) drainArrivals() {
	n := atomic.LoadUint64(m.arrivals())
	for n != 0 {
		var infos [sigtramp.MaxArrivals]SigInfo
		base := m.lay.sig + sigtramp.AreaArrivals
		for i := range n {
			copy(infos[i][:], m.mem[base+uintptr(i)*sigtramp.InfoSize:])
		}
		if !atomic.CompareAndSwapUint64(m.arrivals(), n, 0) {
			n = atomic.LoadUint64(m.arrivals())
			continue
		}
		m.arrived += n
		if t := m.th; t != nil {
			for i := range n {
				t.post(&infos[i])
			}
		}
		return
	}
}

// isSync reports whether info is a signal an instruction raised (the
// kernel's positive si_code on a fault signal), not one sent.
func isSync(info *SigInfo) bool {
	if info.Code() <= 0 {
		return false
	}
	switch info.Signo() {
	case unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP:
		return true
	}
	return false
}

// takeSignal handles an exit through sigexit: the signal layer took the
// thread out of the cache. It returns the application address to go on
// at, or resume set to go back to the interrupted state (single-stepping
// to a point where the application's state is exact).
func (m *Machine) takeSignal() (tag uintptr, resume bool, err error) {
	state := m.ctxWord(sigtramp.OffState)
	m.setCtxWord(sigtramp.OffState, 0)
	m.setCtxWord(ctxPosted, 0)
	// A step's trap is known by the mark the handler gave it as it
	// redirected it, not by the state's stepping bit, which may be gone
	// by now: an asynchronous signal that comes in sigexit while the
	// trap is on its way here makes the handler step sigexit out into
	// Go, where it clears the bit. This holds whoever was stepping: the
	// dispatcher (stepFromSignal) or the handler itself, from the
	// context switch into the cache.
	step := state&sigtramp.StateStepTrap != 0
	m.stepping = false
	m.stats.Signals++
	info := m.sigInfo()
	cachePC := uintptr(m.sigReg(sigtramp.RegRIP))
	var k mark
	ok := false
	if f := m.fragmentAt(cachePC); f != nil {
		k, ok = f.markAt(cachePC)
	}
	if !step && isSync(&info) {
		if !ok {
			return 0, false, fmt.Errorf("jit: internal error: %v at %#x in the code cache, which maps to no application instruction", unix.SignalName(info.Signo()), cachePC)
		}
		pc := m.recreate(k)
		if info.Signo() == unix.SIGSEGV && info.Code() == segvAccErr && m.codeWritten(info.Addr()) {
			// A write to code reachvm write-protected: the page is
			// the application's again, its translations gone; the
			// write runs again, from a fragment of its own.
			return pc, false, nil
		}
		switch info.Signo() {
		case unix.SIGILL, unix.SIGFPE, unix.SIGTRAP:
			// si_addr of these is the instruction's: the
			// application's, not the copy's. (That of SIGSEGV and
			// SIGBUS is the data address, which stays what it is,
			// even in reachvm's own memory.)
			if m.inCache(info.Addr()) {
				info.SetAddr(pc)
			}
		}
		// The fault's trap number, error code and (for a page fault)
		// address, as the kernel records them for the sigcontext.
		trap := trapState{trapno: m.sigReg(sigtramp.RegTrapno), err: m.sigReg(sigtramp.RegErr), cr2: m.sigReg(sigtramp.RegCR2)}
		tag, err = m.raise(&info, pc, trap)
		return tag, false, err
	}
	if !step {
		if t := m.th; t != nil {
			t.post(&info)
		}
	}
	if ok && k.exact && (k.block || m.opts.Client == nil || m.opts.Client.Block == nil) {
		return m.recreate(k), false, nil
	}
	m.stepFromSignal()
	return 0, true, nil
}

// stepFromSignal makes the next resume single-step the interrupted state.
func (m *Machine) stepFromSignal() {
	m.stats.Steps++
	m.setCtxWord(sigtramp.OffState, sigtramp.StateStepping)
	m.setCtxWord(ctxPosted, 1)
	m.setSigReg(sigtramp.RegEFLAGS, m.sigReg(sigtramp.RegEFLAGS)|sigtramp.TF)
	m.stepping = true
}

// stopStepping takes the trap flag out of the application's saved flags
// after an exit while single-stepping (or while the handler stepped the
// thread out of the context switch).
func (m *Machine) stopStepping() {
	if !m.stepping && m.ctxWord(sigtramp.OffState)&sigtramp.StateStepping == 0 {
		return
	}
	m.stepping = false
	m.setCtxWord(ctxPosted, 0)
	m.setCtxWord(sigtramp.OffState, m.ctxWord(sigtramp.OffState)&^sigtramp.StateStepping)
	m.setCtxWord(ctxFlags, m.ctxWord(ctxFlags)&^sigtramp.TF)
}

// raise delivers a synchronous signal the application raised at pc, its
// state in the context (trap the machine state of the fault): to the
// program's signal emulation, or, for a function run by Machine.Run, as a
// *SignalError.
func (m *Machine) raise(info *SigInfo, pc uintptr, trap trapState) (uintptr, error) {
	if t := m.th; t != nil {
		return t.faultTrap(info, pc, trap)
	}
	return 0, &SignalError{Signal: info.Signo(), Code: info.Code(), PC: pc, Addr: info.Addr(), Fault: true, Where: m.where(pc)}
}

// where names pc as module+offset, or "" when no module holds it: the
// program being run by its file name, offsets from its image's start
// (its ELF addresses for a static PIE), other code by the file mapped
// there.
func (m *Machine) where(pc uintptr) string {
	if t := m.th; t != nil && pc >= t.p.lo && pc < t.p.hi {
		p := t.p
		return fmt.Sprintf("%s+%#x", filepath.Base(p.path), pc-p.lo)
	}
	if name, off := m.codes.name(pc); name != "" {
		return fmt.Sprintf("%s+%#x", name, off)
	}
	return ""
}

// notCode turns a jump to an address that is not code into the SIGSEGV
// the processor would raise fetching it, with the application's state as
// after the jump.
func (m *Machine) notCode(err error, tag uintptr) (uintptr, error) {
	var nc *NotCodeError
	if !errors.As(err, &nc) {
		return 0, err
	}
	code := int32(segvMapErr)
	for _, s := range m.v.Space().Segments(mem.AlignDown(tag, mem.PageSize), mem.AlignDown(tag, mem.PageSize)+mem.PageSize) {
		if s.Kind.Owned() || s.Prot != 0 {
			code = segvAccErr
		}
	}
	info := newSigInfo(unix.SIGSEGV, code)
	info.SetAddr(tag)
	// The page fault of an instruction fetch in user mode.
	trap := trapOf(&info)
	trap.err |= pfInstr
	return m.raise(&info, tag, trap)
}

// waitSignal waits, on the thread running the program, until a signal
// the program listens for arrives (posted to it when this returns), or
// until timeout passes (nil: no timeout); it reports whether the time ran
// out. It is what rt_sigsuspend, pause and rt_sigtimedwait wait with: the
// thread blocks the program's signals, looks for one already arrived,
// and otherwise sleeps in ppoll with them unblocked, which sets the mask
// and sleeps as one step, so that none can come in between and be
// missed. A signal that goes to another thread is forwarded to this one,
// where it waits, blocked, for the ppoll.
//
// Preconditions: the calling thread runs m (runningOn).
func (m *Machine) waitSignal(timeout *unix.Timespec) (timedOut bool) {
	listen := m.ctxWord(sigtramp.OffListen)
	var old uint64
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_BLOCK, uintptr(unsafe.Pointer(&listen)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	if e != 0 {
		return false
	}
	defer unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	var deadline time.Time
	if timeout != nil {
		deadline = time.Now().Add(time.Duration(timeout.Nano()))
	}
	for {
		if *m.arrivals() != 0 {
			m.drainArrivals()
			return false
		}
		var ts *unix.Timespec
		if timeout != nil {
			left := time.Until(deadline)
			if left <= 0 {
				return true
			}
			t := unix.NsecToTimespec(left.Nanoseconds())
			ts = &t
		}
		mask := old &^ listen
		_, _, e := unix.Syscall6(unix.SYS_PPOLL, 0, 0, uintptr(unsafe.Pointer(ts)), uintptr(unsafe.Pointer(&mask)), 8, 0)
		if e == 0 && timeout != nil {
			return true
		}
	}
}

// canonical reports whether a is a canonical address (bits 63..47 all
// equal), one the processor will jump to.
func canonical(a uintptr) bool {
	return a < 1<<47 || a >= ^uintptr(1<<47-1)
}

// nonCanonical raises the fault of an indirect branch whose target is
// not canonical: the processor refuses it at the branch itself (#GP:
// SIGSEGV, si_code SI_KERNEL, si_addr 0), before the branch's stack
// effect, which the site has done by the time it exits and which is
// undone here.
func (m *Machine) nonCanonical(ic *icSite) (uintptr, error) {
	rsp := m.reg(amd64.RSP)
	switch ic.kind {
	case siteRet:
		rsp -= 8 + uint64(int64(ic.pop))
	case siteCall:
		rsp += 8
	}
	m.setReg(amd64.RSP, rsp)
	info := newSigInfo(unix.SIGSEGV, siKernel)
	return m.raise(&info, ic.pc, trapOf(&info))
}

// siKernel is si_code SI_KERNEL: a fault the kernel reports with no
// address (a general-protection fault).
const siKernel = 0x80
