package jit

import (
	"encoding/binary"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// SyscallError reports a system call the translator will not perform for
// the application: one that would take the process from under Go (a new
// thread, a signal handler, another program, a new FS base).
type SyscallError struct {
	PC   uintptr
	Nr   uint64
	Name string
}

func (e *SyscallError) Error() string {
	return fmt.Sprintf("jit: unsupported system call %s (%d) at %#x", e.Name, e.Nr, e.PC)
}

// refused are the system calls that end a run with a *SyscallError.
var refused = map[uint64]string{
	unix.SYS_CLONE:           "clone (a thread or process)",
	unix.SYS_CLONE3:          "clone3 (a thread or process)",
	unix.SYS_FORK:            "fork",
	unix.SYS_VFORK:           "vfork",
	unix.SYS_EXECVE:          "execve",
	unix.SYS_EXECVEAT:        "execveat",
	unix.SYS_RT_SIGACTION:    "rt_sigaction (a signal handler)",
	unix.SYS_RT_SIGRETURN:    "rt_sigreturn",
	unix.SYS_SIGALTSTACK:     "sigaltstack",
	unix.SYS_RT_SIGPROCMASK:  "rt_sigprocmask",
	unix.SYS_ARCH_PRCTL:      "arch_prctl (a TLS set-up: reachvm keeps FS for Go)",
	unix.SYS_SET_TID_ADDRESS: "set_tid_address (a thread library)",
	unix.SYS_SECCOMP:         "seccomp",
	unix.SYS_PTRACE:          "ptrace",
	unix.SYS_SET_ROBUST_LIST: "set_robust_list",
	unix.SYS_RSEQ:            "rseq",
}

// syscall performs the system call the application stopped at (the
// syscall instruction at pc) and returns where to continue. Calls that
// would change memory reachvm owns (vmcode, vmheap) fail with ENOMEM and
// the application goes on, as under Valgrind; exit and exit_group end the
// run with an *ExitError; the calls in refused end it with a
// *SyscallError; everything else goes to the kernel as it is.
func (m *Machine) syscall(pc uintptr) (uintptr, error) {
	m.stats.Syscalls++
	nr := m.reg(amd64.RAX)
	a := [6]uintptr{
		uintptr(m.reg(amd64.RDI)), uintptr(m.reg(amd64.RSI)), uintptr(m.reg(amd64.RDX)),
		uintptr(m.reg(amd64.R10)), uintptr(m.reg(amd64.R8)), uintptr(m.reg(amd64.R9)),
	}
	if nr == unix.SYS_EXIT || nr == unix.SYS_EXIT_GROUP {
		return 0, &ExitError{Code: int(int32(a[0]))}
	}
	if name, ok := refused[nr]; ok {
		return 0, &SyscallError{PC: pc, Nr: nr, Name: name}
	}
	var ret uint64
	handled := false
	if errno, vetoed := m.vet(nr, a); vetoed {
		ret, handled = uint64(-int64(errno)), true
	} else if m.client != nil {
		ret, handled = m.client.syscall(nr, a)
	}
	if !handled {
		r1, _, e := unix.Syscall6(uintptr(nr), a[0], a[1], a[2], a[3], a[4], a[5])
		ret = uint64(r1)
		if e != 0 {
			ret = uint64(-int64(e))
		}
	}
	// The kernel's side effects: rax the result, rcx the return address,
	// r11 the flags.
	m.setReg(amd64.RAX, ret)
	m.setReg(amd64.RCX, uint64(pc+2))
	m.setReg(amd64.R11, binary.LittleEndian.Uint64(m.mem[ctxFlags:]))
	return pc + 2, nil
}

// vet returns ENOMEM for memory calls whose fixed range touches vmcode or
// vmheap (Valgrind's advisory: the client may never map over the tool).
func (m *Machine) vet(nr uint64, a [6]uintptr) (unix.Errno, bool) {
	var addr, size uintptr
	switch nr {
	case unix.SYS_MMAP:
		if a[3]&(unix.MAP_FIXED|unix.MAP_FIXED_NOREPLACE) == 0 {
			return 0, false
		}
		addr, size = a[0], a[1]
	case unix.SYS_MUNMAP, unix.SYS_MPROTECT, unix.SYS_MADVISE, unix.SYS_MLOCK, unix.SYS_MUNLOCK:
		addr, size = a[0], a[1]
	case unix.SYS_MREMAP:
		if m.owns(a[0], a[1]) {
			return unix.ENOMEM, true
		}
		if a[3]&unix.MREMAP_FIXED == 0 {
			return 0, false
		}
		addr, size = a[4], a[2]
	default:
		return 0, false
	}
	if m.owns(addr, size) {
		return unix.ENOMEM, true
	}
	return 0, false
}

// owns reports whether [addr, addr+size) overlaps memory reachvm owns
// (vmcode, vmheap and everything aspacem records as reachvm's) other than
// a program's own ("client" segments, which Program vets).
func (m *Machine) owns(addr, size uintptr) bool {
	overlaps := func(base, n uintptr) bool {
		return n != 0 && addr < base+n && base < addr+size
	}
	cb, cs := m.v.VMCode()
	hb, hs := m.v.VMHeap()
	if overlaps(cb, cs) || overlaps(hb, hs) {
		return true
	}
	if size == 0 || addr+size < addr {
		return false
	}
	for _, s := range m.v.Space().Segments(addr&^4095, roundUp(addr+size, 4096)) {
		if s.Kind.Owned() && !strings.HasPrefix(s.Owner, "client") {
			return true
		}
	}
	return false
}
