package jit

import (
	"encoding/binary"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
)

// SyscallError reports a system call the translator will not perform for
// the application: one that would take the process from under Go (a new
// thread, another program, a new FS base), or, for a function run by
// Machine.Run, a signal handler (a Program's signals are emulated).
type SyscallError struct {
	PC   uintptr
	Nr   uint64
	Name string
}

func (e *SyscallError) Error() string {
	return fmt.Sprintf("jit: unsupported system call %s (%d) at %#x", e.Name, e.Nr, e.PC)
}

// refused are the system calls that end a run with a *SyscallError. A
// Program emulates the signal calls among them (Program.signalCall) and
// makes the process calls (Program.processCall) before they are looked
// up here.
var refused = map[uint64]string{
	unix.SYS_CLONE:           "clone (a process: a thread is CLONE_THREAD)",
	unix.SYS_CLONE3:          "clone3 (a thread or process)",
	unix.SYS_FORK:            "fork",
	unix.SYS_VFORK:           "vfork",
	unix.SYS_EXECVE:          "execve",
	unix.SYS_EXECVEAT:        "execveat",
	unix.SYS_RT_SIGACTION:    "rt_sigaction (a signal handler)",
	unix.SYS_RT_SIGRETURN:    "rt_sigreturn",
	unix.SYS_SIGALTSTACK:     "sigaltstack",
	unix.SYS_RT_SIGPROCMASK:  "rt_sigprocmask",
	unix.SYS_ARCH_PRCTL:      "arch_prctl (code run without a Program keeps Go's FS)",
	unix.SYS_SET_TID_ADDRESS: "set_tid_address (code run without a Program)",
	unix.SYS_SECCOMP:         "seccomp",
	unix.SYS_PTRACE:          "ptrace",
	unix.SYS_SET_ROBUST_LIST: "set_robust_list (code run without a Program)",
	unix.SYS_RSEQ:            "rseq (code run without a Program)",
}

// syscall performs the system call the application stopped at (the
// syscall instruction at pc) and returns where to continue. Calls that
// would change memory reachvm owns (vmcode, vmheap) fail with ENOMEM and
// the application goes on, as under Valgrind; exit and exit_group end the
// run with an *ExitError; a Program's signal calls are emulated
// (Program.signalCall), its process calls made (Program.processCall:
// a child detached to native execution, execve followed); the calls in
// refused end it with a
// *SyscallError; everything else goes to the kernel as it is, with the
// translations of the code it changes dropped (smc_syscall_linux_amd64.go).
func (m *Machine) syscall(pc uintptr) (uintptr, error) {
	m.stats.Syscalls++
	if c := m.opts.Client; c != nil && (c.SyscallPre != nil || c.SyscallPost != nil) {
		return m.clientSyscall(pc, c)
	}
	return m.syscallMade(pc)
}

// syscallMade is syscall once the client had its say.
func (m *Machine) syscallMade(pc uintptr) (uintptr, error) {
	nr := m.reg(amd64.RAX)
	a := [6]uintptr{
		uintptr(m.reg(amd64.RDI)), uintptr(m.reg(amd64.RSI)), uintptr(m.reg(amd64.RDX)),
		uintptr(m.reg(amd64.R10)), uintptr(m.reg(amd64.R8)), uintptr(m.reg(amd64.R9)),
	}
	if nr == unix.SYS_EXIT || nr == unix.SYS_EXIT_GROUP {
		if t := m.th; t != nil && nr == unix.SYS_EXIT {
			return 0, &exitThread{code: int(int32(a[0]))}
		}
		return 0, &ExitError{Code: int(int32(a[0]))}
	}
	t := m.th
	if t != nil {
		if next, done := t.signalCall(nr, a, pc); done {
			return next, nil
		}
		if nr == unix.SYS_ARCH_PRCTL {
			if ret, done := t.archPrctl(a[0], a[1]); done {
				return m.sysret(pc, ret), nil
			}
		}
		if ret, done := t.threadIDCall(nr, a); done {
			return m.sysret(pc, ret), nil
		}
		if next, done, err := t.threadCall(nr, a, pc); done || err != nil {
			return next, err
		}
		if next, done, err := t.p.processCall(t, nr, a, pc); done {
			return next, err
		}
		if ret, done := t.selfCall(nr, a); done {
			return m.sysret(pc, ret), nil
		}
		if ret, done := t.fdCall(nr, a); done {
			return m.sysret(pc, ret), nil
		}
	}
	if name, ok := refused[nr]; ok && !(nr == unix.SYS_ARCH_PRCTL && t != nil) {
		return 0, &SyscallError{PC: pc, Nr: nr, Name: name}
	}
	if memCall(nr) {
		// The address space changes: no other thread reads code
		// meanwhile, and each is told what changed before it does.
		m.cs.mm.Lock()
		defer m.cs.mm.Unlock()
	}
	var ret uint64
	handled := false
	if errno, why, vetoed := m.vet(nr, a); vetoed {
		ret, handled = uint64(-int64(errno)), true
		if t != nil {
			t.p.refuse(memCallName(nr), a[0], a[1], errno, "%s", why)
		}
	} else if t != nil {
		ret, handled = t.p.syscall(m, nr, a)
	}
	if !handled {
		var brk0 uintptr
		if nr == unix.SYS_BRK && m.pages.len() != 0 {
			brk0, _, _ = unix.RawSyscall(unix.SYS_BRK, 0, 0, 0)
		}
		m.beforeKernel(nr, a)
		for {
			ret = m.kernel(nr, a)
			if ret == errno(unix.EFAULT) && m.retryEFAULT(a) {
				ret = m.kernel(nr, a)
			}
			// A signal for the application that interrupted the call
			// (EINTR) is pending from here on, and the delivery
			// decides whether the call restarts. One the application
			// does not take now (it ignores or blocks it: the
			// signal layer's handler, not the application's
			// disposition, interrupted the call), one of Go's, or a
			// kick, must not interrupt it: the call is made again,
			// unless the program is ending.
			if *m.arrivals() != 0 {
				m.drainArrivals()
			}
			notMade := ret == errno(errNotMade)
			if !notMade && (ret != errno(unix.EINTR) || t == nil) {
				break
			}
			if t == nil {
				continue
			}
			if m.work.Load()&workExit != 0 {
				return 0, errExiting
			}
			if notMade {
				// The signal came before the call, which the kernel
				// had not begun: natively the handler runs first and
				// the call is made after it, with or without
				// SA_RESTART.
				if t.ready() {
					t.interruptedBy(nr, pc, restartAlways)
					ret = errno(unix.EINTR)
					break
				}
				continue
			}
			if t.interrupted(nr, a, pc) {
				break
			}
		}
		m.afterKernel(nr, a, ret, brk0)
	}
	return m.sysret(pc, ret), nil
}

// memCall reports whether system call nr may change the address space
// (codeSpace.mm).
func memCall(nr uint64) bool {
	switch nr {
	case unix.SYS_MMAP, unix.SYS_MUNMAP, unix.SYS_MPROTECT, unix.SYS_PKEY_MPROTECT, unix.SYS_MREMAP,
		unix.SYS_MADVISE, unix.SYS_BRK, unix.SYS_SHMAT, unix.SYS_SHMDT:
		return true
	}
	return false
}

// sysret sets the kernel's side effects of the system call at pc that
// returns ret (rax the result, rcx the return address, r11 the flags)
// and returns where the application goes on.
func (m *Machine) sysret(pc uintptr, ret uint64) uintptr {
	m.setReg(amd64.RAX, ret)
	m.setReg(amd64.RCX, uint64(pc+2))
	m.setReg(amd64.R11, binary.LittleEndian.Uint64(m.mem[ctxFlags:]))
	return pc + 2
}

// kernel makes system call nr with arguments a for the application and
// returns its result as the kernel's syscall instruction does (-errno on
// failure). It goes through the context's gate (gencode.gate), which
// makes the call unless a signal for the application arrived since the
// dispatcher last looked (-errNotMade then): a call that blocks is
// interrupted by a signal that comes at any time from here on, as the
// kernel's are.
//
// Preconditions: m.mu is held; the calling thread runs m (runningOn), or
// the signal layer records nothing for it.
func (m *Machine) kernel(nr uint64, a [6]uintptr) uint64 {
	b := m.mem[m.lay.sys : m.lay.sys+8*gateWords]
	binary.LittleEndian.PutUint64(b, nr)
	for i, x := range a {
		binary.LittleEndian.PutUint64(b[8+8*i:], uint64(x))
	}
	return uint64(native.Call0(m.gen.gate))
}

// vet returns ENOMEM for memory calls whose fixed range touches vmcode,
// vmheap or anything else reachvm owns but application memory (Valgrind's
// advisory: the client may never map over the tool), EFAULT for an
// mremap of it (the program has nothing there), and says why.
func (m *Machine) vet(nr uint64, a [6]uintptr) (unix.Errno, string, bool) {
	var addr, size uintptr
	switch nr {
	case unix.SYS_MMAP:
		if a[3]&(unix.MAP_FIXED|unix.MAP_FIXED_NOREPLACE) == 0 {
			return 0, "", false
		}
		addr, size = a[0], a[1]
	case unix.SYS_MUNMAP, unix.SYS_MPROTECT, unix.SYS_PKEY_MPROTECT, unix.SYS_MADVISE, unix.SYS_MLOCK, unix.SYS_MUNLOCK:
		addr, size = a[0], a[1]
	case unix.SYS_MREMAP:
		if what := m.owner(a[0], a[1]); what != "" {
			// Natively nothing of the program's is there.
			return unix.EFAULT, "remaps " + what, true
		}
		if a[3]&unix.MREMAP_FIXED == 0 {
			return 0, "", false
		}
		addr, size = a[4], a[2]
	default:
		return 0, "", false
	}
	if what := m.owner(addr, size); what != "" {
		return unix.ENOMEM, "touches " + what, true
	}
	return 0, "", false
}

// memCallName names the memory system calls vet looks at.
func memCallName(nr uint64) string {
	switch nr {
	case unix.SYS_MMAP:
		return "mmap"
	case unix.SYS_MUNMAP:
		return "munmap"
	case unix.SYS_MPROTECT:
		return "mprotect"
	case unix.SYS_PKEY_MPROTECT:
		return "pkey_mprotect"
	case unix.SYS_MADVISE:
		return "madvise"
	case unix.SYS_MLOCK:
		return "mlock"
	case unix.SYS_MUNLOCK:
		return "munlock"
	case unix.SYS_MLOCK2:
		return "mlock2"
	case unix.SYS_MSYNC:
		return "msync"
	case unix.SYS_MREMAP:
		return "mremap"
	}
	return fmt.Sprintf("system call %d", nr)
}

// owner names the memory reachvm owns in [addr, addr+size) (vmcode,
// vmheap and everything aspacem records as reachvm's) other than
// application memory (the VMM vets that: a program's, see Program), or
// returns "" if there is none.
func (m *Machine) owner(addr, size uintptr) string {
	overlaps := func(base, n uintptr) bool {
		return n != 0 && addr < base+n && base < addr+size
	}
	cb, cs := m.v.VMCode()
	hb, hs := m.v.VMHeap()
	switch {
	case overlaps(cb, cs):
		return fmt.Sprintf("reachvm's vmcode [%#x, %#x)", cb, cb+cs)
	case overlaps(hb, hs):
		return fmt.Sprintf("reachvm's vmheap [%#x, %#x)", hb, hb+hs)
	}
	if size == 0 || addr+size < addr {
		return ""
	}
	end, ok := mem.AlignUp(addr+size, mem.PageSize)
	if !ok {
		return ""
	}
	for _, s := range m.v.Space().Segments(mem.AlignDown(addr, mem.PageSize), end) {
		if s.Kind.Owned() && !m.v.IsApp(s.Start, s.Size()) {
			return fmt.Sprintf("reachvm's %q [%#x, %#x)", s.Owner, s.Start, s.End)
		}
	}
	return ""
}
