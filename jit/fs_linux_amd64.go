package jit

import (
	"encoding/binary"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// The application's FS.
//
// A program owns FS while its code runs, as natively: glibc keeps its
// thread pointer there, and a program that reads %fs before setting it
// faults. Go (with cgo, the C library's thread control block) owns it
// whenever Go code runs. The context keeps both bases (ctxAppFS,
// ctxHostFS): enter and resume load the application's, fcache_return and
// sigexit put Go's back, and the signal layer's handler puts Go's back
// around any Go handler it chains to from the cache or the routines.
// reachvm's own per-thread state needs no segment at all: each thread has
// its own Machine, whose context emitted code names RIP-relatively.
//
// When both bases are equal the routines skip the switch: a Machine run
// without a Program (library mode) leaves both 0 and runs the code with
// Go's FS, which code called like a C function expects.

// arch_prctl codes.
const (
	archSetGS = 0x1001
	archSetFS = 0x1002
	archGetFS = 0x1003
	archGetGS = 0x1004
)

// userAddrEnd is the end of the user address space: the kernel refuses a
// segment base at or above it (EPERM).
const userAddrEnd = 1 << 47

// atHWCAP2 is the auxiliary vector's AT_HWCAP2, whose bit hwcap2FSGSBASE
// says the kernel lets user code run rdfsbase and wrfsbase.
const (
	atHWCAP2       = 26
	hwcap2FSGSBASE = 1 << 1
)

// auxv returns the value of the auxiliary vector's entry typ the kernel
// gave reachvm (the Go runtime's copy of it), and whether it has one.
func auxv(typ uint64) (uint64, bool) {
	for _, kv := range hostAuxv() {
		if uint64(kv[0]) == typ {
			return uint64(kv[1]), true
		}
	}
	return 0, false
}

// haveFSGSBASE reports whether wrfsbase can switch FS: the kernel
// enables it (Linux 5.9 and later, on processors that have it).
var haveFSGSBASE = sync.OnceValue(func() bool {
	v, _ := auxv(atHWCAP2)
	return v&hwcap2FSGSBASE != 0
})

// fsSwitch says how the routines switch FS.
type fsSwitch uint8

const (
	// fsSyscall switches with arch_prctl(ARCH_SET_FS): a system call.
	fsSyscall fsSwitch = iota
	// fsInstr switches with wrfsbase: a few cycles.
	fsInstr
	// fsMangle never switches: FS stays Go's, and the translator
	// rewrites the program's FS-relative operands to add its FS base
	// (fsmangle_linux_amd64.go).
	fsMangle
)

func (s fsSwitch) String() string {
	switch s {
	case fsInstr:
		return "wrfsbase"
	case fsMangle:
		return "translated"
	}
	return "arch_prctl"
}

// defaultFSSwitch is wrfsbase where the kernel allows it, and translated
// FS-relative operands otherwise: arch_prctl's two system calls per exit
// cost more than the few instructions each FS-relative operand gets
// (BenchmarkExitFS, BenchmarkFSAccess).
func defaultFSSwitch() fsSwitch {
	if haveFSGSBASE() {
		return fsInstr
	}
	return fsMangle
}

// emitSetFS emits: unless the context's FS bases at to and other are
// equal, FS base := [to]. It clobbers rax, rcx, rdx, rsi, rdi, r11 and
// the flags.
func emitSetFS(a *amd64.Assembler, c func(uintptr) amd64.Mem, to, other uintptr, how fsSwitch, try func(error)) {
	if how == fsMangle {
		return
	}
	try(a.MovLoad(amd64.RSI, c(to)))
	try(a.CmpRegMem(amd64.RSI, c(other)))
	same := a.JccLabel(amd64.CondE)
	if how == fsInstr {
		a.Raw(0xf3, 0x48, 0x0f, 0xae, 0xd6) // wrfsbase rsi
	} else {
		a.MovImm32(amd64.RDI, archSetFS)
		a.MovImm32(amd64.RAX, unix.SYS_ARCH_PRCTL)
		a.Raw(0x0f, 0x05) // syscall
	}
	try(a.Bind(same))
}

// currentFS returns the calling OS thread's FS base.
//
// Preconditions: the OS thread is locked (the value is this thread's).
func currentFS() uintptr {
	var v uint64
	_, _, _ = unix.RawSyscall(unix.SYS_ARCH_PRCTL, archGetFS, uintptr(unsafe.Pointer(&v)), 0)
	return uintptr(v)
}

// appFS returns the application's FS base.
func (m *Machine) appFS() uintptr { return uintptr(binary.LittleEndian.Uint64(m.mem[ctxAppFS:])) }

// setAppFS sets the FS base the application gets at the next entry.
func (m *Machine) setAppFS(v uintptr) { binary.LittleEndian.PutUint64(m.mem[ctxAppFS:], uint64(v)) }

// setHostFS sets the FS base Go gets back at every exit: the running OS
// thread's own, or 0 for no switch (library mode, or FS-relative operands
// translated).
func (m *Machine) setHostFS(v uintptr) { binary.LittleEndian.PutUint64(m.mem[ctxHostFS:], uint64(v)) }

// hostFS returns what setHostFS should be given for a program's thread on
// the calling OS thread.
//
// Preconditions: the OS thread is locked.
func (m *Machine) hostFS() uintptr {
	if m.fs == fsMangle {
		return 0
	}
	return currentFS()
}

// libraryFS returns the FS base that code run without a Program sees:
// the calling OS thread's own, which in fsMangle mode the translated
// operands must add themselves (the switching modes switch nothing: both
// bases 0).
//
// Preconditions: the OS thread is locked.
func (m *Machine) libraryFS() uintptr {
	if m.fs == fsMangle {
		return currentFS()
	}
	return 0
}

// archPrctl emulates arch_prctl for the program's thread t: FS is its
// context's (ARCH_SET_FS, ARCH_GET_FS), checked as the kernel checks it;
// the other codes (the GS base, which neither Go nor reachvm uses, CPUID
// faulting, extended state permissions) go to the kernel.
func (t *thread) archPrctl(code, addr uintptr) (ret uint64, handled bool) {
	switch code {
	case archSetFS:
		if addr >= userAddrEnd {
			return errno(unix.EPERM), true
		}
		t.m.setAppFS(addr)
		return 0, true
	case archGetFS:
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(t.m.appFS()))
		if !t.copyOut(addr, b[:]) {
			return errno(unix.EFAULT), true
		}
		return 0, true
	}
	return 0, false
}
