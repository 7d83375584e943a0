package privload

import (
	"debug/elf"
)

// This file parses the GNU symbol versioning tables. DT_VERSYM gives each
// dynamic symbol a version index; DT_VERDEF names the versions the file
// defines, DT_VERNEED the versions it needs and from which library. A
// reference to memcpy@GLIBC_2.14 must bind to the definition of that
// version, not to memcpy@GLIBC_2.2.5 (a different function), so the
// loader matches names and versions as glibc's check_match does.

// Sizes of the version structures (Elf64_Verdef and friends).
const (
	verdefSize  = 20
	verdauxSize = 8
	verneedSize = 16
	vernauxSize = 16

	verFlagBase = 0x1 // VER_FLG_BASE: the file's own name, index 1
	verFlagWeak = 0x2 // VER_FLG_WEAK

	// maxVersionIndex bounds a version index: DT_VERSYM's high bit is
	// the hidden flag.
	maxVersionIndex = 0x7fff
)

// versions parses DT_VERDEF and DT_VERNEED into f.Versions and checks
// that every DT_VERSYM entry names a version they define. It runs after
// the symbol table and DT_VERSYM are known.
func (p *parser) versions(t *dynTags) error {
	f := p.f
	type entry struct {
		idx uint16
		v   Version
	}
	ndef, _ := t.seen.get(elf.DT_VERDEFNUM)
	entries := make([]entry, 0, ndef%64+4)
	maxIdx := uint16(1)
	// add records version v, whose name is at off in DT_STRTAB.
	add := func(idx uint16, v Version, off uint32) error {
		if idx < 2 {
			return p.malformed("version %q has reserved index %d", v.Name, idx)
		}
		v.hash = sysvHashOf(v.Name)
		// The name with its NUL terminator, for dlvsym, as it is in
		// DT_STRTAB (str checked the terminator).
		v.cname = f.strtab[off : uint64(off)+uint64(len(v.Name))+1]
		entries = append(entries, entry{idx, v})
		maxIdx = max(maxIdx, idx)
		return nil
	}
	// Every walk is bounded by its count tag and by the file: each entry
	// lies in the file-backed part of a PT_LOAD, and no count can exceed
	// the file's size over the entry size, so malformed next links that
	// loop stop at the count.
	limit := func(tag elf.DynTag, size uint64) (uint64, bool) {
		n, ok := t.seen.get(tag)
		return n, ok && n <= p.size/size
	}
	if addr, ok := t.seen.get(elf.DT_VERDEF); ok {
		n, ok := limit(elf.DT_VERDEFNUM, verdefSize)
		if !ok {
			return p.malformed("DT_VERDEF without a plausible DT_VERDEFNUM")
		}
		for i := uint64(0); i < n; i++ {
			b, _, ok := f.fileBytes(addr, verdefSize)
			if !ok {
				return p.malformed("DT_VERDEF entry %d at %#x does not lie in the file-backed part of a PT_LOAD", i, addr)
			}
			version, flags, ndx, cnt := le.Uint16(b[0:]), le.Uint16(b[2:]), le.Uint16(b[4:]), le.Uint16(b[6:])
			aux, next := uint64(le.Uint32(b[12:])), uint64(le.Uint32(b[16:]))
			if version != 1 {
				return p.malformed("DT_VERDEF entry %d has version %d, want 1", i, version)
			}
			if cnt == 0 {
				return p.malformed("DT_VERDEF entry %d has no name", i)
			}
			ab, _, ok := f.fileBytes(addr+aux, verdauxSize)
			if !ok {
				return p.malformed("DT_VERDEF entry %d: its name at %#x does not lie in the file-backed part of a PT_LOAD", i, addr+aux)
			}
			name, ok := f.str(uint64(le.Uint32(ab)))
			if !ok {
				return p.malformed("DT_VERDEF entry %d: name offset %#x is outside DT_STRTAB", i, le.Uint32(ab))
			}
			ndx &= maxVersionIndex
			if flags&verFlagBase == 0 {
				if err := add(ndx, Version{Name: name, Defined: true}, le.Uint32(ab)); err != nil {
					return err
				}
			}
			if next == 0 {
				break
			}
			addr += next
		}
	}
	if addr, ok := t.seen.get(elf.DT_VERNEED); ok {
		n, ok := limit(elf.DT_VERNEEDNUM, verneedSize)
		if !ok {
			return p.malformed("DT_VERNEED without a plausible DT_VERNEEDNUM")
		}
		budget := p.size / vernauxSize
		for i := uint64(0); i < n; i++ {
			b, _, ok := f.fileBytes(addr, verneedSize)
			if !ok {
				return p.malformed("DT_VERNEED entry %d at %#x does not lie in the file-backed part of a PT_LOAD", i, addr)
			}
			version, cnt := le.Uint16(b[0:]), uint64(le.Uint16(b[2:]))
			file, ok := f.str(uint64(le.Uint32(b[4:])))
			if !ok {
				return p.malformed("DT_VERNEED entry %d: file name offset %#x is outside DT_STRTAB", i, le.Uint32(b[4:]))
			}
			aux, next := uint64(le.Uint32(b[8:])), uint64(le.Uint32(b[12:]))
			if version != 1 {
				return p.malformed("DT_VERNEED entry %d has version %d, want 1", i, version)
			}
			if cnt > budget {
				return p.malformed("DT_VERNEED entry %d claims %d versions", i, cnt)
			}
			budget -= cnt
			a := addr + aux
			for j := uint64(0); j < cnt; j++ {
				ab, _, ok := f.fileBytes(a, vernauxSize)
				if !ok {
					return p.malformed("DT_VERNEED entry %d version %d at %#x does not lie in the file-backed part of a PT_LOAD", i, j, a)
				}
				flags, other := le.Uint16(ab[4:]), le.Uint16(ab[6:])
				name, ok := f.str(uint64(le.Uint32(ab[8:])))
				if !ok {
					return p.malformed("DT_VERNEED entry %d version %d: name offset %#x is outside DT_STRTAB", i, j, le.Uint32(ab[8:]))
				}
				if err := add(other&maxVersionIndex, Version{Name: name, File: file, Weak: flags&verFlagWeak != 0}, le.Uint32(ab[8:])); err != nil {
					return err
				}
				anext := uint64(le.Uint32(ab[12:]))
				if anext == 0 {
					break
				}
				a += anext
			}
			if next == 0 {
				break
			}
			addr += next
		}
	}
	if len(entries) > 0 {
		f.Versions = make([]Version, int(maxIdx)+1)
		for _, e := range entries {
			if f.Versions[e.idx].Name != "" {
				return p.malformed("version index %d is defined twice (%q and %q)", e.idx, f.Versions[e.idx].Name, e.v.Name)
			}
			f.Versions[e.idx] = e.v
		}
	}
	for i := 1; i < f.NumSymbols && 2*i+2 <= len(f.versym); i++ {
		ndx := le.Uint16(f.versym[2*i:]) & maxVersionIndex
		if ndx >= 2 && (int(ndx) >= len(f.Versions) || f.Versions[ndx].Name == "") {
			return p.malformed("symbol %d %q has version index %d, which neither DT_VERDEF nor DT_VERNEED defines", i, f.nameBytes(uint64(i)), ndx)
		}
	}
	return nil
}

// symVersion returns the version that symbol i's DT_VERSYM entry names,
// nil if it is unversioned, and whether the version is hidden (foo@V
// rather than foo@@V).
func (f *File) symVersion(i uint64) (*Version, bool) {
	if 2*i+2 > uint64(len(f.versym)) {
		return nil, false
	}
	vs := le.Uint16(f.versym[2*i:])
	ndx := vs & maxVersionIndex
	if ndx < 2 || int(ndx) >= len(f.Versions) {
		return nil, vs&0x8000 != 0
	}
	return &f.Versions[ndx], vs&0x8000 != 0
}
