package privload

import (
	"debug/elf"
	"errors"
	"fmt"
	"sync"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/vmm"
)

// Options tunes Load. The zero value loads a self-contained library and
// runs its initialisers.
type Options struct {
	// Resolve, if non-nil, supplies the symbols the library imports but
	// does not define itself: host functions redirected into the library
	// (DynamoRIO redirects malloc, dlsym and the like) and, until privload
	// loads dependencies, whatever DT_NEEDED libraries would have
	// provided. It is asked only for undefined symbols; a definition in
	// the library itself always wins.
	Resolve func(name string) (addr uintptr, ok bool)
	// SkipInit leaves DT_INIT and DT_INIT_ARRAY (and, at Close,
	// DT_FINI_ARRAY and DT_FINI) uncalled: for inspecting a library whose
	// initialisers must not run in this process.
	SkipInit bool
}

// SegmentInfo says where one PT_LOAD went.
type SegmentInfo struct {
	// Start and End bound the segment's pages: [Start, End).
	Start, End uintptr
	// Prot is the segment's protection (p_flags), which all its pages
	// have except those of [RelroStart, RelroEnd).
	Prot osmem.Prot
	// FileOffset is the (page-aligned) file offset mapped at Start, and
	// FileEnd the end of the file-backed pages: [FileEnd, End) is
	// zero-filled anonymous memory (.bss). FileEnd == Start if the
	// segment takes nothing from the file.
	FileOffset uint64
	FileEnd    uintptr
	// RelroStart and RelroEnd bound the part of the segment that
	// PT_GNU_RELRO made read-only once relocated; equal if none.
	RelroStart, RelroEnd uintptr
}

// Import records how one symbol the library's relocations refer to was
// bound.
type Import struct {
	// Name is the symbol's name.
	Name string
	// BoundTo is the address it was bound to (0 for an unresolved weak
	// symbol).
	BoundTo uintptr
	// How says by what: "self" (the library's own definition),
	// "resolver" (Options.Resolve) or "weak-undefined" (bound to 0).
	How string
}

// How values of Import.
const (
	BoundSelf     = "self"
	BoundResolver = "resolver"
	BoundWeakZero = "weak-undefined"
)

// Library is a shared object loaded privately into a vmcode slot. Its
// methods are safe for concurrent use; Close must not race with calls into
// the library's code.
type Library struct {
	file *File
	slot *vmm.Slot
	// name is the file's base name, path the path it was loaded from,
	// which errors name.
	name, path string
	// bias is the load bias: the address of vaddr 0 (glibc's l_addr).
	bias    uintptr
	segs    []SegmentInfo
	imports []Import

	mu sync.Mutex
	// inited is set once the initialisers ran: Close runs the
	// finalisers only then.
	inited bool
	closed bool
}

// Name returns the file name the library was loaded from (its base name),
// which also annotates its slot in the maps dump: "[privlib NAME]".
func (l *Library) Name() string { return l.name }

// Base returns the load bias, the address that the file's virtual address
// 0 was placed at. For the shared objects ld produces the first PT_LOAD is
// at 0, so Base is also the image's first address and the slot's base.
func (l *Library) Base() uintptr { return l.bias }

// Size returns the size of the slot holding the image: its address span,
// rounded up to the allocation granularity.
func (l *Library) Size() uintptr { return l.slot.Size() }

// File returns the parsed ELF file.
func (l *Library) File() *File { return l.file }

// Segments returns where each PT_LOAD went, in address order.
func (l *Library) Segments() []SegmentInfo { return append([]SegmentInfo(nil), l.segs...) }

// Imports returns the symbols the library's relocations bind, with what
// they were bound to, in order of first use.
func (l *Library) Imports() []Import { return append([]Import(nil), l.imports...) }

// Lookup returns the address of the library's exported function or
// object name, found through DT_GNU_HASH (DT_HASH if the file has no GNU
// table). Thread-local and indirect (ifunc) symbols are not reported: their
// address is not the symbol's value.
func (l *Library) Lookup(name string) (uintptr, bool) {
	_, s, ok := l.file.Lookup(name)
	if !ok || s.Type == elf.STT_TLS || s.Type == elf.STT_GNU_IFUNC {
		return 0, false
	}
	return l.symAddr(s), true
}

// symAddr returns the run-time address of a defined symbol.
func (l *Library) symAddr(s Symbol) uintptr {
	if s.Section == elf.SHN_ABS {
		return uintptr(s.Value)
	}
	return l.bias + uintptr(s.Value)
}

// ErrClosed is returned by Close on a library already closed.
var ErrClosed = errors.New("privload: library already closed")

// Close runs the library's finalisers (DT_FINI_ARRAY in reverse, then
// DT_FINI) if its initialisers ran, and releases its slot back to vmcode:
// afterwards no page of the image remains mapped. The library's code must
// not be running or called again.
func (l *Library) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrClosed, l.path)
	}
	l.closed = true
	inited := l.inited
	l.mu.Unlock()
	var errs []error
	if inited {
		if err := l.runFini(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := l.slot.Release(); err != nil {
		errs = append(errs, fmt.Errorf("privload: %s: releasing its slot: %w", l.path, err))
	}
	return errors.Join(errs...)
}
