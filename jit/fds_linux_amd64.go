package jit

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The host's descriptors. A translated program shares the process's
// descriptor table with reachvm and the Go runtime: the runtime's epoll
// and eventfd, the vmcode memfd, reachvm's copy of standard error, and in
// an embedding process whatever the host has open. A program that closes
// every descriptor it did not open (closefrom, close_range(3, ~0), a loop
// over /proc/self/fd, as daemons and shells do before exec) would take
// them from under Go, which then fails in ways the program never sees.
// So, as DynamoRIO protects its own, the program may not close or
// replace them: close of one fails with EBADF, as if it were not open;
// close_range closes the program's descriptors in the range and leaves
// the host's; dup2 and dup3 onto one fail with EBADF.
//
// The host's descriptors are those open and close-on-exec when the
// program starts: nothing the program inherited through execve can be
// close-on-exec (execve closed those), and everything Go and reachvm open
// is. Descriptors reachvm opens later for as long as the run (the perf
// map, the jitdump) are added as they are opened (ownFD).

// hostFDs lists the descriptors open and close-on-exec in the process
// now, in increasing order.
func hostFDs() ([]int, error) {
	dir, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("jit: listing the process's descriptors: %w", err)
	}
	defer unix.Close(dir)
	var fds []int
	var buf [4096]byte
	for {
		n, err := unix.Getdents(dir, buf[:])
		if err != nil {
			return nil, fmt.Errorf("jit: listing the process's descriptors: %w", err)
		}
		if n <= 0 {
			break
		}
		for off := 0; off < n; {
			// struct linux_dirent64: ino 8, off 8, reclen 2, type 1, name.
			reclen := int(*(*uint16)(unsafe.Pointer(&buf[off+16])))
			if reclen == 0 || off+reclen > n {
				break
			}
			name := buf[off+19 : off+reclen]
			if i := slices.Index(name, 0); i >= 0 {
				name = name[:i]
			}
			off += reclen
			fd, err := strconv.Atoi(string(name))
			if err != nil || fd == dir {
				continue
			}
			if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err == nil && flags&unix.FD_CLOEXEC != 0 {
				fds = append(fds, fd)
			}
		}
	}
	slices.Sort(fds)
	return fds, nil
}

// openedFDs are the descriptors reachvm opened for itself since some
// program started and keeps open (the perf map, the jitdump): host
// descriptors of every program in the process.
var openedFDs struct {
	mu  sync.Mutex
	fds []int
}

// ownFD adds fd, which reachvm just opened for itself and keeps, to the
// host's descriptors programs may not close.
func ownFD(fd int) {
	openedFDs.mu.Lock()
	defer openedFDs.mu.Unlock()
	if i, found := slices.BinarySearch(openedFDs.fds, fd); !found {
		openedFDs.fds = slices.Insert(openedFDs.fds, i, fd)
	}
}

// disownFD takes fd out of openedFDs, before reachvm closes it.
func disownFD(fd int) {
	openedFDs.mu.Lock()
	defer openedFDs.mu.Unlock()
	if i, found := slices.BinarySearch(openedFDs.fds, fd); found {
		openedFDs.fds = slices.Delete(openedFDs.fds, i, i+1)
	}
}

// isHostFD reports whether fd is one of the host's descriptors.
func (p *Program) isHostFD(fd int) bool {
	p.mu.Lock()
	_, found := slices.BinarySearch(p.hostFDs, fd)
	p.mu.Unlock()
	if found {
		return true
	}
	openedFDs.mu.Lock()
	defer openedFDs.mu.Unlock()
	_, found = slices.BinarySearch(openedFDs.fds, fd)
	return found
}

// hostFDsIn returns the host's descriptors in [first, last], in order.
func (p *Program) hostFDsIn(first, last uint32) []int {
	var in []int
	add := func(fds []int) {
		for _, fd := range fds {
			if fd >= int(first) && uint64(fd) <= uint64(last) {
				in = append(in, fd)
			}
		}
	}
	p.mu.Lock()
	add(p.hostFDs)
	p.mu.Unlock()
	openedFDs.mu.Lock()
	add(openedFDs.fds)
	openedFDs.mu.Unlock()
	slices.Sort(in)
	return slices.Compact(in)
}

// fdCall handles the calls above for the program's thread t; handled
// false leaves the call to the rest of Machine.syscall.
//
// Preconditions: t.m.mu is held (the machine is running the thread).
func (t *thread) fdCall(nr uint64, a [6]uintptr) (ret uint64, handled bool) {
	p := t.p
	switch nr {
	case unix.SYS_CLOSE:
		if fd := int(int32(a[0])); p.isHostFD(fd) {
			return p.refuseFD("close", fd), true
		}
	case unix.SYS_DUP2, unix.SYS_DUP3:
		if fd := int(int32(a[1])); int32(a[0]) != int32(a[1]) && p.isHostFD(fd) {
			name := "dup2"
			if nr == unix.SYS_DUP3 {
				name = "dup3"
			}
			return p.refuseFD(name, fd), true
		}
	case unix.SYS_CLOSE_RANGE:
		return t.closeRange(uint32(a[0]), uint32(a[1]), uint32(a[2]))
	}
	return 0, false
}

// closeRange is close_range(first, last, flags) that leaves the host's
// descriptors open: the kernel closes each run of the program's between
// them. CLOSE_RANGE_CLOEXEC, which closes nothing (and the host's are
// close-on-exec already), goes to the kernel as it is.
func (t *thread) closeRange(first, last, flags uint32) (uint64, bool) {
	if flags&unix.CLOSE_RANGE_CLOEXEC != 0 || first > last {
		return 0, false
	}
	inside := t.p.hostFDsIn(first, last)
	if len(inside) == 0 {
		return 0, false
	}
	lo := uint64(first)
	for _, fd := range inside {
		if uint64(fd) > lo {
			if ret := t.closeRun(lo, uint64(fd)-1, &flags); ret != 0 {
				return ret, true
			}
		}
		lo = uint64(fd) + 1
	}
	if lo <= uint64(last) {
		if ret := t.closeRun(lo, uint64(last), &flags); ret != 0 {
			return ret, true
		}
	}
	return 0, true
}

// closeRun has the kernel close [lo, hi] with *flags. Only the first run
// unshares the table (CLOSE_RANGE_UNSHARE); the later ones close in the
// new one.
func (t *thread) closeRun(lo, hi uint64, flags *uint32) uint64 {
	ret := t.m.kernel(unix.SYS_CLOSE_RANGE, [6]uintptr{uintptr(lo), uintptr(hi), uintptr(*flags)})
	*flags &^= unix.CLOSE_RANGE_UNSHARE
	return ret
}

// refuseFD records the refusal of call on the host's descriptor fd and
// returns EBADF, what the program sees.
func (p *Program) refuseFD(call string, fd int) uint64 {
	return p.refuse(call, uintptr(fd), 0, unix.EBADF, "descriptor %d is reachvm's (the Go runtime's or the host's), not the program's", fd)
}
