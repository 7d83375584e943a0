package jit

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"
)

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

// post queues an asynchronous signal that came for the application.
//
// This is the default action only, when the application next runs; the
// application's own signal handling replaces it.
func (p *Program) post(info *SigInfo) {
	p.sigQueue = append(p.sigQueue, *info)
}

// sigPending reports whether a signal waits to be delivered.
func (p *Program) sigPending() bool { return len(p.sigQueue) != 0 }

// deliverPending acts on the queued signals before the application goes
// on at pc: their default actions.
func (p *Program) deliverPending(pc uintptr) (uintptr, error) {
	q := p.sigQueue
	p.sigQueue = p.sigQueue[:0]
	for i := range q {
		switch q[i].Signo() {
		case unix.SIGCHLD, unix.SIGURG, unix.SIGWINCH, unix.SIGCONT:
			continue
		}
		return 0, &SignalError{Signal: q[i].Signo(), Code: q[i].Code(), PC: pc, Where: p.m.where(pc)}
	}
	return pc, nil
}

// fault delivers a synchronous signal the application raised at pc (the
// application's state is in the context, as at the faulting instruction)
// and returns where to continue: the handler's first instruction, or an
// error that ends the run (a *SignalError for the default action).
//
// This is the default action only; the application's own signal
// handling (rt_sigaction and delivery on its stack) replaces it.
func (p *Program) fault(info *SigInfo, pc uintptr) (uintptr, error) {
	where := ""
	if name, off := p.m.codes.name(pc); name != "" {
		where = fmt.Sprintf("%s+%#x", name, off)
	}
	return 0, &SignalError{Signal: info.Signo(), Code: info.Code(), PC: pc, Addr: info.Addr(), Fault: true, Where: where}
}
