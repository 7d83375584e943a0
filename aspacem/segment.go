package aspacem

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/reachvm/reachvm/mem"
)

// Kind says who owns a segment and what backs it. It is Valgrind's SegKind
// (SkFree, SkResvn, SkAnonV, SkFileV, SkShmC), with everything the library
// did not map itself folded into KindForeign: aspacem only vouches for what
// reachvm owns.
type Kind uint8

const (
	// KindFree is unmapped address space. Free segments carry no
	// attributes (no protection, owner, name or offset).
	KindFree Kind = iota
	// KindReservation is address space reachvm reserved with no access
	// and no storage (PROT_NONE + MAP_NORESERVE, MEM_RESERVE). Its Prot is
	// always ProtNone.
	KindReservation
	// KindAnon is committed anonymous memory reachvm owns.
	KindAnon
	// KindFile is a private (copy-on-write) view of a file reachvm mapped.
	KindFile
	// KindShared is a view of a shared memory object (memfd on Linux, a
	// pagefile-backed section on Windows) reachvm mapped, e.g. either view
	// of a W^X dual mapping. Its Shared field is always true.
	KindShared
	// KindForeign is memory reachvm did not map: the application, the Go
	// runtime, system libraries. It is loaded from the OS (Load, Refresh)
	// and never checked by SyncCheck.
	KindForeign

	numKinds
)

var kindNames = [numKinds]string{"free", "reservation", "anon", "file", "shared", "foreign"}

// String returns the kind's lower-case name ("free", "reservation", ...).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Owned reports whether segments of kind k belong to reachvm: reservation,
// anon, file and shared. Owned segments are what SyncCheck verifies and
// what Refresh never touches.
func (k Kind) Owned() bool { return k >= KindReservation && k <= KindShared }

// Segment is a maximal run of pages of the address space with the same
// attributes. Segments returned by Map are values: changing one changes
// nothing until it is passed to Update.
type Segment struct {
	// Start and End bound the segment: [Start, End), both page aligned,
	// Start < End.
	Start, End uintptr
	// Kind says who owns the segment and what backs it.
	Kind Kind
	// Prot is the current protection. ProtNone for free space and
	// reservations.
	Prot mem.Prot
	// Owner annotates owned segments with the part of reachvm that owns
	// them: "vmcode", "vmheap", "fcache", "privlib libdemo.so",
	// "grid slot 17/3277". WriteMaps prints it in brackets. It must be
	// empty for free and foreign segments.
	Owner string
	// Name is the backing file's path or the shared object's name; "" for
	// anonymous memory, reservations and free space. Required for
	// KindFile.
	Name string
	// Offset is the offset into the backing object of Start; 0 when Name
	// is "".
	Offset uint64
	// Shared is set for views of shared objects (always for KindShared,
	// never for KindReservation, KindAnon or KindFile) and for foreign
	// MAP_SHARED mappings.
	Shared bool
	// Dev and Inode identify the backing file as the kernel reports them
	// (foreign segments loaded from Linux); 0 when unknown. SyncCheck
	// compares the inode of an owned segment only when it is non-zero.
	Dev, Inode uint64
}

// Size returns End - Start.
func (s Segment) Size() uintptr { return s.End - s.Start }

// String formats s for error messages and test failures.
func (s Segment) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%#x-%#x) %s %s", s.Start, s.End, s.Kind, s.Prot)
	if s.Shared {
		b.WriteString(" shared")
	}
	if s.Owner != "" {
		fmt.Fprintf(&b, " owner=%q", s.Owner)
	}
	if s.Name != "" {
		fmt.Fprintf(&b, " name=%q+%#x", s.Name, s.Offset)
	}
	if s.Inode != 0 {
		fmt.Fprintf(&b, " dev=%#x ino=%d", s.Dev, s.Inode)
	}
	return b.String()
}

// Contains reports whether addr lies in [s.Start, s.End).
func (s Segment) Contains(addr uintptr) bool { return s.Start <= addr && addr < s.End }

// hasOffset reports whether s's Offset is meaningful, i.e. whether it is a
// view of a named object whose offset advances with the address.
func (s *Segment) hasOffset() bool { return s.Name != "" }

// clip returns s restricted to [lo, hi), which must intersect it, with the
// offset advanced to the new start.
func (s Segment) clip(lo, hi uintptr) Segment {
	if lo > s.Start {
		if s.hasOffset() {
			s.Offset += uint64(lo - s.Start)
		}
		s.Start = lo
	}
	if hi < s.End {
		s.End = hi
	}
	return s
}

// MaxNameLen bounds Owner and Name, in bytes: longer strings are rejected
// by Update (PATH_MAX on Linux is 4096).
const MaxNameLen = 4096

// checkText returns nil if v is acceptable as a segment's Owner or Name:
// valid UTF-8 with no control characters (C0, DEL or C1), at most
// MaxNameLen bytes. Such bytes would corrupt the one-line-per-segment maps
// dump and are never what a caller meant; the error names the byte and its
// position so the caller can find where the bad string came from.
func checkText(field, v string) error {
	if len(v) > MaxNameLen {
		return fmt.Errorf("%s is %d bytes long, more than %d", field, len(v), MaxNameLen)
	}
	for i := 0; i < len(v); {
		c := v[i]
		if c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				what := "control byte"
				if c == 0 {
					what = "NUL byte"
				}
				return fmt.Errorf("%s %q has a %s %#02x at offset %d", field, v, what, c, i)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && n == 1 {
			return fmt.Errorf("%s %q has an invalid UTF-8 byte %#02x at offset %d", field, v, c, i)
		}
		if r >= 0x80 && r <= 0x9f {
			return fmt.Errorf("%s %q has a C1 control character %U at offset %d", field, v, r, i)
		}
		i += n
	}
	return nil
}

// sanitizeText returns v with every byte checkText would reject replaced by
// a \xNN escape and truncated to MaxNameLen, so that names reported by the
// OS for foreign mappings (which reachvm does not choose) can always be
// recorded.
func sanitizeText(v string) string {
	if checkText("", v) == nil {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		c := v[i]
		r, n := rune(c), 1
		if c >= utf8.RuneSelf {
			r, n = utf8.DecodeRuneInString(v[i:])
		}
		bad := (c < utf8.RuneSelf && (c < 0x20 || c == 0x7f)) ||
			(r == utf8.RuneError && n == 1) || (r >= 0x80 && r <= 0x9f)
		if bad {
			for j := 0; j < n; j++ {
				fmt.Fprintf(&b, "\\x%02x", v[i+j])
			}
		} else {
			b.WriteString(v[i : i+n])
		}
		i += n
	}
	s := b.String()
	if len(s) > MaxNameLen {
		s = s[:MaxNameLen]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// validate checks s against cfg. It returns an error that names the
// segment and the first rule it breaks, or nil. It never mutates anything,
// so that Update can validate before it changes the map.
func (s *Segment) validate(cfg *Config) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("aspacem: bad segment [%#x-%#x): %s", s.Start, s.End, fmt.Sprintf(format, args...))
	}
	switch {
	case s.Start >= s.End:
		return bad("start not below end")
	case s.Start%cfg.PageSize != 0:
		return bad("start not aligned to page size %#x", cfg.PageSize)
	case s.End%cfg.PageSize != 0:
		return bad("end not aligned to page size %#x", cfg.PageSize)
	case s.Start < cfg.Lo || s.End > cfg.Hi:
		return bad("outside the address space [%#x-%#x)", cfg.Lo, cfg.Hi)
	case s.Kind >= numKinds:
		return bad("unknown kind %d", uint8(s.Kind))
	case !s.Prot.Valid():
		return bad("invalid protection %#x", uint8(s.Prot))
	}
	if err := checkText("owner", s.Owner); err != nil {
		return bad("%v", err)
	}
	if err := checkText("name", s.Name); err != nil {
		return bad("%v", err)
	}
	if s.Name == "" && s.Offset != 0 {
		return bad("offset %#x without a name", s.Offset)
	}
	if s.Offset%uint64(cfg.PageSize) != 0 {
		return bad("offset %#x not aligned to page size %#x", s.Offset, cfg.PageSize)
	}
	if s.Offset+uint64(s.End-s.Start) < s.Offset {
		return bad("offset %#x + size overflows", s.Offset)
	}
	if !s.Kind.Owned() && s.Owner != "" {
		return bad("%s segment with owner %q (owners annotate owned segments only)", s.Kind, s.Owner)
	}
	switch s.Kind {
	case KindFree:
		if s.Prot != mem.ProtNone || s.Name != "" || s.Shared || s.Dev != 0 || s.Inode != 0 {
			return bad("free segment with attributes (prot %s, name %q, shared %t)", s.Prot, s.Name, s.Shared)
		}
	case KindReservation:
		if s.Prot != mem.ProtNone {
			return bad("reservation with protection %s (reservations have no access)", s.Prot)
		}
		if s.Name != "" || s.Shared {
			return bad("reservation with a name or shared flag")
		}
	case KindAnon:
		if s.Name != "" {
			return bad("anonymous segment with name %q", s.Name)
		}
		if s.Shared {
			return bad("anonymous segment marked shared (a shared anonymous mapping is KindShared)")
		}
	case KindFile:
		if s.Name == "" {
			return bad("file segment without a name")
		}
		if s.Shared {
			return bad("file segment marked shared (shared views are KindShared)")
		}
	}
	return nil
}

// normalize fixes the attributes Update derives rather than checks: a
// KindShared segment is always shared.
func (s *Segment) normalize() {
	if s.Kind == KindShared {
		s.Shared = true
	}
}

// mergeable reports whether a, which ends where b starts, and b can be one
// segment: same attributes and, for views, contiguous offsets. Names are
// compared with fold when the map folds case.
func mergeable(a, b *Segment, fold bool) bool {
	if a.End != b.Start || a.Kind != b.Kind || a.Prot != b.Prot || a.Shared != b.Shared ||
		a.Owner != b.Owner || a.Dev != b.Dev || a.Inode != b.Inode {
		return false
	}
	if a.Name != b.Name && !(fold && strings.EqualFold(a.Name, b.Name)) {
		return false
	}
	if a.hasOffset() {
		return a.Offset+uint64(a.End-a.Start) == b.Offset
	}
	return true
}
