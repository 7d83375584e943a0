//go:build linux

package privload

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/vmm"
)

// Load loads the shared object at path privately into a slot of v's
// vmcode, so that code emitted into vmcode reaches it with rel32 calls.
//
// It parses the file strictly, reserves a slot of the image's whole span,
// maps each PT_LOAD there (private copy-on-write, MAP_FIXED over the
// slot's reservation), zeroes the .bss tail of the last file page and
// commits the rest, applies the relocations (RELR, then DT_RELA, then
// DT_JMPREL, all bound now), makes PT_GNU_RELRO read-only, sets the final
// protections and runs DT_INIT and DT_INIT_ARRAY.
//
// Symbols bind to the library's own definitions, then to Options.Resolve;
// an unresolved weak symbol binds to 0 and any other unresolved symbol
// fails the load. On any failure the slot is released: nothing of the
// image stays mapped and v's address-space map matches the kernel's.
func Load(v *vmm.VMM, path string, opts Options) (*Library, error) {
	// The kernel names file mappings by their resolved path; so does
	// aspacem, so that its sync check compares like with like.
	abs, err := filepath.Abs(path)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("privload: %s: %w", path, err)
	}
	ld := &loader{v: v, os: v.OS(), path: path, opts: opts}
	ld.lib = &Library{name: filepath.Base(path), path: path}
	obj, err := ld.os.OpenFile(abs)
	if err != nil {
		return nil, fmt.Errorf("privload: %s: opening: %w", path, err)
	}
	ld.obj = obj
	lib, err := ld.load(abs)
	if cerr := ld.os.CloseObject(obj); cerr != nil && err == nil {
		// Views outlive their object, so the library is loaded, but
		// a descriptor leaked: say so rather than hide it.
		err = fmt.Errorf("privload: %s: closing the file: %w", path, cerr)
		if lib != nil {
			err = errors.Join(err, lib.Close())
			lib = nil
		}
	}
	return lib, err
}

// loader carries the state of one Load.
type loader struct {
	v    *vmm.VMM
	os   osmem.OS
	path string
	opts Options
	obj  osmem.Object
	data []byte
	f    *File
	lib  *Library
	page uintptr
	// initProt is the protection each PT_LOAD is mapped with until the
	// final protections are set.
	initProt []osmem.Prot
	// bound caches symbol resolution by symbol index.
	bound map[uint32]uintptr
}

func (ld *loader) errorf(format string, args ...any) error {
	return fmt.Errorf("privload: %s: "+format, append([]any{ld.path}, args...)...)
}

func (ld *loader) unsupported(format string, args ...any) error {
	return &FormatError{File: ld.path, Reason: fmt.Sprintf(format, args...), Class: ErrUnsupported}
}

func (ld *loader) load(abs string) (*Library, error) {
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, ld.errorf("reading: %w", err)
	}
	if uint64(len(data)) != ld.obj.Size() {
		return nil, ld.errorf("file changed size while being opened (%d bytes, then %d)", ld.obj.Size(), len(data))
	}
	f, err := Parse(ld.path, data)
	if err != nil {
		return nil, err
	}
	ld.data, ld.f, ld.lib.file = data, f, f
	ld.page = ld.os.PageSize()
	lo, hi, err := ld.span()
	if err != nil {
		return nil, err
	}
	slot, err := ld.v.ReserveSlot(uintptr(hi-lo), "privlib "+ld.lib.name)
	if err != nil {
		return nil, ld.errorf("reserving a %#x-byte slot in vmcode: %w", hi-lo, err)
	}
	ld.lib.slot = slot
	ld.lib.bias = slot.Base() - uintptr(lo)
	if err := ld.build(); err != nil {
		if rerr := slot.Release(); rerr != nil {
			err = errors.Join(err, ld.errorf("releasing the slot after failure: %w", rerr))
		}
		return nil, err
	}
	return ld.lib, nil
}

// span checks the segments against the OS page size and returns the
// page-rounded address range they span.
func (ld *loader) span() (lo, hi uint64, err error) {
	pg := uint64(ld.page)
	loads := ld.f.Loads
	for i, s := range loads {
		if s.Vaddr%pg != s.Offset%pg {
			return 0, 0, ld.unsupported("PT_LOAD %d: p_vaddr %#x and p_offset %#x differ modulo the %#x-byte page", i, s.Vaddr, s.Offset, pg)
		}
		if i > 0 {
			prev := loads[i-1]
			if pageUp(prev.Vaddr+prev.Memsz, pg) > pageDown(s.Vaddr, pg) {
				return 0, 0, ld.unsupported("PT_LOAD %d at %#x shares a %#x-byte page with the previous one, which ends at %#x", i, s.Vaddr, pg, prev.Vaddr+prev.Memsz)
			}
		}
	}
	last := loads[len(loads)-1]
	return pageDown(loads[0].Vaddr, pg), pageUp(last.Vaddr+last.Memsz, pg), nil
}

func pageDown(x, pg uint64) uint64 { return x &^ (pg - 1) }
func pageUp(x, pg uint64) uint64   { return (x + pg - 1) &^ (pg - 1) }

// build maps, relocates, protects and initialises the image in its slot.
func (ld *loader) build() error {
	if err := ld.mapSegments(); err != nil {
		return err
	}
	if err := ld.relocate(); err != nil {
		return err
	}
	if err := ld.protect(); err != nil {
		return err
	}
	if ld.opts.SkipInit {
		return nil
	}
	return ld.runInit()
}

// mapSegments maps every PT_LOAD at bias+p_vaddr. A segment is mapped with
// its own protection plus read (to check the mapping against the parsed
// bytes) and, if it has a .bss tail to zero, write: such a segment is made
// non-executable until its final protection is set, so that no page is
// ever writable and executable at once.
func (ld *loader) mapSegments() error {
	f, lib, slot, pg := ld.f, ld.lib, ld.lib.slot, ld.page
	ld.initProt = make([]osmem.Prot, len(f.Loads))
	for i, s := range f.Loads {
		prot := s.Prot | osmem.ProtRead
		if s.Memsz > s.Filesz && prot&osmem.ProtWrite == 0 {
			prot = (prot | osmem.ProtWrite) &^ osmem.ProtExec
		}
		ld.initProt[i] = prot
		vaddr := lib.bias + uintptr(s.Vaddr)
		start := vaddr &^ (pg - 1)
		fileEnd := start
		if s.Filesz > 0 {
			fileEnd = (vaddr + uintptr(s.Filesz) + pg - 1) &^ (pg - 1)
			off := pageDown(s.Offset, uint64(pg))
			if err := slot.MapFile(ld.obj, off, start, fileEnd-start, prot); err != nil {
				return ld.errorf("mapping PT_LOAD %d: %w", i, err)
			}
			// The parse was of bytes read separately: make sure the
			// mapping holds the same ones.
			if !bytes.Equal(osmem.Bytes(vaddr, uintptr(s.Filesz)), ld.data[s.Offset:s.Offset+s.Filesz]) {
				return ld.errorf("PT_LOAD %d: the mapped file differs from the bytes parsed (file modified during load?)", i)
			}
		}
		end := (vaddr + uintptr(s.Memsz) + pg - 1) &^ (pg - 1)
		if s.Memsz > s.Filesz {
			// Zero the rest of the last file page: the file's bytes
			// past p_filesz (other sections) must not show through
			// the .bss.
			if z := vaddr + uintptr(s.Filesz); z < fileEnd {
				clear(osmem.Bytes(z, fileEnd-z))
			}
			if end > fileEnd {
				if err := slot.Commit(fileEnd, end-fileEnd, prot); err != nil {
					return ld.errorf("committing the .bss of PT_LOAD %d: %w", i, err)
				}
			}
		}
		info := SegmentInfo{Start: start, End: end, Prot: s.Prot, FileOffset: pageDown(s.Offset, uint64(pg)), FileEnd: fileEnd}
		if r := f.Relro; r.Size > 0 && r.Vaddr >= s.Vaddr && r.Vaddr-s.Vaddr < s.Memsz {
			// As glibc: both ends round down, so a partial last page
			// stays writable.
			info.RelroStart = (lib.bias + uintptr(r.Vaddr)) &^ (pg - 1)
			info.RelroEnd = max((lib.bias+uintptr(r.Vaddr+r.Size))&^(pg-1), info.RelroStart)
		}
		lib.segs = append(lib.segs, info)
	}
	return nil
}

// relocate applies RELR, then DT_RELA, then DT_JMPREL, as glibc does.
func (ld *loader) relocate() error {
	f, bias := ld.f, ld.lib.bias
	for _, off := range f.Relr {
		w := osmem.Bytes(bias+uintptr(off), 8)
		binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+uint64(bias))
	}
	ld.bound = make(map[uint32]uintptr)
	for _, tab := range []struct {
		name string
		rs   []Reloc
	}{{"DT_RELA", f.Rela}, {"DT_JMPREL", f.PLTRela}} {
		for _, r := range tab.rs {
			val, err := ld.value(r)
			if err != nil {
				return err
			}
			binary.LittleEndian.PutUint64(osmem.Bytes(bias+uintptr(r.Off), 8), val)
		}
	}
	return nil
}

// relocName names a relocation type for errors, with its number.
func relocName(t elf.R_X86_64) string { return fmt.Sprintf("%v (type %d)", t, uint32(t)) }

// value computes what relocation r stores.
func (ld *loader) value(r Reloc) (uint64, error) {
	switch r.Type {
	case elf.R_X86_64_RELATIVE:
		return uint64(ld.lib.bias) + uint64(r.Addend), nil
	case elf.R_X86_64_64, elf.R_X86_64_GLOB_DAT, elf.R_X86_64_JMP_SLOT:
		// GLOB_DAT and JUMP_SLOT are S in the psABI; their addend is 0
		// in practice and added as glibc and musl do. Symbol 0 is, as
		// in glibc, a local symbol of value 0: S is the load bias.
		s := ld.lib.bias
		if r.Sym != 0 {
			var err error
			if s, err = ld.resolve(r); err != nil {
				return 0, err
			}
		}
		return uint64(s) + uint64(r.Addend), nil
	}
	return 0, ld.unsupported("relocation %s at %#x is not supported", relocName(r.Type), r.Off)
}

// resolve binds the symbol relocation r refers to: the library's own
// definition, else Options.Resolve, else 0 for a weak reference.
func (ld *loader) resolve(r Reloc) (uintptr, error) {
	if a, ok := ld.bound[r.Sym]; ok {
		return a, nil
	}
	s, ok := ld.f.Symbol(int(r.Sym))
	if !ok {
		return 0, ld.errorf("relocation %s at %#x names symbol %d, which does not exist", relocName(r.Type), r.Off, r.Sym)
	}
	var addr uintptr
	how := BoundSelf
	switch {
	case s.Type == elf.STT_TLS:
		return 0, ld.unsupported("relocation %s at %#x refers to thread-local symbol %q: TLS is not supported", relocName(r.Type), r.Off, s.Name)
	case s.Defined() && s.Type == elf.STT_GNU_IFUNC:
		return 0, ld.unsupported("relocation %s at %#x refers to indirect function %q: ifunc is not supported yet", relocName(r.Type), r.Off, s.Name)
	case s.Defined():
		addr = ld.lib.symAddr(s)
	default:
		a, found := uintptr(0), false
		if ld.opts.Resolve != nil {
			a, found = ld.opts.Resolve(s.Name)
		}
		switch {
		case found:
			addr, how = a, BoundResolver
		case s.Bind == elf.STB_WEAK:
			how = BoundWeakZero
		default:
			hint := ""
			if len(ld.f.Needed) > 0 {
				hint = fmt.Sprintf(" (the library needs %q, which privload does not load)", ld.f.Needed)
			}
			return 0, ld.errorf("undefined symbol %q (%s at %#x): not defined in the library nor supplied by Options.Resolve%s", s.Name, relocName(r.Type), r.Off, hint)
		}
	}
	ld.bound[r.Sym] = addr
	ld.lib.imports = append(ld.lib.imports, Import{Name: s.Name, BoundTo: addr, How: how})
	return addr, nil
}

// protect sets every segment's final protection, then makes PT_GNU_RELRO
// read-only. glibc protects RELRO before running initialisers, and so does
// privload: an initialiser has no business writing there.
func (ld *loader) protect() error {
	slot := ld.lib.slot
	for i, s := range ld.lib.segs {
		if ld.initProt[i] != s.Prot {
			if err := slot.Protect(s.Start, s.End-s.Start, s.Prot); err != nil {
				return ld.errorf("protecting PT_LOAD %d: %w", i, err)
			}
		}
	}
	for i, s := range ld.lib.segs {
		if s.RelroEnd > s.RelroStart {
			if err := slot.Protect(s.RelroStart, s.RelroEnd-s.RelroStart, s.Prot&^osmem.ProtWrite); err != nil {
				return ld.errorf("protecting PT_GNU_RELRO in PT_LOAD %d: %w", i, err)
			}
		}
	}
	return nil
}

// nullVector is the argv and envp initialisers are given: empty (argc 0).
// A package variable, so it never moves.
var nullVector [1]uintptr

// funcs returns the function pointers of an init or fini array, as
// relocated in memory, and of the single function fn (0: none), checking
// each one lies in an executable segment of the image before anything is
// called. Entries 0 and -1 are skipped, as glibc does.
func (l *Library) funcs(what string, arr Range, fn uint64) ([]uintptr, error) {
	var out []uintptr
	if fn != 0 {
		out = append(out, l.bias+uintptr(fn))
	}
	if arr.Size > 0 {
		b := osmem.Bytes(l.bias+uintptr(arr.Vaddr), uintptr(arr.Size))
		for i := 0; i+8 <= len(b); i += 8 {
			p := uintptr(binary.LittleEndian.Uint64(b[i:]))
			if p == 0 || p == ^uintptr(0) {
				continue
			}
			if p < l.bias || !l.file.IsCode(uint64(p-l.bias)) {
				return nil, fmt.Errorf("privload: %s: %s entry %d (%#x) is not in an executable segment of the image", l.path, what, i/8, p)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// runInit calls DT_INIT, then each DT_INIT_ARRAY entry in order, with
// (argc, argv, envp) = (0, {NULL}, {NULL}).
func (ld *loader) runInit() error {
	l := ld.lib
	fns, err := l.funcs("DT_INIT_ARRAY", l.file.InitArray, l.file.Init)
	if err != nil {
		return err
	}
	vec := uintptr(unsafe.Pointer(&nullVector))
	l.mu.Lock()
	l.inited = true
	l.mu.Unlock()
	for _, fn := range fns {
		purego.SyscallN(fn, 0, vec, vec)
	}
	return nil
}

// runFini calls the DT_FINI_ARRAY entries in reverse order, then DT_FINI.
func (l *Library) runFini() error {
	fns, err := l.funcs("DT_FINI_ARRAY", l.file.FiniArray, 0)
	if err != nil {
		return err
	}
	if l.file.Fini != 0 {
		fns = append([]uintptr{l.bias + uintptr(l.file.Fini)}, fns...)
	}
	for i := len(fns) - 1; i >= 0; i-- {
		purego.SyscallN(fns[i])
	}
	return nil
}
