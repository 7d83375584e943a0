package mem

import (
	"errors"
	"fmt"
)

// State is the state of a range of address space, in Windows terms, which
// are the finer ones: Linux cannot tell a reservation from committed
// PROT_NONE memory and reports both as StateReserved.
type State uint8

const (
	// StateFree: nothing is mapped there.
	StateFree State = iota
	// StateReserved: address space is claimed but no storage backs it; any
	// access faults.
	StateReserved
	// StateCommitted: storage (anonymous memory or a file/section view)
	// backs the range.
	StateCommitted
)

func (s State) String() string {
	switch s {
	case StateFree:
		return "free"
	case StateReserved:
		return "reserved"
	case StateCommitted:
		return "committed"
	}
	return fmt.Sprintf("State(%d)", uint8(s))
}

// Type says what backs a committed or reserved range.
type Type uint8

const (
	// TypeNone: free space.
	TypeNone Type = iota
	// TypePrivate: anonymous private memory (Windows MEM_PRIVATE).
	TypePrivate
	// TypeMapped: a view of a file or shared object (Windows MEM_MAPPED).
	TypeMapped
	// TypeImage: a view of an executable image mapped by the OS loader
	// (Windows MEM_IMAGE). Linux never reports it.
	TypeImage
)

func (t Type) String() string {
	switch t {
	case TypeNone:
		return "none"
	case TypePrivate:
		return "private"
	case TypeMapped:
		return "mapped"
	case TypeImage:
		return "image"
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// Region is the kernel's view of one maximal run of pages with identical
// attributes.
type Region struct {
	// Start and End bound the region: [Start, End). Both are page aligned.
	Start, End uintptr
	State      State
	Type       Type
	// Prot is the current protection; ProtNone for reserved and free space.
	Prot Prot
	// Shared is set for MAP_SHARED mappings (Linux) and for views of
	// non-copy-on-write sections (Windows).
	Shared bool
	// AllocBase is the base of the reservation or view the region belongs
	// to (Windows AllocationBase). Linux has no such notion and reports
	// Start.
	AllocBase uintptr
	// Name is the backing file's path or the shared object's name, "" for
	// anonymous memory. Linux pseudo-names such as "[heap]" are kept.
	Name string
	// Offset is the offset into the backing object of Start.
	Offset uint64
	// Dev and Inode identify the backing file on Linux; zero elsewhere.
	Dev   uint64
	Inode uint64
}

// Size returns End - Start.
func (r Region) Size() uintptr { return r.End - r.Start }

// Rules names the set of address-space rules a backend enforces.
type Rules uint8

const (
	// RulesLinux: page (4 KiB) granularity; any page-aligned sub-range of a
	// mapping can be released, re-protected or replaced with MAP_FIXED.
	RulesLinux Rules = iota
	// RulesWindows: reservations and views start on the allocation
	// granularity (64 KiB); a reservation is released only whole, from its
	// base; nothing can be mapped over a reservation.
	RulesWindows
)

func (r Rules) String() string {
	if r == RulesWindows {
		return "windows"
	}
	return "linux"
}

// Mode says how the addr argument of Reserve and MapObject is treated.
type Mode uint8

const (
	// Hint: addr is a hint; 0 lets the OS choose. The result may lie
	// anywhere.
	Hint Mode = iota
	// Exact: at addr or not at all; fails with ErrExists if any part of the
	// range is in use (MAP_FIXED_NOREPLACE, VirtualAlloc/MapViewOfFileEx at
	// an address).
	Exact
	// Fixed: at addr, atomically replacing what is there (MAP_FIXED). The
	// caller must own everything in the range. Linux rules only: Windows
	// rules fail it with ErrNotSupported.
	Fixed
)

func (m Mode) String() string {
	switch m {
	case Hint:
		return "hint"
	case Exact:
		return "exact"
	case Fixed:
		return "fixed"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Object is something that can be mapped: a file opened for private
// (copy-on-write) mapping, or a shared memory object (memfd on Linux, a
// pagefile-backed section on Windows) whose views all see the same bytes.
// Objects belong to the backend that made them; passing one to another
// backend fails with ErrInvalid.
type Object interface {
	// Name is the file path or the shared object's name.
	Name() string
	// Size is the object's size in bytes.
	Size() uint64
	// Shared reports whether views of the object are shared (memfd,
	// section) rather than private copy-on-write (file).
	Shared() bool
}

// FileIdentity is implemented by objects that know the device and inode of
// their backing file, so that their views can be recorded (and checked)
// with the same identity the kernel reports. Dev is encoded as in
// /proc/self/maps: major<<8 | minor.
type FileIdentity interface {
	FileID() (dev, inode uint64)
}

// OS is the address-space interface. All sizes and addresses are in bytes;
// addresses passed in must be page aligned, reservation and view bases
// granularity aligned, unless a method says otherwise. Implementations are
// safe for concurrent use.
type OS interface {
	// Name identifies the backend: "linux", "windows", "sim-linux",
	// "sim-windows".
	Name() string
	// Rules returns the rules the backend enforces.
	Rules() Rules
	// PageSize is the unit of Commit, Protect and (on Linux) Release.
	PageSize() uintptr
	// Granularity is the alignment of reservation and view bases: the page
	// size on Linux, 64 KiB on Windows.
	Granularity() uintptr
	// Bounds returns the lowest and highest (exclusive) addresses the
	// backend can hand out.
	Bounds() (lo, hi uintptr)

	// Reserve claims size bytes of address space with no access and no
	// storage (PROT_NONE + MAP_NORESERVE; MEM_RESERVE).
	Reserve(addr, size uintptr, mode Mode) (uintptr, error)
	// Commit backs [addr, addr+size) of a reservation with zeroed memory of
	// protection prot.
	Commit(addr, size uintptr, prot Prot) error
	// Decommit returns the storage of [addr, addr+size) and leaves it
	// reserved.
	Decommit(addr, size uintptr) error
	// Protect changes the protection of committed memory.
	//
	// Under Linux rules a failed Commit, Decommit or Protect may already
	// have changed the pages below the first one it could not change
	// (mprotect works VMA by VMA). Callers keep that from mattering by
	// checking their own records first (vmm asks aspacem), so that only a
	// resource failure can stop the call half way.
	Protect(addr, size uintptr, prot Prot) error
	// Release gives back a reservation, with everything committed in it.
	// Linux rules allow any page-aligned sub-range; Windows rules only the
	// whole reservation from its base (ERROR_INVALID_PARAMETER otherwise).
	Release(addr, size uintptr) error

	// OpenFile opens path for private (copy-on-write) mapping.
	OpenFile(path string) (Object, error)
	// CreateShared creates a shared memory object of size bytes, mappable
	// with any protection including execute (memfd_create; a pagefile
	// section with PAGE_EXECUTE_READWRITE).
	CreateShared(name string, size uint64) (Object, error)
	// CloseObject closes obj. Existing views stay valid.
	CloseObject(obj Object) error
	// MapObject maps size bytes of obj from offset off at addr with
	// protection prot; off must be granularity aligned. Files are mapped
	// private, shared objects shared.
	MapObject(obj Object, off uint64, addr, size uintptr, prot Prot, mode Mode) (uintptr, error)
	// Unmap removes the view [addr, addr+size) made by MapObject. Linux
	// rules leave a hole (callers that keep the range re-reserve it with
	// Reserve(Fixed)); Windows rules require the whole view from its base.
	Unmap(addr, size uintptr) error

	// Query returns the region containing addr, StateFree if none.
	Query(addr uintptr) (Region, error)
	// Regions returns the kernel's view of [lo, hi): every non-free region
	// that intersects it, clipped to it, in address order.
	Regions(lo, hi uintptr) ([]Region, error)
}

// Error classes. Every error a backend returns wraps one of them, so that
// callers test with errors.Is and never with OS-specific numbers; the
// number the OS gave is kept in Error.Code.
var (
	// ErrExists: the range is (partly) in use. EEXIST; Windows
	// ERROR_INVALID_ADDRESS (487).
	ErrExists = errors.New("address range in use")
	// ErrNoMemory: out of address space or commit charge. ENOMEM; Windows
	// ERROR_NOT_ENOUGH_MEMORY (8) or ERROR_COMMITMENT_LIMIT (1455).
	ErrNoMemory = errors.New("out of memory")
	// ErrInvalid: a malformed argument: unaligned, zero or overflowing
	// range, unknown protection, foreign object. EINVAL; Windows
	// ERROR_INVALID_PARAMETER (87).
	ErrInvalid = errors.New("invalid argument")
	// ErrNotMapped: the range is not (wholly) what the operation needs: not
	// reserved, not committed, not a view base. ENOMEM from mprotect;
	// Windows ERROR_INVALID_ADDRESS (487).
	ErrNotMapped = errors.New("range not mapped as required")
	// ErrNotSupported: the operation does not exist under these rules
	// (Fixed on Windows).
	ErrNotSupported = errors.New("operation not supported")
	// ErrInjected: a fault injected by the simulator.
	ErrInjected = errors.New("injected fault")
)

// Windows error codes the Windows backend and the simulator's Windows rules
// report in Error.Code.
const (
	WinErrorNotEnoughMemory  = 8
	WinErrorInvalidParameter = 87
	WinErrorInvalidAddress   = 487
	WinErrorCommitmentLimit  = 1455
)

// Error describes a failed operation.
type Error struct {
	// Op is the operation: "reserve", "commit", "map", ...
	Op string
	// Addr and Size are the range asked for.
	Addr, Size uintptr
	// Class is one of the Err* classes above.
	Class error
	// Code is the OS's own number (errno on Linux, GetLastError on
	// Windows), 0 if the failure was found before any call.
	Code uintptr
	// Detail says more, if anything.
	Detail string
}

func (e *Error) Error() string {
	s := fmt.Sprintf("mem: %s [%#x, +%#x): %v", e.Op, e.Addr, e.Size, e.Class)
	if e.Code != 0 {
		s += fmt.Sprintf(" (os error %d)", e.Code)
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// Unwrap returns the error class.
func (e *Error) Unwrap() error { return e.Class }

// Code returns the OS error number carried by err, or 0.
func Code(err error) uintptr {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

// CheckRange validates [addr, addr+size) against alignment align: size
// non-zero, both ends aligned, no overflow. It returns an *Error of class
// ErrInvalid naming op, or nil.
func CheckRange(op string, addr, size, align uintptr) error {
	switch {
	case size == 0:
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: "zero size"}
	case addr%align != 0:
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("address not aligned to %#x", align)}
	case size%align != 0:
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: fmt.Sprintf("size not a multiple of %#x", align)}
	case addr+size < addr:
		return &Error{Op: op, Addr: addr, Size: size, Class: ErrInvalid, Detail: "range overflows"}
	}
	return nil
}

// SharedReserver is implemented by backends that can create a shared
// object whose pages are reserved, not committed, until a Commit through a
// view of it commits them (Windows: a pagefile-backed section created
// SEC_RESERVE). Such an object costs no commit charge for the pages never
// committed, which a SEC_COMMIT section (CreateShared) charges whole when it
// is created.
//
// The rules, enforced by the Windows backend and by the simulator under
// Windows rules, and checked by the conformance suite:
//
//   - a view of a reserve object reports its uncommitted pages
//     StateReserved (TypeMapped, ProtNone), and Protect of them fails
//     (ErrNotMapped, 487); on Windows they fault when touched (Wine 8.0
//     reads them as zeros: it does not enforce this);
//   - Commit of a range of a view commits the object's pages there, in
//     every view: the committing view's pages take the protection asked,
//     which must not exceed the view's access (ErrInvalid, 87); other
//     views' newly committed pages take the protection their view was
//     mapped with;
//   - committed pages cannot be decommitted (Decommit fails with
//     ErrNotSupported, 87): they stay charged until the object's last view
//     is unmapped and the object closed. Discard may give their memory
//     back while keeping the charge.
//
// Under Linux rules a memfd already takes memory only as it is touched, so
// there is nothing to add: backends there do not implement the interface,
// or fail with ErrNotSupported.
type SharedReserver interface {
	// CreateSharedReserve is CreateShared with every page reserved.
	CreateSharedReserve(name string, size uint64) (Object, error)
}

// CreateSharedReserve calls o's CreateSharedReserve, or fails with
// ErrNotSupported if o has none.
func CreateSharedReserve(o OS, name string, size uint64) (Object, error) {
	if r, ok := o.(SharedReserver); ok {
		return r.CreateSharedReserve(name, size)
	}
	return nil, &Error{Op: "create-shared-reserve", Size: uintptr(size), Class: ErrNotSupported, Detail: o.Name() + " has no reserve-only shared objects"}
}

// Discarder is implemented by backends that can drop the contents of
// committed pages while keeping them committed (Windows
// DiscardVirtualMemory, or VirtualAlloc(MEM_RESET) where that is missing, as
// in Wine 8.0): the memory may go back to the system, the commit charge
// stays, and the pages' contents are undefined afterwards. It is advice:
// callers that reuse the pages must rewrite (or zero) them.
type Discarder interface {
	// Discard drops the contents of the committed pages [addr,
	// addr+size), which lie in one allocation.
	Discard(addr, size uintptr) error
}

// Discard calls o's Discard, or fails with ErrNotSupported if o has none.
func Discard(o OS, addr, size uintptr) error {
	if d, ok := o.(Discarder); ok {
		return d.Discard(addr, size)
	}
	return &Error{Op: "discard", Addr: addr, Size: size, Class: ErrNotSupported, Detail: o.Name() + " cannot discard pages"}
}

// Populator is implemented by backends that can make committed pages
// present ahead of their first use (Linux MADV_POPULATE_WRITE and
// MADV_POPULATE_READ): one call allocates them and fills the page tables
// for the range, where touching them would take a page fault each. It is
// advice: the contents do not change, and a backend (or a kernel) that
// cannot do it says so with ErrNotSupported.
type Populator interface {
	// Populate makes the committed pages [addr, addr+size) present,
	// ready for writing if write (the pages must be writable), else
	// for reading (they must be readable or executable).
	Populate(addr, size uintptr, write bool) error
}

// Populate calls o's Populate, or fails with ErrNotSupported if o has none.
func Populate(o OS, addr, size uintptr, write bool) error {
	if p, ok := o.(Populator); ok {
		return p.Populate(addr, size, write)
	}
	return &Error{Op: "populate", Addr: addr, Size: size, Class: ErrNotSupported, Detail: o.Name() + " cannot populate pages"}
}

// Remapper is implemented by backends that can resize or move a mapping
// with its contents (Linux mremap), without copying them.
type Remapper interface {
	// Remap resizes the mapping [addr, addr+oldSize), which must be one
	// mapping of one kind (anonymous memory, or a view of one object at
	// contiguous offsets) with one protection (ErrNotMapped otherwise),
	// to newSize bytes, and returns where it is then. mode says where:
	// Exact in place only (shrunk, or grown into free space right after
	// it, else ErrNoMemory); Hint in place if it can, else moved where
	// the OS chooses; Fixed moved to newAddr, replacing whatever is there
	// (newAddr's range must not overlap the old one). A grown anonymous
	// mapping's new pages are zero; a grown view's continue the object.
	// The old addresses of a moved mapping are left unmapped.
	Remap(addr, oldSize, newSize uintptr, mode Mode, newAddr uintptr) (uintptr, error)
}

// Remap calls o's Remap, or fails with ErrNotSupported if o has none.
func Remap(o OS, addr, oldSize, newSize uintptr, mode Mode, newAddr uintptr) (uintptr, error) {
	if r, ok := o.(Remapper); ok {
		return r.Remap(addr, oldSize, newSize, mode, newAddr)
	}
	return 0, &Error{Op: "remap", Addr: addr, Size: oldSize, Class: ErrNotSupported, Detail: o.Name() + " cannot move or resize mappings"}
}

// SharedFileOpener is implemented by backends that can map a file shared
// (MAP_SHARED): a view's writes go to the file, and every view and
// reader of the file sees them.
type SharedFileOpener interface {
	// OpenSharedFile returns an object of the regular file open as the
	// descriptor fd, whose views are shared, named name (the name the
	// OS's map shows its views by). The object holds a duplicate of fd,
	// so that views may be written only if fd was opened for writing;
	// the caller keeps fd.
	OpenSharedFile(fd int, name string) (Object, error)
}

// OpenSharedFile calls o's OpenSharedFile, or fails with ErrNotSupported if
// o has none.
func OpenSharedFile(o OS, fd int, name string) (Object, error) {
	if s, ok := o.(SharedFileOpener); ok {
		return s.OpenSharedFile(fd, name)
	}
	return nil, &Error{Op: "open-shared", Class: ErrNotSupported, Detail: o.Name() + " cannot map files shared"}
}
