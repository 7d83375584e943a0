//go:build windows

package osmem

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/mem"
)

// winOS is the Windows backend. Every rule (64 KiB reservation bases, no
// view over a reservation, release only whole from the base) is left to the
// OS: the backend validates arguments, translates, and reports what Windows
// said, so that the conformance suite shows the rules hold on the real OS.
//
// The one piece of state it keeps is the section offset and object name of
// the views it mapped, because VirtualQuery reports neither.
type winOS struct {
	page, gran uintptr
	lo, hi     uintptr

	// mu guards views.
	mu sync.Mutex
	// views maps the base of each view MapObject made to what Windows does
	// not report about it.
	views map[uintptr]viewInfo
}

// viewInfo is what the backend remembers of a view it mapped.
type viewInfo struct {
	off  uint64
	name string
	// reserve says the view is of a SEC_RESERVE section
	// (CreateSharedReserve).
	reserve bool
}

var (
	nativeOnce sync.Once
	native     *winOS
)

// Native returns the backend of the running OS.
func Native() OS {
	nativeOnce.Do(func() {
		native = newWinOS()
	})
	return native
}

// Windows calls that golang.org/x/sys/windows does not wrap. They are looked
// up lazily; a missing one is reported, never a panic.
var (
	modkernel32 = windows.NewLazySystemDLL("kernel32.dll")
	modpsapi    = windows.NewLazySystemDLL("psapi.dll")

	procGetSystemInfo         = modkernel32.NewProc("GetSystemInfo")
	procMapViewOfFileEx       = modkernel32.NewProc("MapViewOfFileEx")
	procK32GetMappedFileNameW = modkernel32.NewProc("K32GetMappedFileNameW")
	procGetMappedFileNameW    = modpsapi.NewProc("GetMappedFileNameW")
	// DiscardVirtualMemory is Windows 8.1 Update and later; Wine 8.0 does
	// not have it.
	procDiscardVirtualMemory = modkernel32.NewProc("DiscardVirtualMemory")
)

// Memory states and types of MEMORY_BASIC_INFORMATION, and a section flag,
// missing from golang.org/x/sys/windows.
const (
	memFree    = 0x10000
	memPrivate = 0x20000
	memMapped  = 0x40000
	memImage   = 0x1000000

	secCommit  = 0x8000000
	secReserve = 0x4000000
	memReset   = 0x80000
)

// systemInfo is SYSTEM_INFO.
type systemInfo struct {
	ProcessorArchitecture     uint16
	Reserved                  uint16
	PageSize                  uint32
	MinimumApplicationAddress uintptr
	MaximumApplicationAddress uintptr
	ActiveProcessorMask       uintptr
	NumberOfProcessors        uint32
	ProcessorType             uint32
	AllocationGranularity     uint32
	ProcessorLevel            uint16
	ProcessorRevision         uint16
}

func newWinOS() *winOS {
	// The documented x64 values, used only if GetSystemInfo is somehow
	// unavailable.
	w := &winOS{page: 4 << 10, gran: 64 << 10, lo: 0x10000, hi: 0x7fff_ffff_0000, views: map[uintptr]viewInfo{}}
	if procGetSystemInfo.Find() == nil {
		var si systemInfo
		procGetSystemInfo.Call(uintptr(unsafe.Pointer(&si)))
		if si.PageSize != 0 && si.AllocationGranularity != 0 {
			w.page = uintptr(si.PageSize)
			w.gran = uintptr(si.AllocationGranularity)
			w.lo = si.MinimumApplicationAddress
			w.hi = mem.AlignDown(si.MaximumApplicationAddress+1, w.page)
		}
	}
	return w
}

func (w *winOS) Name() string             { return "windows" }
func (w *winOS) Rules() Rules             { return RulesWindows }
func (w *winOS) PageSize() uintptr        { return w.page }
func (w *winOS) Granularity() uintptr     { return w.gran }
func (w *winOS) Bounds() (lo, hi uintptr) { return w.lo, w.hi }

// winErr wraps the error of a failed Windows call. conflict is the class
// ERROR_INVALID_ADDRESS (487) stands for: ErrExists when something was to
// be placed at an exact address, ErrNotMapped when the range was not what
// the operation needs.
func winErr(op string, addr, size uintptr, err error, conflict error) error {
	var errno windows.Errno
	if !errors.As(err, &errno) {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprint(err)}
	}
	class := ErrInvalid
	switch errno {
	case WinErrorInvalidAddress:
		class = conflict
	case WinErrorNotEnoughMemory, WinErrorCommitmentLimit, windows.ERROR_OUTOFMEMORY:
		class = ErrNoMemory
	case WinErrorInvalidParameter:
		class = ErrInvalid
	}
	return &Error{Op: op, Addr: addr, Size: size, Class: class, Code: uintptr(errno), Detail: errno.Error()}
}

// need is what a range must be for an operation to apply to it. It is used
// only to classify a failure Windows reported, never to refuse a call.
type need uint8

const (
	// needReservation: within one private reservation (Commit, Decommit).
	needReservation need = iota
	// needAllocation: within one reservation or view (Protect).
	needAllocation
	// needReservationBase: the base of a private reservation (Release).
	needReservationBase
)

// met reports whether [addr, addr+size) is what n asks for, as VirtualQuery
// sees it now.
func (n need) met(addr, size uintptr) bool {
	m, err := query(addr)
	if err != nil || m.State == memFree {
		return false
	}
	switch n {
	case needReservationBase:
		return m.Type == memPrivate && m.AllocationBase == addr
	case needReservation:
		if m.Type != memPrivate {
			return false
		}
	}
	end := m.AllocationBase + allocSize(m.AllocationBase)
	return addr+size > addr && addr+size <= end
}

// rangeErr wraps the failure of a call on an existing range. Windows
// reports a range that is not (wholly) in the allocation the call needs
// with ERROR_INVALID_ADDRESS (487); Wine 8.0 reports some of those cases
// (free space, a range across two allocations, MEM_RELEASE of a view) with
// ERROR_INVALID_PARAMETER (87). So an 87 on a range that does not meet n
// is classed ErrNotMapped, which is what it means; Code stays what the OS
// said.
func rangeErr(op string, addr, size uintptr, err error, n need) error {
	e := winErr(op, addr, size, err, ErrNotMapped)
	if oe, ok := e.(*Error); ok && oe.Code == WinErrorInvalidParameter && !n.met(addr, size) {
		oe.Class = ErrNotMapped
		oe.Detail += " (the range is not what the call needs)"
	}
	return e
}

// check validates [addr, addr+size) for op: page aligned, non-empty, not
// overflowing.
func (w *winOS) check(op string, addr, size uintptr) error {
	return CheckRange(op, addr, size, w.page)
}

// checkBase also requires addr, the base of a new reservation or view, to
// be on the allocation granularity: VirtualAlloc would silently round it
// down, which is not "at addr".
func (w *winOS) checkBase(op string, addr, size uintptr) error {
	if err := w.check(op, addr, size); err != nil {
		return err
	}
	if addr%w.gran != 0 {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("base not aligned to the allocation granularity %#x", w.gran)}
	}
	return nil
}

func checkMode(op string, addr, size uintptr, mode Mode) error {
	switch mode {
	case Hint:
		return nil
	case Exact:
		if addr == 0 {
			return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: "exact placement at address 0"}
		}
		return nil
	case Fixed:
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrNotSupported, Detail: "Windows cannot map over an existing reservation or view"}
	}
	return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: "unknown mode " + mode.String()}
}

func checkProt(op string, addr, size uintptr, p Prot) error {
	if !p.Valid() {
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("unknown protection bits %#x", uint8(p))}
	}
	return nil
}

// pageProt translates p to a PAGE_* constant. Windows has no write-only or
// write-execute protection; write implies read, as on x86 Linux. cow
// selects the copy-on-write variants, the only writable ones a private file
// view accepts.
func pageProt(p Prot, cow bool) uint32 {
	w := p&ProtWrite != 0
	switch {
	case p&ProtExec != 0 && w && cow:
		return windows.PAGE_EXECUTE_WRITECOPY
	case p&ProtExec != 0 && w:
		return windows.PAGE_EXECUTE_READWRITE
	case p&ProtExec != 0 && p&ProtRead != 0:
		return windows.PAGE_EXECUTE_READ
	case p&ProtExec != 0:
		return windows.PAGE_EXECUTE
	case w && cow:
		return windows.PAGE_WRITECOPY
	case w:
		return windows.PAGE_READWRITE
	case p&ProtRead != 0:
		return windows.PAGE_READONLY
	}
	return windows.PAGE_NOACCESS
}

// protOf translates a PAGE_* value back; modifiers (guard, no-cache) are
// dropped.
func protOf(pp uint32) Prot {
	switch pp &^ (windows.PAGE_GUARD | windows.PAGE_NOCACHE | windows.PAGE_WRITECOMBINE) {
	case windows.PAGE_READONLY:
		return ProtRead
	case windows.PAGE_READWRITE, windows.PAGE_WRITECOPY:
		return ProtRW
	case windows.PAGE_EXECUTE:
		return ProtExec
	case windows.PAGE_EXECUTE_READ:
		return ProtRX
	case windows.PAGE_EXECUTE_READWRITE, windows.PAGE_EXECUTE_WRITECOPY:
		return ProtRWX
	}
	return ProtNone
}

func isCOW(pp uint32) bool {
	return pp&(windows.PAGE_WRITECOPY|windows.PAGE_EXECUTE_WRITECOPY) != 0
}

// query is VirtualQuery.
func query(addr uintptr) (windows.MemoryBasicInformation, error) {
	var m windows.MemoryBasicInformation
	err := windows.VirtualQuery(addr, &m, unsafe.Sizeof(m))
	return m, err
}

// allocSize returns the size of the reservation or view that starts at
// base, walking its regions with VirtualQuery; 0 if none starts there.
func allocSize(base uintptr) uintptr {
	a := base
	for {
		m, err := query(a)
		if err != nil || m.State == memFree || m.AllocationBase != base || m.RegionSize == 0 {
			return a - base
		}
		a = m.BaseAddress + m.RegionSize
	}
}

// Reserve is VirtualAlloc(MEM_RESERVE). A hint is rounded down to the
// granularity, as VirtualAlloc itself does, and when it is in use Windows
// chooses instead; an Exact base must be aligned, since the silent rounding
// would break Exact's promise, and fails with 487 (ErrExists) where
// anything is in the way.
func (w *winOS) Reserve(addr, size uintptr, mode Mode) (uintptr, error) {
	if mode == Hint {
		addr &^= w.gran - 1
	}
	if err := w.checkBase("reserve", addr, size); err != nil {
		return 0, err
	}
	if err := checkMode("reserve", addr, size, mode); err != nil {
		return 0, err
	}
	got, err := windows.VirtualAlloc(addr, size, windows.MEM_RESERVE, windows.PAGE_NOACCESS)
	if err != nil && mode == Hint && addr != 0 {
		// A hint only: let Windows choose.
		got, err = windows.VirtualAlloc(0, size, windows.MEM_RESERVE, windows.PAGE_NOACCESS)
	}
	if err != nil {
		conflict := ErrNotMapped
		if mode == Exact {
			conflict = ErrExists
		}
		return 0, winErr("reserve", addr, size, err, conflict)
	}
	if mode == Exact && got != addr {
		// Cannot happen with an aligned base, but never hand out a
		// placement nobody asked for.
		_ = windows.VirtualFree(got, 0, windows.MEM_RELEASE)
		return 0, &Error{Op: "reserve", Addr: addr, Size: size, Class: ErrExists, Code: WinErrorInvalidAddress, Detail: fmt.Sprintf("Windows reserved at %#x", got)}
	}
	return got, nil
}

// Commit is VirtualAlloc(MEM_COMMIT). Windows fails it with 487 unless the
// whole range lies in one reservation, or in one view of a SEC_RESERVE
// section (CreateSharedReserve), whose pages it then commits in every view.
// Committing committed pages keeps their contents and sets the protection,
// as Linux's mprotect does. A protection a view was not mapped for fails
// with 87 (ErrInvalid).
func (w *winOS) Commit(addr, size uintptr, prot Prot) error {
	if err := w.check("commit", addr, size); err != nil {
		return err
	}
	if err := checkProt("commit", addr, size, prot); err != nil {
		return err
	}
	if _, err := windows.VirtualAlloc(addr, size, windows.MEM_COMMIT, pageProt(prot, false)); err != nil {
		if _, ok := w.reserveView(addr, size); ok {
			return winErr("commit", addr, size, err, ErrNotMapped)
		}
		return rangeErr("commit", addr, size, err, needReservation)
	}
	return nil
}

// reserveView returns the base of the view of a SEC_RESERVE section that
// wholly holds [addr, addr+size), if there is one.
func (w *winOS) reserveView(addr, size uintptr) (uintptr, bool) {
	m, err := query(addr)
	if err != nil || m.Type != memMapped {
		return 0, false
	}
	w.mu.Lock()
	v, ok := w.views[m.AllocationBase]
	w.mu.Unlock()
	if !ok || !v.reserve {
		return 0, false
	}
	end := m.AllocationBase + allocSize(m.AllocationBase)
	return m.AllocationBase, addr+size > addr && addr+size <= end
}

// Decommit is VirtualFree(MEM_DECOMMIT): the pages lose their storage and
// stay reserved. The pages of a section cannot be decommitted: Windows
// fails that with 87, reported for a view of a SEC_RESERVE section as
// ErrNotSupported.
func (w *winOS) Decommit(addr, size uintptr) error {
	if err := w.check("decommit", addr, size); err != nil {
		return err
	}
	if err := windows.VirtualFree(addr, size, windows.MEM_DECOMMIT); err != nil {
		if _, ok := w.reserveView(addr, size); ok {
			e := winErr("decommit", addr, size, err, ErrNotMapped)
			if oe, ok := e.(*Error); ok && oe.Code == WinErrorInvalidParameter {
				oe.Class = ErrNotSupported
				oe.Detail += " (section pages cannot be decommitted)"
			}
			return e
		}
		return rangeErr("decommit", addr, size, err, needReservation)
	}
	return nil
}

// Discard drops the contents of committed pages, keeping them committed
// (osmem.Discarder): DiscardVirtualMemory, which needs PAGE_READWRITE
// pages, where Windows has it and the pages are read-write; otherwise
// VirtualAlloc(MEM_RESET), which Wine 8.0 accepts (and ignores: the
// contents stay) and which Windows documents for any committed pages.
func (w *winOS) Discard(addr, size uintptr) error {
	if err := w.check("discard", addr, size); err != nil {
		return err
	}
	if m, err := query(addr); err == nil && m.State == windows.MEM_COMMIT && m.Protect == windows.PAGE_READWRITE &&
		m.BaseAddress+m.RegionSize >= addr+size && procDiscardVirtualMemory.Find() == nil {
		if r, _, _ := procDiscardVirtualMemory.Call(addr, size); r == 0 {
			return nil
		}
	}
	if _, err := windows.VirtualAlloc(addr, size, memReset, windows.PAGE_NOACCESS); err != nil {
		return rangeErr("discard", addr, size, err, needAllocation)
	}
	return nil
}

// Protect is VirtualProtect. A private file view accepts only the
// copy-on-write variants of writable protections, so those are chosen when
// addr lies in one. A view of a shared object cannot be given more access
// than it was mapped with (Windows fixes a view's maximum access at
// MapViewOfFileEx); Windows reports that as 87.
func (w *winOS) Protect(addr, size uintptr, prot Prot) error {
	if err := w.check("protect", addr, size); err != nil {
		return err
	}
	if err := checkProt("protect", addr, size, prot); err != nil {
		return err
	}
	cow := false
	if m, err := query(addr); err == nil && m.Type == memMapped {
		cow = isCOW(m.AllocationProtect)
	}
	var old uint32
	if err := windows.VirtualProtect(addr, size, pageProt(prot, cow), &old); err != nil {
		return rangeErr("protect", addr, size, err, needAllocation)
	}
	return nil
}

// Release gives back a whole reservation with VirtualFree(MEM_RELEASE),
// which takes the base and a size of 0. What the call is given depends on
// addr, so that whatever is wrong is refused by Windows itself, and the
// error reported is the real OS's, not a rule re-implemented here:
//
//   - the base of a reservation of exactly size bytes: (addr, 0), the
//     release;
//   - the base of a reservation of another size: (addr, size), which
//     Windows refuses with 87 (passing 0 would release the whole);
//   - anything else (inside an allocation, a view, free space):
//     (addr, 0), which Windows refuses with 487 (Wine with 87 or 487), as
//     addr is no reservation's base. (Like munmap on Linux, this races
//     only with another thread reserving exactly at addr meanwhile.)
func (w *winOS) Release(addr, size uintptr) error {
	if err := w.check("release", addr, size); err != nil {
		return err
	}
	arg := uintptr(0)
	if m, err := query(addr); err == nil && m.State != memFree && m.Type == memPrivate &&
		m.AllocationBase == addr && allocSize(addr) != size {
		arg = size
	}
	if err := windows.VirtualFree(addr, arg, windows.MEM_RELEASE); err != nil {
		return rangeErr("release", addr, size, err, needReservationBase)
	}
	return nil
}

// winObject is an open file (a copy-on-write section of it) or a
// pagefile-backed section.
type winObject struct {
	owner  *winOS
	name   string
	size   uint64
	shared bool
	// exec says whether the section allows executable views.
	exec bool
	// reserve says the section is SEC_RESERVE (CreateSharedReserve).
	reserve bool

	// mu guards the handles, which are 0 once closed.
	mu      sync.Mutex
	closed  bool
	file    windows.Handle
	section windows.Handle
}

// Name is the path given to OpenFile (resolved to the final path Windows
// reports for the file, so that it compares equal to Region.Name), or the
// name given to CreateShared.
func (o *winObject) Name() string { return o.name }

// Size is the file's or section's size in bytes.
func (o *winObject) Size() uint64 { return o.size }

// Shared reports whether views share their bytes (a section from
// CreateShared) rather than copy on write (a file).
func (o *winObject) Shared() bool { return o.shared }

// OpenFile opens path and makes a copy-on-write section of it, executable
// if the file can be opened for execution (PAGE_EXECUTE_WRITECOPY), else
// not (PAGE_WRITECOPY). The file is opened sharing read, write and delete,
// so that the caller's own handles and clean-up keep working. An empty
// file cannot have a section: Windows fails it with ERROR_FILE_INVALID.
func (w *winOS) OpenFile(path string) (Object, error) {
	fail := func(err error) (Object, error) {
		var errno windows.Errno
		errors.As(err, &errno)
		return nil, &Error{Op: "open", Class: ErrInvalid, Code: uintptr(errno), Detail: fmt.Sprintf("%s: %v", path, err)}
	}
	p16, err := windows.UTF16PtrFromString(path)
	if err != nil {
		return fail(err)
	}
	share := uint32(windows.FILE_SHARE_READ | windows.FILE_SHARE_WRITE | windows.FILE_SHARE_DELETE)
	exec := true
	fh, err := windows.CreateFile(p16, windows.GENERIC_READ|windows.GENERIC_EXECUTE, share, nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	if err == windows.ERROR_ACCESS_DENIED {
		exec = false
		fh, err = windows.CreateFile(p16, windows.GENERIC_READ, share, nil, windows.OPEN_EXISTING, windows.FILE_ATTRIBUTE_NORMAL, 0)
	}
	if err != nil {
		return fail(err)
	}
	var fi windows.ByHandleFileInformation
	if err := windows.GetFileInformationByHandle(fh, &fi); err != nil {
		windows.CloseHandle(fh)
		return fail(err)
	}
	if fi.FileAttributes&windows.FILE_ATTRIBUTE_DIRECTORY != 0 {
		windows.CloseHandle(fh)
		return nil, &Error{Op: "open", Class: ErrInvalid, Detail: path + ": not a regular file"}
	}
	o := &winObject{owner: w, name: finalPath(fh, path), size: uint64(fi.FileSizeHigh)<<32 | uint64(fi.FileSizeLow), file: fh}
	var sec windows.Handle
	if exec {
		sec, err = windows.CreateFileMapping(fh, nil, windows.PAGE_EXECUTE_WRITECOPY, 0, 0, nil)
	}
	if !exec || err != nil {
		exec = false
		sec, err = windows.CreateFileMapping(fh, nil, windows.PAGE_WRITECOPY, 0, 0, nil)
	}
	if err != nil {
		windows.CloseHandle(fh)
		return fail(err)
	}
	o.section, o.exec = sec, exec
	return o, nil
}

// FileObject would return the Object of the open file f, as on Linux; on
// Windows a section of a file needs the access the file was opened with
// (an executable view needs GENERIC_EXECUTE, which os.Open does not ask
// for), so it is not supported: OpenFile opens the file itself.
func FileObject(f *os.File) (Object, error) {
	name := "<nil>"
	if f != nil {
		name = f.Name()
	}
	return nil, &Error{Op: "open", Class: ErrNotSupported, Detail: name + ": an object of an open file is not supported on Windows; open it by path"}
}

// finalPath returns the DOS path Windows reports for the open file, or
// fallback. It makes a relative or 8.3 path the caller gave comparable with
// the names VirtualQuery-side calls report for views.
func finalPath(fh windows.Handle, fallback string) string {
	buf := make([]uint16, 512)
	for {
		n, err := windows.GetFinalPathNameByHandle(fh, &buf[0], uint32(len(buf)), 0)
		if err != nil || n == 0 {
			return fallback
		}
		if int(n) < len(buf) {
			return dosPath(windows.UTF16ToString(buf[:n]))
		}
		buf = make([]uint16, n+1)
	}
}

// CreateShared makes a pagefile-backed section of size bytes with
// PAGE_EXECUTE_READWRITE, so that it can be viewed both writable and
// executable (the two views of W^X). The section is unnamed: name is only a
// label (a section name's rules apply: no NUL, no backslash), and a named one
// would be visible to, and collide with, other processes of the session.
func (w *winOS) CreateShared(name string, size uint64) (Object, error) {
	return w.createShared("create-shared", name, size, secCommit)
}

// CreateSharedReserve makes a pagefile-backed section as CreateShared does,
// but SEC_RESERVE (osmem.SharedReserver): its views start reserved, Commit
// of a range of a view commits the section's pages there (in every view),
// and Windows charges the commit limit only for those. Committed section
// pages cannot be decommitted (Microsoft's CreateFileMapping
// documentation, SEC_RESERVE): they stay charged until the section is
// gone.
func (w *winOS) CreateSharedReserve(name string, size uint64) (Object, error) {
	return w.createShared("create-shared-reserve", name, size, secReserve)
}

func (w *winOS) createShared(op, name string, size uint64, flag uint32) (Object, error) {
	if size == 0 || size%uint64(w.page) != 0 || size > uint64(w.hi) {
		return nil, &Error{Op: op, Size: uintptr(size), Class: ErrInvalid, Detail: "size zero, unaligned or too large"}
	}
	if strings.IndexByte(name, 0) >= 0 || strings.IndexByte(name, '\\') >= 0 {
		return nil, &Error{Op: op, Class: ErrInvalid, Detail: fmt.Sprintf("bad shared object name %q", name)}
	}
	sec, err := windows.CreateFileMapping(windows.InvalidHandle, nil, windows.PAGE_EXECUTE_READWRITE|flag, uint32(size>>32), uint32(size), nil)
	if err != nil {
		return nil, winErr(op, 0, uintptr(size), err, ErrNoMemory)
	}
	return &winObject{owner: w, name: name, size: size, shared: true, exec: true, reserve: flag == secReserve, section: sec}, nil
}

// object checks that obj is an object of this backend.
func (w *winOS) object(op string, obj Object) (*winObject, error) {
	o, ok := obj.(*winObject)
	if !ok || o == nil || o.owner != w {
		return nil, &Error{Op: op, Class: ErrInvalid, Detail: fmt.Sprintf("object %T does not belong to the windows backend", obj)}
	}
	return o, nil
}

// closedErr is the error of using a closed object: what using its closed
// handle would give.
func (o *winObject) closedErr(op string, addr, size uintptr) error {
	return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Code: uintptr(windows.ERROR_INVALID_HANDLE), Detail: "object " + o.name + " is closed"}
}

// CloseObject closes the section and file handles. Windows keeps a section
// alive while views of it exist, so existing views stay valid.
func (w *winOS) CloseObject(obj Object) error {
	o, err := w.object("close", obj)
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return o.closedErr("close", 0, 0)
	}
	o.closed = true
	var first error
	for _, h := range []windows.Handle{o.section, o.file} {
		if h != 0 {
			if err := windows.CloseHandle(h); err != nil && first == nil {
				first = winErr("close", 0, 0, err, ErrInvalid)
			}
		}
	}
	o.section, o.file = 0, 0
	return first
}

// MapObject maps a view with MapViewOfFileEx, at addr (Exact), or at addr
// rounded down to the granularity if free, else anywhere (Hint). Windows
// refuses a view over a reservation with 487, reported as ErrExists, an
// unaligned base or offset with ERROR_MAPPED_ALIGNMENT (1132) and a view
// beyond the object's end with ERROR_ACCESS_DENIED (5), both ErrInvalid.
//
// File views are mapped FILE_MAP_COPY (with FILE_MAP_EXECUTE when the
// section allows it) and then given prot, so that a loader can later
// re-protect them freely. Views of shared objects are mapped with exactly
// the access prot needs: Windows fixes that as the view's maximum, which
// keeps the executable view of a W^X pair from ever being made writable,
// even for an instant.
func (w *winOS) MapObject(obj Object, off uint64, addr, size uintptr, prot Prot, mode Mode) (uintptr, error) {
	o, err := w.object("map", obj)
	if err != nil {
		return 0, err
	}
	if mode == Hint {
		addr &^= w.gran - 1
	}
	// Page alignment is checked here; the granularity alignment of an
	// Exact base and of off is left to Windows (ERROR_MAPPED_ALIGNMENT).
	if mode == Hint && addr == 0 {
		// Checked with an aligned stand-in: Windows picks the address.
		err = w.check("map", w.gran, size)
	} else {
		err = w.check("map", addr, size)
	}
	if err != nil {
		return 0, err
	}
	if err := checkMode("map", addr, size, mode); err != nil {
		return 0, err
	}
	if err := checkProt("map", addr, size, prot); err != nil {
		return 0, err
	}

	var access, want uint32
	switch {
	case !o.shared:
		access, want = windows.FILE_MAP_COPY, pageProt(prot, true)
		if o.exec {
			access |= windows.FILE_MAP_EXECUTE
		}
	case prot&ProtWrite != 0:
		access = windows.FILE_MAP_WRITE
	default:
		access = windows.FILE_MAP_READ
	}
	if o.shared {
		if prot&ProtExec != 0 {
			access |= windows.FILE_MAP_EXECUTE
		}
		want = pageProt(prot, false)
	}

	// The section handle is used under the object's lock, so that a
	// concurrent CloseObject cannot close it (and Windows reuse its number)
	// during the call.
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return 0, o.closedErr("map", addr, size)
	}
	got, err := mapViewOfFileEx(o.section, access, off, size, addr)
	if err != nil && mode == Hint && addr != 0 {
		got, err = mapViewOfFileEx(o.section, access, off, size, 0)
	}
	o.mu.Unlock()
	if err != nil {
		conflict := ErrNotMapped
		if mode == Exact {
			conflict = ErrExists
		}
		return 0, winErr("map", addr, size, err, conflict)
	}
	if mode == Exact && got != addr {
		_ = windows.UnmapViewOfFile(got)
		return 0, &Error{Op: "map", Addr: addr, Size: size, Class: ErrExists, Code: WinErrorInvalidAddress, Detail: fmt.Sprintf("Windows mapped the view at %#x", got)}
	}
	if err := protectView(got, size, want, o.reserve); err != nil {
		_ = windows.UnmapViewOfFile(got)
		return 0, winErr("map", addr, size, err, ErrNotMapped)
	}
	w.mu.Lock()
	w.views[got] = viewInfo{off: off, name: o.name, reserve: o.reserve}
	w.mu.Unlock()
	return got, nil
}

// protectView gives the new view [base, base+size) the protection want.
// A view of a SEC_RESERVE section has reserved pages, which VirtualProtect
// refuses (487): only its committed runs are protected.
func protectView(base, size uintptr, want uint32, reserve bool) error {
	for a := base; a < base+size; {
		m, err := query(a)
		if err != nil {
			return err
		}
		end := min(m.BaseAddress+m.RegionSize, base+size)
		if !reserve {
			end = base + size
		}
		if (!reserve || m.State == windows.MEM_COMMIT) && m.Protect != want {
			var old uint32
			if err := windows.VirtualProtect(a, end-a, want, &old); err != nil {
				return err
			}
		}
		if !reserve || end <= a {
			break
		}
		a = end
	}
	return nil
}

func mapViewOfFileEx(sec windows.Handle, access uint32, off uint64, size, addr uintptr) (uintptr, error) {
	if err := procMapViewOfFileEx.Find(); err != nil {
		return 0, err
	}
	r, _, e := procMapViewOfFileEx.Call(uintptr(sec), uintptr(access), uintptr(off>>32), uintptr(uint32(off)), size, addr)
	if r == 0 {
		if e == nil || e == windows.Errno(0) {
			e = windows.ERROR_INVALID_PARAMETER
		}
		return 0, e
	}
	return r, nil
}

// Unmap is UnmapViewOfFile, after checking that [addr, addr+size) is a
// whole view from its base: Windows unmaps the whole view given any address
// inside it, so an interior address is refused here as
// ERROR_INVALID_ADDRESS and a size other than the view's as
// ERROR_INVALID_PARAMETER (as Release does), before more could be removed
// than asked. An addr that is no view at all is passed to Windows, which
// reports 487.
func (w *winOS) Unmap(addr, size uintptr) error {
	if err := w.check("unmap", addr, size); err != nil {
		return err
	}
	if m, err := query(addr); err == nil && (m.Type == memMapped || m.Type == memImage) {
		if m.AllocationBase != addr {
			return &Error{Op: "unmap", Addr: addr, Size: size, Class: ErrNotMapped, Code: WinErrorInvalidAddress,
				Detail: fmt.Sprintf("not a view base: the view starts at %#x", m.AllocationBase)}
		}
		if vs := allocSize(addr); vs != size {
			return &Error{Op: "unmap", Addr: addr, Size: size, Class: ErrInvalid, Code: WinErrorInvalidParameter,
				Detail: fmt.Sprintf("the view is %#x bytes; Windows unmaps only whole views", vs)}
		}
	}
	if err := windows.UnmapViewOfFile(addr); err != nil {
		return winErr("unmap", addr, size, err, ErrNotMapped)
	}
	w.mu.Lock()
	delete(w.views, addr)
	w.mu.Unlock()
	return nil
}

// sameRun reports whether two VirtualQuery answers describe pages with
// the same attributes. Wine splits runs that differ only in its internal
// page flags (a decommitted page beside never-committed ones), so runs are
// merged by what VirtualQuery shows, not by where it stops.
func sameRun(a, b *windows.MemoryBasicInformation) bool {
	return a.State == b.State && a.Protect == b.Protect && a.Type == b.Type &&
		a.AllocationBase == b.AllocationBase && a.AllocationProtect == b.AllocationProtect
}

// Query is VirtualQuery, widened to the whole run of like pages around
// addr: VirtualQuery describes the run only from addr's page on, so Query
// walks the allocation from its base to find where the run starts, and on
// past VirtualQuery's end while the pages look the same. Free space reads
// from addr's page to the next allocation. An address beyond the user
// address space fails as VirtualQuery does, with 87 (ErrInvalid).
func (w *winOS) Query(addr uintptr) (Region, error) {
	m, err := query(addr)
	if err != nil {
		return Region{}, winErr("query", addr, 0, err, ErrNotMapped)
	}
	start, end := m.BaseAddress, m.BaseAddress+m.RegionSize
	if m.State != memFree {
		// Backwards: the last streak of like runs before addr's.
		streak := false
		for a := m.AllocationBase; a < m.BaseAddress; {
			r, err := query(a)
			if err != nil || r.RegionSize == 0 {
				break
			}
			if sameRun(&r, &m) {
				if !streak {
					start, streak = r.BaseAddress, true
				}
			} else {
				start, streak = m.BaseAddress, false
			}
			a = r.BaseAddress + r.RegionSize
		}
		// Forwards.
		for {
			r, err := query(end)
			if err != nil || r.RegionSize == 0 || !sameRun(&r, &m) {
				break
			}
			end = r.BaseAddress + r.RegionSize
		}
	}
	return w.region(&m, start, end, newNamer()), nil
}

// Regions walks [lo, hi) with VirtualQuery, skipping free space, merging
// runs that look the same (see sameRun) and clipping the first and last
// regions to the range.
func (w *winOS) Regions(lo, hi uintptr) ([]Region, error) {
	if hi <= lo {
		return nil, &Error{Op: "regions", Addr: lo, Size: hi - lo, Class: ErrInvalid, Detail: "empty or inverted range"}
	}
	var out []Region
	var prev windows.MemoryBasicInformation
	nm := newNamer()
	for a := lo; a < hi; {
		m, err := query(a)
		if err != nil {
			break // beyond the user address space
		}
		end := m.BaseAddress + m.RegionSize
		if m.RegionSize == 0 || end <= a {
			break
		}
		switch {
		case m.State == memFree:
		case len(out) > 0 && out[len(out)-1].End == m.BaseAddress && sameRun(&prev, &m):
			out[len(out)-1].End = min(end, hi)
		default:
			out = append(out, w.region(&m, max(m.BaseAddress, lo), min(end, hi), nm))
		}
		prev = m
		a = end
	}
	return out, nil
}

// region converts VirtualQuery's answer, clipped to [start, end).
func (w *winOS) region(m *windows.MemoryBasicInformation, start, end uintptr, nm *namer) Region {
	r := Region{Start: start, End: end, AllocBase: m.AllocationBase}
	switch m.State {
	case memFree:
		r.AllocBase = 0
		return r
	case windows.MEM_RESERVE:
		r.State = StateReserved
	default:
		r.State = StateCommitted
		r.Prot = protOf(m.Protect)
	}
	switch m.Type {
	case memPrivate:
		r.Type = TypePrivate
	case memMapped:
		r.Type = TypeMapped
		r.Shared = !isCOW(m.AllocationProtect)
	case memImage:
		r.Type = TypeImage
	}
	if r.Type == TypeMapped || r.Type == TypeImage {
		r.Offset = uint64(start - m.AllocationBase)
		r.Name = nm.name(start)
		w.mu.Lock()
		v, ok := w.views[m.AllocationBase]
		w.mu.Unlock()
		if ok {
			r.Offset += v.off
			if r.Name == "" {
				// A pagefile section has no file name for Windows to
				// report; the object's own name stands in.
				r.Name = v.name
			}
		}
	}
	return r
}

// namer turns GetMappedFileNameW's NT paths into DOS paths. It is made per
// walk so that drive letters are read, and its buffer allocated, at most
// once per walk.
type namer struct {
	devices map[string]string // "\Device\HarddiskVolume3" -> "C:"
	buf     []uint16
}

func newNamer() *namer { return &namer{} }

// name returns the DOS path of the file mapped at addr, "" if none or if
// GetMappedFileNameW is unavailable (it may be in Wine).
func (n *namer) name(addr uintptr) string {
	proc := procK32GetMappedFileNameW
	if proc.Find() != nil {
		proc = procGetMappedFileNameW
		if proc.Find() != nil {
			return ""
		}
	}
	if n.buf == nil {
		n.buf = make([]uint16, windows.MAX_PATH)
	}
	var r uintptr
	for {
		r, _, _ = proc.Call(uintptr(windows.CurrentProcess()), addr, uintptr(unsafe.Pointer(&n.buf[0])), uintptr(len(n.buf)))
		if r == 0 {
			return ""
		}
		// A name that fills the buffer may have been cut: grow and retry.
		if int(r) < len(n.buf) || len(n.buf) >= windows.MAX_LONG_PATH {
			break
		}
		n.buf = make([]uint16, 2*len(n.buf))
	}
	s := windows.UTF16ToString(n.buf[:min(int(r), len(n.buf))])
	if strings.HasPrefix(s, `\Device\`) {
		if n.devices == nil {
			n.devices = dosDevices()
		}
		for dev, drive := range n.devices {
			if strings.HasPrefix(s, dev+`\`) {
				return drive + s[len(dev):]
			}
		}
		return s
	}
	return dosPath(s)
}

// dosPath strips the NT and Win32 namespace prefixes Windows and Wine put
// on paths: `\??\C:\x` and `\\?\C:\x` become `C:\x`, `\\?\UNC\h\s` becomes
// `\\h\s`.
func dosPath(s string) string {
	switch {
	case strings.HasPrefix(s, `\\?\UNC\`):
		return `\\` + s[len(`\\?\UNC\`):]
	case strings.HasPrefix(s, `\\?\`), strings.HasPrefix(s, `\??\`):
		return s[4:]
	}
	return s
}

// dosDevices maps each drive's NT device name to its letter.
func dosDevices() map[string]string {
	out := map[string]string{}
	buf := make([]uint16, 512)
	n, err := windows.GetLogicalDriveStrings(uint32(len(buf)), &buf[0])
	if err != nil || int(n) > len(buf) {
		return out
	}
	target := make([]uint16, windows.MAX_PATH)
	// The buffer holds NUL-terminated root paths (`C:\`) back to back.
	for start, i := 0, 0; i < int(n); i++ {
		if buf[i] != 0 {
			continue
		}
		d := windows.UTF16ToString(buf[start:i])
		start = i + 1
		if len(d) < 2 {
			continue
		}
		drive := d[:2] // "C:"
		p, err := windows.UTF16PtrFromString(drive)
		if err != nil {
			continue
		}
		if m, err := windows.QueryDosDevice(p, &target[0], uint32(len(target))); err == nil && m > 0 {
			out[windows.UTF16ToString(target[:m])] = drive
		}
	}
	return out
}

// UnderWine reports whether the process runs under Wine rather than
// Windows: Wine's ntdll exports wine_get_version, Windows' does not. Tests
// and measurements use it to say which one they saw, where Wine departs
// from what Windows documents.
func UnderWine() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
}
