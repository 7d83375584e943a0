package privload

import (
	"debug/elf"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Options tunes Load. The zero value loads a library with its private
// dependencies, binds the system libraries to the host's own copies and
// runs the initialisers.
type Options struct {
	// Imports redirects symbols: a reference to a name in the map binds
	// to its address, before any library is searched, in every library
	// of the load. DynamoRIO redirects malloc, dlsym and the like this
	// way so that private libraries use the host's (or the tool's)
	// versions. A key "name@VERSION" redirects only references to that
	// version and is tried before the bare name.
	Imports map[string]uintptr
	// Resolve, if non-nil, is asked for a symbol no library of the
	// search scope defines, before an unresolved weak reference binds to
	// 0 and any other fails the load.
	Resolve func(name string) (addr uintptr, ok bool)
	// SearchPath lists directories searched for a bare name (the one
	// given to Load, or a DT_NEEDED entry that is not a system library)
	// right after LD_LIBRARY_PATH, before the DT_RUNPATH of the library
	// that needs it, ld.so.cache and the system directories, as the
	// caller's own LD_LIBRARY_PATH; unlike it, it is searched in a
	// secure process too.
	SearchPath []string
	// System lists the DT_NEEDED names (sonames, matched exactly) bound
	// to the host's own copies through the host's dlopen and
	// dlsym/dlvsym rather than loaded privately; nil means
	// DefaultSystem. A private libc would need its own heap, TLS and
	// start-up, which DynamoRIO's experience (#5133, #5437, #6693)
	// shows is a lasting source of bugs; binding to the host's copy, as
	// DynamoRIO does for libraries outside its reach, avoids all of it.
	System []string
	// SkipInit leaves DT_INIT and DT_INIT_ARRAY (and, at Close,
	// DT_FINI_ARRAY and DT_FINI) uncalled: for inspecting a library whose
	// initialisers must not run in this process.
	SkipInit bool
	// SkipIFunc calls no ifunc resolver: an R_X86_64_IRELATIVE
	// relocation or a reference to an STT_GNU_IFUNC symbol then fails
	// the load. With SkipInit, no code of the loaded libraries runs at
	// all, which is what loading an untrusted file (a fuzzer's) needs.
	SkipIFunc bool
}

// DefaultSystem is the list of libraries Options.System defaults to: the
// parts of glibc, which share state (heap, threads, TLS, locale, the
// dynamic linker's own tables) with the copy the host process runs and so
// must be that copy.
var DefaultSystem = []string{
	"libc.so.6", "libm.so.6", "libpthread.so.0", "libdl.so.2", "ld-linux-x86-64.so.2",
	"librt.so.1", "libutil.so.1", "libresolv.so.2", "libanl.so.1", "libmvec.so.1",
	"libBrokenLocale.so.1", "libnsl.so.1", "libthread_db.so.1", "libc_malloc_debug.so.0",
}

// SegmentInfo says where one PT_LOAD went.
type SegmentInfo struct {
	// Start and End bound the segment's pages: [Start, End).
	Start, End uintptr
	// Prot is the segment's protection (p_flags), which all its pages
	// have except those of [RelroStart, RelroEnd).
	Prot mem.Prot
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
	// Name is the symbol's name, Version the version the reference asks
	// for ("" if none).
	Name, Version string
	// BoundTo is the address it was bound to (0 for an unresolved weak
	// symbol). For a reference to an ifunc it is the resolver's result;
	// for a thread-local variable, its offset in its module's block.
	BoundTo uintptr
	// How says by what: one of the Bound* constants.
	How string
	// From names the library that supplied the definition: the private
	// library's file name, or the system library's soname; "" for the
	// import table, the resolver and weak-undefined.
	From string
}

// How values of Import.
const (
	// BoundSelf: the library's own definition.
	BoundSelf = "self"
	// BoundPrivate: a definition in another library of the same load.
	BoundPrivate = "private"
	// BoundHost: the host's copy of a system library (dlsym/dlvsym).
	BoundHost = "host"
	// BoundTable: Options.Imports.
	BoundTable = "import-table"
	// BoundResolver: Options.Resolve.
	BoundResolver = "resolver"
	// BoundWeakZero: an undefined weak reference, bound to 0.
	BoundWeakZero = "weak-undefined"
	// BoundRuntime: privload's own implementation (__tls_get_addr for a
	// group with thread-local storage).
	BoundRuntime = "privload"
)

// Dependency is one DT_NEEDED entry of a library and what satisfied it.
type Dependency struct {
	// Name is the DT_NEEDED string.
	Name string
	// Host is set for a system library bound to the host's own copy.
	Host bool
	// Path is the file loaded privately, or for a host library the name
	// given to dlopen.
	Path string
	// Library is the private library; nil for a host library.
	Library *Library
}

// Library is a shared object loaded privately into a vmcode slot. Its
// methods are safe for concurrent use; Close must not race with calls into
// the library's code: a call is a jump into the image, which Close cannot
// see or wait for.
//
// A library is a dependent of its VMM (vmm.StageLoad): the VMM's Close
// closes it, running its finalisers while every code unit is still mapped.
// Once closed, by either Close, Lookup and LookupVersion find nothing,
// Func and Close fail with an error wrapping ErrClosed (and so
// vmm.ErrClosed), and the accessors of its bounds and parsed file keep
// answering from the Go heap.
//
// One Load loads a library and its private dependencies: they form a
// group, each in a slot of its own, which the root library's Close
// unloads together.
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
	// elfImports is the compact form of an ELF library's imports, which
	// Imports expands: a load records one per symbol referenced, and
	// few callers ask for them.
	elfImports []importRec
	deps       []Dependency
	group      *group
	// skipIFunc is Options.SkipIFunc: Lookup does not call resolvers.
	skipIFunc bool
	// tlsID is the library's thread-local storage module id in its
	// group (1, 2, ...), 0 if it has no PT_TLS. Set at load.
	tlsID uint64
	// pe is the PE side of a library loaded from a DLL: its exports and
	// what unloading must undo. Set at load and never changed. Only the
	// Windows loader makes PE libraries, and only ELF ones elsewhere, so
	// the type is per OS: *PEModule on Windows, empty elsewhere.
	pe peState

	// untrack removes the library from its VMM's dependents: set for a
	// group's root by Load once it succeeded, taken by Close. Guarded
	// by mu.
	untrack func()
	// closeMu is held across Close, so that a Close that comes second
	// (the VMM's, say) returns only once the first one is done: the VMM
	// must not release vmcode under a finaliser still running.
	closeMu sync.Mutex

	mu sync.Mutex
	// inited is set once the initialisers ran: Close runs the
	// finalisers only then.
	inited bool
	// closed is set when Close starts, for every library of the group.
	closed atomic.Bool
	// dead is set by Close before the library's slot is released, and
	// never cleared: a Func of the library loads it on every call, so
	// that a call after Close fails instead of running unmapped code.
	// (closed is set earlier, before the finalisers, which may still
	// call the library's Funcs back.)
	dead atomic.Bool
}

// group is the set of libraries one Load brought in.
type group struct {
	root *Library
	// libs are the private libraries in breadth-first order from the
	// root (the root first): the order of the symbol search scope.
	libs []*Library
	// initOrder has every library after its dependencies: the order the
	// initialisers ran in; finalisers run in reverse.
	initOrder []*Library

	// tls is the group's thread-local storage, nil if no library of it
	// has PT_TLS. Set at load; Close frees it.
	tls *tlsGroup
	// unregister deregisters the libraries' unwind tables from the
	// group's private unwinder (ehframe_linux.go); nil if none were
	// registered. Set at load; Close calls it.
	unregister func() error

	mu sync.Mutex
	// ifuncs caches what ifunc resolvers returned, by resolver address:
	// each runs once per load, whether for a relocation or a Lookup.
	ifuncs map[uintptr]uintptr
}

// Name returns the file name the library was loaded from (its base name),
// which also annotates its slot in the maps dump: "[privlib NAME]".
func (l *Library) Name() string { return l.name }

// Path returns the path the library was loaded from.
func (l *Library) Path() string { return l.path }

// Base returns the load bias, the address that the file's virtual address
// 0 was placed at. For the shared objects ld produces the first PT_LOAD is
// at 0, so Base is also the image's first address and the slot's base.
func (l *Library) Base() uintptr { return l.bias }

// Start returns the image's first address, the base of its slot: Base
// plus the page-rounded-down address of the first PT_LOAD. [Start,
// Start+Size) is the slot, which holds every segment.
func (l *Library) Start() uintptr { return l.slot.Base() }

// Size returns the size of the slot holding the image: its address span,
// rounded up to the allocation granularity.
func (l *Library) Size() uintptr { return l.slot.Size() }

// File returns the parsed ELF file.
func (l *Library) File() *File { return l.file }

// Segments returns where each PT_LOAD went, in address order.
func (l *Library) Segments() []SegmentInfo { return append([]SegmentInfo(nil), l.segs...) }

// importRec is one binding of an ELF library: symbol sym of its file,
// bound to addr by how (a Bound* constant) from the library from.
type importRec struct {
	addr uintptr
	from string
	how  string
	sym  uint32
	// ifunc: addr is the resolver of an indirect function, until its
	// relocations call it.
	ifunc bool
	// self: the symbol is the library's own, and addr its value, relative
	// to the library's bias (target adds it), so that the binding cache
	// can share the records between loads at different addresses.
	self bool
	// tlsMod is, for a thread-local variable, the module id (in the
	// group) of the library defining it, and addr its offset in that
	// module's block; 0 for any other symbol.
	tlsMod uint32
}

// target returns the address r binds to in a library loaded at bias.
func (r *importRec) target(bias uintptr) uintptr {
	if r.self {
		return bias + r.addr
	}
	return r.addr
}

// Imports returns the symbols the library's relocations bind, with what
// they were bound to, in order of first use.
func (l *Library) Imports() []Import {
	if l.elfImports == nil {
		return append([]Import(nil), l.imports...)
	}
	out := make([]Import, 0, len(l.elfImports))
	for _, r := range l.elfImports {
		s, _ := l.file.Symbol(int(r.sym))
		out = append(out, Import{Name: s.Name, Version: s.Version, BoundTo: r.target(l.bias), How: r.how, From: r.from})
	}
	return out
}

// Dependencies returns the library's DT_NEEDED entries, in order, with
// what satisfied each.
func (l *Library) Dependencies() []Dependency { return append([]Dependency(nil), l.deps...) }

// Libraries returns the libraries loaded privately together with l: l's
// group, its root first, then breadth-first through DT_NEEDED, which is
// the order symbols are searched in.
func (l *Library) Libraries() []*Library {
	if l.group == nil {
		return []*Library{l}
	}
	return append([]*Library(nil), l.group.libs...)
}

// defAddr returns the run-time address of defined symbol i.
func (l *Library) defAddr(i uint64) (uintptr, bool) {
	ent := l.file.symtab[i*symSize : i*symSize+symSize]
	s := Symbol{Type: elf.ST_TYPE(ent[4]), Section: elf.SectionIndex(le.Uint16(ent[6:])), Value: le.Uint64(ent[8:])}
	switch s.Type {
	case elf.STT_TLS:
		return 0, false
	case elf.STT_GNU_IFUNC:
		return l.resolveIFunc(i, s)
	}
	return l.symAddr(s), true
}

// resolveIFunc returns what the resolver of ifunc symbol s returns,
// calling it once per load.
func (l *Library) resolveIFunc(i uint64, s Symbol) (uintptr, bool) {
	if l.skipIFunc || s.Section == elf.SHN_ABS || !l.file.IsCode(s.Value) || l.group == nil {
		return 0, false
	}
	if l.closed.Load() {
		return 0, false
	}
	g, r := l.group, l.symAddr(s)
	g.mu.Lock()
	defer g.mu.Unlock()
	if a, ok := g.ifuncs[r]; ok {
		return a, true
	}
	a := callResolver(r)
	if g.ifuncs == nil {
		g.ifuncs = make(map[uintptr]uintptr)
	}
	g.ifuncs[r] = a
	return a, true
}

// symAddr returns the run-time address of a defined symbol.
func (l *Library) symAddr(s Symbol) uintptr {
	if s.Section == elf.SHN_ABS {
		return uintptr(s.Value)
	}
	return l.bias + uintptr(s.Value)
}

// ErrClosed is wrapped by the errors of a closed library's methods (a
// second Close, a call of one of its Funcs); errors.Is(err,
// vmm.ErrClosed) holds for it too.
var ErrClosed = fmt.Errorf("privload: library %w", vmm.ErrClosed)

// ErrDependency is returned by Close on a library that was loaded as a
// dependency of another: its group's root unloads it.
var ErrDependency = errors.New("privload: library was loaded as a dependency; close the library that loaded it")

// Close unloads the library and the private dependencies loaded with it:
// it runs the finalisers (DT_FINI_ARRAY in reverse, then DT_FINI) of each
// library whose initialisers ran, in the reverse of the order the
// initialisers ran, then releases every slot back to vmcode: afterwards
// no page of any image remains mapped. The libraries' code must not be
// running or called again. A second Close, or one after the VMM's Close
// (which closed the library), fails with an error wrapping ErrClosed; of
// two concurrent Closes one unloads the library and the other waits for
// it, then fails so.
func (l *Library) Close() error {
	members, order := []*Library{l}, []*Library{l}
	if g := l.group; g != nil {
		if g.root != l {
			return fmt.Errorf("%w: %s (loaded by %s)", ErrDependency, l.path, g.root.path)
		}
		members, order = g.libs, g.initOrder
	}
	l.closeMu.Lock()
	defer l.closeMu.Unlock()
	if l.closed.Swap(true) {
		return fmt.Errorf("%w: %s", ErrClosed, l.path)
	}
	for _, m := range members {
		m.closed.Store(true)
	}
	// Untracked only once unloaded: until then the VMM's Close waits
	// here for this one.
	defer func() {
		l.mu.Lock()
		untrack := l.untrack
		l.untrack = nil
		l.mu.Unlock()
		if untrack != nil {
			untrack()
		}
	}()
	var errs []error
	for i := len(order) - 1; i >= 0; i-- {
		m := order[i]
		m.mu.Lock()
		inited := m.inited
		m.inited = false
		m.mu.Unlock()
		if inited {
			if err := m.runFini(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if g := l.group; g != nil && g.unregister != nil {
		if err := g.unregister(); err != nil {
			errs = append(errs, fmt.Errorf("privload: %s: deregistering unwind tables: %w", l.path, err))
		}
	}
	if g := l.group; g != nil && g.tls != nil {
		// After the finalisers, which may use thread-local variables.
		if err := g.tls.free(); err != nil {
			errs = append(errs, fmt.Errorf("privload: %s: freeing thread-local storage: %w", l.path, err))
		}
	}
	for _, m := range members {
		m.dead.Store(true)
		if err := m.slot.Release(); err != nil {
			errs = append(errs, fmt.Errorf("privload: %s: releasing its slot: %w", m.path, err))
		}
	}
	return errors.Join(errs...)
}

// loadTracker makes a Load a dependent of its VMM before it reserves
// anything: a VMM.Close that starts during the load waits for the load to
// end (new slots are refused meanwhile, so it ends soon) and then closes
// what it loaded, instead of releasing vmcode under a relocation or an
// initialiser in progress.
type loadTracker struct {
	// mu is held by the Load from trackLoad to done.
	mu sync.Mutex
	// lib is the library loaded; nil until done, and after a failed
	// load. Guarded by mu.
	lib *Library
	// untrack is the VMM's. Immutable after trackLoad.
	untrack func()
}

// trackLoad registers the load of path with v and holds it until done.
func trackLoad(v *vmm.VMM, path string) (*loadTracker, error) {
	t := &loadTracker{}
	t.mu.Lock()
	untrack, err := v.Track(vmm.StageLoad, "library "+path, t.close)
	if err != nil {
		t.mu.Unlock()
		return nil, fmt.Errorf("privload: %s: %w", path, err)
	}
	t.untrack = untrack
	return t, nil
}

// close is the closer v.Close calls: it waits for the load and closes
// what it loaded.
func (t *loadTracker) close() error {
	t.mu.Lock()
	lib := t.lib
	t.mu.Unlock()
	if lib == nil {
		return nil
	}
	return lib.Close()
}

// done ends the load with lib, the group's root, or nil if it failed.
func (t *loadTracker) done(lib *Library) {
	if lib == nil {
		t.untrack()
	} else {
		lib.mu.Lock()
		lib.untrack = t.untrack
		lib.mu.Unlock()
		t.lib = lib
	}
	t.mu.Unlock()
}
