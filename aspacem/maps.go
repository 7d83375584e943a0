package aspacem

import (
	"io"
	"strconv"
)

// mapsNameColumn is the column at which the kernel starts the name field
// of a /proc/self/maps line on 64-bit systems (it pads the prefix to
// 25 + 6*sizeof(void*) - 1 characters, then writes one space).
const mapsNameColumn = 73

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
// "[heap]", so tools that read maps still parse the output
// (internal/procmaps does). Foreign segments are printed as the kernel
// printed them, with no annotation.
func (m *Map) WriteMaps(w io.Writer, lo, hi uintptr) error {
	segs := m.Segments(lo, hi)
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

// appendMapsLine appends s's maps line, newline included, to b.
func appendMapsLine(b []byte, s *Segment) []byte {
	start := len(b)
	b = appendHex(b, uint64(s.Start), 8)
	b = append(b, '-')
	b = appendHex(b, uint64(s.End), 8)
	b = append(b, ' ')
	b = append(b, s.Prot.String()...)
	if s.Shared {
		b = append(b, 's')
	} else {
		b = append(b, 'p')
	}
	b = append(b, ' ')
	b = appendHex(b, s.Offset, 8)
	b = append(b, ' ')
	b = appendHex(b, s.Dev>>8, 2)
	b = append(b, ':')
	b = appendHex(b, s.Dev&0xff, 2)
	b = append(b, ' ')
	b = strconv.AppendUint(b, s.Inode, 10)
	b = append(b, ' ')
	annot := ""
	if s.Kind.Owned() {
		annot = s.Owner
		if annot == "" {
			annot = s.Kind.String()
		}
	}
	if s.Name != "" || annot != "" {
		for len(b)-start < mapsNameColumn {
			b = append(b, ' ')
		}
		b = append(b, s.Name...)
		if annot != "" {
			if s.Name != "" {
				b = append(b, ' ')
			}
			b = append(b, '[')
			b = append(b, annot...)
			b = append(b, ']')
		}
	}
	return append(b, '\n')
}

// appendHex appends v in lower-case hexadecimal, zero-padded to width
// digits.
func appendHex(b []byte, v uint64, width int) []byte {
	var tmp [16]byte
	i := len(tmp)
	for v != 0 || i == len(tmp) {
		i--
		tmp[i] = "0123456789abcdef"[v&0xf]
		v >>= 4
	}
	for len(tmp)-i < width {
		b = append(b, '0')
		width--
	}
	return append(b, tmp[i:]...)
}
