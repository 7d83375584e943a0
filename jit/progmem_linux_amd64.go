package jit

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// A program's memory system calls.
//
// brk, mmap, munmap, mprotect and pkey_mprotect (with no key) are
// emulated on the VMM's application memory, so that reachvm makes every
// change to the address space and aspacem records each one: the
// program's mappings are vmm.VMM.MapAppAnon, MapAppFile and (MAP_SHARED)
// MapAppSharedFile, its munmaps
// ReleaseApp, its mprotects ProtectApp, its break CommitApp and
// DecommitApp on a reservation after the image. The VMM refuses anything
// outside application memory (vmcode, vmheap, the cache, the Go runtime's
// memory), and Program refuses unmapping or replacing its own image, brk
// area and stack. What the emulation does not cover is refused with the
// errno the kernel gives for an unsupported request, and recorded
// (Program.Refusals): shared anonymous mappings, huge pages, MAP_32BIT, mremap's MREMAP_DONTUNMAP, shmat, mseal.
// mremap is vmm.VMM.RemapApp. madvise, mlock, mlock2, munlock and msync go
// to the kernel, on the program's memory only.

// Refusal is a memory system call of a program that reachvm refused or
// that failed: which call, on what, the errno the program got, and why.
type Refusal struct {
	// Call names the system call ("mmap", "munmap", ...).
	Call string
	// Addr and Size are its range as the program gave it; for a
	// descriptor call (close, dup2, dup3), Addr is the descriptor.
	Addr, Size uintptr
	// Errno is what the program got.
	Errno unix.Errno
	// Reason says why.
	Reason string
}

func (r Refusal) String() string {
	switch r.Call {
	case "close", "dup2", "dup3":
		return fmt.Sprintf("%s(%d) -> %v: %s", r.Call, r.Addr, r.Errno, r.Reason)
	}
	return fmt.Sprintf("%s [%#x, +%#x) -> %v: %s", r.Call, r.Addr, r.Size, r.Errno, r.Reason)
}

// maxRefusals bounds the refusals a Program keeps.
const maxRefusals = 64

// Refusals returns the first memory and descriptor system calls of the
// program that were refused or failed (up to 64), and how many there were
// in all.
func (p *Program) Refusals() ([]Refusal, int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Refusal(nil), p.refusals...), p.nrefused
}

// refuse records a refused call and returns -e as its result.
func (p *Program) refuse(call string, addr, size uintptr, e unix.Errno, format string, args ...any) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nrefused++
	if len(p.refusals) < maxRefusals {
		p.refusals = append(p.refusals, Refusal{Call: call, Addr: addr, Size: size, Errno: e, Reason: fmt.Sprintf(format, args...)})
	}
	return errno(e)
}

// fail records a VMM error as a refusal and returns the errno the kernel
// would give for it.
func (p *Program) fail(call string, addr, size uintptr, err error) uint64 {
	e := unix.ENOMEM
	switch {
	case errors.Is(err, vmm.ErrNotApp):
		e = unix.ENOMEM
	case errors.Is(err, mem.ErrExists):
		e = unix.EEXIST
	case errors.Is(err, mem.ErrInvalid):
		e = unix.EINVAL
	case errors.Is(err, mem.ErrNotSupported):
		e = unix.EACCES
	default:
		if c := mem.Code(err); c != 0 {
			e = unix.Errno(c)
		}
	}
	return p.refuse(call, addr, size, e, "%v", err)
}

// Linux mmap flags: mapType selects private or shared; the emulation
// refuses huge pages, the low 2 GiB, synchronous faults.
const (
	mapType       = 0x0f
	mapUnemulated = unix.MAP_HUGETLB | unix.MAP_32BIT | unix.MAP_SYNC
)

// syscall handles the program's memory system calls (see above), made
// by the thread m runs. handled false sends the call on to the kernel as
// it is.
//
// Preconditions: m.mu is held (m is running the program's thread), and
// m.cs.mm for writing.
func (p *Program) syscall(m *Machine, nr uint64, a [6]uintptr) (ret uint64, handled bool) {
	const page = mem.PageSize
	v := m.v
	switch nr {
	case unix.SYS_BRK:
		return p.brk(m, a[0]), true

	case unix.SYS_MMAP:
		addr, length, flags, off := a[0], a[1], a[3], a[5]
		prot, ok := mem.ProtFromLinux(uint64(a[2]))
		if !ok {
			return p.refuse("mmap", addr, length, unix.EINVAL, "protection %#x has bits other than PROT_READ|PROT_WRITE|PROT_EXEC", a[2]), true
		}
		size, ok := mem.AlignUp(length, page)
		if length == 0 || !ok || off%page != 0 {
			return p.refuse("mmap", addr, length, unix.EINVAL, "zero or overflowing length, or an unaligned offset %#x", off), true
		}
		shared := false
		switch flags & mapType {
		case unix.MAP_PRIVATE:
		case unix.MAP_SHARED, unix.MAP_SHARED_VALIDATE:
			if flags&unix.MAP_ANONYMOUS != 0 {
				return p.refuse("mmap", addr, length, unix.ENODEV, "flags %#x: shared anonymous memory is not emulated", flags), true
			}
			shared = true
		default:
			return p.refuse("mmap", addr, length, unix.EINVAL, "flags %#x: neither private nor shared", flags), true
		}
		switch {
		case flags&mapUnemulated != 0:
			return p.refuse("mmap", addr, length, unix.EINVAL, "flags %#x: huge pages, MAP_32BIT and MAP_SYNC are not emulated", flags), true
		}
		mode := mem.Hint
		switch {
		case flags&unix.MAP_FIXED_NOREPLACE != 0:
			mode = mem.Exact
		case flags&unix.MAP_FIXED != 0:
			mode = mem.Fixed
		}
		if mode != mem.Hint {
			if addr%page != 0 {
				return p.refuse("mmap", addr, length, unix.EINVAL, "a fixed address %#x not page aligned", addr), true
			}
			if p.clientOwned(addr, size) {
				return p.refuse("mmap", addr, length, unix.EINVAL, "a fixed mapping over the program's own image, brk area or stack"), true
			}
		}
		// near is where a mapping that will hold code goes: within
		// reach of vmcode, taken exactly (a hint the kernel may move:
		// it pads a file mapping of 2 MiB or more to align it), and
		// anywhere if that fails.
		var near uintptr
		var mapAt func(addr uintptr, mode mem.Mode) (mem.Range, error)
		if flags&unix.MAP_ANONYMOUS != 0 {
			if mode == mem.Hint && addr == 0 && (prot&mem.ProtExec != 0 || libraryReservation(prot, flags, size)) {
				near = p.nearVMCode(size)
			}
			mapAt = func(addr uintptr, mode mem.Mode) (mem.Range, error) {
				return v.MapAppAnon(addr, size, prot, mode, p.mmapOwner)
			}
		} else {
			path, e := p.fdPath(int(int32(a[4])))
			if e != 0 {
				return p.refuse("mmap", addr, length, e, "file descriptor %d cannot be mapped", int32(a[4])), true
			}
			if mode == mem.Hint && addr == 0 && (prot&mem.ProtExec != 0 || off == 0 && isELFObject(int(int32(a[4])))) {
				near = p.nearVMCode(size)
			}
			if shared {
				// Mapped through the program's own descriptor (its
				// access mode decides whether the view may be
				// written), recorded by the name the kernel shows.
				fd := int(int32(a[4]))
				name, lerr := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
				if lerr != nil {
					return p.refuse("mmap", addr, length, unix.EBADF, "file descriptor %d: %v", fd, lerr), true
				}
				mapAt = func(addr uintptr, mode mem.Mode) (mem.Range, error) {
					return v.MapAppSharedFile(fd, name, uint64(off), addr, size, prot, mode, p.mmapOwner)
				}
			} else {
				mapAt = func(addr uintptr, mode mem.Mode) (mem.Range, error) {
					return v.MapAppFile(path, uint64(off), addr, size, prot, mode, p.mmapOwner)
				}
			}
		}
		var r mem.Range
		var err error
		if near != 0 {
			r, err = mapAt(near, mem.Exact)
		}
		if near == 0 || err != nil {
			r, err = mapAt(addr, mode)
		}
		if err != nil {
			return p.fail("mmap", addr, length, err), true
		}
		if mode == mem.Fixed {
			// Code replaced: its translations go.
			m.dropRange(r, true)
		}
		return uint64(r.Start), true

	case unix.SYS_MUNMAP:
		addr, length := a[0], a[1]
		size, ok := mem.AlignUp(length, page)
		if length == 0 || !ok || addr%page != 0 || addr+size < addr {
			return p.refuse("munmap", addr, length, unix.EINVAL, "an unaligned address, a zero length or an overflowing range"), true
		}
		if p.clientOwned(addr, size) {
			return p.refuse("munmap", addr, length, unix.EINVAL, "unmapping the program's own image, brk area or stack"), true
		}
		r := mem.Range{Start: addr, End: addr + size}
		if err := v.ReleaseApp(r); err != nil {
			// Part of r may be gone: its translations go, and pages
			// still there get their protection back.
			m.dropRange(r, false)
			return p.fail("munmap", addr, length, err), true
		}
		m.dropRange(r, true)
		return 0, true

	case unix.SYS_MPROTECT, unix.SYS_PKEY_MPROTECT:
		call := "mprotect"
		if nr == unix.SYS_PKEY_MPROTECT {
			call = "pkey_mprotect"
			if int32(a[3]) != -1 {
				return p.refuse(call, a[0], a[1], unix.EINVAL, "protection keys are not emulated"), true
			}
		}
		addr, length := a[0], a[1]
		prot, ok := mem.ProtFromLinux(uint64(a[2]))
		if !ok {
			return p.refuse(call, addr, length, unix.EINVAL, "protection %#x has bits other than PROT_READ|PROT_WRITE|PROT_EXEC", a[2]), true
		}
		size, ok := mem.AlignUp(length, page)
		if !ok || addr%page != 0 || addr+size < addr {
			return p.refuse(call, addr, length, unix.EINVAL, "an unaligned address or an overflowing range"), true
		}
		if size == 0 {
			return 0, true
		}
		r := mem.Range{Start: addr, End: addr + size}
		// The application's protection, not the one reachvm keeps on
		// write-protected code pages: those in r lose their
		// translations (the application makes them writable or not
		// executable) or stop being write-protected (protChanged).
		if err := v.ProtectApp(r, prot); err != nil {
			// The VMM refuses a range that is not all mapped before
			// calling the kernel; a kernel failure part-way (for want
			// of memory) is not followed: the translations stay.
			return p.fail(call, addr, length, err), true
		}
		m.protChanged(r, prot)
		return 0, true

	case unix.SYS_MREMAP:
		return p.mremap(m, a), true

	case unix.SYS_MADVISE, unix.SYS_MLOCK, unix.SYS_MLOCK2, unix.SYS_MUNLOCK, unix.SYS_MSYNC:
		// The kernel's, on the program's memory only: the rest of the
		// address space (the Go runtime's heap, which aspacem knows as
		// foreign) is not there for the program, and madvise could
		// zero it. Natively such a range holds unmapped pages: ENOMEM.
		r, ok := callRange(a[0], a[1])
		if ok && a[0]%page == 0 && !r.Empty() && !v.IsApp(r.Start, r.Size()) {
			return p.refuse(memCallName(nr), a[0], a[1], unix.ENOMEM, "not the program's memory"), true
		}
	case unix.SYS_MSEAL:
		return p.refuse("mseal", a[0], a[1], unix.ENOSYS, "sealed memory could not be write-protected while translations of its code live"), true
	case unix.SYS_SHMAT:
		return p.refuse("shmat", a[1], 0, unix.EINVAL, "System V shared memory is not emulated"), true
	}
	return 0, false
}

// mremap is mremap(old, oldSize, newSize, flags, newAddr) on the
// program's memory, through vmm.VMM.RemapApp: the translations of code
// it moves or replaces go. Memory that is not the program's (natively
// nothing is there) fails with EFAULT; MREMAP_DONTUNMAP and a size of 0
// (a second mapping of shared memory) are not emulated.
func (p *Program) mremap(m *Machine, a [6]uintptr) uint64 {
	const page = mem.PageSize
	addr, oldLen, newLen, flags, newAddr := a[0], a[1], a[2], a[3], a[4]
	refuse := func(e unix.Errno, format string, args ...any) uint64 {
		return p.refuse("mremap", addr, oldLen, e, format, args...)
	}
	switch {
	case flags&^(unix.MREMAP_MAYMOVE|unix.MREMAP_FIXED|unix.MREMAP_DONTUNMAP) != 0,
		flags&unix.MREMAP_FIXED != 0 && flags&unix.MREMAP_MAYMOVE == 0:
		return refuse(unix.EINVAL, "flags %#x", flags)
	case flags&unix.MREMAP_DONTUNMAP != 0:
		return refuse(unix.EINVAL, "MREMAP_DONTUNMAP is not emulated")
	case oldLen == 0:
		return refuse(unix.EINVAL, "a size of 0 (a second mapping of shared memory) is not emulated")
	}
	oldSize, ok1 := mem.AlignUp(oldLen, page)
	newSize, ok2 := mem.AlignUp(newLen, page)
	if !ok1 || !ok2 || newLen == 0 || addr%page != 0 || addr+oldSize < addr {
		return refuse(unix.EINVAL, "an unaligned address, a zero new size or an overflowing range")
	}
	old := mem.Range{Start: addr, End: addr + oldSize}
	mode := mem.Exact
	switch {
	case flags&unix.MREMAP_FIXED != 0:
		mode = mem.Fixed
		if newAddr%page != 0 || newAddr+newSize < newAddr {
			return refuse(unix.EINVAL, "an unaligned or overflowing new address %#x", newAddr)
		}
		if p.clientOwned(newAddr, newSize) {
			return refuse(unix.EINVAL, "a fixed destination over the program's own image, brk area or stack")
		}
	case flags&unix.MREMAP_MAYMOVE != 0:
		mode = mem.Hint
	}
	if p.clientOwned(addr, oldSize) {
		return refuse(unix.EINVAL, "remapping the program's own image, brk area or stack")
	}
	if !m.v.IsApp(addr, page) {
		return refuse(unix.EFAULT, "nothing of the program's is mapped there")
	}
	// Pages reachvm write-protected (for any thread's machine) get
	// their protection back first: the kernel moves one mapping of one
	// protection.
	m.unprotectRange(old)
	r, err := m.v.RemapApp(old, newSize, mode, newAddr)
	if err != nil {
		return p.fail("mremap", addr, oldLen, err)
	}
	m.dropRange(old, true)
	m.dropRange(r, true)
	return uint64(r.Start)
}

// brk moves the break to want inside the brk area, committing or
// decommitting whole pages, and returns the break: the old one if want
// is outside the area or the VMM fails, as the kernel's brk does.
func (p *Program) brk(m *Machine, want uintptr) uint64 {
	if want < p.brkBase || want > p.brkMax {
		return uint64(p.brkCur)
	}
	top, _ := mem.AlignUp(want, mem.PageSize) // want <= brkMax: no overflow
	var err error
	switch {
	case top > p.brkTop:
		err = m.v.CommitApp(mem.Range{Start: p.brkTop, End: top}, mem.ProtRW)
	case top < p.brkTop:
		r := mem.Range{Start: top, End: p.brkTop}
		err = m.v.DecommitApp(r)
		m.dropRange(r, err == nil)
	}
	if err != nil {
		p.fail("brk", want, 0, err)
		return uint64(p.brkCur)
	}
	p.brkTop, p.brkCur = top, want
	return uint64(want)
}

// fdPath returns the path of the regular file open as fd, for mapping
// it, or the errno mmap gives for fd: EBADF if it is not open, EACCES if
// it is not open for reading, ENODEV if it is not a regular file. A file
// no path reaches (a memfd, a deleted file) is mapped through
// /proc/self/fd.
func (p *Program) fdPath(fd int) (string, unix.Errno) {
	if fd < 0 {
		return "", unix.EBADF
	}
	fl, err := unix.FcntlInt(uintptr(fd), unix.F_GETFL, 0)
	if err != nil {
		return "", unix.EBADF
	}
	if fl&unix.O_ACCMODE == unix.O_WRONLY {
		return "", unix.EACCES
	}
	var st, pst unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return "", unix.ENODEV
	}
	proc := "/proc/self/fd/" + strconv.Itoa(fd)
	path, err := os.Readlink(proc)
	if err != nil || len(path) == 0 || path[0] != '/' ||
		unix.Stat(path, &pst) != nil || pst.Dev != st.Dev || pst.Ino != st.Ino {
		// A file with no path to it (a memfd, a deleted file): the
		// descriptor's own link in /proc opens the same file.
		return proc, 0
	}
	return path, 0
}

// Where code goes. The kernel places a mapping with no address top-down
// from below the stack, 2^46 bytes from vmcode when reachvm run places
// it low: every RIP-relative operand of a library there is out of rel32
// reach of its translation and is rewritten through a scratch register,
// and its indirect branches take the wide form (sort, whose time is
// mostly the C library's: 0.47 to 0.51 s of user time against 0.42 to
// 0.45 s placed near, 1,237 operands rewritten against none). So a
// mapping that will hold code (executable, or an ELF object mapped from
// its start: ld.so reserves a library's span with its first mmap,
// readable only, then maps the segments over it) is placed as near
// vmcode as there is room, within rel32 reach of all of it, and where
// the kernel chooses when there is none.

// libraryReach bounds the distance from vmcode's middle of a mapping
// placed near it: rel32's reach, less a margin for the cache's far end.
const libraryReach = 1<<31 - 1<<24

// nearVMCode returns a free address for size bytes within reach of the
// whole of vmcode, nearest it first, or 0 (anywhere) if there is none.
// The address is a hint: the kernel places the mapping elsewhere if it
// is in use after all (aspacem is only refreshed at times).
func (p *Program) nearVMCode(size uintptr) uintptr { return nearVMCode(p.m.v, size) }

// nearVMCode is Program.nearVMCode for v's vmcode.
func nearVMCode(v *vmm.VMM, size uintptr) uintptr {
	cb, cs := v.VMCode()
	if cs == 0 || cs/2 >= libraryReach {
		return 0
	}
	a, err := v.Space().Advise(size, 0, cb+cs/2, libraryReach-cs/2)
	if err != nil {
		return 0
	}
	return a
}

// inReachOfVMCode reports whether [a, a+size) lies within reach of the
// whole of v's vmcode, as nearVMCode places.
func inReachOfVMCode(v *vmm.VMM, a, size uintptr) bool {
	cb, cs := v.VMCode()
	mid := cb + cs/2
	return cs/2 < libraryReach && a+size > a && a+libraryReach-cs/2 >= mid && a+size <= mid+libraryReach-cs/2
}

// maxLibraryReservation bounds the inaccessible reservations taken for
// a library's span (libraryReservation).
const maxLibraryReservation = 256 << 20

// libraryReservation reports whether an anonymous mapping looks like
// ld.so reserving the span of a library whose segments are aligned past
// the page: inaccessible, private, not MAP_NORESERVE (which malloc's
// arena reservations and runtimes' heaps carry), at most
// maxLibraryReservation. ld.so maps the library's file over it, so it
// goes near vmcode as a library mapped from its start does.
func libraryReservation(prot mem.Prot, flags, size uintptr) bool {
	return prot == mem.ProtNone && flags&unix.MAP_NORESERVE == 0 && size <= maxLibraryReservation
}

// isELFObject reports whether the file open as fd starts with the ELF
// header of a shared object (ET_DYN): a library ld.so is mapping.
func isELFObject(fd int) bool {
	var h [18]byte
	n, err := unix.Pread(fd, h[:], 0)
	return err == nil && n == len(h) && string(h[:4]) == "\x7fELF" && h[16] == byte(elf.ET_DYN) && h[17] == 0
}
