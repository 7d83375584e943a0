package jit

import (
	"encoding/binary"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The system calls about the process whose answer would otherwise be
// reachvm's rather than the program's (threadid_linux_amd64.go has those
// that register a thread's addresses with the kernel).
//
//   - getrlimit, setrlimit and prlimit64 go to the kernel, but the
//     program sees the stack limit of the stack reachvm gave it, and a
//     stack limit it sets is remembered for it rather than changing
//     reachvm's.
//   - readlink and readlinkat of /proc/self/exe (and /proc/PID/exe,
//     /proc/thread-self/exe, /proc/PID/task/TID/exe of its own process)
//     answer the program's path, not reachvm's, and open and openat of
//     it open the program's file. (stat of it still describes reachvm's,
//     and /proc/self/maps, /proc/self/auxv and the like are reachvm's
//     process's.)

// rlimitStack is RLIMIT_STACK.
const rlimitStack = unix.RLIMIT_STACK

// procState is what the process calls emulate for a program.
type procState struct {
	// stackCur is the soft stack limit the program sees: the size of
	// its stack until it sets another one. Guarded by Program.mu.
	stackCur uint64
}

// resetProc sets up a run's process state.
func (p *Program) resetProc() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.proc = procState{stackCur: uint64(p.stackSize)}
}

// selfCall handles the calls above for the program's thread t; handled
// false leaves the call to the rest of Machine.syscall.
//
// Preconditions: t.m.mu is held (the machine is running the thread).
func (t *thread) selfCall(nr uint64, a [6]uintptr) (ret uint64, handled bool) {
	p := t.p
	switch nr {
	case unix.SYS_GETRLIMIT:
		return t.rlimit(int(a[0]), 0, a[1]), true
	case unix.SYS_SETRLIMIT:
		return t.rlimit(int(a[0]), a[1], 0), true
	case unix.SYS_PRLIMIT64:
		if pid := int(int32(a[0])); pid != 0 && pid != unix.Getpid() {
			return 0, false
		}
		return t.rlimit(int(a[1]), a[2], a[3]), true
	case unix.SYS_OPEN:
		return p.openExe(unix.AT_FDCWD, a[0], int(a[1]), uint32(a[2]))
	case unix.SYS_OPENAT:
		return p.openExe(int(int32(a[0])), a[1], int(a[2]), uint32(a[3]))
	case unix.SYS_READLINK:
		return t.readlink(unix.AT_FDCWD, a[0], a[1], a[2])
	case unix.SYS_READLINKAT:
		return t.readlink(int(int32(a[0])), a[1], a[2], a[3])
	}
	return 0, false
}

// rlimit is prlimit64 on the program's own process for resource res,
// with newp and oldp its struct rlimit64 pointers (either may be 0): the
// kernel's limits, but for the stack's soft limit, which is the
// program's (see above).
func (t *thread) rlimit(res int, newp, oldp uintptr) uint64 {
	p := t.p
	if res != rlimitStack {
		return t.m.kernel(unix.SYS_PRLIMIT64, [6]uintptr{0, uintptr(res), newp, oldp})
	}
	// The program's one limit, whichever thread sets it: the threads'
	// calls are serialised, as the kernel serialises them on the task
	// lock (p.mu is taken around the program's state only; copyOut may
	// take the address space's locks).
	var b [16]byte
	if newp != 0 && !copyIn(newp, b[:]) {
		return errno(unix.EFAULT)
	}
	p.mu.Lock()
	var real unix.Rlimit
	if err := unix.Prlimit(0, res, nil, &real); err != nil {
		p.mu.Unlock()
		return errnoOfErr(err)
	}
	old := unix.Rlimit{Cur: min(p.proc.stackCur, real.Max), Max: real.Max}
	if newp != 0 {
		set := unix.Rlimit{Cur: binary.LittleEndian.Uint64(b[:]), Max: binary.LittleEndian.Uint64(b[8:])}
		if set.Cur > set.Max {
			p.mu.Unlock()
			return errno(unix.EINVAL)
		}
		if set.Max != real.Max {
			// Raising the hard limit needs the privilege the kernel
			// checks, and lowering it binds reachvm as it would the
			// program: the kernel decides, with the real soft limit
			// kept under the new hard one.
			lim := unix.Rlimit{Cur: min(real.Cur, set.Max), Max: set.Max}
			if err := unix.Prlimit(0, res, &lim, nil); err != nil {
				p.mu.Unlock()
				return errnoOfErr(err)
			}
		}
		p.proc.stackCur = set.Cur
	}
	p.mu.Unlock()
	if oldp != 0 {
		var o [16]byte
		binary.LittleEndian.PutUint64(o[:], old.Cur)
		binary.LittleEndian.PutUint64(o[8:], old.Max)
		if !t.copyOut(oldp, o[:]) {
			return errno(unix.EFAULT)
		}
	}
	return 0
}

// readlink answers readlinkat(dirfd, path, buf, size) when path names
// the process's executable in /proc, with the program's path; handled
// false sends any other call to the kernel.
func (t *thread) readlink(dirfd int, path, buf, size uintptr) (uint64, bool) {
	p := t.p
	name, e := readCString(path, unix.PathMax, unix.ENAMETOOLONG)
	if e != 0 || !p.isSelfExe(dirfd, name) {
		return 0, false
	}
	if int(size) <= 0 {
		return errno(unix.EINVAL), true
	}
	b := []byte(p.exe)
	if uintptr(len(b)) > size {
		b = b[:size]
	}
	if !t.copyOut(buf, b) {
		return errno(unix.EFAULT), true
	}
	return uint64(len(b)), true
}

// openExe answers openat(dirfd, path, flags, mode) when path names the
// process's executable in /proc, by opening the program's file with the
// same flags; handled false sends any other call to the kernel (and one
// with O_NOFOLLOW, which natively opens or refuses the link itself).
func (p *Program) openExe(dirfd int, path uintptr, flags int, mode uint32) (uint64, bool) {
	if flags&unix.O_NOFOLLOW != 0 {
		return 0, false
	}
	name, e := readCString(path, unix.PathMax, unix.ENAMETOOLONG)
	if e != 0 || !p.isSelfExe(dirfd, name) {
		return 0, false
	}
	fd, err := unix.Open(p.exe, flags, mode)
	if err != nil {
		return errnoOfErr(err), true
	}
	return uint64(fd), true
}

// isSelfExe reports whether name, relative to dirfd, is the link in
// /proc to the process's own executable.
func (p *Program) isSelfExe(dirfd int, name string) bool {
	if !strings.HasPrefix(name, "/") {
		if dirfd != unix.AT_FDCWD {
			return false
		}
		wd, err := unix.Getwd()
		if err != nil || !strings.HasPrefix(wd, "/proc") {
			return false
		}
		name = wd + "/" + name
	}
	parts := strings.Split(strings.TrimPrefix(filepath.Clean(name), "/"), "/")
	if len(parts) < 3 || parts[0] != "proc" || parts[len(parts)-1] != "exe" {
		return false
	}
	pid := strconv.Itoa(unix.Getpid())
	tid := strconv.Itoa(unix.Gettid())
	switch len(parts) {
	case 3:
		return parts[1] == "self" || parts[1] == "thread-self" || parts[1] == pid
	case 5:
		return (parts[1] == "self" || parts[1] == pid) && parts[2] == "task" && parts[3] == tid
	}
	return false
}

// errnoOfErr returns -errno for err, an error of a system call.
func errnoOfErr(err error) uint64 {
	if e, ok := err.(unix.Errno); ok {
		return errno(e)
	}
	return errno(unix.EINVAL)
}
