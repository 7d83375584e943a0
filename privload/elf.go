package privload

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"unsafe"

	"github.com/reachvm/reachvm/internal/elfrel"
	"github.com/reachvm/reachvm/mem"
)

// This file is the strict ELF64 x86-64 parser. It works from what a loader
// works from, the ELF header, the program headers and PT_DYNAMIC, and never
// from section headers, which are optional at run time and which
// debug/elf relies on. Every offset, size and count read from the file is
// checked against the file's size with overflow checks before use, so that
// a malformed file yields a *FormatError and never a panic. debug/elf is
// used for its constants only.

// Error classes carried by FormatError, for errors.Is.
var (
	// ErrMalformed: the file breaks the ELF format or is inconsistent.
	ErrMalformed = errors.New("malformed ELF file")
	// ErrUnsupported: the file is valid ELF that privload does not load
	// (yet): an executable, initial-exec thread-local storage, text relocations, a
	// relocation type it does not implement.
	ErrUnsupported = errors.New("unsupported ELF file")
	// ErrLink: the file is loadable but cannot be linked: a dependency
	// is missing, or a symbol is defined nowhere in its search scope.
	ErrLink = errors.New("cannot link ELF file")
)

// FormatError says why a file cannot be parsed or loaded. It names the file
// so that a failure deep in a chain of loads is still attributable.
type FormatError struct {
	// File is the path or name the file was parsed under.
	File string
	// Reason says what is wrong, in words.
	Reason string
	// Class is ErrMalformed, ErrUnsupported or ErrLink.
	Class error
}

func (e *FormatError) Error() string { return "privload: " + e.File + ": " + e.Reason }

// Unwrap returns the error class.
func (e *FormatError) Unwrap() error { return e.Class }

// Sizes fixed by the ELF64 format.
const (
	ehdrSize = 64
	phdrSize = 56
	dynSize  = 16
	symSize  = 24
	relaSize = 24
	relrSize = 8
)

// Constants debug/elf lacks.
const (
	dtRelrsz  elf.DynTag = 35 // size of DT_RELR in bytes
	dtRelr    elf.DynTag = 36 // address of the RELR relocation table
	dtRelrent elf.DynTag = 37 // size of one RELR entry (8)

	stbGNUUnique elf.SymBind = 10 // STB_GNU_UNIQUE, in STB_LOOS's slot
)

// dtName names a dynamic tag, including the RELR tags debug/elf does not
// know.
func dtName(t elf.DynTag) string {
	switch t {
	case dtRelrsz:
		return "DT_RELRSZ"
	case dtRelr:
		return "DT_RELR"
	case dtRelrent:
		return "DT_RELRENT"
	}
	return t.String()
}

// maxSpan bounds the address range a file's PT_LOAD segments may span:
// an image larger than the rel32 window cannot be reached from vmcode
// anyway, and the bound keeps every sum below well clear of overflow.
const maxSpan = 1 << 31

// pageSize is the x86-64 page size the parser checks segment layout
// against; the loader checks again against the OS's page size.
const pageSize = 4096

// Segment is one PT_LOAD: where its bytes are in the file and where they
// go in memory, relative to the load base.
type Segment struct {
	// Vaddr and Memsz bound the segment in memory: [Vaddr, Vaddr+Memsz).
	Vaddr, Memsz uint64
	// Offset and Filesz bound the bytes taken from the file; the rest of
	// the segment (Memsz > Filesz: .bss) is zero-filled.
	Offset, Filesz uint64
	// Align is p_align (0 or 1: none).
	Align uint64
	// Prot is the final protection, from p_flags.
	Prot mem.Prot
}

// TLS is a library's PT_TLS: the template every thread's block of the
// module is made from. A block is Memsz bytes aligned to Align: a copy of
// the Filesz bytes at Vaddr (.tdata), then zeros (.tbss).
type TLS struct {
	// Vaddr is where the initialisation image lies, relative to the load
	// base, within the file-backed part of one PT_LOAD.
	Vaddr uint64
	// Filesz <= Memsz <= 16 MiB.
	Filesz, Memsz uint64
	// Align is p_align: a power of two, at most a page; 1 if the file
	// says 0.
	Align uint64
}

// Range is a piece of the image in the file's own virtual addresses
// (p_vaddr, relative to the load base, 64-bit whatever the host): what the
// parser reads, before the image has an address in the process. A range
// of process addresses is a mem.Range.
type Range struct {
	Vaddr, Size uint64
}

// Reloc is one Elf64_Rela entry.
type Reloc struct {
	// Off is where the relocation applies (r_offset), relative to the
	// load base.
	Off uint64
	// Type is the R_X86_64_* type.
	Type elf.R_X86_64
	// Sym indexes the dynamic symbol table; 0 means no symbol.
	Sym uint32
	// Addend is r_addend.
	Addend int64
}

// Symbol is one dynamic symbol table entry, decoded.
type Symbol struct {
	Name  string
	Value uint64
	Size  uint64
	Bind  elf.SymBind
	Type  elf.SymType
	Vis   elf.SymVis
	// Section is st_shndx: elf.SHN_UNDEF for an import, elf.SHN_ABS for an
	// absolute value, anything else for a definition relative to the base.
	Section elf.SectionIndex
	// HiddenVersion is set when DT_VERSYM marks the symbol as a
	// non-default version (foo@VER rather than foo@@VER): unversioned
	// lookups must not bind to it.
	HiddenVersion bool
	// Version is the name of the symbol's version (DT_VERSYM with
	// DT_VERDEF for a definition, DT_VERNEED for a reference); "" if
	// unversioned.
	Version string
}

// Defined reports whether the symbol is defined in this file.
func (s Symbol) Defined() bool { return s.Section != elf.SHN_UNDEF }

// File is a parsed shared object. Everything in it has been validated
// against the file: offsets and sizes are in range, symbol names are
// terminated strings, relocation targets lie in writable segments.
//
// A File keeps a reference to the data it was parsed from, which the
// caller must not modify.
type File struct {
	// Name is the name the file was parsed under (its path).
	Name string
	// Loads are the PT_LOAD segments, in ascending address order and not
	// overlapping.
	Loads []Segment
	// Dynamic is PT_DYNAMIC.
	Dynamic Range
	// TLS is PT_TLS, the library's thread-local storage template; nil
	// if it has none.
	TLS *TLS
	// EHFrameHdr is PT_GNU_EH_FRAME (.eh_frame_hdr), which leads to the
	// unwind tables; Size 0 if absent. It lies in one PT_LOAD.
	EHFrameHdr Range
	// Relro is PT_GNU_RELRO; Size 0 if absent. It lies in a writable
	// segment and becomes read-only once relocations are applied.
	Relro Range
	// Soname is DT_SONAME, "" if absent.
	Soname string
	// Needed lists DT_NEEDED, in order.
	Needed []string
	// Runpath lists the directories of DT_RUNPATH, unexpanded
	// ("$ORIGIN/../lib"); an empty element is the current directory.
	Runpath []string
	// Rpath lists the directories of DT_RPATH, likewise. The loader
	// searches it only for a library that has no DT_RUNPATH (and for
	// the libraries it loads, up the chain), as ld.so does.
	Rpath []string
	// Init and Fini are DT_INIT and DT_FINI, 0 if absent.
	Init, Fini uint64
	// InitArray and FiniArray are DT_INIT_ARRAY(SZ) and
	// DT_FINI_ARRAY(SZ): arrays of function pointers, read from memory
	// after relocation (their file contents are typically 0 plus a
	// RELATIVE relocation).
	InitArray, FiniArray Range
	// Rela is DT_RELA(SZ); PLTRela is DT_JMPREL/DT_PLTRELSZ.
	Rela, PLTRela []Reloc
	// Relr lists the places DT_RELR relocates (base added in place), decoded.
	Relr []uint64
	// Flags and Flags1 are DT_FLAGS and DT_FLAGS_1.
	Flags, Flags1 uint64
	// Symbolic is set by DT_SYMBOLIC (or DF_SYMBOLIC): the library binds
	// its own references to its own definitions first, as privload
	// always does.
	Symbolic bool
	// NumSymbols is the number of dynamic symbols, from the hash tables
	// (DT_SYMTAB carries no count).
	NumSymbols int
	// Versions is indexed by version index (the values of DT_VERSYM,
	// without the hidden bit): the versions the file defines
	// (DT_VERDEF) and the ones it needs from other libraries
	// (DT_VERNEED). Entries 0 (local) and 1 (global, the base
	// definition) are empty: a symbol with either is unversioned. Nil
	// when the file has no version tables.
	Versions []Version

	// data is the file, or, when chunks is set, the first chunk: a
	// loader reads only the parts of a file that parsing needs.
	data   []byte
	size   uint64
	chunks []chunk
	// missed is set when a sparse parse wanted bytes it was not given.
	missed bool
	strtab []byte
	symtab []byte
	versym []byte
	gnu    *gnuHash
	sysv   *sysvHash
}

// chunk is a piece of a file read for a sparse parse: b holds the file's
// bytes from offset off.
type chunk struct {
	off uint64
	b   []byte
}

// Version is one symbol version, defined by a file or needed by it.
type Version struct {
	// Name is the version's name ("GLIBC_2.14", "ZLIB_1.2.9").
	Name string
	// File is, for a version the file needs, the library it is needed
	// from (DT_VERNEED's vn_file); "" for a version the file defines.
	File string
	// Defined is set for a version of DT_VERDEF.
	Defined bool
	// Weak is set for a weak version need (VER_FLG_WEAK): its absence
	// is not an error.
	Weak bool

	// hash is the ELF hash of Name; cname is Name with a NUL, for dlvsym.
	hash  uint32
	cname []byte
}

// parser carries the state of one Parse call.
type parser struct {
	f *File
	// data is the file or, in a sparse parse, its first chunk, which
	// starts at offset 0; size is the file's size.
	data []byte
	size uint64
}

func (p *parser) malformed(format string, args ...any) error {
	return &FormatError{File: p.f.Name, Reason: fmt.Sprintf(format, args...), Class: ErrMalformed}
}

func (p *parser) unsupported(format string, args ...any) error {
	return &FormatError{File: p.f.Name, Reason: fmt.Sprintf(format, args...), Class: ErrUnsupported}
}

// inFile reports whether [off, off+size) lies within the file.
func (p *parser) inFile(off, size uint64) bool {
	n := p.size
	return off <= n && size <= n-off
}

// mul returns a*b and whether it did not overflow.
func mul(a, b uint64) (uint64, bool) {
	hi, lo := bits.Mul64(a, b)
	return lo, hi == 0
}

// Parse parses data, the contents of the shared object called name, and
// validates everything a loader will use. It never panics: anything
// malformed or unsupported gives a *FormatError naming the file.
func Parse(name string, data []byte) (*File, error) {
	p := &parser{f: &File{Name: name, data: data, size: uint64(len(data))}, data: data, size: uint64(len(data))}
	if err := p.header(); err != nil {
		return nil, err
	}
	return p.f, nil
}

// parseSparse parses a file of size bytes of which only chunks were read;
// the first chunk must start at offset 0. If parsing needed bytes outside
// the chunks, it returns missed: the caller reads the whole file and
// calls Parse, whose verdict is then the file's. A loader reads this way
// because what parsing needs (headers, dynamic section, symbol, string,
// hash, version and relocation tables) is a small part of a library,
// most of which is code the loader maps without reading.
func parseSparse(name string, size uint64, chunks []chunk) (f *File, missed bool, err error) {
	if len(chunks) == 0 || chunks[0].off != 0 {
		return nil, true, nil
	}
	p := &parser{f: &File{Name: name, data: chunks[0].b, size: size, chunks: chunks}, data: chunks[0].b, size: size}
	err = p.header()
	if p.f.missed {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, err
	}
	return p.f, false, nil
}

var le = binary.LittleEndian

// The reasons of the refusals of a file built for another system begin
// so: the library search passes over such a file, as ld.so does.
const (
	reasonOtherClass   = "class "
	reasonOtherMachine = "machine "
)

// header checks the ELF header and walks the program headers.
func (p *parser) header() error {
	d := p.data
	if p.size < ehdrSize {
		return p.malformed("truncated ELF header: file is %d bytes, the header needs %d", p.size, ehdrSize)
	}
	if len(d) < ehdrSize {
		p.f.missed = true
		return p.malformed("ELF header not read")
	}
	if string(d[:4]) != elf.ELFMAG {
		return p.malformed("bad magic %q: not an ELF file", d[:4])
	}
	switch {
	case elf.Class(d[elf.EI_CLASS]) != elf.ELFCLASS64:
		return p.unsupported(reasonOtherClass+"%v: only ELFCLASS64 is supported", elf.Class(d[elf.EI_CLASS]))
	case elf.Data(d[elf.EI_DATA]) != elf.ELFDATA2LSB:
		return p.unsupported("data encoding %v: only little-endian is supported", elf.Data(d[elf.EI_DATA]))
	case elf.Version(d[elf.EI_VERSION]) != elf.EV_CURRENT:
		return p.malformed("ident version %d, want %d", d[elf.EI_VERSION], elf.EV_CURRENT)
	}
	typ := elf.Type(le.Uint16(d[16:]))
	mach := elf.Machine(le.Uint16(d[18:]))
	version := le.Uint32(d[20:])
	phoff := le.Uint64(d[32:])
	ehsize := le.Uint16(d[52:])
	phentsize := le.Uint16(d[54:])
	phnum := le.Uint16(d[56:])
	switch {
	case mach != elf.EM_X86_64:
		return p.unsupported(reasonOtherMachine+"%v: only EM_X86_64 is supported", mach)
	case typ == elf.ET_EXEC:
		return p.unsupported("type ET_EXEC: an executable, not a shared object")
	case typ != elf.ET_DYN:
		return p.unsupported("type %v: not a shared object (ET_DYN)", typ)
	case version != uint32(elf.EV_CURRENT):
		return p.malformed("version %d, want %d", version, elf.EV_CURRENT)
	case ehsize != ehdrSize:
		return p.malformed("e_ehsize %d, want %d", ehsize, ehdrSize)
	case phentsize != phdrSize:
		return p.malformed("e_phentsize %d, want %d", phentsize, phdrSize)
	case phnum == 0:
		return p.malformed("no program headers")
	case phnum == 0xffff:
		// PN_XNUM: the count lives in section header 0, which a loader
		// does not read.
		return p.unsupported("e_phnum is PN_XNUM (count in section header 0)")
	}
	phsize := uint64(phnum) * phdrSize
	if !p.inFile(phoff, phsize) {
		return p.malformed("program headers [%#x, +%#x) lie outside the file (%#x bytes)", phoff, phsize, p.size)
	}
	if phoff+phsize > uint64(len(d)) {
		p.f.missed = true
		return p.malformed("program headers not read")
	}
	return p.programHeaders(d[phoff : phoff+phsize])
}

func protOf(flags elf.ProgFlag) mem.Prot {
	var pr mem.Prot
	if flags&elf.PF_R != 0 {
		pr |= mem.ProtRead
	}
	if flags&elf.PF_W != 0 {
		pr |= mem.ProtWrite
	}
	if flags&elf.PF_X != 0 {
		pr |= mem.ProtExec
	}
	return pr
}

func (p *parser) programHeaders(ph []byte) error {
	f := p.f
	var dyn, relro, tls, ehf *Segment
	stack := false
	for i := 0; i+phdrSize <= len(ph); i += phdrSize {
		h := ph[i : i+phdrSize]
		typ := elf.ProgType(le.Uint32(h[0:]))
		flags := elf.ProgFlag(le.Uint32(h[4:]))
		s := Segment{
			Offset: le.Uint64(h[8:]),
			Vaddr:  le.Uint64(h[16:]),
			Filesz: le.Uint64(h[32:]),
			Memsz:  le.Uint64(h[40:]),
			Align:  le.Uint64(h[48:]),
			Prot:   protOf(flags),
		}
		n := i / phdrSize
		switch typ {
		case elf.PT_LOAD:
			if s.Memsz == 0 && s.Filesz == 0 {
				// ld emits an empty PT_LOAD where a segment has no
				// sections (no read-only data with -z separate-code):
				// it maps nothing, and glibc skips it too.
				continue
			}
			if err := p.load(n, s); err != nil {
				return err
			}
			f.Loads = append(f.Loads, s)
		case elf.PT_DYNAMIC:
			if dyn != nil {
				return p.malformed("more than one PT_DYNAMIC")
			}
			dyn = &s
		case elf.PT_GNU_RELRO:
			if relro != nil {
				return p.malformed("more than one PT_GNU_RELRO")
			}
			relro = &s
		case elf.PT_INTERP:
			return p.unsupported("has PT_INTERP: a program, not a shared object")
		case elf.PT_TLS:
			if tls != nil {
				return p.malformed("more than one PT_TLS")
			}
			tls = &s
		case elf.PT_GNU_EH_FRAME:
			if ehf != nil {
				return p.malformed("more than one PT_GNU_EH_FRAME")
			}
			ehf = &s
		case elf.PT_GNU_STACK:
			stack = true
			if flags&elf.PF_X != 0 {
				// glibc made every thread stack executable for
				// such a library (and since 2.41 refuses it); a
				// private loader cannot, and must not.
				return p.unsupported("PT_GNU_STACK asks for an executable stack, which privload does not provide")
			}
		}
		// PT_PHDR, PT_NOTE, PT_GNU_STACK, PT_GNU_EH_FRAME,
		// PT_GNU_PROPERTY and OS/processor-specific types are of no
		// use to this loader.
	}
	if len(f.Loads) == 0 {
		return p.malformed("no PT_LOAD segment")
	}
	if !stack {
		// ld omits PT_GNU_STACK when an input object lacks a
		// .note.GNU-stack section (hand-written assembly, old
		// toolchains), and glibc's loader then takes the default
		// stack permissions, which on x86-64 include execute: the
		// same request as PF_X.
		return p.unsupported("no PT_GNU_STACK: glibc takes its absence as asking for an executable stack, which privload does not provide")
	}
	lo := mem.AlignDown(f.Loads[0].Vaddr, pageSize)
	last := f.Loads[len(f.Loads)-1]
	if end := last.Vaddr + last.Memsz; end-lo > maxSpan {
		return p.unsupported("PT_LOAD segments span %#x bytes, more than %#x", end-lo, uint64(maxSpan))
	}
	if dyn == nil {
		return p.malformed("no PT_DYNAMIC: nothing to link")
	}
	if tls != nil {
		if err := p.tls(*tls); err != nil {
			return err
		}
	}
	if ehf != nil {
		// The unwinder reads the header's first words (version and
		// encodings, then the .eh_frame pointer) from memory.
		if ehf.Memsz < 8 {
			return p.malformed("PT_GNU_EH_FRAME: %#x bytes, too short for its header", ehf.Memsz)
		}
		if _, ok := f.segmentAt(ehf.Vaddr, ehf.Memsz); !ok {
			return p.malformed("PT_GNU_EH_FRAME [%#x, +%#x) does not lie within one PT_LOAD", ehf.Vaddr, ehf.Memsz)
		}
		f.EHFrameHdr = Range{Vaddr: ehf.Vaddr, Size: ehf.Memsz}
	}
	if relro != nil {
		if relro.Memsz == 0 {
			return p.malformed("empty PT_GNU_RELRO")
		}
		seg, ok := f.segmentAt(relro.Vaddr, relro.Memsz)
		if !ok || seg.Prot&mem.ProtWrite == 0 {
			return p.malformed("PT_GNU_RELRO [%#x, +%#x) does not lie within one writable PT_LOAD", relro.Vaddr, relro.Memsz)
		}
		f.Relro = Range{Vaddr: relro.Vaddr, Size: relro.Memsz}
	}
	return p.dynamic(*dyn)
}

// maxTLS bounds a module's thread-local block (p_memsz of PT_TLS): every
// thread that calls into the library gets one, and the bound keeps a
// hostile header from asking for gigabytes per thread.
const maxTLS = 1 << 24

// tls validates PT_TLS and records it as f.TLS. Its initialisation image
// (.tdata, p_filesz bytes) is read from the mapped library when a thread's
// block is made, so it must lie in the file-backed part of one PT_LOAD,
// which also puts it in the file.
func (p *parser) tls(s Segment) error {
	switch {
	case s.Filesz > s.Memsz:
		return p.malformed("PT_TLS: p_filesz %#x exceeds p_memsz %#x", s.Filesz, s.Memsz)
	case s.Memsz > maxTLS:
		return p.unsupported("PT_TLS: a %#x-byte thread-local block is more than the %#x bytes privload allows", s.Memsz, uint64(maxTLS))
	case s.Align > 1 && s.Align&(s.Align-1) != 0:
		return p.malformed("PT_TLS: p_align %#x is not a power of two", s.Align)
	case s.Align > pageSize:
		return p.unsupported("PT_TLS: p_align %#x is more than a page", s.Align)
	}
	if s.Filesz > 0 {
		seg, ok := p.f.segmentAt(s.Vaddr, s.Filesz)
		if !ok || s.Vaddr-seg.Vaddr+s.Filesz > seg.Filesz {
			return p.malformed("PT_TLS: its image [%#x, +%#x) does not lie in the file-backed part of one PT_LOAD", s.Vaddr, s.Filesz)
		}
	}
	p.f.TLS = &TLS{Vaddr: s.Vaddr, Filesz: s.Filesz, Memsz: s.Memsz, Align: max(s.Align, 1)}
	return nil
}

// load validates PT_LOAD number n against the file and the previous one.
func (p *parser) load(n int, s Segment) error {
	f := p.f
	switch {
	case s.Filesz > s.Memsz:
		return p.malformed("PT_LOAD %d: p_filesz %#x exceeds p_memsz %#x", n, s.Filesz, s.Memsz)
	case !p.inFile(s.Offset, s.Filesz):
		return p.malformed("PT_LOAD %d: file range [%#x, +%#x) lies outside the file (%#x bytes)", n, s.Offset, s.Filesz, p.size)
	case s.Vaddr > maxSpan*2 || s.Memsz > maxSpan:
		return p.unsupported("PT_LOAD %d: [%#x, +%#x) is beyond the %#x-byte image privload supports", n, s.Vaddr, s.Memsz, uint64(maxSpan))
	case s.Align > 1 && s.Align&(s.Align-1) != 0:
		return p.malformed("PT_LOAD %d: p_align %#x is not a power of two", n, s.Align)
	case s.Vaddr%pageSize != s.Offset%pageSize:
		return p.malformed("PT_LOAD %d: p_vaddr %#x and p_offset %#x differ modulo the page size", n, s.Vaddr, s.Offset)
	case s.Align > 1 && s.Vaddr%s.Align != s.Offset%s.Align:
		return p.malformed("PT_LOAD %d: p_vaddr %#x and p_offset %#x differ modulo p_align %#x", n, s.Vaddr, s.Offset, s.Align)
	}
	if len(f.Loads) > 0 {
		prev := f.Loads[len(f.Loads)-1]
		if s.Vaddr < prev.Vaddr {
			return p.malformed("PT_LOAD %d at %#x follows one at %#x: PT_LOAD segments must be sorted by address", n, s.Vaddr, prev.Vaddr)
		}
		if s.Vaddr < prev.Vaddr+prev.Memsz {
			return p.malformed("PT_LOAD %d [%#x, +%#x) overlaps the previous one [%#x, +%#x)", n, s.Vaddr, s.Memsz, prev.Vaddr, prev.Memsz)
		}
	}
	return nil
}

// segmentAt returns the PT_LOAD that wholly contains [vaddr, vaddr+size)
// in memory.
func (f *File) segmentAt(vaddr, size uint64) (Segment, bool) {
	i := sort.Search(len(f.Loads), func(i int) bool {
		s := f.Loads[i]
		return s.Vaddr+s.Memsz > vaddr
	})
	if i == len(f.Loads) {
		return Segment{}, false
	}
	s := f.Loads[i]
	if vaddr < s.Vaddr || size > s.Memsz-(vaddr-s.Vaddr) {
		return Segment{}, false
	}
	return s, true
}

// fileBytes returns the file bytes that are loaded at [vaddr, vaddr+size):
// the range must lie in the file-backed part of one PT_LOAD.
// It also returns the file offset of the first byte.
func (f *File) fileBytes(vaddr, size uint64) ([]byte, uint64, bool) {
	s, ok := f.segmentAt(vaddr, size)
	if !ok {
		return nil, 0, false
	}
	rel := vaddr - s.Vaddr
	if rel > s.Filesz || size > s.Filesz-rel {
		return nil, 0, false
	}
	off := s.Offset + rel
	if f.chunks == nil {
		return f.data[off : off+size : off+size], off, true
	}
	for _, c := range f.chunks {
		if off >= c.off && off-c.off <= uint64(len(c.b)) && size <= uint64(len(c.b))-(off-c.off) {
			b := c.b[off-c.off:]
			return b[:size:size], off, true
		}
	}
	f.missed = true
	return nil, 0, false
}

// dynTags collects the single-valued dynamic tags the parser uses.
type dynTags struct {
	seen   tagSet
	needed []uint64
	soname uint64
}

// Tags privload reads besides singleTags: DT_RPATH and DT_RUNPATH.
const (
	dtRpath   = elf.DT_RPATH
	dtRunpath = elf.DT_RUNPATH
)

// tagSet holds the values of the single-valued dynamic tags privload
// reads: a fixed array rather than a map, since a loader parses a
// dynamic section per library loaded.
type tagSet struct {
	val  [tagSlots]uint64
	mask uint64
}

// tagSlots counts the slots: the standard tags up to DT_RELRENT, then the
// GNU ones.
const tagSlots = int(dtRelrent) + 1 + 7

// tagSlot returns the slot of tag, or -1 if privload does not read it
// (or it may appear several times, as DT_NEEDED).
func tagSlot(tag elf.DynTag) int {
	switch {
	case tag == elf.DT_NEEDED || tag == elf.DT_NULL:
		return -1
	case tag <= dtRelrent:
		return int(tag)
	}
	switch tag {
	case elf.DT_GNU_HASH:
		return int(dtRelrent) + 1
	case elf.DT_VERSYM:
		return int(dtRelrent) + 2
	case elf.DT_FLAGS_1:
		return int(dtRelrent) + 3
	case elf.DT_VERDEF:
		return int(dtRelrent) + 4
	case elf.DT_VERDEFNUM:
		return int(dtRelrent) + 5
	case elf.DT_VERNEED:
		return int(dtRelrent) + 6
	case elf.DT_VERNEEDNUM:
		return int(dtRelrent) + 7
	}
	return -1
}

func (s *tagSet) get(tag elf.DynTag) (uint64, bool) {
	i := tagSlot(tag)
	if i < 0 || s.mask&(1<<i) == 0 {
		return 0, false
	}
	return s.val[i], true
}

func (s *tagSet) has(tag elf.DynTag) bool {
	_, ok := s.get(tag)
	return ok
}

func (s *tagSet) set(tag elf.DynTag, v uint64) {
	i := tagSlot(tag)
	s.val[i] = v
	s.mask |= 1 << i
}

// singleTag reports whether tag is one of those that may appear at most
// once, and which privload reads.
func singleTag(tag elf.DynTag) bool {
	switch tag {
	case elf.DT_PLTRELSZ, elf.DT_HASH, elf.DT_STRTAB, elf.DT_SYMTAB,
		elf.DT_RELA, elf.DT_RELASZ, elf.DT_RELAENT, elf.DT_STRSZ,
		elf.DT_SYMENT, elf.DT_INIT, elf.DT_FINI, elf.DT_SONAME,
		elf.DT_PLTREL, elf.DT_JMPREL, elf.DT_INIT_ARRAY,
		elf.DT_FINI_ARRAY, elf.DT_INIT_ARRAYSZ, elf.DT_FINI_ARRAYSZ,
		elf.DT_FLAGS, dtRelrsz, dtRelr, dtRelrent,
		elf.DT_GNU_HASH, elf.DT_VERSYM, elf.DT_FLAGS_1,
		elf.DT_VERDEF, elf.DT_VERDEFNUM, elf.DT_VERNEED, elf.DT_VERNEEDNUM,
		dtRpath, dtRunpath:
		return true
	}
	return false
}

func (p *parser) dynamic(dyn Segment) error {
	f := p.f
	if dyn.Filesz == 0 || !p.inFile(dyn.Offset, dyn.Filesz) {
		return p.malformed("PT_DYNAMIC file range [%#x, +%#x) is empty or lies outside the file (%#x bytes)", dyn.Offset, dyn.Filesz, p.size)
	}
	// The loader reads PT_DYNAMIC from memory, a parser from the file:
	// both must see the same bytes.
	b, off, ok := f.fileBytes(dyn.Vaddr, dyn.Filesz)
	if !ok || off != dyn.Offset {
		return p.malformed("PT_DYNAMIC [%#x, +%#x) at file offset %#x is not the file-backed part of a PT_LOAD", dyn.Vaddr, dyn.Filesz, dyn.Offset)
	}
	f.Dynamic = Range{Vaddr: dyn.Vaddr, Size: dyn.Filesz}
	var t dynTags
	terminated := false
	for i := 0; i+dynSize <= len(b); i += dynSize {
		tag := elf.DynTag(le.Uint64(b[i:]))
		val := le.Uint64(b[i+8:])
		if tag == elf.DT_NULL {
			terminated = true
			break
		}
		switch tag {
		case elf.DT_NEEDED:
			t.needed = append(t.needed, val)
			continue
		case elf.DT_TEXTREL:
			return p.unsupported("has DT_TEXTREL: text relocations are refused (they need writable code)")
		case elf.DT_REL, elf.DT_RELSZ, elf.DT_RELENT:
			return p.unsupported("has %v: REL relocations are not used on x86-64", tag)
		case elf.DT_SYMBOLIC:
			f.Symbolic = true
			continue
		}
		if singleTag(tag) {
			if t.seen.has(tag) {
				return p.malformed("dynamic tag %s appears twice", dtName(tag))
			}
			t.seen.set(tag, val)
		}
	}
	if !terminated {
		return p.malformed("PT_DYNAMIC has no DT_NULL terminator")
	}
	return p.tables(&t)
}

// table resolves a (pointer, size) pair of dynamic tags to file bytes.
func (p *parser) table(t *dynTags, ptrTag, sizeTag elf.DynTag) ([]byte, bool, error) {
	ptr, hasPtr := t.seen.get(ptrTag)
	size, hasSize := t.seen.get(sizeTag)
	switch {
	case !hasPtr && !hasSize:
		return nil, false, nil
	case !hasPtr:
		if size == 0 {
			return nil, false, nil
		}
		return nil, false, p.malformed("%s without %s", dtName(sizeTag), dtName(ptrTag))
	case !hasSize:
		return nil, false, p.malformed("%s without %s", dtName(ptrTag), dtName(sizeTag))
	case size == 0:
		return nil, true, nil
	}
	b, _, ok := p.f.fileBytes(ptr, size)
	if !ok {
		return nil, false, p.malformed("%s [%#x, +%#x) does not lie in the file-backed part of a PT_LOAD", dtName(ptrTag), ptr, size)
	}
	return b, true, nil
}

// str returns the NUL-terminated string at off in the string table.
//
// The string shares the file's bytes rather than copying them (a File's
// data must not be modified, see File): names are read by the thousand
// when libraries load, and copying each was a measurable part of it.
func (f *File) str(off uint64) (string, bool) {
	if off >= uint64(len(f.strtab)) {
		return "", false
	}
	b, ok := f.strBytes(off)
	if !ok || len(b) == 0 {
		return "", ok
	}
	return unsafe.String(&b[0], len(b)), true
}

// strBytes is str without the copy.
func (f *File) strBytes(off uint64) ([]byte, bool) {
	if off >= uint64(len(f.strtab)) {
		return nil, false
	}
	s := f.strtab[off:]
	i := bytes.IndexByte(s, 0)
	if i < 0 {
		return nil, false
	}
	return s[:i], true
}

func (p *parser) tables(t *dynTags) error {
	f := p.f
	f.Flags, _ = t.seen.get(elf.DT_FLAGS)
	f.Flags1, _ = t.seen.get(elf.DT_FLAGS_1)
	if f.Flags&uint64(elf.DF_TEXTREL) != 0 {
		return p.unsupported("DT_FLAGS has DF_TEXTREL: text relocations are refused (they need writable code)")
	}
	// DF_STATIC_TLS (initial-exec TLS of another module) is not refused
	// here: the TPOFF relocations it implies are, by the loader, with
	// their type named; the parser still serves for inspection.
	if f.Flags&uint64(elf.DF_SYMBOLIC) != 0 {
		f.Symbolic = true
	}

	// Strings.
	strtab, _, err := p.table(t, elf.DT_STRTAB, elf.DT_STRSZ)
	if err != nil {
		return err
	}
	f.strtab = strtab
	if len(strtab) > 0 && strtab[len(strtab)-1] != 0 {
		return p.malformed("DT_STRTAB does not end with a NUL byte")
	}
	for _, off := range t.needed {
		s, ok := f.str(off)
		if !ok {
			return p.malformed("DT_NEEDED string offset %#x is outside DT_STRTAB (%#x bytes)", off, len(strtab))
		}
		f.Needed = append(f.Needed, s)
	}
	for _, tag := range []elf.DynTag{dtRunpath, dtRpath} {
		off, ok := t.seen.get(tag)
		if !ok {
			continue
		}
		s, ok := f.str(off)
		if !ok {
			return p.malformed("%v string offset %#x is outside DT_STRTAB (%#x bytes)", tag, off, len(strtab))
		}
		if s == "" {
			continue
		}
		if tag == dtRunpath {
			f.Runpath = strings.Split(s, ":")
		} else {
			f.Rpath = strings.Split(s, ":")
		}
	}
	if off, ok := t.seen.get(elf.DT_SONAME); ok {
		s, ok := f.str(off)
		if !ok {
			return p.malformed("DT_SONAME string offset %#x is outside DT_STRTAB (%#x bytes)", off, len(strtab))
		}
		f.Soname = s
	}

	// Symbols and hash tables.
	if err := p.symbols(t, p.maxSymRef(t)); err != nil {
		return err
	}

	// Relocations.
	if ent, ok := t.seen.get(elf.DT_RELAENT); ok && ent != relaSize {
		return p.malformed("DT_RELAENT %d, want %d", ent, relaSize)
	}
	rela, has, err := p.table(t, elf.DT_RELA, elf.DT_RELASZ)
	if err != nil {
		return err
	}
	if has {
		if _, ok := t.seen.get(elf.DT_RELAENT); !ok {
			return p.malformed("DT_RELA without DT_RELAENT")
		}
		if f.Rela, err = p.relocs("DT_RELA", rela); err != nil {
			return err
		}
	}
	plt, has, err := p.table(t, elf.DT_JMPREL, elf.DT_PLTRELSZ)
	if err != nil {
		return err
	}
	if has {
		if kind, ok := t.seen.get(elf.DT_PLTREL); !ok || elf.DynTag(kind) != elf.DT_RELA {
			return p.malformed("DT_JMPREL: DT_PLTREL is %v, want DT_RELA", elf.DynTag(kind))
		}
		if f.PLTRela, err = p.relocs("DT_JMPREL", plt); err != nil {
			return err
		}
	}
	if ent, ok := t.seen.get(dtRelrent); ok && ent != relrSize {
		return p.malformed("DT_RELRENT %d, want %d", ent, relrSize)
	}
	relr, has, err := p.table(t, dtRelr, dtRelrsz)
	if err != nil {
		return err
	}
	if has {
		if f.Relr, err = p.relr(relr); err != nil {
			return err
		}
	}

	// Initialisers and finalisers.
	for _, fn := range []struct {
		tag elf.DynTag
		dst *uint64
	}{{elf.DT_INIT, &f.Init}, {elf.DT_FINI, &f.Fini}} {
		v, ok := t.seen.get(fn.tag)
		if !ok {
			continue
		}
		if !f.IsCode(v) {
			return p.malformed("%v %#x is not in an executable PT_LOAD", fn.tag, v)
		}
		*fn.dst = v
	}
	for _, arr := range []struct {
		ptr, size elf.DynTag
		dst       *Range
	}{{elf.DT_INIT_ARRAY, elf.DT_INIT_ARRAYSZ, &f.InitArray}, {elf.DT_FINI_ARRAY, elf.DT_FINI_ARRAYSZ, &f.FiniArray}} {
		ptr, hasPtr := t.seen.get(arr.ptr)
		size, hasSize := t.seen.get(arr.size)
		if !hasPtr && !hasSize {
			continue
		}
		if hasPtr != hasSize {
			return p.malformed("%v and %v must come together", arr.ptr, arr.size)
		}
		if size%8 != 0 {
			return p.malformed("%v %#x is not a multiple of 8", arr.size, size)
		}
		if size == 0 {
			continue
		}
		if s, ok := f.segmentAt(ptr, size); !ok || s.Prot&mem.ProtWrite == 0 {
			return p.malformed("%v [%#x, +%#x) does not lie within one writable PT_LOAD", arr.ptr, ptr, size)
		}
		*arr.dst = Range{Vaddr: ptr, Size: size}
	}
	return nil
}

// IsCode reports whether vaddr (relative to the base) lies in an executable
// PT_LOAD: the loader checks every function pointer it is about to call.
func (f *File) IsCode(vaddr uint64) bool {
	s, ok := f.segmentAt(vaddr, 1)
	return ok && s.Prot&mem.ProtExec != 0
}

// writable reports whether an 8-byte word at vaddr lies in a writable
// PT_LOAD: where every relocation must apply, since text relocations are
// refused.
func (f *File) writable(vaddr uint64) bool {
	s, ok := f.segmentAt(vaddr, 8)
	return ok && s.Prot&mem.ProtWrite != 0
}

// maxSymRef returns the highest symbol index DT_RELA and DT_JMPREL name,
// reading them without validation (relocs does that).
func (p *parser) maxSymRef(t *dynTags) uint64 {
	var m uint64
	for _, tab := range [2][2]elf.DynTag{{elf.DT_RELA, elf.DT_RELASZ}, {elf.DT_JMPREL, elf.DT_PLTRELSZ}} {
		ptr, ok1 := t.seen.get(tab[0])
		size, ok2 := t.seen.get(tab[1])
		if !ok1 || !ok2 {
			continue
		}
		b, _, ok := p.f.fileBytes(ptr, size)
		if !ok {
			continue
		}
		for i := 0; i+relaSize <= len(b); i += relaSize {
			m = max(m, le.Uint64(b[i+8:])>>32)
		}
	}
	return m
}

func (p *parser) relocs(what string, b []byte) ([]Reloc, error) {
	if len(b)%relaSize != 0 {
		return nil, p.malformed("%s size %#x is not a multiple of %d", what, len(b), relaSize)
	}
	out := make([]Reloc, 0, len(b)/relaSize)
	for i := 0; i+relaSize <= len(b); i += relaSize {
		info := le.Uint64(b[i+8:])
		r := Reloc{
			Off:    le.Uint64(b[i:]),
			Type:   elf.R_X86_64(info & 0xffffffff),
			Sym:    uint32(info >> 32),
			Addend: int64(le.Uint64(b[i+16:])),
		}
		n := i / relaSize
		if r.Type == elf.R_X86_64_NONE {
			continue
		}
		if !p.f.writable(r.Off) {
			return nil, p.unsupported("%s entry %d (%v) at %#x is not in a writable PT_LOAD: a text relocation", what, n, r.Type, r.Off)
		}
		if int(r.Sym) >= max(p.f.NumSymbols, 1) {
			return nil, p.malformed("%s entry %d (%v) names symbol %d, but there are %d", what, n, r.Type, r.Sym, p.f.NumSymbols)
		}
		out = append(out, r)
	}
	return out, nil
}

// relr decodes DT_RELR with elfrel.DecodeRELR (which checks the table's
// shape) and checks every word it relocates lies in a writable PT_LOAD.
func (p *parser) relr(b []byte) ([]uint64, error) {
	out := make([]uint64, 0, len(b)/elfrel.RELREntSize)
	err := elfrel.DecodeRELR(b, func(off uint64) error {
		if !p.f.writable(off) {
			return p.unsupported("DT_RELR relocates %#x, which is not in a writable PT_LOAD: a text relocation", off)
		}
		out = append(out, off)
		return nil
	})
	var re *elfrel.RELRError
	if errors.As(err, &re) {
		return nil, p.malformed("%v", re)
	}
	if err != nil {
		return nil, err
	}
	return out, nil
}
