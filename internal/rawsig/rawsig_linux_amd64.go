package rawsig

import (
	"errors"
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// action is the kernel's struct sigaction for rt_sigaction on x86-64.
type action struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

// sigDFL is SIG_DFL.
const sigDFL = 0

// setDefault sets sig's disposition to SIG_DFL and returns the one it
// replaces.
func setDefault(sig unix.Signal) (action, error) {
	var act, old action
	act.handler = sigDFL
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(&act)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return old, fmt.Errorf("rawsig: rt_sigaction(%v, SIG_DFL): %w", unix.SignalName(sig), e)
	}
	return old, nil
}

// restore puts back a disposition setDefault replaced.
func restore(sig unix.Signal, old *action) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig), uintptr(unsafe.Pointer(old)), 0, 8, 0, 0); e != 0 {
		return fmt.Errorf("rawsig: restoring the action of %v: %w", unix.SignalName(sig), e)
	}
	return nil
}

// unblock unblocks sig on the calling thread and returns the mask it
// replaces.
func unblock(sig unix.Signal) (uint64, error) {
	set := uint64(1) << (sig - 1)
	var old uint64
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_UNBLOCK, uintptr(unsafe.Pointer(&set)), uintptr(unsafe.Pointer(&old)), 8, 0, 0); e != 0 {
		return 0, fmt.Errorf("rawsig: unblocking %v: %w", unix.SignalName(sig), e)
	}
	return old, nil
}

// setMask sets the calling thread's signal mask.
func setMask(mask uint64) error {
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&mask)), 0, 8, 0, 0); e != 0 {
		return fmt.Errorf("rawsig: restoring the signal mask: %w", e)
	}
	return nil
}

// raise sends sig to the calling thread. The kernel acts on it before
// the system call returns: a thread-directed, unblocked signal is taken
// on the way back to user mode.
func raise(sig unix.Signal) error {
	if _, _, e := unix.RawSyscall(unix.SYS_TGKILL, uintptr(unix.Getpid()), uintptr(unix.Gettid()), uintptr(sig)); e != 0 {
		return fmt.Errorf("rawsig: tgkill(%v): %w", unix.SignalName(sig), e)
	}
	return nil
}

// check reports a signal number rawsig cannot take.
func check(sig unix.Signal) error {
	if sig < 1 || sig > 64 {
		return fmt.Errorf("rawsig: signal %d out of range", int(sig))
	}
	return nil
}

// Die ends the process with sig's default action, as if the kernel
// had delivered sig to a process with no handler for it. It returns only
// if that action does not end the process (sig is ignored or stops it
// by default: the caller then ends it another way) or a step failed.
func Die(sig unix.Signal) error {
	if err := check(sig); err != nil {
		return err
	}
	// The mask and the tgkill must concern the same thread.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, err := setDefault(sig); err != nil {
		return err
	}
	if _, err := unblock(sig); err != nil {
		return err
	}
	if err := raise(sig); err != nil {
		return err
	}
	return fmt.Errorf("rawsig: %v did not end the process", unix.SignalName(sig))
}

// Stop stops the process with sig's default action (SIGTSTP, SIGTTIN or
// SIGTTOU; SIGSTOP itself needs none of this) and returns once it is
// continued, with sig's disposition and the thread's mask as they were.
// The kernel decides as for the native process: a stop signal sent to an
// orphaned process group is discarded, and Stop returns at once.
func Stop(sig unix.Signal) error {
	if err := check(sig); err != nil {
		return err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	old, err := setDefault(sig)
	if err != nil {
		return err
	}
	mask, err := unblock(sig)
	if err != nil {
		return errors.Join(err, restore(sig, &old))
	}
	err = raise(sig)
	if e := setMask(mask); err == nil {
		err = e
	}
	if e := restore(sig, &old); err == nil {
		err = e
	}
	return err
}
