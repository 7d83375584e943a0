//go:build windows

package privload

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// This file is the Windows loader: PE DLLs placed in vmcode slots.
//
// Windows (and Wine) cannot map a file over part of a reservation, and Wine
// ignores the requested base of SEC_IMAGE views (docs/ARCHITECTURE.md, "Windows under Wine"), so
// the image is not mapped from the file at all: the slot is committed
// read-write, the headers and sections are copied in from the bytes that
// were parsed (so what runs is exactly what was validated), and the loader
// then does what ntdll's would: base relocations, imports bound against
// the host's DLLs, final protections per section, the exception table
// registered for unwinding, DllMain. The host loader never learns of the
// image: GetModuleHandle does not find it, and it gets no
// DLL_THREAD_ATTACH/DETACH notifications.

// DllMain's reasons.
const (
	peDLLProcessDetach = 0
	peDLLProcessAttach = 1
)

var (
	peNtdll                   = windows.NewLazySystemDLL("ntdll.dll")
	peKernel32                = windows.NewLazySystemDLL("kernel32.dll")
	peRtlAddFunctionTable     = peNtdll.NewProc("RtlAddFunctionTable")
	peRtlDeleteFunctionTable  = peNtdll.NewProc("RtlDeleteFunctionTable")
	peFlushInstructionCache   = peKernel32.NewProc("FlushInstructionCache")
	peCurrentProcessPseudoHdl = ^uintptr(0) // GetCurrentProcess()
)

// peLoaderLock serialises DllMain calls, as the Windows loader lock does:
// DLLs are written assuming no two of their DllMain calls overlap.
var peLoaderLock sync.Mutex

// peState is Library.pe on Windows, where every Library comes from a DLL.
type peState = *PEModule

// PEModule is the PE side of a Library loaded from a DLL: its exports, with
// forwarders resolved, and what unloading must undo. Its methods are safe
// for concurrent use.
type PEModule struct {
	file  *PEFile
	path  string
	base  uintptr
	size  uintptr
	entry uintptr
	// pdata is the address of the exception table registered with
	// RtlAddFunctionTable; 0 if none.
	pdata uintptr

	// mu guards the fields below.
	mu sync.Mutex
	// hosts are the host modules LoadLibrary returned for imports and
	// forwarders, by lower-case name; each is freed once at unload.
	hosts map[string]windows.Handle
	order []windows.Handle
	// attached is set once DllMain(DLL_PROCESS_ATTACH) succeeded.
	attached bool
	closed   bool
}

// PE returns the PE side of the library, nil once it is closed.
func (l *Library) PE() *PEModule {
	if m := l.pe; m != nil && !m.isClosed() {
		return m
	}
	return nil
}

// Lookup returns the address of the DLL's export called name
// (PEModule.Lookup); none once the library is closed.
func (l *Library) Lookup(name string) (uintptr, bool) {
	if l.closed.Load() {
		return 0, false
	}
	m := l.PE()
	if m == nil {
		return 0, false
	}
	return m.Lookup(name)
}

// LookupVersion is Lookup for a versioned definition: PE exports carry no
// versions, so only version "" finds one.
func (l *Library) LookupVersion(name, version string) (uintptr, bool) {
	if version != "" {
		return 0, false
	}
	return l.Lookup(name)
}

// isClosed reports whether unload ran.
func (m *PEModule) isClosed() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// File returns the parsed PE file.
func (m *PEModule) File() *PEFile { return m.file }

// Base returns the image base: the slot's first address, where the
// headers are.
func (m *PEModule) Base() uintptr { return m.base }

// Size returns the size of the image in memory (SizeOfImage rounded up to
// the page).
func (m *PEModule) Size() uintptr { return m.size }

// Entry returns the address of the entry point (DllMain), 0 if none.
func (m *PEModule) Entry() uintptr { return m.entry }

// Attached reports whether DllMain(DLL_PROCESS_ATTACH) ran and succeeded
// (and DLL_PROCESS_DETACH has not run yet).
func (m *PEModule) Attached() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.attached
}

// Lookup returns the address of the export called name. A forwarder
// ("DLL.Function") is resolved on first use, as GetProcAddress does: the
// DLL is loaded on the host and the function looked up there, or, if the
// forwarder names this DLL itself, in this image.
func (m *PEModule) Lookup(name string) (uintptr, bool) {
	a, err := m.Resolve(name)
	return a, err == nil
}

// LookupOrdinal is Lookup by ordinal.
func (m *PEModule) LookupOrdinal(ord uint16) (uintptr, bool) {
	e, ok := m.file.ExportByOrdinal(ord)
	if !ok {
		return 0, false
	}
	a, err := m.export(e, 0)
	return a, err == nil
}

// Resolve is Lookup with the reason for a failure.
func (m *PEModule) Resolve(name string) (uintptr, error) {
	e, ok := m.file.Export(name)
	if !ok {
		return 0, fmt.Errorf("privload: %s: no export %q", m.path, name)
	}
	return m.export(e, 0)
}

// peMaxForwards bounds a chain of forwarders within one image.
const peMaxForwards = 16

// export returns the address of e, following forwarders.
func (m *PEModule) export(e PEExport, depth int) (uintptr, error) {
	if e.Forwarder == "" {
		return m.base + uintptr(e.RVA), nil
	}
	dll, fn, ord, byOrd := splitForwarder(e.Forwarder)
	if m.isSelf(dll) {
		if depth >= peMaxForwards {
			return 0, fmt.Errorf("privload: %s: export forwarder chain through %q is longer than %d", m.path, e.Forwarder, peMaxForwards)
		}
		var next PEExport
		var ok bool
		if byOrd {
			next, ok = m.file.ExportByOrdinal(ord)
		} else {
			next, ok = m.file.Export(fn)
		}
		if !ok {
			return 0, fmt.Errorf("privload: %s: export forwarder %q names a function the DLL does not export", m.path, e.Forwarder)
		}
		return m.export(next, depth+1)
	}
	if !strings.Contains(dll, ".") {
		dll += ".dll"
	}
	return m.hostProc(dll, fn, ord, byOrd, "forwarder "+e.Forwarder)
}

// isSelf reports whether a forwarder's DLL part names this DLL: its export
// name or its file name, without the extension, case-insensitively.
func (m *PEModule) isSelf(dll string) bool {
	trim := func(s string) string { return strings.TrimSuffix(strings.ToLower(s), ".dll") }
	d := trim(dll)
	return d == trim(m.file.DLLName) || d == trim(filepath.Base(m.path))
}

// host returns the host module called dll, loading it on first use.
// LOAD_LIBRARY_SEARCH_DEFAULT_DIRS keeps the current directory and PATH
// out of the search: an import names a system or application DLL, and
// must not be hijacked by whatever sits in the working directory.
func (m *PEModule) host(dll string) (windows.Handle, error) {
	key := strings.ToLower(dll)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return 0, fmt.Errorf("privload: %s: library closed", m.path)
	}
	if h, ok := m.hosts[key]; ok {
		return h, nil
	}
	h, err := windows.LoadLibraryEx(dll, 0, windows.LOAD_LIBRARY_SEARCH_DEFAULT_DIRS)
	if err != nil {
		return 0, err
	}
	m.hosts[key] = h
	m.order = append(m.order, h)
	return h, nil
}

// hostProc returns the address of a host DLL's export, by name or ordinal.
func (m *PEModule) hostProc(dll, fn string, ord uint16, byOrd bool, what string) (uintptr, error) {
	h, err := m.host(dll)
	if err != nil {
		return 0, fmt.Errorf("privload: %s: %s: loading %s on the host: %w", m.path, what, dll, err)
	}
	var a uintptr
	if byOrd {
		a, err = windows.GetProcAddressByOrdinal(h, uintptr(ord))
	} else {
		a, err = windows.GetProcAddress(h, fn)
	}
	if err != nil {
		return 0, fmt.Errorf("privload: %s: %s: %s has no such export: %w", m.path, what, dll, err)
	}
	return a, nil
}

// dllMain calls the entry point with reason and lpReserved 0, under the
// loader lock, and returns its BOOL.
func (m *PEModule) dllMain(reason uintptr) bool {
	peLoaderLock.Lock()
	defer peLoaderLock.Unlock()
	return uint32(native.Call3(m.entry, m.base, reason, 0)) != 0
}

// unload undoes what loading did, in reverse: DllMain(DLL_PROCESS_DETACH)
// if attach succeeded, the exception table, the host modules. The slot is
// its caller's to release, after.
func (m *PEModule) unload() error {
	m.mu.Lock()
	attached := m.attached
	m.attached = false
	m.mu.Unlock()
	if attached {
		m.dllMain(peDLLProcessDetach)
	}
	var errs []error
	if m.pdata != 0 {
		if r, _, _ := peRtlDeleteFunctionTable.Call(m.pdata); uint8(r) == 0 {
			errs = append(errs, fmt.Errorf("privload: %s: RtlDeleteFunctionTable failed", m.path))
		}
		m.pdata = 0
	}
	m.mu.Lock()
	m.closed = true
	hosts := m.order
	m.order, m.hosts = nil, nil
	m.mu.Unlock()
	for i := len(hosts) - 1; i >= 0; i-- {
		if err := windows.FreeLibrary(hosts[i]); err != nil {
			errs = append(errs, fmt.Errorf("privload: %s: FreeLibrary of a host DLL: %w", m.path, err))
		}
	}
	return errors.Join(errs...)
}

// Load loads the DLL at path privately into a slot of v's vmcode, so that
// code emitted into vmcode reaches it with rel32 calls.
//
// It parses the file strictly (ParsePE), refuses what it cannot load
// (PEFile.Loadable: not a DLL, TLS, a .NET assembly, sections below page
// alignment, a writable and executable section) before touching memory,
// reserves a slot of SizeOfImage, commits it read-write, copies in the
// headers and sections, applies the DIR64 base relocations for the slot's
// address, binds the imports, sets each section's protection (headers
// read-only, gaps inaccessible; no page is ever writable and executable),
// registers the exception table and calls DllMain(DLL_PROCESS_ATTACH).
//
// Imports by name are offered to Options.Resolve first, which can redirect
// them; the rest, and imports by ordinal, bind to the host's DLLs
// (LoadLibraryEx, GetProcAddress). With Options.SkipInit DllMain is not
// called, at load or at Close.
//
// On any failure nothing stays: DllMain(DLL_PROCESS_DETACH) runs if attach
// returned FALSE (as Windows does), host DLLs are freed and the slot is
// released. Close calls DllMain(DLL_PROCESS_DETACH), undoes the rest and
// returns the slot to vmcode, reserved.
//
// The returned Library's Name, Path, Base, Size, Segments (the headers and
// each section), Imports and Close work as for ELF. Its File is an empty
// placeholder: a PE image has no ELF symbol table. Its exports are found
// by Library.Lookup (and so Func), which on Windows reads the export table
// through the library's PEModule (PE).
func Load(v *vmm.VMM, path string, opts Options) (lib *Library, err error) {
	t, err := trackLoad(v, path)
	if err != nil {
		return nil, err
	}
	defer func() { t.done(lib) }()
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("privload: %s: reading: %w", path, err)
	}
	f, err := ParsePE(path, data)
	if err != nil {
		return nil, err
	}
	if err := f.Loadable(); err != nil {
		return nil, err
	}
	page := uint64(v.OS().PageSize())
	ranges, err := f.protections(page)
	if err != nil {
		return nil, err
	}
	size := f.peImageSize(page)
	name := filepath.Base(path)
	slot, err := v.ReserveSlot(uintptr(size), "privlib "+name)
	if err != nil {
		return nil, fmt.Errorf("privload: %s: reserving a %#x-byte slot in vmcode: %w", path, size, err)
	}
	base := slot.Base()
	m := &PEModule{file: f, path: path, base: base, size: uintptr(size), hosts: map[string]windows.Handle{}}
	lib, err = m.build(slot, page, ranges, opts)
	if err != nil {
		err = errors.Join(err, m.unload())
		if rerr := slot.Release(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("privload: %s: releasing the slot after failure: %w", path, rerr))
		}
		return nil, err
	}
	return lib, nil
}

// build fills the committed slot, protects it, registers the exception
// table and runs DllMain.
func (m *PEModule) build(slot *vmm.Slot, page uint64, ranges []peRange, opts Options) (*Library, error) {
	f, base, size := m.file, m.base, m.size
	if err := slot.Commit(base, size, mem.ProtRW); err != nil {
		return nil, fmt.Errorf("privload: %s: committing the image: %w", m.path, err)
	}
	img := rawmem.Bytes(base, size)
	if err := f.layout(img); err != nil {
		return nil, err
	}
	if err := f.relocate(img, uint64(base)); err != nil {
		return nil, err
	}
	var imports []Import
	err := f.bindImports(img, func(imp PEImport) (uint64, error) {
		if !imp.ByOrdinal && opts.Resolve != nil {
			if a, ok := opts.Resolve(imp.Name); ok {
				imports = append(imports, Import{Name: imp.String(), BoundTo: a, How: BoundResolver})
				return uint64(a), nil
			}
		}
		a, err := m.hostProc(imp.DLL, imp.Name, imp.Ordinal, imp.ByOrdinal, "import "+imp.String())
		if err != nil {
			return 0, err
		}
		imports = append(imports, Import{Name: imp.String(), BoundTo: a, How: BoundHostDLL})
		return uint64(a), nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range ranges {
		if r.Prot == mem.ProtRW {
			continue
		}
		if err := slot.Protect(base+uintptr(r.Off), uintptr(r.Size), r.Prot); err != nil {
			return nil, fmt.Errorf("privload: %s: protecting %s: %w", m.path, r.What, err)
		}
	}
	// x86 keeps instruction fetches coherent with stores, but Windows
	// documents the call as required after writing code.
	peFlushInstructionCache.Call(peCurrentProcessPseudoHdl, base, size)
	if f.Pdata.Size > 0 {
		tab := base + uintptr(f.Pdata.RVA)
		if r, _, _ := peRtlAddFunctionTable.Call(tab, uintptr(f.Pdata.Size/peRuntimeFuncSize), base); uint8(r) == 0 {
			return nil, fmt.Errorf("privload: %s: RtlAddFunctionTable refused the exception directory", m.path)
		}
		m.pdata = tab
	}
	if f.Entry != 0 {
		m.entry = base + uintptr(f.Entry)
	}
	if m.entry != 0 && !opts.SkipInit {
		if !m.dllMain(peDLLProcessAttach) {
			// Windows calls DLL_PROCESS_DETACH after a failed
			// attach, so that the DLL can undo a partial
			// initialisation.
			m.dllMain(peDLLProcessDetach)
			return nil, fmt.Errorf("privload: %s: DllMain(DLL_PROCESS_ATTACH) returned FALSE", m.path)
		}
		m.mu.Lock()
		m.attached = true
		m.mu.Unlock()
	}
	return m.library(slot, page, ranges, imports), nil
}

// library makes the Library the caller sees. It is the one place that
// knows the shared Library type's fields.
func (m *PEModule) library(slot *vmm.Slot, page uint64, ranges []peRange, imports []Import) *Library {
	f := m.file
	var segs []SegmentInfo
	hdr := ranges[0]
	segs = append(segs, SegmentInfo{Start: m.base, End: m.base + uintptr(hdr.Size), Prot: hdr.Prot, FileEnd: m.base + uintptr(hdr.Size)})
	for _, s := range f.Sections {
		if s.MemSize == 0 {
			continue
		}
		start := m.base + uintptr(s.VirtualAddress)
		memSize, _ := mem.AlignUp(uint64(s.MemSize), page) // 32-bit sizes: no overflow
		end := start + uintptr(memSize)
		info := SegmentInfo{Start: start, End: end, Prot: s.Prot(), FileOffset: uint64(s.RawOffset), FileEnd: start}
		if s.RawSize > 0 {
			rawSize, _ := mem.AlignUp(uint64(s.RawSize), page)
			info.FileEnd = start + uintptr(rawSize)
		}
		segs = append(segs, info)
	}
	return &Library{
		file:    &File{Name: m.path},
		slot:    slot,
		name:    filepath.Base(m.path),
		path:    m.path,
		bias:    m.base,
		segs:    segs,
		imports: imports,
		pe:      m,
		// inited makes Close call runFini whether or not DllMain
		// ran: on Windows it also undoes the loader's own
		// registrations and host DLL references.
		inited: true,
	}
}

// runFini undoes a PE library's loading but for the slot, which Close
// releases after: DllMain(DLL_PROCESS_DETACH), the exception table, the
// host DLLs.
func (l *Library) runFini() error {
	if l.pe == nil {
		return nil
	}
	return l.pe.unload()
}
