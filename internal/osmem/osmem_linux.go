//go:build linux

package osmem

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/hostfd"
	"github.com/reachvm/reachvm/internal/procmaps"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// linuxOS is the Linux backend. It keeps no state of its own beyond the
// maps-reading buffer: the kernel is the only record.
type linuxOS struct {
	page uintptr
	lo   uintptr

	// noPopulate is set once the kernel refused MADV_POPULATE_* as
	// unknown advice (before Linux 5.14): Populate then makes no call.
	noPopulate atomic.Bool

	// mu guards buf.
	mu sync.Mutex
	// buf is reused between reads of /proc/self/maps.
	buf []byte
}

var (
	nativeOnce sync.Once
	native     *linuxOS
)

// Native returns the backend of the running OS.
func Native() OS {
	nativeOnce.Do(func() {
		native = &linuxOS{page: uintptr(unix.Getpagesize()), lo: mmapMinAddr()}
	})
	return native
}

// linuxHi is the top of the 47-bit user address space that every x86-64
// kernel grants without an explicit high hint.
const linuxHi = 0x7fff_ffff_f000

// mmapMinAddr reads vm.mmap_min_addr, the lowest address mmap grants.
func mmapMinAddr() uintptr {
	var buf [32]byte
	b, err := readProc("/proc/sys/vm/mmap_min_addr", buf[:0])
	if err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && v > 0 {
			return uintptr(v+0xfff) &^ 0xfff
		}
	}
	return 0x10000
}

// readProc appends the contents of the /proc file at path to buf, growing
// it as needed. It makes the system calls itself: os.Open would also
// make the descriptor non-blocking and offer it to the Go runtime's
// poller (which accepts some /proc files, starting the poller for a
// process that has no other use for it), three to six calls more, and a
// read of /proc/self/maps is on every program's start.
func readProc(path string, buf []byte) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return buf, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return buf, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return buf, nil
		}
		buf = buf[:len(buf)+n]
	}
}

func (l *linuxOS) Name() string             { return "linux" }
func (l *linuxOS) Rules() Rules             { return RulesLinux }
func (l *linuxOS) PageSize() uintptr        { return l.page }
func (l *linuxOS) Granularity() uintptr     { return l.page }
func (l *linuxOS) Bounds() (lo, hi uintptr) { return l.lo, linuxHi }

func unixProt(p Prot) int {
	var r int
	if p&ProtRead != 0 {
		r |= unix.PROT_READ
	}
	if p&ProtWrite != 0 {
		r |= unix.PROT_WRITE
	}
	if p&ProtExec != 0 {
		r |= unix.PROT_EXEC
	}
	return r
}

// sysErr wraps errno from op. notMapped says how ENOMEM reads for this
// operation: for mprotect and madvise it means "range not mapped".
func sysErr(op string, addr, size uintptr, err error, notMapped bool) error {
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: err.Error()}
	}
	class := ErrInvalid
	switch errno {
	case unix.EEXIST:
		class = ErrExists
	case unix.ENOMEM:
		class = ErrNoMemory
		if notMapped {
			class = ErrNotMapped
		}
	case unix.EINVAL:
		class = ErrInvalid
	case unix.EACCES, unix.EPERM:
		class = ErrNotSupported
	}
	return &Error{Op: op, Addr: addr, Size: size, Class: class, Code: uintptr(errno), Detail: errno.Error()}
}

// check validates a range for op: aligned to the page, non-empty, not
// overflowing and within the user address space.
func (l *linuxOS) check(op string, addr, size uintptr) error {
	if err := CheckRange(op, addr, size, l.page); err != nil {
		return err
	}
	if addr+size > linuxHi {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: "range beyond the user address space"}
	}
	return nil
}

func checkProt(op string, addr, size uintptr, p Prot) error {
	if !p.Valid() {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("unknown protection bits %#x", uint8(p))}
	}
	return nil
}

// mmap calls mmap(2) and checks that an Exact placement landed where asked:
// kernels before 4.17 ignore MAP_FIXED_NOREPLACE and treat it as a hint.
func (l *linuxOS) mmap(op string, addr, size uintptr, prot, flags, fd int, off uint64, mode Mode) (uintptr, error) {
	switch mode {
	case Hint:
	case Exact:
		flags |= unix.MAP_FIXED_NOREPLACE
	case Fixed:
		flags |= unix.MAP_FIXED
	default:
		return 0, &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("unknown mode %v", mode)}
	}
	p, err := unix.MmapPtr(fd, int64(off), rawmem.Ptr(addr), size, prot, flags)
	if err != nil {
		return 0, sysErr(op, addr, size, err, false)
	}
	got := uintptr(p)
	if mode == Exact && got != addr {
		_ = unix.MunmapPtr(p, size)
		return 0, &Error{Op: op, Addr: addr, Size: size, Class: ErrExists, Code: uintptr(unix.EEXIST), Detail: "kernel placed the mapping elsewhere"}
	}
	return got, nil
}

func (l *linuxOS) Reserve(addr, size uintptr, mode Mode) (uintptr, error) {
	if err := l.check("reserve", addr, size); err != nil {
		return 0, err
	}
	return l.mmap("reserve", addr, size, unix.PROT_NONE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE, -1, 0, mode)
}

// Commit makes reserved pages accessible. The reservation is anonymous and
// MAP_NORESERVE, so mprotect is all it takes: pages fill with zeros on first
// touch. mprotect fails with ENOMEM on unmapped pages, which keeps the rule
// that only reserved space can be committed.
func (l *linuxOS) Commit(addr, size uintptr, prot Prot) error {
	return l.mprotect("commit", addr, size, prot)
}

// Decommit drops the pages' contents and access; the range stays reserved.
func (l *linuxOS) Decommit(addr, size uintptr) error {
	if err := l.check("decommit", addr, size); err != nil {
		return err
	}
	b := rawmem.Bytes(addr, size)
	if err := unix.Mprotect(b, unix.PROT_NONE); err != nil {
		return sysErr("decommit", addr, size, err, true)
	}
	if err := unix.Madvise(b, unix.MADV_DONTNEED); err != nil {
		return sysErr("decommit", addr, size, err, true)
	}
	return nil
}

func (l *linuxOS) Protect(addr, size uintptr, prot Prot) error {
	return l.mprotect("protect", addr, size, prot)
}

// mprotect validates its arguments and calls mprotect(2), for Commit and
// Protect, which differ on Windows but not here.
func (l *linuxOS) mprotect(op string, addr, size uintptr, prot Prot) error {
	if err := l.check(op, addr, size); err != nil {
		return err
	}
	if err := checkProt(op, addr, size, prot); err != nil {
		return err
	}
	if err := unix.Mprotect(rawmem.Bytes(addr, size), unixProt(prot)); err != nil {
		return sysErr(op, addr, size, err, true)
	}
	return nil
}

func (l *linuxOS) Release(addr, size uintptr) error {
	if err := l.check("release", addr, size); err != nil {
		return err
	}
	if err := unix.MunmapPtr(rawmem.Ptr(addr), size); err != nil {
		return sysErr("release", addr, size, err, false)
	}
	return nil
}

// Populate is madvise(MADV_POPULATE_WRITE) or madvise(MADV_POPULATE_READ)
// (osmem.Populator): the pages are allocated (for writing: a private
// page's copy made) and mapped in one call, where touching them would
// take a page fault each. A kernel before 5.14, which knows neither
// (EINVAL), gets ErrNotSupported, then and from then on without a call.
// EFAULT (a page that touching would fault on: no access, or read-only
// for write) is ErrInvalid, ENOMEM (a page not mapped) ErrNotMapped.
func (l *linuxOS) Populate(addr, size uintptr, write bool) error {
	const op = "populate"
	if err := l.check(op, addr, size); err != nil {
		return err
	}
	if l.noPopulate.Load() {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrNotSupported, Code: uintptr(unix.EINVAL), Detail: "the kernel has no MADV_POPULATE_READ/WRITE (Linux 5.14)"}
	}
	advice := unix.MADV_POPULATE_READ
	if write {
		advice = unix.MADV_POPULATE_WRITE
	}
	_, _, e := unix.Syscall(unix.SYS_MADVISE, addr, size, uintptr(advice))
	switch e {
	case 0:
		return nil
	case unix.EINVAL:
		// The kernel says EINVAL both for advice it does not know and
		// for a range with pages the advice cannot apply to (no
		// access for it: PROT_NONE, read-only for a write). A page
		// that is certainly readable tells them apart.
		if !populateKnown() {
			l.noPopulate.Store(true)
			return &Error{Op: op, Addr: addr, Size: size, Class: ErrNotSupported, Code: uintptr(e), Detail: "the kernel has no MADV_POPULATE_READ/WRITE (Linux 5.14)"}
		}
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Code: uintptr(e), Detail: "the range has pages that cannot be populated that way (no access, or read-only for writing)"}
	case unix.EFAULT:
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Code: uintptr(e), Detail: "a page in the range cannot be accessed that way"}
	}
	return sysErr(op, addr, size, e, true)
}

// populateProbe is a page of this program's data: readable, so that
// MADV_POPULATE_READ of it fails only where the kernel lacks the advice.
var populateProbe [2 * mem.PageSize]byte

// populateKnown reports whether the kernel knows MADV_POPULATE_READ (and
// so MADV_POPULATE_WRITE, added with it), by populating a page of
// populateProbe for reading.
func populateKnown() bool {
	page, _ := mem.AlignUp(uintptr(unsafe.Pointer(&populateProbe[0])), mem.PageSize)
	_, _, e := unix.Syscall(unix.SYS_MADVISE, page, mem.PageSize, unix.MADV_POPULATE_READ)
	return e != unix.EINVAL
}

// Remap is mremap(2): MREMAP_MAYMOVE for Hint, MREMAP_MAYMOVE|
// MREMAP_FIXED for Fixed, neither for Exact (osmem.Remapper). EFAULT (not
// one mapping) is ErrNotMapped, ENOMEM ErrNoMemory.
func (l *linuxOS) Remap(addr, oldSize, newSize uintptr, mode Mode, newAddr uintptr) (uintptr, error) {
	const op = "remap"
	if err := l.check(op, addr, oldSize); err != nil {
		return 0, err
	}
	if newSize == 0 || newSize%l.page != 0 {
		return 0, &Error{Op: op, Addr: addr, Size: newSize, Class: ErrInvalid, Detail: "new size zero or not a multiple of the page"}
	}
	flags := uintptr(0)
	switch mode {
	case Exact:
		newAddr = 0
	case Hint:
		flags, newAddr = unix.MREMAP_MAYMOVE, 0
	case Fixed:
		if err := l.check(op, newAddr, newSize); err != nil {
			return 0, err
		}
		flags = unix.MREMAP_MAYMOVE | unix.MREMAP_FIXED
	default:
		return 0, &Error{Op: op, Addr: addr, Size: oldSize, Class: ErrInvalid, Detail: fmt.Sprintf("unknown mode %v", mode)}
	}
	got, _, e := unix.Syscall6(unix.SYS_MREMAP, addr, oldSize, newSize, flags, newAddr, 0)
	if e != 0 {
		if e == unix.EFAULT {
			return 0, &Error{Op: op, Addr: addr, Size: oldSize, Class: ErrNotMapped, Code: uintptr(e), Detail: e.Error()}
		}
		return 0, sysErr(op, addr, oldSize, e, false)
	}
	return got, nil
}

// linuxObject is an open file or memfd.
type linuxObject struct {
	fd     int
	name   string
	size   uint64
	shared bool
	// dev (major<<8|minor, as /proc/self/maps shows it) and inode
	// identify a file; zero for memfds.
	dev, inode uint64
	// file, if not nil, is the *os.File fd belongs to (FileObject): the
	// object keeps it, so that its finalizer does not close fd, and
	// closes fd through it.
	file *os.File
}

// FileID returns the file's device and inode as /proc/self/maps shows them.
func (o *linuxObject) FileID() (dev, inode uint64) { return o.dev, o.inode }

func (o *linuxObject) Name() string { return o.name }
func (o *linuxObject) Size() uint64 { return o.size }
func (o *linuxObject) Shared() bool { return o.shared }

func (l *linuxOS) OpenFile(path string) (Object, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: "open", Class: ErrInvalid, Code: errnoOf(err), Detail: fmt.Sprintf("%s: %v", path, err)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &Error{Op: "open", Class: ErrInvalid, Code: errnoOf(err), Detail: fmt.Sprintf("%s: %v", path, err)}
	}
	obj, err := fileObject(fd, path, &st)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return obj, nil
}

// FileObject returns the Object of the regular file f for the native
// backend: what OpenFile returns, for a caller that has opened and
// examined the file already and would otherwise open it a second time.
// Its name is f.Name(), the path the kernel's map shows its mappings by;
// its size and identity come from an fstat of f's descriptor. On success
// the Object owns f (CloseObject closes it, and f must not be closed or
// used otherwise); on error the caller still does.
func FileObject(f *os.File) (Object, error) {
	if f == nil {
		return nil, &Error{Op: "open", Class: ErrInvalid, Detail: "nil file"}
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, &Error{Op: "open", Class: ErrInvalid, Detail: fmt.Sprintf("%s: %v", f.Name(), err)}
	}
	// Control gives the descriptor without Fd's side effect (Fd puts a
	// non-blocking descriptor in blocking mode, a system call).
	var (
		fd   = -1
		st   unix.Stat_t
		serr error
	)
	if err := rc.Control(func(d uintptr) {
		fd = int(d)
		serr = unix.Fstat(fd, &st)
	}); err != nil {
		return nil, &Error{Op: "open", Class: ErrInvalid, Detail: fmt.Sprintf("%s: %v", f.Name(), err)}
	}
	if serr != nil {
		return nil, &Error{Op: "open", Class: ErrInvalid, Code: errnoOf(serr), Detail: fmt.Sprintf("%s: %v", f.Name(), serr)}
	}
	o, err := fileObject(fd, f.Name(), &st)
	if err != nil {
		return nil, err
	}
	o.file = f
	return o, nil
}

// OpenSharedFile returns an object of the regular file open as fd whose
// views are MAP_SHARED (osmem.SharedFileOpener), holding a duplicate of
// fd (so the kernel checks a writable view against fd's access mode).
func (l *linuxOS) OpenSharedFile(fd int, name string) (Object, error) {
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: "open-shared", Class: ErrInvalid, Code: errnoOf(err), Detail: fmt.Sprintf("descriptor %d (%s): %v", fd, name, err)}
	}
	var st unix.Stat_t
	if err := unix.Fstat(dup, &st); err != nil {
		unix.Close(dup)
		return nil, &Error{Op: "open-shared", Class: ErrInvalid, Code: errnoOf(err), Detail: fmt.Sprintf("%s: %v", name, err)}
	}
	o, err := fileObject(dup, name, &st)
	if err != nil {
		unix.Close(dup)
		return nil, err
	}
	o.shared = true
	return o, nil
}

// fileObject returns the object of the regular file open (readable) as
// fd, whose status st was taken with fstat, named name. On success the
// object owns fd; on error the caller still does.
func fileObject(fd int, name string, st *unix.Stat_t) (*linuxObject, error) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &Error{Op: "open", Class: ErrInvalid, Detail: name + ": not a regular file"}
	}
	dev := uint64(unix.Major(st.Dev))<<8 | uint64(unix.Minor(st.Dev))
	return &linuxObject{fd: fd, name: name, size: uint64(st.Size), dev: dev, inode: st.Ino}, nil
}

// CreateShared makes a memfd. Before sizing it, one page is mapped
// executable: a kernel with IMA appraisal hashes a file on its first
// executable mapping, and hashing an empty page is instant where hashing
// gigabytes takes seconds (DynamoRIO's lesson).
func (l *linuxOS) CreateShared(name string, size uint64) (Object, error) {
	if size == 0 || size%uint64(l.page) != 0 || size > linuxHi {
		return nil, &Error{Op: "create-shared", Size: uintptr(size), Class: ErrInvalid, Detail: "size zero, unaligned or too large"}
	}
	if strings.IndexByte(name, 0) >= 0 || strings.IndexByte(name, '/') >= 0 {
		return nil, &Error{Op: "create-shared", Class: ErrInvalid, Detail: fmt.Sprintf("bad shared object name %q", name)}
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return nil, sysErr("create-shared", 0, uintptr(size), err, false)
	}
	// A program translated in this process gets the numbers its
	// opens get natively.
	fd = hostfd.MoveHigh(fd)
	fail := func(err error) (Object, error) {
		unix.Close(fd)
		return nil, sysErr("create-shared", 0, uintptr(size), err, false)
	}
	if err := unix.Ftruncate(fd, int64(l.page)); err != nil {
		return fail(err)
	}
	if p, err := unix.MmapPtr(fd, 0, nil, l.page, unix.PROT_READ|unix.PROT_EXEC, unix.MAP_SHARED); err == nil {
		_ = unix.MunmapPtr(p, l.page)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		return fail(err)
	}
	return &linuxObject{fd: fd, name: name, size: size, shared: true}, nil
}

func (l *linuxOS) object(op string, obj Object) (*linuxObject, error) {
	o, ok := obj.(*linuxObject)
	if !ok || o == nil {
		return nil, &Error{Op: op, Class: ErrInvalid, Detail: fmt.Sprintf("object %T does not belong to the linux backend", obj)}
	}
	if o.fd < 0 {
		return nil, &Error{Op: op, Class: ErrInvalid, Detail: "object " + o.name + " is closed"}
	}
	return o, nil
}

func (l *linuxOS) CloseObject(obj Object) error {
	o, err := l.object("close", obj)
	if err != nil {
		return err
	}
	fd, f := o.fd, o.file
	o.fd, o.file = -1, nil
	if f != nil {
		if err := f.Close(); err != nil {
			return &Error{Op: "close", Class: ErrInvalid, Detail: fmt.Sprintf("%s: %v", o.name, err)}
		}
		return nil
	}
	if err := unix.Close(fd); err != nil {
		return sysErr("close", 0, 0, err, false)
	}
	return nil
}

func (l *linuxOS) MapObject(obj Object, off uint64, addr, size uintptr, prot Prot, mode Mode) (uintptr, error) {
	o, err := l.object("map", obj)
	if err != nil {
		return 0, err
	}
	if mode == Hint && addr == 0 {
		// Checked with a page-aligned stand-in: the kernel picks the address.
		err = l.check("map", l.page, size)
	} else {
		err = l.check("map", addr, size)
	}
	if err != nil {
		return 0, err
	}
	if err := checkProt("map", addr, size, prot); err != nil {
		return 0, err
	}
	if off%uint64(l.page) != 0 {
		return 0, &Error{Op: "map", Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("offset %#x not page aligned", off)}
	}
	flags := unix.MAP_PRIVATE
	if o.shared {
		flags = unix.MAP_SHARED
	}
	return l.mmap("map", addr, size, unixProt(prot), flags, o.fd, off, mode)
}

func (l *linuxOS) Unmap(addr, size uintptr) error {
	if err := l.check("unmap", addr, size); err != nil {
		return err
	}
	if err := unix.MunmapPtr(rawmem.Ptr(addr), size); err != nil {
		return sysErr("unmap", addr, size, err, false)
	}
	return nil
}

func (l *linuxOS) Query(addr uintptr) (Region, error) {
	a := mem.AlignDown(addr, l.page)
	rs, err := l.Regions(a, a+l.page)
	if err != nil {
		return Region{}, err
	}
	if len(rs) == 0 {
		return Region{Start: a, End: a + l.page, State: StateFree}, nil
	}
	// Report the whole VMA, not the page: re-read without clipping.
	return l.vmaAt(a)
}

// vmaAt returns the unclipped region containing a.
func (l *linuxOS) vmaAt(a uintptr) (Region, error) {
	var out Region
	found := false
	err := l.walk(func(e *procmaps.Entry) bool {
		if e.Start <= a && a < e.End {
			out = regionOf(e, e.Start, e.End)
			found = true
			return false
		}
		return e.Start <= a
	})
	if err == nil && !found {
		out = Region{Start: a, End: a + l.page, State: StateFree}
	}
	return out, err
}

func (l *linuxOS) Regions(lo, hi uintptr) ([]Region, error) {
	if hi <= lo {
		return nil, &Error{Op: "regions", Addr: lo, Size: hi - lo, Class: ErrInvalid, Detail: "empty or inverted range"}
	}
	var out []Region
	err := l.walk(func(e *procmaps.Entry) bool {
		if e.End <= lo {
			return true
		}
		if e.Start >= hi {
			return false
		}
		r := regionOf(e, max(e.Start, lo), min(e.End, hi))
		if n := len(out); n > 0 && continues(out[n-1], r) {
			out[n-1].End = r.End
			return true
		}
		out = append(out, r)
		return true
	})
	return out, err
}

// continues reports whether r extends prev seamlessly: the kernel keeps
// adjacent VMAs with identical attributes apart for reasons of its own
// (anon_vma identity, a past mprotect), but a Region is a maximal run of
// identical pages.
func continues(prev, r Region) bool {
	return prev.End == r.Start && prev.State == r.State && prev.Type == r.Type &&
		prev.Prot == r.Prot && prev.Shared == r.Shared && prev.Name == r.Name &&
		prev.Dev == r.Dev && prev.Inode == r.Inode &&
		(prev.Type != TypeMapped || prev.Offset+uint64(prev.End-prev.Start) == r.Offset)
}

// walk reads /proc/self/maps once and calls fn on each entry in order.
func (l *linuxOS) walk(fn func(*procmaps.Entry) bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cap(l.buf) == 0 {
		l.buf = make([]byte, 0, 64<<10)
	}
	buf, err := readProc("/proc/self/maps", l.buf[:0])
	l.buf = buf
	if err != nil {
		return &Error{Op: "regions", Class: ErrNotSupported, Detail: err.Error()}
	}
	if err := procmaps.Parse(buf, fn); err != nil {
		return &Error{Op: "regions", Class: ErrInvalid, Detail: err.Error()}
	}
	return nil
}

// regionOf converts a maps entry, clipped to [start, end).
func regionOf(e *procmaps.Entry, start, end uintptr) Region {
	r := Region{
		Start:     start,
		End:       end,
		Prot:      Prot(e.Prot),
		Shared:    e.Shared,
		AllocBase: e.Start,
		Name:      string(e.Name),
		Offset:    e.Offset,
		Dev:       e.Dev(),
		Inode:     e.Inode,
		State:     StateCommitted,
		Type:      TypePrivate,
	}
	switch {
	case e.Inode != 0 || strings.HasPrefix(r.Name, "/"):
		r.Type = TypeMapped
		r.Offset += uint64(start - e.Start)
	case e.Prot == 0 && !e.Shared:
		r.State = StateReserved
	}
	return r
}

func errnoOf(err error) uintptr {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return uintptr(errno)
	}
	return 0
}

// UnderWine reports whether the process runs under Wine: never, on Linux.
func UnderWine() bool { return false }
