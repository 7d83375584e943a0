// Package ldcache reads /etc/ld.so.cache, the index of shared libraries
// that ldconfig writes and glibc's dynamic linker consults for a name
// found neither on DT_RPATH, LD_LIBRARY_PATH nor DT_RUNPATH.
//
// The file holds the "glibc-ld.so.cache1.1" format (glibc 2.2 on; the
// only one ldconfig writes since glibc 2.32), optionally after a table of
// the old "ld.so-1.7.0" format, which glibc then ignores. The layout,
// from glibc's sysdeps/generic/dl-cache.h, all little-endian here:
//
//	header    magic "glibc-ld.so.cache" "1.1", nlibs u32, len_strings u32,
//	          flags u8 (endianness), 3 bytes, extension_offset u32,
//	          3 unused u32: 48 bytes
//	entries   nlibs × {flags i32, key u32, value u32, osversion u32,
//	          hwcap u64}: 24 bytes each
//	strings   len_strings bytes of NUL-terminated names; key and value
//	          index them from the start of the header
//	extension at extension_offset (from the start of the file): magic
//	          u32, count u32, count × {tag, flags, offset, size u32}
//
// Parse is strict: every count, offset and string is checked against the
// file, with overflow checks, and anything out of place is an error
// rather than a guess. Select then picks, for each name, the entry glibc's
// _dl_load_cache_lookup would on a given machine.
package ldcache

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"
)

// Entry flags (ldconfig's FLAG_*): the type in the low byte, the
// required architecture in the next.
const (
	// FlagELF marks an ELF library of no particular ABI; glibc accepts
	// it on every machine.
	FlagELF = 0x0001
	// FlagELFLibc6 marks a glibc (libc6) ELF library.
	FlagELFLibc6 = 0x0003
	// FlagX8664Lib64 is the x86-64 architecture field.
	FlagX8664Lib64 = 0x0300
	// FlagAArch64Lib64 is the 64-bit AArch64 architecture field.
	FlagAArch64Lib64 = 0x0a00
)

// hwcapExtension (DL_CACHE_HWCAP_EXTENSION) in an entry's hwcap says that
// its low 32 bits index the glibc-hwcaps extension section: the library
// lives in a glibc-hwcaps subdirectory. The low 10 bits of the upper half
// are ISA-level bits, which the test ignores, as glibc's does.
const (
	hwcapExtension = uint64(1) << 62
	isaLevelMask   = 1<<10 - 1
)

// Format constants.
const (
	magicOld       = "ld.so-1.7.0"
	magicNew       = "glibc-ld.so.cache1.1"
	oldHeaderSize  = 16 // magic (11 bytes), padding, nlibs u32
	oldEntrySize   = 12
	newHeaderSize  = 48
	newEntrySize   = 24
	extensionMagic = 0xeaa42174 // (uint32_t) -358342284

	endianMask   = 3
	endianUnset  = 0
	endianLittle = 2

	tagGenerator   = 0
	tagGlibcHwcaps = 1
)

// Entry is one library of the cache.
type Entry struct {
	// Name is the key looked up: the library's soname ("libz.so.1").
	Name string
	// Path is the file ldconfig found it in: an absolute path.
	Path string
	// Flags are the entry's flags: FlagELF, or FlagELFLibc6 with an
	// architecture field (FlagX8664Lib64|FlagELFLibc6 for x86-64).
	Flags int32
	// HWCap is the entry's hwcap field (0 in the old format): 0 for an
	// ordinary entry.
	HWCap uint64
	// Subdir is the glibc-hwcaps subdirectory ("x86-64-v3") the library
	// was found in, for an entry whose HWCap has the extension bit; ""
	// otherwise.
	Subdir string
}

// Cache is a parsed ld.so.cache.
type Cache struct {
	// Entries are the libraries, in file order (ldconfig sorts them by
	// name, glibc-hwcaps entries of a name before the others).
	Entries []Entry
	// Generator names the ldconfig that wrote the file, from the
	// generator extension; "" if there is none.
	Generator string
	// OldOnly is set for a file of the old format alone, whose entries
	// come from the old table.
	OldOnly bool
}

// Error is a malformed cache: Offset is where in the file, Reason what.
type Error struct {
	Offset uint64
	Reason string
}

func (e *Error) Error() string { return fmt.Sprintf("ld.so.cache: at %#x: %s", e.Offset, e.Reason) }

func errAt(off uint64, format string, args ...any) error {
	return &Error{Offset: off, Reason: fmt.Sprintf(format, args...)}
}

var le = binary.LittleEndian

// span checks that [off, off+n) lies in a file of size bytes.
func span(off, n, size uint64) bool { return off <= size && n <= size-off }

// Parse parses the cache data.
func Parse(data []byte) (*Cache, error) {
	size := uint64(len(data))
	if bytes.HasPrefix(data, []byte(magicNew)) {
		return parseNew(data, 0)
	}
	if !bytes.HasPrefix(data, []byte(magicOld)) {
		n := min(len(data), len(magicNew))
		return nil, errAt(0, "bad magic %q: neither %q nor %q", data[:n], magicNew, magicOld)
	}
	if size < oldHeaderSize {
		return nil, errAt(0, "truncated old-format header: %d bytes, want %d", size, oldHeaderSize)
	}
	nlibs := uint64(le.Uint32(data[12:]))
	tab := nlibs * oldEntrySize // no overflow: nlibs < 2^32
	if !span(oldHeaderSize, tab, size) {
		return nil, errAt(12, "old-format table of %d entries (%#x bytes) runs past the end of the file (%#x bytes)", nlibs, tab, size)
	}
	end := oldHeaderSize + tab
	// The new format follows, aligned to 8 (ALIGN_CACHE), if present.
	newOff := (end + 7) &^ 7
	if span(newOff, uint64(len(magicNew)), size) && bytes.HasPrefix(data[newOff:], []byte(magicNew)) {
		return parseNew(data, newOff)
	}
	// The old format alone: key and value index the strings that follow
	// the table.
	c := &Cache{OldOnly: true}
	for i := range nlibs {
		e := data[oldHeaderSize+i*oldEntrySize:]
		ent := Entry{Flags: int32(le.Uint32(e))}
		var err error
		if ent.Name, err = str(data, end, size, uint64(le.Uint32(e[4:]))); err != nil {
			return nil, fmt.Errorf("old-format entry %d key: %w", i, err)
		}
		if ent.Path, err = str(data, end, size, uint64(le.Uint32(e[8:]))); err != nil {
			return nil, fmt.Errorf("old-format entry %d value: %w", i, err)
		}
		if err := ent.check(oldHeaderSize + i*oldEntrySize); err != nil {
			return nil, err
		}
		c.Entries = append(c.Entries, ent)
	}
	return c, nil
}

// str returns the NUL-terminated string at base+off, which must start
// and end inside [lo, hi) of data.
func str(data []byte, base, hi, off uint64) (string, error) {
	at := base + off // no overflow: both < 2^33
	if at < base || at >= hi {
		return "", errAt(at, "string offset %#x lies outside the string table [%#x, %#x)", off, base, hi)
	}
	n := bytes.IndexByte(data[at:hi], 0)
	if n < 0 {
		return "", errAt(at, "string at offset %#x is not NUL-terminated inside the string table", off)
	}
	return string(data[at : at+uint64(n)]), nil
}

// check refuses an entry no ldconfig writes: an empty name or one with a
// slash, a relative path.
func (e *Entry) check(off uint64) error {
	switch {
	case e.Name == "":
		return errAt(off, "entry with an empty name")
	case strings.Contains(e.Name, "/"):
		return errAt(off, "entry name %q contains a slash", e.Name)
	case !strings.HasPrefix(e.Path, "/"):
		return errAt(off, "entry %q: path %q is not absolute", e.Name, e.Path)
	}
	return nil
}

// parseNew parses the new format whose header is at base.
func parseNew(data []byte, base uint64) (*Cache, error) {
	size := uint64(len(data))
	if !span(base, newHeaderSize, size) {
		return nil, errAt(base, "truncated header: %d bytes left, want %d", size-min(base, size), newHeaderSize)
	}
	h := data[base:]
	nlibs := uint64(le.Uint32(h[20:]))
	lenStrings := uint64(le.Uint32(h[24:]))
	flags := h[28]
	extOff := uint64(le.Uint32(h[32:]))
	switch flags & endianMask {
	case endianUnset, endianLittle:
	case 1:
		return nil, errAt(base+28, "the cache marks itself invalid (flags %#x)", flags)
	default:
		return nil, errAt(base+28, "big-endian cache (flags %#x) on a little-endian machine", flags)
	}
	entries := base + newHeaderSize
	tab := nlibs * newEntrySize
	if !span(entries, tab, size) {
		return nil, errAt(base+20, "table of %d entries (%#x bytes) runs past the end of the file (%#x bytes)", nlibs, tab, size)
	}
	strStart := entries + tab
	if !span(strStart, lenStrings, size) {
		return nil, errAt(base+24, "string table [%#x, +%#x) runs past the end of the file (%#x bytes)", strStart, lenStrings, size)
	}
	strEnd := strStart + lenStrings
	// Strings are indexed from the header: an index must land in the
	// string table proper.
	strAt := func(off uint64) (string, error) {
		if base+off < strStart {
			return "", errAt(base+off, "string offset %#x lies before the string table (%#x)", off, strStart-base)
		}
		return str(data, base, strEnd, off)
	}
	c := &Cache{}
	var hwcaps []string
	if extOff != 0 {
		var err error
		if hwcaps, c.Generator, err = extensions(data, extOff, strAt); err != nil {
			return nil, err
		}
	}
	c.Entries = make([]Entry, 0, nlibs)
	for i := range nlibs {
		off := entries + i*newEntrySize
		e := data[off:]
		ent := Entry{Flags: int32(le.Uint32(e)), HWCap: le.Uint64(e[16:])}
		var err error
		if ent.Name, err = strAt(uint64(le.Uint32(e[4:]))); err != nil {
			return nil, fmt.Errorf("entry %d key: %w", i, err)
		}
		if ent.Path, err = strAt(uint64(le.Uint32(e[8:]))); err != nil {
			return nil, fmt.Errorf("entry %d value: %w", i, err)
		}
		if ent.HWCap>>32&^isaLevelMask == hwcapExtension>>32 {
			idx := uint32(ent.HWCap)
			if uint64(idx) >= uint64(len(hwcaps)) {
				return nil, errAt(off+16, "entry %d (%s): glibc-hwcaps index %d, but the cache names %d subdirectories", i, ent.Name, idx, len(hwcaps))
			}
			ent.Subdir = hwcaps[idx]
		}
		if err := ent.check(off); err != nil {
			return nil, err
		}
		c.Entries = append(c.Entries, ent)
	}
	return c, nil
}

// extensions reads the extension directory at off (from the start of the
// file): the glibc-hwcaps subdirectory names and the generator.
func extensions(data []byte, off uint64, strAt func(uint64) (string, error)) (hwcaps []string, generator string, err error) {
	size := uint64(len(data))
	if off%4 != 0 {
		return nil, "", errAt(off, "extension directory offset %#x is not a multiple of 4", off)
	}
	if !span(off, 8, size) {
		return nil, "", errAt(off, "extension directory at %#x runs past the end of the file (%#x bytes)", off, size)
	}
	if m := le.Uint32(data[off:]); m != extensionMagic {
		return nil, "", errAt(off, "extension directory magic %#x, want %#x", m, uint32(extensionMagic))
	}
	count := uint64(le.Uint32(data[off+4:]))
	if !span(off+8, count*16, size) {
		return nil, "", errAt(off+4, "extension directory of %d sections runs past the end of the file (%#x bytes)", count, size)
	}
	seen := map[uint32]bool{}
	for i := range count {
		s := data[off+8+i*16:]
		tag, soff, ssize := le.Uint32(s), uint64(le.Uint32(s[8:])), uint64(le.Uint32(s[12:]))
		if !span(soff, ssize, size) {
			return nil, "", errAt(off+8+i*16, "extension section %d (tag %d) [%#x, +%#x) runs past the end of the file (%#x bytes)", i, tag, soff, ssize, size)
		}
		if tag <= tagGlibcHwcaps {
			if seen[tag] {
				return nil, "", errAt(off+8+i*16, "extension section tag %d appears twice", tag)
			}
			seen[tag] = true
		}
		b := data[soff : soff+ssize]
		switch tag {
		case tagGenerator:
			generator = string(bytes.TrimRight(b, "\x00"))
		case tagGlibcHwcaps:
			if ssize == 0 || soff%4 != 0 || ssize%4 != 0 {
				return nil, "", errAt(soff, "glibc-hwcaps section [%#x, +%#x) is empty or not 4-byte aligned", soff, ssize)
			}
			for j := uint64(0); j < ssize; j += 4 {
				name, err := strAt(uint64(le.Uint32(b[j:])))
				if err != nil {
					return nil, "", fmt.Errorf("glibc-hwcaps name %d: %w", j/4, err)
				}
				if name == "" || strings.Contains(name, "/") {
					return nil, "", errAt(soff+j, "glibc-hwcaps name %q is not a directory name", name)
				}
				hwcaps = append(hwcaps, name)
			}
		}
		// Other tags (tunables, future ones) are of no use here, and
		// glibc skips them too.
	}
	return hwcaps, generator, nil
}

// Machine is what the dynamic linker of a process accepts from the cache.
type Machine struct {
	// Flags is the flags value of the machine's own libraries (glibc's
	// _DL_CACHE_DEFAULT_ID): FlagX8664Lib64|FlagELFLibc6 on x86-64.
	Flags int32
	// Subdirs are the glibc-hwcaps subdirectories the CPU supports,
	// most preferred first ("x86-64-v4", "x86-64-v3", "x86-64-v2").
	Subdirs []string
}

// Select returns, for each name of the cache, the path glibc's
// _dl_load_cache_lookup returns on m: among the entries whose flags are
// FlagELF or m.Flags, the glibc-hwcaps entry of the most preferred
// subdirectory m supports if there is one; else the first ordinary entry
// of flags m.Flags, else the first of flags FlagELF. Entries with legacy
// hwcap bits (libraries ldconfig found in tls/ or platform
// subdirectories; glibc 2.37 dropped them) are not taken.
func (c *Cache) Select(m Machine) map[string]string {
	type best struct {
		path string
		prio int // glibc-hwcaps: index in m.Subdirs; else len(m.Subdirs) + (0: m.Flags, 1: FlagELF)
	}
	pick := map[string]best{}
	for _, e := range c.Entries {
		if e.Flags != FlagELF && e.Flags != m.Flags {
			continue
		}
		var prio int
		switch {
		case e.Subdir != "":
			if prio = slices.Index(m.Subdirs, e.Subdir); prio < 0 {
				continue
			}
		case e.HWCap != 0:
			continue
		case e.Flags == m.Flags:
			prio = len(m.Subdirs)
		default:
			prio = len(m.Subdirs) + 1
		}
		if b, ok := pick[e.Name]; !ok || prio < b.prio {
			pick[e.Name] = best{e.Path, prio}
		}
	}
	out := make(map[string]string, len(pick))
	for name, b := range pick {
		out[name] = b.path
	}
	return out
}
