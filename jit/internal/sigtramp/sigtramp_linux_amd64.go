package sigtramp

import (
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Addresses of the assembly routines (ABI0, the kernel's C convention).
var handlerABI0, restorerABI0 uintptr

// region is code whose signals belong to a context: the cache's units
// (kind 0), where a thread can be sent back to the dispatcher, the
// context's own routines (kind 1), where it cannot, and the window of its
// system-call gate (kind 2), from which it goes to the gate's EINTR
// return.
//
// The handler reads the table with no lock while other threads change it:
// an entry is in use while lo is not 0, and is filled before lo is set
// and emptied by clearing lo first (x86-64 keeps stores in order).
type region struct {
	lo, hi, ctx, kind uintptr
}

// Region kinds.
const (
	KindCode     = 0
	KindRoutines = 1
	KindGate     = 2
)

const maxRegions = 4096

var (
	// regions is read by the handler; mu serializes writers. nregions
	// is the high-water mark of entries in use, read by the handler.
	regions  [maxRegions]region
	nregions uintptr
	mu       sync.Mutex
	// previous are the actions the handlers replaced (Go's), by signal:
	// a handler's address, or SIG_DFL (0) or SIG_IGN (1). Written
	// before the handler is installed for that signal.
	previous [65]uintptr
	// prevAction are those actions whole, to put back.
	prevAction [65]sigaction
	// installed says which signals have reachvm's handler; listeners
	// counts the Listen calls of each not undone.
	installed [65]bool
	listeners [65]int
	// noChildWait adds SA_NOCLDWAIT to SIGCHLD's action while reachvm's
	// handler has it (NoChildWait).
	noChildWait bool
	// defaultAction is SIG_DFL, for the handler's default action.
	defaultAction sigaction
	// internalMsg is printed before a fault in reachvm's own routines
	// goes to Go's handler.
	internalMsg = "reachvm: internal error: a fault in reachvm's own code-cache routines (not the application's); Go's report follows\n"
)

// sigaction is the kernel's struct sigaction on x86-64.
type sigaction struct {
	handler, flags, restorer, mask uint64
}

const (
	saNoCldWait = 0x2
	saSigInfo   = 0x4
	saOnStack   = 0x08000000
	saRestart   = 0x10000000
	saRestorer  = 0x04000000
)

// Synchronous are the signals an instruction raises; reachvm takes them
// for as long as the process lives, once Install has run.
var Synchronous = []unix.Signal{unix.SIGSEGV, unix.SIGBUS, unix.SIGFPE, unix.SIGILL, unix.SIGTRAP}

// GoOnly reports whether sig is one the application never gets: the Go
// runtime's preemption (SIGURG) and profiling (SIGPROF) signals, and the
// uncatchable ones.
func GoOnly(sig unix.Signal) bool {
	switch sig {
	case unix.SIGURG, unix.SIGPROF, unix.SIGKILL, unix.SIGSTOP:
		return true
	}
	return false
}

func rtSigaction(sig unix.Signal, act, old *sigaction) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return fmt.Errorf("sigtramp: rt_sigaction(%v): %w", sig, e)
	}
	return nil
}

// installLocked puts reachvm's handler in front of sig's action, which
// it keeps to chain to. restart says whether system calls the signal
// interrupts restart (SA_RESTART, as Go installs its own).
//
// Preconditions: mu is held.
func installLocked(sig unix.Signal, restart bool) error {
	var old sigaction
	if !installed[sig] {
		if err := rtSigaction(sig, nil, &old); err != nil {
			return err
		}
		prevAction[sig] = old
		previous[sig] = uintptr(old.handler)
	}
	act := sigaction{
		handler:  uint64(handlerABI0),
		flags:    saSigInfo | saOnStack | saRestorer,
		restorer: uint64(restorerABI0),
		mask:     ^uint64(0),
	}
	if restart {
		act.flags |= saRestart
	}
	if sig == unix.SIGCHLD && noChildWait {
		act.flags |= saNoCldWait
	}
	if err := rtSigaction(sig, &act, nil); err != nil {
		return err
	}
	installed[sig] = true
	return nil
}

// Install puts reachvm's handler in front of Go's for the synchronous
// signals, once: faults in translated code are then the application's,
// and every other one still Go's. And for the Go runtime's own
// asynchronous signals, SIGURG and SIGPROF: they come to a thread in
// translated code (the runtime sent them while it still ran Go code), and
// Go's handler must not run there, where FS is the application's; the
// handler drops them there, as Go's would (the code is not Go's), and
// chains to Go's anywhere else.
func Install() error {
	mu.Lock()
	defer mu.Unlock()
	for _, sig := range append([]unix.Signal{unix.SIGURG, unix.SIGPROF}, Synchronous...) {
		if installed[sig] {
			continue
		}
		if err := installLocked(sig, true); err != nil {
			return err
		}
	}
	return nil
}

// Listen makes reachvm's handler take the asynchronous signals in mask
// (bit sig-1) for the application, installing it for those not yet
// handled, without SA_RESTART: a system call the application makes then
// returns EINTR to the dispatcher, which restarts it or not as the
// application's own action says. Undo with Unlisten.
func Listen(mask uint64) error {
	mu.Lock()
	defer mu.Unlock()
	for sig := unix.Signal(1); sig <= 64; sig++ {
		if mask&(1<<(sig-1)) == 0 || GoOnly(sig) {
			continue
		}
		listeners[sig]++
		if listeners[sig] > 1 || isSync(sig) {
			continue
		}
		if err := installLocked(sig, false); err != nil {
			listeners[sig]--
			return err
		}
	}
	return nil
}

// Unlisten undoes Listen(mask): the signals no program listens for any
// more get back the action they had.
func Unlisten(mask uint64) {
	mu.Lock()
	defer mu.Unlock()
	for sig := unix.Signal(1); sig <= 64; sig++ {
		if mask&(1<<(sig-1)) == 0 || GoOnly(sig) || listeners[sig] == 0 {
			continue
		}
		listeners[sig]--
		if listeners[sig] > 0 || isSync(sig) || !installed[sig] {
			continue
		}
		old := prevAction[sig]
		if rtSigaction(sig, &old, nil) == nil {
			installed[sig] = false
		}
	}
}

// NoChildWait says whether the kernel is to reap the process's children
// itself (SA_NOCLDWAIT on SIGCHLD's action), as it does natively for a
// program that ignores SIGCHLD or asks for SA_NOCLDWAIT, whose emulated
// disposition the real one does not otherwise follow. It applies while
// reachvm's handler takes SIGCHLD (Listen), which goes on getting it;
// Unlisten puts back the action reachvm's replaced.
func NoChildWait(on bool) error {
	mu.Lock()
	defer mu.Unlock()
	if noChildWait == on {
		return nil
	}
	noChildWait = on
	if installed[unix.SIGCHLD] {
		return installLocked(unix.SIGCHLD, false)
	}
	return nil
}

func isSync(sig unix.Signal) bool {
	for _, s := range Synchronous {
		if s == sig {
			return true
		}
	}
	return false
}

// AllCatchable is the mask of every signal an application can handle.
func AllCatchable() uint64 {
	var m uint64
	for sig := unix.Signal(1); sig <= 64; sig++ {
		if !GoOnly(sig) {
			m |= 1 << (sig - 1)
		}
	}
	return m
}

// Register attributes [lo, hi) to the context at ctx, as code of kind
// KindCode, KindRoutines or KindGate, and returns the entry's handle for
// Unregister.
func Register(lo, hi, ctx uintptr, kind uintptr) (int, error) {
	mu.Lock()
	defer mu.Unlock()
	for i := range regions {
		r := &regions[i]
		if atomic.LoadUintptr(&r.lo) != 0 {
			continue
		}
		r.hi, r.ctx, r.kind = hi, ctx, kind
		atomic.StoreUintptr(&r.lo, lo)
		if uintptr(i) >= nregions {
			atomic.StoreUintptr(&nregions, uintptr(i)+1)
		}
		return i, nil
	}
	return 0, fmt.Errorf("sigtramp: more than %d code regions", maxRegions)
}

// Unregister removes entry h.
func Unregister(h int) {
	mu.Lock()
	defer mu.Unlock()
	atomic.StoreUintptr(&regions[h].lo, 0)
}
