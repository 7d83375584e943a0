package aspacem

import (
	"io"

	"github.com/reachvm/reachvm/internal/procmaps"
)

// WriteMaps writes the segments intersecting [lo, hi), clipped to it, in
// /proc/self/maps format:
//
//	start-end perms offset major:minor inode    name [owner]
//
// with start, end and offset in hexadecimal zero-padded to 8 digits (so
// 12 for typical 64-bit user addresses, exactly as the kernel prints),
// device numbers as two-digit hex and the inode in decimal, the name
// column padded to where the kernel puts it. Free segments are not
// printed. Every owned segment ends with its owner in brackets: "[vmcode]",
// "[privlib libdemo.so]", or "[KIND]" (e.g. "[reservation]") if it has no
// Owner; the annotation stands where the kernel puts pseudo-names such as
// "[heap]", so tools that read maps still parse the output (aspacem's own
// parser of the kernel's maps does). Foreign segments are printed as the kernel
// printed them, with no annotation.
func (m *Map) WriteMaps(w io.Writer, lo, hi uintptr) error {
	return WriteSegments(w, m.Segments(lo, hi))
}

// WriteSegments writes segs, in order, as WriteMaps does: one maps line
// for each segment that is not free. It is for callers that rewrite what
// Segments returned first (vmm folds runs of idle grid slots into one
// line).
func WriteSegments(w io.Writer, segs []Segment) error {
	buf := make([]byte, 0, 4096)
	for i := range segs {
		s := &segs[i]
		if s.Kind == KindFree {
			continue
		}
		buf = appendMapsLine(buf, s)
		if len(buf) >= 3072 {
			if _, err := w.Write(buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if len(buf) > 0 {
		if _, err := w.Write(buf); err != nil {
			return err
		}
	}
	return nil
}

// appendMapsLine appends s's maps line, newline included, to b. The line
// is the kernel's (procmaps.Entry.AppendText), with the owner annotation
// appended to the name.
func appendMapsLine(b []byte, s *Segment) []byte {
	e := procmaps.Entry{
		Start:    s.Start,
		End:      s.End,
		Prot:     procmaps.Perm(s.Prot),
		Shared:   s.Shared,
		Offset:   s.Offset,
		DevMajor: uint32(s.Dev >> 8),
		DevMinor: uint32(s.Dev & 0xff),
		Inode:    s.Inode,
	}
	var name [256]byte
	e.Name = append(name[:0], s.Name...)
	if s.Kind.Owned() {
		annot := s.Owner
		if annot == "" {
			annot = s.Kind.String()
		}
		if len(e.Name) > 0 {
			e.Name = append(e.Name, ' ')
		}
		e.Name = append(append(append(e.Name, '['), annot...), ']')
	}
	b, _ = e.AppendText(b) // never fails
	return append(b, '\n')
}
