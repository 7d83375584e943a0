package privload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/reachvm/reachvm/mem"
)

//go:generate bash testdata/pe/build.sh

// This file is the strict PE32+ (x86-64) parser, the Windows counterpart of
// elf.go. It works from what the Windows loader works from: the DOS
// header's e_lfanew, the PE signature, the COFF header, the PE32+ optional
// header with its data directories, and the section table. Every RVA and
// size read from the file is checked, with overflow checks, against
// SizeOfImage and against the file before use, so that a malformed file
// yields a *FormatError naming the file and never a panic. It builds on
// every OS so that it is fuzzed on Linux; debug/pe is not used because it
// reads COFF symbol tables a loader has no use for and resolves directories
// leniently.

// Sizes and limits fixed by the PE format or chosen by privload.
const (
	peDOSHeaderSize     = 64
	peCOFFHeaderSize    = 20
	peOptFixedSize      = 112 // PE32+ optional header up to the data directories
	peSectionHeaderSize = 40
	peNumDirs           = 16
	peExportDirSize     = 40
	peImportDescSize    = 20
	peTLSDirSize        = 40 // IMAGE_TLS_DIRECTORY64
	peRuntimeFuncSize   = 12 // RUNTIME_FUNCTION

	// peMaxImage bounds SizeOfImage: an image larger than the rel32
	// window could not be reached from vmcode anyway, and the bound keeps
	// every 32-bit RVA sum below clear of overflow in 64 bits.
	peMaxImage = 1 << 31
	// peMaxString bounds a name in the export or import tables.
	peMaxString = 1 << 16
	// peMaxImports bounds the imported functions of one file, so that
	// overlapping thunk tables cannot make parsing quadratic.
	peMaxImports = 1 << 20
	// peMaxDescriptors bounds the import descriptors of one file.
	peMaxDescriptors = 1 << 16
)

// PE header values privload checks for.
const (
	peMachineAMD64 = 0x8664
	peMagicPE32    = 0x10b
	peMagicPE32P   = 0x20b

	// COFF characteristics.
	peFileRelocsStripped = 0x0001
	peFileExecutable     = 0x0002
	peFileDLL            = 0x2000

	// Section characteristics.
	peScnCntCode     = 0x00000020
	peScnMemExecute  = 0x20000000
	peScnMemRead     = 0x40000000
	peScnMemWrite    = 0x80000000
	peScnDiscardable = 0x02000000
)

// BoundHostDLL is the Import.How of a PE import bound to a host DLL's
// export (LoadLibraryEx and GetProcAddress of the host).
const BoundHostDLL = "host-dll"

// Data directory indices (IMAGE_DIRECTORY_ENTRY_*).
const (
	PEDirExport      = 0
	PEDirImport      = 1
	PEDirResource    = 2
	PEDirException   = 3
	PEDirSecurity    = 4
	PEDirBaseReloc   = 5
	PEDirDebug       = 6
	PEDirArch        = 7
	PEDirGlobalPtr   = 8
	PEDirTLS         = 9
	PEDirLoadConfig  = 10
	PEDirBoundImport = 11
	PEDirIAT         = 12
	PEDirDelayImport = 13
	PEDirCLR         = 14
)

var peDirNames = [peNumDirs]string{
	"export", "import", "resource", "exception", "security", "base relocation",
	"debug", "architecture", "global pointer", "TLS", "load configuration",
	"bound import", "IAT", "delay import", "CLR runtime header", "reserved",
}

// peRelocNames names the IMAGE_REL_BASED_* types, so that an unsupported
// one is refused by name. Types 5, 7, 8 and 9 mean different things per
// machine; all are named.
var peRelocNames = [16]string{
	0:  "IMAGE_REL_BASED_ABSOLUTE",
	1:  "IMAGE_REL_BASED_HIGH",
	2:  "IMAGE_REL_BASED_LOW",
	3:  "IMAGE_REL_BASED_HIGHLOW",
	4:  "IMAGE_REL_BASED_HIGHADJ",
	5:  "IMAGE_REL_BASED_MIPS_JMPADDR/ARM_MOV32/RISCV_HIGH20",
	6:  "IMAGE_REL_BASED_RESERVED (6)",
	7:  "IMAGE_REL_BASED_THUMB_MOV32/RISCV_LOW12I",
	8:  "IMAGE_REL_BASED_RISCV_LOW12S/LOONGARCH_MARK_LA",
	9:  "IMAGE_REL_BASED_MIPS_JMPADDR16/IA64_IMM64",
	10: "IMAGE_REL_BASED_DIR64",
	11: "IMAGE_REL_BASED_TYPE11",
	12: "IMAGE_REL_BASED_TYPE12",
	13: "IMAGE_REL_BASED_TYPE13",
	14: "IMAGE_REL_BASED_TYPE14",
	15: "IMAGE_REL_BASED_TYPE15",
}

const (
	peRelAbsolute = 0
	peRelDir64    = 10
)

// PEDataDir is one data directory: an RVA and a size (for the security
// directory, a file offset and a size).
type PEDataDir struct {
	RVA, Size uint32
}

// PESection is one section header, validated.
type PESection struct {
	// Name is the section's name, NUL padding removed.
	Name string
	// VirtualAddress and MemSize bound the section in memory, relative
	// to the image base: [VirtualAddress, VirtualAddress+MemSize).
	// MemSize is VirtualSize, or SizeOfRawData where VirtualSize is 0.
	VirtualAddress, MemSize uint32
	// RawOffset and RawSize bound the bytes taken from the file:
	// min(SizeOfRawData, MemSize) bytes at PointerToRawData. The rest of
	// the section is zero-filled.
	RawOffset, RawSize uint32
	// Characteristics are the IMAGE_SCN_* flags.
	Characteristics uint32
}

// Prot is the protection the section's pages get once loaded, from its
// IMAGE_SCN_MEM_* flags.
func (s PESection) Prot() mem.Prot {
	var p mem.Prot
	if s.Characteristics&peScnMemRead != 0 {
		p |= mem.ProtRead
	}
	if s.Characteristics&peScnMemWrite != 0 {
		p |= mem.ProtWrite
	}
	if s.Characteristics&peScnMemExecute != 0 {
		p |= mem.ProtExec
	}
	return p
}

// PEExport is one entry of the export address table.
type PEExport struct {
	// Name is the export's name; "" for an export by ordinal only.
	Name string
	// Ordinal is the export's ordinal (the table's base plus its index).
	Ordinal uint16
	// RVA is where the export is, relative to the image base; 0 for a
	// forwarder.
	RVA uint32
	// Forwarder, if not "", is "DLL.Function" or "DLL.#ordinal": the
	// export is that function of another DLL.
	Forwarder string
}

// PEImport is one imported function.
type PEImport struct {
	// DLL is the name of the DLL it is imported from, as written.
	DLL string
	// Name is the function's name; "" when imported by ordinal.
	Name string
	// Hint is the index into the DLL's export name table the linker
	// expected (by-name imports only).
	Hint uint16
	// Ordinal is the ordinal it is imported by, if ByOrdinal.
	Ordinal   uint16
	ByOrdinal bool
	// IAT is the RVA of the import address table slot the loader fills.
	IAT uint32
}

// String names the import as "dll!name" or "dll!#ordinal".
func (i PEImport) String() string {
	if i.ByOrdinal {
		return fmt.Sprintf("%s!#%d", i.DLL, i.Ordinal)
	}
	return i.DLL + "!" + i.Name
}

// PETLS is the TLS directory (IMAGE_TLS_DIRECTORY64). Its fields are
// virtual addresses at the preferred image base.
type PETLS struct {
	StartAddressOfRawData, EndAddressOfRawData uint64
	AddressOfIndex, AddressOfCallBacks         uint64
	SizeOfZeroFill, Characteristics            uint32
}

// PEFile is a parsed PE32+ x86-64 image. Everything in it has been
// validated against the file and the image: sections lie in the image and
// their bytes in the file, every table the loader reads lies in a section,
// every relocation and import slot lies in a section, names are terminated.
//
// A PEFile keeps a reference to the data it was parsed from, which the
// caller must not modify.
type PEFile struct {
	// Name is the name the file was parsed under (its path).
	Name string
	// Characteristics are the COFF header's IMAGE_FILE_* flags.
	Characteristics uint16
	// Subsystem and DllCharacteristics are from the optional header.
	Subsystem, DllCharacteristics uint16
	// ImageBase is the preferred base address.
	ImageBase uint64
	// SizeOfImage and SizeOfHeaders are from the optional header;
	// SizeOfImage is at most 2 GiB.
	SizeOfImage, SizeOfHeaders uint32
	// SectionAlignment and FileAlignment are powers of two.
	SectionAlignment, FileAlignment uint32
	// Entry is AddressOfEntryPoint (for a DLL, DllMain), an RVA in an
	// executable section; 0 if none.
	Entry uint32
	// Dirs are the data directories; absent ones are zero.
	Dirs [peNumDirs]PEDataDir
	// Sections are the section headers, in ascending, non-overlapping
	// address order.
	Sections []PESection
	// DLLName is the name the export directory gives the DLL; "" if it
	// has no export directory.
	DLLName string
	// OrdinalBase is the export directory's ordinal base.
	OrdinalBase uint32
	// Exports are the export address table's used entries, in ordinal
	// order.
	Exports []PEExport
	// Imports are the imported functions, in import-table order.
	Imports []PEImport
	// Relocs are the RVAs of the IMAGE_REL_BASED_DIR64 base relocations,
	// in table order (IMAGE_REL_BASED_ABSOLUTE padding is dropped; any
	// other type is refused).
	Relocs []uint32
	// TLS is the TLS directory; nil if the image has none.
	TLS *PETLS
	// Pdata is the exception directory: RUNTIME_FUNCTION entries the
	// loader registers so that x64 unwinding works through the image;
	// Size is a multiple of 12.
	Pdata PEDataDir

	data   []byte
	byName map[string]int
	byOrd  map[uint16]int
}

// IsDLL reports whether the image is a DLL (IMAGE_FILE_DLL).
func (f *PEFile) IsDLL() bool { return f.Characteristics&peFileDLL != 0 }

// Export returns the export called name.
func (f *PEFile) Export(name string) (PEExport, bool) {
	i, ok := f.byName[name]
	if !ok {
		return PEExport{}, false
	}
	return f.Exports[i], true
}

// ExportByOrdinal returns the export with ordinal ord.
func (f *PEFile) ExportByOrdinal(ord uint16) (PEExport, bool) {
	i, ok := f.byOrd[ord]
	if !ok {
		return PEExport{}, false
	}
	return f.Exports[i], true
}

// ImportedDLLs returns the names of the DLLs the image imports from, in
// first-use order.
func (f *PEFile) ImportedDLLs() []string {
	var out []string
	for i, imp := range f.Imports {
		if i == 0 || imp.DLL != f.Imports[i-1].DLL {
			out = append(out, imp.DLL)
		}
	}
	return out
}

// Loadable reports why the loader would refuse the image, or nil. The
// parser accepts any well-formed PE32+ x86-64 image, executables and DLLs
// with TLS included, so that it can describe them; the loader loads only
// what it can load correctly:
//   - a DLL (an executable expects a process of its own);
//   - no TLS directory: the host loader would never allocate its slot or
//     run its callbacks for an image it does not know;
//   - no CLR header (a .NET assembly needs the CLR, not a loader);
//   - sections aligned to at least a page, so that each section can have
//     its own protection;
//   - relocations not stripped (IMAGE_FILE_RELOCS_STRIPPED): the image is
//     never placed at its preferred base;
//   - no section both writable and executable (W^X, docs/ARCHITECTURE.md
//     invariant 4), and the entry point in an executable one.
func (f *PEFile) Loadable() error {
	refuse := func(format string, args ...any) error {
		return &FormatError{File: f.Name, Reason: fmt.Sprintf(format, args...), Class: ErrUnsupported}
	}
	switch {
	case !f.IsDLL():
		return refuse("not a DLL (IMAGE_FILE_DLL is clear): privload loads DLLs only")
	case f.TLS != nil:
		return refuse("has a TLS directory: thread-local storage is not supported (the host loader would not allocate its index or run its callbacks)")
	case f.Dirs[PEDirCLR].Size != 0:
		return refuse("is a .NET assembly (CLR runtime header): not supported")
	case f.SectionAlignment < 4096:
		return refuse("section alignment %#x is below the 4 KiB page: sections cannot have their own protections", f.SectionAlignment)
	case f.Characteristics&peFileRelocsStripped != 0:
		return refuse("relocations stripped (IMAGE_FILE_RELOCS_STRIPPED): it can only load at its preferred base %#x, never in a vmcode slot", f.ImageBase)
	}
	for _, s := range f.Sections {
		if p := s.Prot(); p&mem.ProtWrite != 0 && p&mem.ProtExec != 0 {
			return refuse("section %q is both writable and executable (characteristics %#x): refused under W^X", s.Name, s.Characteristics)
		}
		if f.Entry >= s.VirtualAddress && uint64(f.Entry) < uint64(s.VirtualAddress)+uint64(s.MemSize) && s.Prot()&mem.ProtExec == 0 {
			return refuse("entry point %#x is in section %q, which is not executable (characteristics %#x): DllMain could not run", f.Entry, s.Name, s.Characteristics)
		}
	}
	return nil
}

// peParser carries the state of one ParsePE call.
type peParser struct {
	f    *PEFile
	data []byte
	// hdrRaw is how many bytes of the headers region come from the
	// file: min(SizeOfHeaders, len(data)).
	hdrRaw uint32
}

func (p *peParser) malformed(format string, args ...any) error {
	return &FormatError{File: p.f.Name, Reason: fmt.Sprintf(format, args...), Class: ErrMalformed}
}

func (p *peParser) unsupported(format string, args ...any) error {
	return &FormatError{File: p.f.Name, Reason: fmt.Sprintf(format, args...), Class: ErrUnsupported}
}

func peU16(b []byte, off int) uint16 { return binary.LittleEndian.Uint16(b[off:]) }
func peU32(b []byte, off int) uint32 { return binary.LittleEndian.Uint32(b[off:]) }
func peU64(b []byte, off int) uint64 { return binary.LittleEndian.Uint64(b[off:]) }

func pePow2(x uint32) bool { return x != 0 && x&(x-1) == 0 }

// ParsePE parses data, the contents of the PE image called name, and
// validates everything a loader will use. It never panics: anything
// malformed or unsupported gives a *FormatError naming the file, of class
// ErrMalformed or ErrUnsupported (a 32-bit or non-x86-64 image, a base
// relocation type other than DIR64 and ABSOLUTE). Loadable says whether
// the loader would take a parsed image.
func ParsePE(name string, data []byte) (*PEFile, error) {
	p := &peParser{f: &PEFile{Name: name, data: data}, data: data}
	if err := p.headers(); err != nil {
		return nil, err
	}
	for _, step := range []func() error{p.exports, p.imports, p.relocs, p.tls, p.pdata, p.entry} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	return p.f, nil
}

// headers checks the DOS, COFF and optional headers, the data directories
// and the section table.
func (p *peParser) headers() error {
	d, f := p.data, p.f
	n := uint64(len(d))
	if n < peDOSHeaderSize || d[0] != 'M' || d[1] != 'Z' {
		if n >= 4 && bytes.Equal(d[:4], []byte("\x7fELF")) {
			return p.malformed("not a PE file: it is an ELF file")
		}
		return p.malformed("not a PE file: no MZ DOS header (%d bytes)", n)
	}
	lfanew := uint64(peU32(d, 0x3c))
	if lfanew < 4 || lfanew+4+peCOFFHeaderSize > n {
		return p.malformed("e_lfanew %#x puts the PE headers outside the %d-byte file", lfanew, n)
	}
	if !bytes.Equal(d[lfanew:lfanew+4], []byte("PE\x00\x00")) {
		return p.malformed("no PE signature at e_lfanew %#x (an MS-DOS or NE/LE executable?)", lfanew)
	}
	coff := d[lfanew+4:]
	machine := peU16(coff, 0)
	nsect := uint64(peU16(coff, 2))
	optSize := uint64(peU16(coff, 16))
	f.Characteristics = peU16(coff, 18)
	if machine != peMachineAMD64 {
		return p.unsupported("machine %#x is not x86-64 (IMAGE_FILE_MACHINE_AMD64, 0x8664)", machine)
	}
	if f.Characteristics&peFileExecutable == 0 {
		return p.malformed("not an executable image (IMAGE_FILE_EXECUTABLE_IMAGE is clear): an object file?")
	}
	optOff := lfanew + 4 + peCOFFHeaderSize
	if optSize < 2 || optOff+optSize > n {
		return p.malformed("optional header [%#x, +%#x) is outside the %d-byte file", optOff, optSize, n)
	}
	opt := d[optOff : optOff+optSize]
	switch magic := peU16(opt, 0); magic {
	case peMagicPE32P:
	case peMagicPE32:
		return p.unsupported("a PE32 (32-bit) image: only PE32+ (x86-64) is supported")
	default:
		return p.malformed("optional header magic %#x is neither PE32 nor PE32+", magic)
	}
	if optSize < peOptFixedSize {
		return p.malformed("PE32+ optional header is %d bytes, less than the %d fixed ones", optSize, peOptFixedSize)
	}
	f.Entry = peU32(opt, 16)
	f.ImageBase = peU64(opt, 24)
	f.SectionAlignment = peU32(opt, 32)
	f.FileAlignment = peU32(opt, 36)
	f.SizeOfImage = peU32(opt, 56)
	f.SizeOfHeaders = peU32(opt, 60)
	f.Subsystem = peU16(opt, 68)
	f.DllCharacteristics = peU16(opt, 70)
	ndirs := uint64(peU32(opt, 108))

	sa, fa := f.SectionAlignment, f.FileAlignment
	switch {
	case !pePow2(sa) || sa > 1<<28:
		return p.malformed("SectionAlignment %#x is not a power of two up to 256 MiB", sa)
	case !pePow2(fa):
		return p.malformed("FileAlignment %#x is not a power of two", fa)
	case sa < 4096 && fa != sa:
		return p.malformed("SectionAlignment %#x is below the page size but FileAlignment %#x differs from it", sa, fa)
	case sa >= 4096 && (fa < 512 || fa > 65536 || fa > sa):
		return p.malformed("FileAlignment %#x is not in [512, min(64 KiB, SectionAlignment %#x)]", fa, sa)
	}
	if f.ImageBase%65536 != 0 {
		return p.malformed("ImageBase %#x is not a multiple of 64 KiB", f.ImageBase)
	}
	if f.SizeOfImage == 0 || f.SizeOfImage > peMaxImage {
		return p.unsupported("SizeOfImage %#x is zero or larger than 2 GiB", f.SizeOfImage)
	}
	if ndirs > peNumDirs {
		return p.malformed("NumberOfRvaAndSizes %d is more than %d", ndirs, peNumDirs)
	}
	if peOptFixedSize+8*ndirs > optSize {
		return p.malformed("%d data directories do not fit in the %d-byte optional header", ndirs, optSize)
	}
	secOff := optOff + optSize
	if nsect == 0 {
		return p.malformed("no sections")
	}
	secEnd := secOff + nsect*peSectionHeaderSize
	if secEnd > n {
		return p.malformed("section table [%#x, %#x) (%d sections) is outside the %d-byte file", secOff, secEnd, nsect, n)
	}
	if uint64(f.SizeOfHeaders) < secEnd {
		return p.malformed("SizeOfHeaders %#x does not cover the headers and section table, which end at %#x", f.SizeOfHeaders, secEnd)
	}
	if f.SizeOfHeaders > f.SizeOfImage {
		return p.malformed("SizeOfHeaders %#x exceeds SizeOfImage %#x", f.SizeOfHeaders, f.SizeOfImage)
	}
	p.hdrRaw = uint32(min(uint64(f.SizeOfHeaders), n))

	// PE sizes are 32-bit: rounded up in 64 bits, they cannot overflow.
	prevEnd, _ := mem.AlignUp(uint64(f.SizeOfHeaders), uint64(sa))
	for i := uint64(0); i < nsect; i++ {
		h := d[secOff+i*peSectionHeaderSize : secOff+(i+1)*peSectionHeaderSize]
		s := PESection{
			Name:            string(bytes.TrimRight(h[:8], "\x00")),
			VirtualAddress:  peU32(h, 12),
			Characteristics: peU32(h, 36),
		}
		vsize, rawSize, rawOff := peU32(h, 8), peU32(h, 16), peU32(h, 20)
		s.MemSize = vsize
		if vsize == 0 {
			s.MemSize = rawSize
		}
		va := uint64(s.VirtualAddress)
		if va%uint64(sa) != 0 {
			return p.malformed("section %d (%q): VirtualAddress %#x is not a multiple of SectionAlignment %#x", i, s.Name, va, sa)
		}
		if va < prevEnd {
			return p.malformed("section %d (%q) at %#x overlaps the headers or the previous section, which end at %#x (sections must ascend)", i, s.Name, va, prevEnd)
		}
		if va+uint64(s.MemSize) > uint64(f.SizeOfImage) {
			return p.malformed("section %d (%q) [%#x, +%#x) extends past SizeOfImage %#x", i, s.Name, va, s.MemSize, f.SizeOfImage)
		}
		// Sections own whole multiples of the section alignment.
		memEnd, _ := mem.AlignUp(uint64(s.MemSize), uint64(sa))
		prevEnd = va + memEnd
		if rawSize > 0 {
			s.RawSize = min(rawSize, s.MemSize)
			s.RawOffset = rawOff
			if uint64(rawOff)+uint64(s.RawSize) > n {
				return p.malformed("section %d (%q): its %#x file bytes at %#x are outside the %d-byte file", i, s.Name, s.RawSize, rawOff, n)
			}
			if s.RawSize > 0 && uint64(rawOff) < secEnd {
				return p.malformed("section %d (%q): its file bytes at %#x overlap the headers, which end at %#x", i, s.Name, rawOff, secEnd)
			}
		}
		f.Sections = append(f.Sections, s)
	}

	for i := uint64(0); i < ndirs; i++ {
		dir := PEDataDir{RVA: peU32(opt, int(peOptFixedSize+8*i)), Size: peU32(opt, int(peOptFixedSize+8*i+4))}
		if dir.Size == 0 {
			// An empty directory is absent whatever its RVA says:
			// the Windows loader ignores it too.
			continue
		}
		if i == PEDirSecurity {
			// The certificate table is the one directory given as a
			// file offset: it is not loaded.
			if uint64(dir.RVA)+uint64(dir.Size) > n {
				return p.malformed("security directory [%#x, +%#x) is outside the %d-byte file", dir.RVA, dir.Size, n)
			}
		} else if dir.RVA == 0 || uint64(dir.RVA)+uint64(dir.Size) > uint64(f.SizeOfImage) {
			return p.malformed("%s directory [%#x, +%#x) is not inside the image [0, %#x)", peDirNames[i], dir.RVA, dir.Size, f.SizeOfImage)
		}
		f.Dirs[i] = dir
	}
	return nil
}

// peRegion is a part of the image the parser reads: the headers or one
// section. Its bytes [start, start+rawSize) come from the file at raw;
// the rest, up to start+size, is zero fill.
type peRegion struct {
	section      int // -1 for the headers
	start, size  uint64
	rawSize, raw uint64
}

// region finds the region rva lies in.
func (p *peParser) region(rva uint32) (peRegion, bool) {
	if rva < p.f.SizeOfHeaders {
		return peRegion{section: -1, size: uint64(p.f.SizeOfHeaders), rawSize: uint64(p.hdrRaw)}, true
	}
	ss := p.f.Sections
	i := sort.Search(len(ss), func(i int) bool { return ss[i].VirtualAddress > rva }) - 1
	if i < 0 {
		return peRegion{}, false
	}
	s := ss[i]
	r := peRegion{section: i, start: uint64(s.VirtualAddress), size: uint64(s.MemSize), rawSize: uint64(s.RawSize), raw: uint64(s.RawOffset)}
	if uint64(rva) >= r.start+r.size {
		return peRegion{}, false
	}
	return r, true
}

// within returns the region holding all of [rva, rva+size).
func (p *peParser) within(rva, size uint32) (peRegion, bool) {
	r, ok := p.region(rva)
	if !ok || uint64(rva)+uint64(size) > r.start+r.size {
		return peRegion{}, false
	}
	return r, true
}

// inSection reports whether [rva, rva+size) lies inside one section's
// memory (not the headers).
func (p *peParser) inSection(rva, size uint32) bool {
	r, ok := p.within(rva, size)
	return ok && r.section >= 0
}

// read returns the size bytes of the image at rva as the loader will see
// them: from the file, or zeros past a section's file bytes. The range must
// lie inside one region (the headers or a section). It is for small,
// fixed-size structures: a range reaching past the file bytes is copied.
func (p *peParser) read(rva, size uint32, what string) ([]byte, error) {
	r, ok := p.within(rva, size)
	if !ok {
		return nil, p.malformed("%s [%#x, +%#x) is not inside the headers or one section", what, rva, size)
	}
	off, n := uint64(rva)-r.start, uint64(size)
	if off+n <= r.rawSize {
		return p.data[r.raw+off : r.raw+off+n], nil
	}
	b := make([]byte, n)
	if off < r.rawSize {
		copy(b, p.data[r.raw+off:r.raw+r.rawSize])
	}
	return b, nil
}

// table returns the size bytes at rva, which must come from the file: for
// arrays, whose size the file controls and which must not be copied.
func (p *peParser) table(rva, size uint32, what string) ([]byte, error) {
	r, ok := p.within(rva, size)
	if !ok {
		return nil, p.malformed("%s [%#x, +%#x) is not inside the headers or one section", what, rva, size)
	}
	off, n := uint64(rva)-r.start, uint64(size)
	if off+n > r.rawSize {
		return nil, p.malformed("%s [%#x, +%#x) lies past the file bytes of its section", what, rva, size)
	}
	return p.data[r.raw+off : r.raw+off+n], nil
}

// cstring returns the NUL-terminated string at rva. A string running to
// the end of its section's file bytes ends there if zero fill follows.
func (p *peParser) cstring(rva uint32, what string) (string, error) {
	r, ok := p.region(rva)
	if !ok {
		return "", p.malformed("%s at %#x is not inside the headers or a section", what, rva)
	}
	off := uint64(rva) - r.start
	if off >= r.rawSize {
		return "", nil // zero fill: the empty string
	}
	b := p.data[r.raw+off : r.raw+r.rawSize]
	if len(b) > peMaxString {
		b = b[:peMaxString]
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i]), nil
	}
	if len(b) < peMaxString && r.rawSize < r.size {
		return string(b), nil
	}
	return "", p.malformed("%s at %#x is not NUL-terminated within %d bytes", what, rva, len(b))
}

// exports parses the export directory.
func (p *peParser) exports() error {
	f := p.f
	dir := f.Dirs[PEDirExport]
	if dir.Size == 0 {
		return nil
	}
	if dir.Size < peExportDirSize {
		return p.malformed("export directory is %d bytes, less than %d", dir.Size, peExportDirSize)
	}
	h, err := p.read(dir.RVA, peExportDirSize, "export directory")
	if err != nil {
		return err
	}
	nameRVA := peU32(h, 12)
	f.OrdinalBase = peU32(h, 16)
	nfunc, nnames := peU32(h, 20), peU32(h, 24)
	funcsRVA, namesRVA, ordsRVA := peU32(h, 28), peU32(h, 32), peU32(h, 36)
	if nameRVA != 0 {
		if f.DLLName, err = p.cstring(nameRVA, "export directory's DLL name"); err != nil {
			return err
		}
	}
	if nfunc > f.SizeOfImage/4 || nnames > f.SizeOfImage/4 {
		return p.malformed("export directory claims %d functions and %d names, more than fit in the image", nfunc, nnames)
	}
	if nfunc > 0 && uint64(f.OrdinalBase)+uint64(nfunc)-1 > 0xffff {
		return p.malformed("export ordinals %d..%d do not fit in 16 bits", f.OrdinalBase, uint64(f.OrdinalBase)+uint64(nfunc)-1)
	}
	var funcs, names, ords []byte
	if nfunc > 0 {
		if funcs, err = p.table(funcsRVA, 4*nfunc, "export address table"); err != nil {
			return err
		}
	}
	if nnames > 0 {
		if nfunc == 0 {
			return p.malformed("export directory has %d names but no functions", nnames)
		}
		if names, err = p.table(namesRVA, 4*nnames, "export name pointer table"); err != nil {
			return err
		}
		if ords, err = p.table(ordsRVA, 2*nnames, "export ordinal table"); err != nil {
			return err
		}
	}
	// Index of each used slot in f.Exports.
	slot := make(map[uint32]int)
	dirEnd := uint64(dir.RVA) + uint64(dir.Size)
	for i := uint32(0); i < nfunc; i++ {
		rva := peU32(funcs, int(4*i))
		if rva == 0 {
			continue // an unused ordinal
		}
		e := PEExport{Ordinal: uint16(f.OrdinalBase + i)}
		if uint64(rva) >= uint64(dir.RVA) && uint64(rva) < dirEnd {
			fwd, err := p.cstring(rva, fmt.Sprintf("forwarder of export ordinal %d", e.Ordinal))
			if err != nil {
				return err
			}
			if err := p.checkForwarder(fwd, e.Ordinal); err != nil {
				return err
			}
			e.Forwarder = fwd
		} else {
			if !p.inSection(rva, 1) {
				return p.malformed("export ordinal %d at RVA %#x is not inside any section", e.Ordinal, rva)
			}
			e.RVA = rva
		}
		slot[i] = len(f.Exports)
		f.Exports = append(f.Exports, e)
	}
	f.byName = make(map[string]int, nnames)
	f.byOrd = make(map[uint16]int, len(f.Exports))
	for i, e := range f.Exports {
		f.byOrd[e.Ordinal] = i
	}
	prev := ""
	for i := uint32(0); i < nnames; i++ {
		nrva := peU32(names, int(4*i))
		name, err := p.cstring(nrva, fmt.Sprintf("export name %d", i))
		if err != nil {
			return err
		}
		if name == "" {
			return p.malformed("export name %d (at %#x) is empty", i, nrva)
		}
		// GetProcAddress binary-searches the names: out of order,
		// some would be unfindable on Windows.
		if i > 0 && name <= prev {
			return p.malformed("export names are not in strictly ascending order: %q follows %q", name, prev)
		}
		prev = name
		idx := uint32(peU16(ords, int(2*i)))
		if idx >= nfunc {
			return p.malformed("export %q has ordinal index %d, outside the %d-entry address table", name, idx, nfunc)
		}
		k, ok := slot[idx]
		if !ok {
			return p.malformed("export %q names ordinal %d, whose address is 0", name, f.OrdinalBase+idx)
		}
		if f.Exports[k].Name == "" {
			f.Exports[k].Name = name
		}
		// An export may have several names (aliases): each is
		// findable, the first is the one reported.
		f.byName[name] = k
	}
	return nil
}

func peAllZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// checkForwarder validates a forwarder string: "DLL.Function" or
// "DLL.#ordinal", split at the last dot.
func (p *peParser) checkForwarder(fwd string, ord uint16) error {
	dot := strings.LastIndexByte(fwd, '.')
	if dot <= 0 || dot == len(fwd)-1 {
		return p.malformed("export ordinal %d forwards to %q, which is not DLL.Function", ord, fwd)
	}
	if fn := fwd[dot+1:]; fn[0] == '#' {
		if n, err := strconv.ParseUint(fn[1:], 10, 16); err != nil || n == 0 && fn[1:] != "0" {
			return p.malformed("export ordinal %d forwards to %q, whose ordinal is not a 16-bit number", ord, fwd)
		}
	}
	return nil
}

// splitForwarder splits a validated forwarder into its DLL and function
// parts; byOrd is set for "DLL.#n".
func splitForwarder(fwd string) (dll, fn string, ord uint16, byOrd bool) {
	dot := strings.LastIndexByte(fwd, '.')
	dll, fn = fwd[:dot], fwd[dot+1:]
	if fn[0] == '#' {
		n, _ := strconv.ParseUint(fn[1:], 10, 16)
		return dll, "", uint16(n), true
	}
	return dll, fn, 0, false
}

// imports parses the import directory: descriptors until an all-zero one,
// each with its lookup table (or, if it has none, its address table) until
// a zero entry.
func (p *peParser) imports() error {
	f := p.f
	dir := f.Dirs[PEDirImport]
	if dir.Size == 0 {
		return nil
	}
	for i := uint32(0); ; i++ {
		if i >= peMaxDescriptors {
			return p.malformed("more than %d import descriptors", peMaxDescriptors)
		}
		rva := uint64(dir.RVA) + uint64(i)*peImportDescSize
		if rva+peImportDescSize > uint64(f.SizeOfImage) {
			return p.malformed("import descriptor %d at %#x runs past the image (no terminating entry?)", i, rva)
		}
		d, err := p.read(uint32(rva), peImportDescSize, fmt.Sprintf("import descriptor %d", i))
		if err != nil {
			return err
		}
		if peAllZero(d) {
			return nil
		}
		ilt, nameRVA, iat := peU32(d, 0), peU32(d, 12), peU32(d, 16)
		if nameRVA == 0 || iat == 0 {
			return p.malformed("import descriptor %d has no DLL name or no address table", i)
		}
		dll, err := p.cstring(nameRVA, fmt.Sprintf("import descriptor %d's DLL name", i))
		if err != nil {
			return err
		}
		if dll == "" {
			return p.malformed("import descriptor %d has an empty DLL name", i)
		}
		if ilt == 0 {
			ilt = iat
		}
		if err := p.thunks(dll, ilt, iat); err != nil {
			return err
		}
	}
}

// thunks parses one DLL's import lookup table at ilt, whose slots in the
// address table at iat the loader fills.
func (p *peParser) thunks(dll string, ilt, iat uint32) error {
	f := p.f
	for k := uint64(0); ; k++ {
		if len(f.Imports) >= peMaxImports {
			return p.malformed("more than %d imported functions", peMaxImports)
		}
		trva, srva := uint64(ilt)+8*k, uint64(iat)+8*k
		if trva+8 > uint64(f.SizeOfImage) {
			return p.malformed("import lookup table of %q runs past the image (no terminating entry?)", dll)
		}
		t, err := p.read(uint32(trva), 8, fmt.Sprintf("import lookup entry %d of %q", k, dll))
		if err != nil {
			return err
		}
		v := peU64(t, 0)
		if v == 0 {
			return nil
		}
		if srva+8 > uint64(f.SizeOfImage) || !p.inSection(uint32(srva), 8) {
			return p.malformed("import address table slot %d of %q at %#x is not inside a section", k, dll, srva)
		}
		imp := PEImport{DLL: dll, IAT: uint32(srva)}
		if v&(1<<63) != 0 {
			if v&^(1<<63) > 0xffff {
				return p.malformed("import %d of %q by ordinal has reserved bits set (%#x)", k, dll, v)
			}
			imp.ByOrdinal, imp.Ordinal = true, uint16(v)
		} else {
			if v > 0x7fffffff {
				return p.malformed("import %d of %q: hint/name RVA %#x has reserved bits set", k, dll, v)
			}
			h, err := p.read(uint32(v), 2, fmt.Sprintf("hint of import %d of %q", k, dll))
			if err != nil {
				return err
			}
			imp.Hint = peU16(h, 0)
			if imp.Name, err = p.cstring(uint32(v)+2, fmt.Sprintf("name of import %d of %q", k, dll)); err != nil {
				return err
			}
			if imp.Name == "" {
				return p.malformed("import %d of %q has an empty name", k, dll)
			}
		}
		f.Imports = append(f.Imports, imp)
	}
}

// relocs parses the base relocation directory: blocks of a page RVA, a
// block size and 16-bit entries (type in the top 4 bits, offset in the
// page below).
func (p *peParser) relocs() error {
	f := p.f
	dir := f.Dirs[PEDirBaseReloc]
	if dir.Size == 0 {
		return nil
	}
	b, err := p.table(dir.RVA, dir.Size, "base relocation directory")
	if err != nil {
		return err
	}
	for off := uint32(0); off < uint32(len(b)); {
		if uint32(len(b))-off < 8 {
			return p.malformed("base relocation directory: %d stray bytes after the last block", uint32(len(b))-off)
		}
		page, size := peU32(b, int(off)), peU32(b, int(off+4))
		if size < 8 || size%4 != 0 || size > uint32(len(b))-off {
			return p.malformed("base relocation block at directory offset %#x: size %#x is below 8, not a multiple of 4, or past the directory's %#x bytes", off, size, len(b))
		}
		for e := off + 8; e < off+size; e += 2 {
			ent := peU16(b, int(e))
			typ, rva := ent>>12, uint64(page)+uint64(ent&0xfff)
			switch typ {
			case peRelAbsolute:
			case peRelDir64:
				if rva+8 > uint64(f.SizeOfImage) || !p.inSection(uint32(rva), 8) {
					return p.malformed("%s relocation at RVA %#x does not lie inside a section", peRelocNames[typ], rva)
				}
				f.Relocs = append(f.Relocs, uint32(rva))
			default:
				return p.unsupported("base relocation %s (type %d) at RVA %#x is not supported: only IMAGE_REL_BASED_DIR64 and ABSOLUTE are", peRelocNames[typ], typ, rva)
			}
		}
		off += size
	}
	return nil
}

// tls parses the TLS directory, which the loader refuses (see Loadable)
// but a description of the image reports.
func (p *peParser) tls() error {
	f := p.f
	dir := f.Dirs[PEDirTLS]
	if dir.Size == 0 {
		return nil
	}
	if dir.Size < peTLSDirSize {
		return p.malformed("TLS directory is %d bytes, less than %d", dir.Size, peTLSDirSize)
	}
	b, err := p.read(dir.RVA, peTLSDirSize, "TLS directory")
	if err != nil {
		return err
	}
	t := &PETLS{
		StartAddressOfRawData: peU64(b, 0), EndAddressOfRawData: peU64(b, 8),
		AddressOfIndex: peU64(b, 16), AddressOfCallBacks: peU64(b, 24),
		SizeOfZeroFill: peU32(b, 32), Characteristics: peU32(b, 36),
	}
	for _, va := range []struct {
		what string
		v    uint64
	}{{"start of raw data", t.StartAddressOfRawData}, {"end of raw data", t.EndAddressOfRawData}, {"index", t.AddressOfIndex}, {"callbacks", t.AddressOfCallBacks}} {
		if va.v != 0 && (va.v < f.ImageBase || va.v-f.ImageBase > uint64(f.SizeOfImage)) {
			return p.malformed("TLS directory: address of %s %#x is outside the image [%#x, +%#x)", va.what, va.v, f.ImageBase, f.SizeOfImage)
		}
	}
	if t.EndAddressOfRawData < t.StartAddressOfRawData {
		return p.malformed("TLS directory: raw data ends (%#x) before it starts (%#x)", t.EndAddressOfRawData, t.StartAddressOfRawData)
	}
	f.TLS = t
	return nil
}

// pdata checks the exception directory: the loader hands it to
// RtlAddFunctionTable, and the OS's unwinder trusts it.
func (p *peParser) pdata() error {
	f := p.f
	dir := f.Dirs[PEDirException]
	if dir.Size == 0 {
		return nil
	}
	if dir.Size%peRuntimeFuncSize != 0 {
		return p.malformed("exception directory size %#x is not a multiple of %d", dir.Size, peRuntimeFuncSize)
	}
	b, err := p.table(dir.RVA, dir.Size, "exception directory")
	if err != nil {
		return err
	}
	if dir.RVA%4 != 0 {
		return p.malformed("exception directory at %#x is not 4-byte aligned", dir.RVA)
	}
	for i := 0; i < len(b); i += peRuntimeFuncSize {
		begin, end, unwind := peU32(b, i), peU32(b, i+4), peU32(b, i+8)
		if begin > end || uint64(end) > uint64(f.SizeOfImage) || unwind == 0 || uint64(unwind)+4 > uint64(f.SizeOfImage) {
			return p.malformed("exception directory entry %d: function [%#x, %#x) or unwind data %#x is not inside the image", i/peRuntimeFuncSize, begin, end, unwind)
		}
	}
	f.Pdata = dir
	return nil
}

// entry checks that the entry point, if any, is in an executable section.
func (p *peParser) entry() error {
	f := p.f
	if f.Entry == 0 {
		return nil
	}
	r, ok := p.region(f.Entry)
	if !ok || r.section < 0 || f.Sections[r.section].Characteristics&(peScnMemExecute|peScnCntCode) == 0 {
		return p.malformed("entry point %#x is not inside an executable section", f.Entry)
	}
	return nil
}
