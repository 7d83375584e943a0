package jit

import (
	"encoding/binary"
	"os"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/mem"
)

// System calls and code that changes (see smc_linux_amd64.go).
//
// A system call the kernel performs for the application can change
// translated code in two ways: a memory call (munmap, mprotect, mremap,
// mmap MAP_FIXED, madvise, brk) changes the pages code was read from, and
// a call that writes memory (read, recvfrom, ...) writes into a page
// reachvm write-protected, where the kernel returns EFAULT, or stops
// short, instead of faulting. The program's own brk, mmap, munmap and
// mprotect are emulated (progmem_linux_amd64.go) and do the former
// themselves; everything else that goes to the kernel passes here.

// maxIOV bounds the iovecs read from the application (the kernel's
// UIO_MAXIOV).
const maxIOV = 1024

// MADV_DONTNEED_LOCKED, which x/sys/unix does not name.
const madvDontneedLocked = 24

// sizeofRusage is struct rusage on x86-64.
const sizeofRusage = 144

// callRange returns [addr, addr+length rounded up to the page), or false
// if it wraps.
func callRange(addr, length uintptr) (mem.Range, bool) {
	size, ok := mem.AlignUp(length, mem.PageSize)
	if !ok || addr+size < addr {
		return mem.Range{}, false
	}
	return mem.Range{Start: pageOf(addr), End: addr + size}, true
}

// beforeKernel makes the write-protected code pages that system call nr
// is known to write into writable again (deleting their translations):
// the calls that consume their input before copying it out, so that an
// EFAULT would lose it (a datagram, a child's status, a timer's count),
// or that copy part and return a short count.
//
// Preconditions: m.mu is held.
func (m *Machine) beforeKernel(nr uint64, a [6]uintptr) {
	if m.cs.nwp.Load() == 0 {
		return
	}
	span := func(addr, n uintptr) {
		if addr != 0 && n != 0 && addr+n > addr {
			m.willWrite(mem.Range{Start: pageOf(addr), End: addr + n})
		}
	}
	iovecs := func(iov, n uintptr) {
		if n > maxIOV {
			return
		}
		b, ok := readAppMem(iov, 16*n)
		for i := uintptr(0); ok && i < n; i++ {
			span(uintptr(binary.LittleEndian.Uint64(b[16*i:])), uintptr(binary.LittleEndian.Uint64(b[16*i+8:])))
		}
	}
	switch nr {
	case unix.SYS_READ, unix.SYS_PREAD64:
		span(a[1], a[2])
	case unix.SYS_READV, unix.SYS_PREADV, unix.SYS_PREADV2:
		iovecs(a[1], a[2])
	case unix.SYS_GETRANDOM:
		span(a[0], a[1])
	case unix.SYS_RECVFROM:
		span(a[1], a[2])
		span(a[4], unix.SizeofSockaddrAny)
		span(a[5], 4)
	case unix.SYS_ACCEPT, unix.SYS_ACCEPT4:
		span(a[1], unix.SizeofSockaddrAny)
		span(a[2], 4)
	case unix.SYS_RECVMSG:
		// struct msghdr: name, namelen, iov, iovlen, control,
		// controllen, flags; the kernel writes namelen, controllen and
		// flags back.
		span(a[1], unix.SizeofMsghdr)
		if b, ok := readAppMem(a[1], unix.SizeofMsghdr); ok {
			le := binary.LittleEndian
			span(uintptr(le.Uint64(b[0:])), uintptr(le.Uint32(b[8:])))
			iovecs(uintptr(le.Uint64(b[16:])), uintptr(le.Uint64(b[24:])))
			span(uintptr(le.Uint64(b[32:])), uintptr(le.Uint64(b[40:])))
		}
	case unix.SYS_WAIT4:
		span(a[1], 4)
		span(a[3], sizeofRusage)
	case unix.SYS_WAITID:
		span(a[2], 128) // siginfo_t
		span(a[4], sizeofRusage)
	}
}

// retryEFAULT reports whether a system call that failed with EFAULT
// should be made again: some pointer argument pointed into, or up to a
// page before, a page reachvm write-protected, which is now writable
// again (its translations deleted).
//
// Preconditions: m.mu is held.
func (m *Machine) retryEFAULT(a [6]uintptr) bool {
	if m.cs.nwp.Load() == 0 {
		return false
	}
	again := false
	for _, x := range a {
		if x != 0 && m.willWrite(mem.Range{Start: pageOf(x), End: pageOf(x) + 2*mem.PageSize}) {
			again = true
		}
	}
	return again
}

// afterKernel deletes the translations a memory call the kernel made for
// the application invalidated (ret is its result): what munmap, mremap
// or mmap MAP_FIXED replaced, what mprotect made writable or not
// executable, what madvise dropped (MADV_DONTNEED, MADV_FREE,
// MADV_REMOVE: the pages read back as zeros or the file's), what brk
// gave back. brk0 is the break before a brk.
//
// Preconditions: m.mu is held.
func (m *Machine) afterKernel(nr uint64, a [6]uintptr, ret uint64, brk0 uintptr) {
	if int64(ret) < 0 && int64(ret) > -4096 {
		return
	}
	switch nr {
	case unix.SYS_MUNMAP:
		if r, ok := callRange(a[0], a[1]); ok {
			m.dropRange(r, true)
		}
	case unix.SYS_MMAP:
		if a[3]&unix.MAP_FIXED != 0 {
			if r, ok := callRange(uintptr(ret), a[1]); ok {
				m.dropRange(r, true)
			}
		}
	case unix.SYS_MPROTECT, unix.SYS_PKEY_MPROTECT:
		r, ok := callRange(a[0], a[1])
		if !ok {
			return
		}
		if prot, ok := mem.ProtFromLinux(uint64(a[2])); ok {
			m.protChanged(r, prot)
		} else {
			m.dropRange(r, true)
		}
	case unix.SYS_MREMAP:
		if r, ok := callRange(a[0], a[1]); ok {
			m.dropRange(r, true)
		}
		if r, ok := callRange(uintptr(ret), a[2]); ok {
			m.dropRange(r, true)
		}
	case unix.SYS_MADVISE:
		switch a[2] {
		case unix.MADV_DONTNEED, unix.MADV_FREE, unix.MADV_REMOVE, madvDontneedLocked:
			if r, ok := callRange(a[0], a[1]); ok {
				m.dropRange(r, false)
			}
		}
	case unix.SYS_BRK:
		if brk := uintptr(ret); brk < brk0 {
			lo, _ := mem.AlignUp(brk, mem.PageSize)
			hi, _ := mem.AlignUp(brk0, mem.PageSize)
			m.dropRange(mem.Range{Start: lo, End: hi}, true)
		}
	}
}

// readAppMem copies n bytes of the application's memory at addr, or fails
// if any of them is not readable (process_vm_readv on the process
// itself: a bad pointer of the application's is an error, not a fault
// inside Go).
func readAppMem(addr, n uintptr) ([]byte, bool) {
	if n == 0 || addr+n < addr {
		return nil, false
	}
	b := make([]byte, n)
	local := []unix.Iovec{{Base: &b[0], Len: uint64(n)}}
	remote := []unix.RemoteIovec{{Base: addr, Len: int(n)}}
	got, err := unix.ProcessVMReadv(os.Getpid(), local, remote, 0)
	return b, err == nil && uintptr(got) == n
}
