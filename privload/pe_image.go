package privload

import (
	"encoding/binary"
	"fmt"

	"github.com/reachvm/reachvm/mem"
)

// This file builds a PE image in memory from a parsed PEFile: the steps of
// the Windows loader that need no Windows. They work on a byte slice, the
// committed slot on Windows and a Go buffer in the tests and the fuzzer,
// and every write is a bounds-checked slice operation on exactly that
// slice: a malformed file cannot make them write outside it, and a parsed
// one never makes them fail.

// peImageSize is the span the loader commits for f: SizeOfImage rounded up
// to the page. PE sizes are 32-bit, so that none of the roundings of this
// file can overflow in 64 bits.
func (f *PEFile) peImageSize(page uint64) uint64 {
	n, _ := mem.AlignUp(uint64(f.SizeOfImage), page)
	return n
}

// layout copies the headers and each section's file bytes into img, which
// must be zeroed and at least SizeOfImage bytes: the rest of each section
// stays zero, as the Windows loader leaves it.
func (f *PEFile) layout(img []byte) error {
	if uint64(len(img)) < uint64(f.SizeOfImage) {
		return fmt.Errorf("privload: %s: image buffer of %#x bytes is smaller than SizeOfImage %#x", f.Name, len(img), f.SizeOfImage)
	}
	copy(img, f.data[:min(uint64(f.SizeOfHeaders), uint64(len(f.data)))])
	for _, s := range f.Sections {
		if s.RawSize == 0 {
			continue
		}
		src := f.data[uint64(s.RawOffset) : uint64(s.RawOffset)+uint64(s.RawSize)]
		copy(img[s.VirtualAddress:], src)
	}
	return nil
}

// relocate applies the DIR64 base relocations for an image placed at base:
// each adds base - ImageBase (modulo 2^64) to the 64-bit word at its RVA.
func (f *PEFile) relocate(img []byte, base uint64) error {
	delta := base - f.ImageBase
	if delta == 0 {
		return nil
	}
	for _, rva := range f.Relocs {
		if uint64(rva)+8 > uint64(len(img)) {
			return fmt.Errorf("privload: %s: relocation at %#x is outside the %#x-byte image", f.Name, rva, len(img))
		}
		w := img[rva : rva+8]
		binary.LittleEndian.PutUint64(w, binary.LittleEndian.Uint64(w)+delta)
	}
	return nil
}

// bindImports fills each import address table slot with what resolve
// returns for the import. It stops at the first failure.
func (f *PEFile) bindImports(img []byte, resolve func(PEImport) (uint64, error)) error {
	for _, imp := range f.Imports {
		if uint64(imp.IAT)+8 > uint64(len(img)) {
			return fmt.Errorf("privload: %s: import slot of %s at %#x is outside the %#x-byte image", f.Name, imp, imp.IAT, len(img))
		}
		addr, err := resolve(imp)
		if err != nil {
			return err
		}
		binary.LittleEndian.PutUint64(img[imp.IAT:imp.IAT+8], addr)
	}
	return nil
}

// peRange is a run of pages of the image with one protection; Off and Size
// are relative to the image base and page-aligned.
type peRange struct {
	Off, Size uint64
	Prot      mem.Prot
	// What names the range for errors: "headers", a section, "gap".
	What string
}

// protections returns the final protection of every page of the image
// [0, peImageSize(page)), in address order: the headers read-only, each
// section its own, the space between and after sections inaccessible. It
// needs a section alignment of at least a page (Loadable checks it), so
// that no page holds parts of two sections; the parser has checked that
// sections ascend without overlapping and end within SizeOfImage. A
// section both writable and executable is refused.
func (f *PEFile) protections(page uint64) ([]peRange, error) {
	if page == 0 || page&(page-1) != 0 || uint64(f.SectionAlignment) < page {
		return nil, &FormatError{File: f.Name, Reason: fmt.Sprintf("section alignment %#x is below the page size %#x: sections cannot have their own protections", f.SectionAlignment, page), Class: ErrUnsupported}
	}
	total := f.peImageSize(page)
	hdr, _ := mem.AlignUp(uint64(f.SizeOfHeaders), page)
	out := []peRange{{Off: 0, Size: hdr, Prot: mem.ProtRead, What: "headers"}}
	next := hdr
	for _, s := range f.Sections {
		if s.MemSize == 0 {
			continue
		}
		start := uint64(s.VirtualAddress)
		end, _ := mem.AlignUp(start+uint64(s.MemSize), page)
		if start < next || end > total {
			// The parser's checks make this impossible.
			return nil, fmt.Errorf("privload: %s: section %q [%#x, %#x) overlaps the previous one or leaves the image", f.Name, s.Name, start, end)
		}
		if start > next {
			out = append(out, peRange{Off: next, Size: start - next, Prot: mem.ProtNone, What: "gap"})
		}
		p := s.Prot()
		if p&mem.ProtWrite != 0 && p&mem.ProtExec != 0 {
			return nil, &FormatError{File: f.Name, Reason: fmt.Sprintf("section %q is both writable and executable (characteristics %#x): refused under W^X", s.Name, s.Characteristics), Class: ErrUnsupported}
		}
		out = append(out, peRange{Off: start, Size: end - start, Prot: p, What: fmt.Sprintf("section %q", s.Name)})
		next = end
	}
	if next < total {
		out = append(out, peRange{Off: next, Size: total - next, Prot: mem.ProtNone, What: "gap"})
	}
	return out, nil
}
