// Package elfobj writes small ELF64 x86-64 objects: sections, a symbol
// table and nothing else, no program headers, which is what a debugger
// needs to name code it did not load from a file (gdb's JIT interface
// reads such an object from the process's memory). debug/elf reads ELF
// but does not write it.
package elfobj

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Section is one section of the object.
type Section struct {
	// Name is the section's name (".text", ".debug_frame").
	Name string
	// Type is SHT_PROGBITS (the bytes are Data) or SHT_NOBITS (Size
	// bytes at Addr, none in the file: code that lives in the process
	// and not in the object).
	Type  elf.SectionType
	Flags elf.SectionFlag
	// Addr is the section's address, absolute: objects are not
	// relocated.
	Addr uint64
	// Data are a PROGBITS section's bytes; Size is a NOBITS section's
	// size and must be 0 or len(Data) for PROGBITS.
	Data []byte
	Size uint64
	// Align is the section's alignment (0 or a power of two).
	Align uint64
}

// Symbol is one symbol of the object.
type Symbol struct {
	Name string
	// Value is the symbol's absolute address, Size its length.
	Value, Size uint64
	// Section is the index in the object's sections (0 is the first
	// Section given to Write) of the section the symbol is in.
	Section int
	Type    elf.SymType
	Bind    elf.SymBind
}

// Sizes of the ELF64 structures.
const (
	ehdrSize = 64
	shdrSize = 64
	symSize  = 24
)

// Write returns an ELF64 little-endian x86-64 object of type typ holding
// secs, then .symtab, .strtab and .shstrtab, with syms in .symtab (local
// symbols first, as the format requires, each group in the order given).
// It fails on a section or symbol that cannot be written as given.
func Write(typ elf.Type, secs []Section, syms []Symbol) ([]byte, error) {
	var shstr, str strtab
	shstr.add("")
	str.add("")
	// Layout: header, then each section's bytes aligned, then the
	// section headers.
	off := uint64(ehdrSize)
	type placed struct {
		name, off, size uint64
	}
	place := make([]placed, 0, len(secs)+3)
	for i, s := range secs {
		if s.Align&(s.Align-1) != 0 {
			return nil, fmt.Errorf("elfobj: section %d (%s): alignment %d is not a power of two", i, s.Name, s.Align)
		}
		if strings.IndexByte(s.Name, 0) >= 0 {
			return nil, fmt.Errorf("elfobj: section %d: name %q holds a NUL", i, s.Name)
		}
		size := s.Size
		switch s.Type {
		case elf.SHT_NOBITS:
			if len(s.Data) != 0 {
				return nil, fmt.Errorf("elfobj: section %d (%s): NOBITS with data", i, s.Name)
			}
		case elf.SHT_PROGBITS:
			if size != 0 && size != uint64(len(s.Data)) {
				return nil, fmt.Errorf("elfobj: section %d (%s): size %d for %d bytes", i, s.Name, size, len(s.Data))
			}
			size = uint64(len(s.Data))
			off = alignUp(off, max(s.Align, 1))
		default:
			return nil, fmt.Errorf("elfobj: section %d (%s): type %v is not written", i, s.Name, s.Type)
		}
		place = append(place, placed{name: shstr.add(s.Name), off: off, size: size})
		if s.Type == elf.SHT_PROGBITS {
			off += size
		}
	}
	// The symbol table: the null symbol, the locals, then the rest.
	symtab := make([]byte, symSize, symSize*(len(syms)+1))
	nlocal := 1
	for pass := 0; pass < 2; pass++ {
		for i, s := range syms {
			if (s.Bind == elf.STB_LOCAL) != (pass == 0) {
				continue
			}
			if s.Section < 0 || s.Section >= len(secs) {
				return nil, fmt.Errorf("elfobj: symbol %d (%s): no section %d", i, s.Name, s.Section)
			}
			if strings.IndexByte(s.Name, 0) >= 0 {
				return nil, fmt.Errorf("elfobj: symbol %d: name %q holds a NUL", i, s.Name)
			}
			var e [symSize]byte
			binary.LittleEndian.PutUint32(e[0:], uint32(str.add(s.Name)))
			e[4] = byte(s.Bind)<<4 | byte(s.Type)&0xf
			binary.LittleEndian.PutUint16(e[6:], uint16(s.Section+1))
			binary.LittleEndian.PutUint64(e[8:], s.Value)
			binary.LittleEndian.PutUint64(e[16:], s.Size)
			symtab = append(symtab, e[:]...)
			if pass == 0 {
				nlocal++
			}
		}
	}
	if len(secs)+4 >= int(elf.SHN_LORESERVE) {
		return nil, errors.New("elfobj: too many sections")
	}
	symName, strName, shstrName := shstr.add(".symtab"), shstr.add(".strtab"), shstr.add(".shstrtab")
	off = alignUp(off, 8)
	symOff := off
	off += uint64(len(symtab))
	strOff := off
	off += uint64(len(str.b))
	shstrOff := off
	off += uint64(len(shstr.b))
	shOff := alignUp(off, 8)
	nsec := len(secs) + 4 // null, secs, .symtab, .strtab, .shstrtab
	out := make([]byte, shOff+uint64(nsec)*shdrSize)

	// The ELF header.
	copy(out, elf.ELFMAG)
	out[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	out[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	out[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	out[elf.EI_OSABI] = byte(elf.ELFOSABI_NONE)
	le := binary.LittleEndian
	le.PutUint16(out[16:], uint16(typ))
	le.PutUint16(out[18:], uint16(elf.EM_X86_64))
	le.PutUint32(out[20:], uint32(elf.EV_CURRENT))
	le.PutUint64(out[40:], shOff)
	le.PutUint16(out[52:], ehdrSize)
	le.PutUint16(out[58:], shdrSize)
	le.PutUint16(out[60:], uint16(nsec))
	le.PutUint16(out[62:], uint16(nsec-1)) // .shstrtab is last

	sh := func(i int, name uint64, typ elf.SectionType, flags elf.SectionFlag, addr, off, size uint64, link, info uint32, align, entsize uint64) {
		h := out[shOff+uint64(i)*shdrSize:]
		le.PutUint32(h[0:], uint32(name))
		le.PutUint32(h[4:], uint32(typ))
		le.PutUint64(h[8:], uint64(flags))
		le.PutUint64(h[16:], addr)
		le.PutUint64(h[24:], off)
		le.PutUint64(h[32:], size)
		le.PutUint32(h[40:], link)
		le.PutUint32(h[44:], info)
		le.PutUint64(h[48:], align)
		le.PutUint64(h[56:], entsize)
	}
	for i, s := range secs {
		p := place[i]
		copy(out[p.off:], s.Data)
		sh(i+1, p.name, s.Type, s.Flags, s.Addr, p.off, p.size, 0, 0, max(s.Align, 1), 0)
	}
	n := len(secs)
	copy(out[symOff:], symtab)
	copy(out[strOff:], str.b)
	copy(out[shstrOff:], shstr.b)
	sh(n+1, symName, elf.SHT_SYMTAB, 0, 0, symOff, uint64(len(symtab)), uint32(n+2), uint32(nlocal), 8, symSize)
	sh(n+2, strName, elf.SHT_STRTAB, 0, 0, strOff, uint64(len(str.b)), 0, 0, 1, 0)
	sh(n+3, shstrName, elf.SHT_STRTAB, 0, 0, shstrOff, uint64(len(shstr.b)), 0, 0, 1, 0)
	return out, nil
}

// strtab is a string table being built.
type strtab struct {
	b []byte
	// at maps a string to its offset, so that each is stored once.
	at map[string]uint64
}

// add returns s's offset, appending it if new.
func (t *strtab) add(s string) uint64 {
	if o, ok := t.at[s]; ok {
		return o
	}
	if t.at == nil {
		t.at = make(map[string]uint64)
	}
	o := uint64(len(t.b))
	t.b = append(append(t.b, s...), 0)
	t.at[s] = o
	return o
}

func alignUp(v, a uint64) uint64 { return (v + a - 1) &^ (a - 1) }
