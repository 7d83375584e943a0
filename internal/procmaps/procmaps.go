// Package procmaps parses the Linux /proc/PID/maps format without
// allocating per line.
//
// The format, one mapping per line:
//
//	start-end perms offset major:minor inode [name]
//
// where start, end and offset are hexadecimal, perms is four characters
// ("r-xp": read, write, execute, then p for private or s for shared), the
// device numbers are hexadecimal and the inode decimal. The name, if any,
// starts after a run of spaces and runs to the end of the line; it may
// contain spaces and, for a deleted file, ends in " (deleted)".
package procmaps

import (
	"bytes"
	"fmt"
	"strconv"
)

// Perm is the set of access bits of a mapping. The values equal osmem.Prot's
// (read 1, write 2, execute 4) so that the OS backend converts with a plain
// type conversion; procmaps cannot import osmem, which imports it.
type Perm uint8

// Permission bits.
const (
	PermRead  Perm = 1 << 0
	PermWrite Perm = 1 << 1
	PermExec  Perm = 1 << 2
)

// Entry is one parsed line.
type Entry struct {
	Start, End uintptr
	Prot       Perm
	// Shared is set for 's' in the fourth permission column.
	Shared   bool
	Offset   uint64
	DevMajor uint32
	DevMinor uint32
	Inode    uint64
	// Name aliases the input buffer: copy it to keep it past the callback.
	Name []byte
}

// Dev returns the device number as the kernel's encoding (major<<8|minor
// for small numbers, as st_dev is compared by most tools). It is exact only
// for minors below 256; compare DevMajor and DevMinor where that matters.
func (e *Entry) Dev() uint64 { return uint64(e.DevMajor)<<8 | uint64(e.DevMinor) }

// SyntaxError reports a malformed line.
type SyntaxError struct {
	// Line is the 1-based line number.
	Line int
	// Text is the offending line, truncated to 120 bytes.
	Text string
	// Reason says what was wrong.
	Reason string
}

// Error formats the line number, the reason and the line.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("procmaps: line %d: %s: %q", e.Line, e.Reason, e.Text)
}

// Parse calls fn for each line of data, in order. fn returns false to stop
// early. The Entry passed to fn is reused between calls. A malformed line
// stops parsing with a *SyntaxError. Empty lines are skipped; the last line
// need not end in a newline.
//
// Parse allocates nothing per line (once per call, for the Entry, and for
// the error if it fails): it finds line ends with bytes.IndexByte
// (vectorised) and parses every field in place.
func Parse(data []byte, fn func(*Entry) bool) error {
	var e Entry
	line := 0
	for len(data) > 0 {
		line++
		nl := bytes.IndexByte(data, '\n')
		var l []byte
		if nl < 0 {
			l, data = data, nil
		} else {
			l, data = data[:nl], data[nl+1:]
		}
		if len(l) == 0 {
			continue
		}
		if reason := parseLine(l, &e); reason != "" {
			t := l
			if len(t) > 120 {
				t = t[:120]
			}
			return &SyntaxError{Line: line, Text: string(t), Reason: reason}
		}
		if !fn(&e) {
			return nil
		}
	}
	return nil
}

// parseLine fills e from l and returns "" or the reason l is malformed.
func parseLine(l []byte, e *Entry) string {
	i := 0
	var ok bool
	var v uint64
	if v, i, ok = hex(l, i, '-'); !ok || uint64(uintptr(v)) != v {
		return "bad start address"
	}
	e.Start = uintptr(v)
	if v, i, ok = hex(l, i, ' '); !ok || uint64(uintptr(v)) != v {
		return "bad end address"
	}
	e.End = uintptr(v)
	if e.End <= e.Start {
		return "end not above start"
	}
	if i+5 > len(l) || l[i+4] != ' ' {
		return "bad permissions"
	}
	p := l[i : i+4]
	e.Prot = 0
	switch p[0] {
	case 'r':
		e.Prot |= PermRead
	case '-':
	default:
		return "bad permissions"
	}
	switch p[1] {
	case 'w':
		e.Prot |= PermWrite
	case '-':
	default:
		return "bad permissions"
	}
	switch p[2] {
	case 'x':
		e.Prot |= PermExec
	case '-':
	default:
		return "bad permissions"
	}
	switch p[3] {
	case 's':
		e.Shared = true
	case 'p':
		e.Shared = false
	default:
		return "bad permissions"
	}
	i += 5
	if e.Offset, i, ok = hex(l, i, ' '); !ok {
		return "bad offset"
	}
	if v, i, ok = hex(l, i, ':'); !ok || v > 0xffffffff {
		return "bad device major"
	}
	e.DevMajor = uint32(v)
	if v, i, ok = hex(l, i, ' '); !ok || v > 0xffffffff {
		return "bad device minor"
	}
	e.DevMinor = uint32(v)
	// Inode: decimal, ends at a space or the end of the line.
	start := i
	e.Inode = 0
	for i < len(l) && l[i] != ' ' {
		c := l[i]
		if c < '0' || c > '9' {
			return "bad inode"
		}
		d := uint64(c - '0')
		if e.Inode > (1<<64-1-d)/10 {
			return "bad inode" // overflows 64 bits
		}
		e.Inode = e.Inode*10 + d
		i++
	}
	if i == start {
		return "bad inode"
	}
	for i < len(l) && l[i] == ' ' {
		i++
	}
	e.Name = l[i:]
	return ""
}

// NameColumn is the column at which the kernel starts the name of a
// mapping on 64-bit systems: it pads the fields before it to
// 25 + 6*sizeof(void *) - 1 = 72 characters, then writes one space.
const NameColumn = 73

// AppendText appends e as the kernel prints it in /proc/self/maps, newline
// excluded: addresses and offset in lower-case hexadecimal zero-padded to 8
// digits, device numbers to 2, the inode in decimal, then a space and, if
// there is a name, padding to NameColumn and the name. Parsing the result
// yields e again, except that a name's leading spaces are lost (the format
// cannot tell them from the padding). It implements encoding.TextAppender
// and never fails.
func (e *Entry) AppendText(b []byte) ([]byte, error) {
	start := len(b)
	b = appendHex(b, uint64(e.Start), 8)
	b = append(b, '-')
	b = appendHex(b, uint64(e.End), 8)
	b = append(b, ' ')
	for _, x := range [3]struct {
		bit Perm
		c   byte
	}{{PermRead, 'r'}, {PermWrite, 'w'}, {PermExec, 'x'}} {
		if e.Prot&x.bit != 0 {
			b = append(b, x.c)
		} else {
			b = append(b, '-')
		}
	}
	if e.Shared {
		b = append(b, 's', ' ')
	} else {
		b = append(b, 'p', ' ')
	}
	b = appendHex(b, e.Offset, 8)
	b = append(b, ' ')
	b = appendHex(b, uint64(e.DevMajor), 2)
	b = append(b, ':')
	b = appendHex(b, uint64(e.DevMinor), 2)
	b = append(b, ' ')
	b = strconv.AppendUint(b, e.Inode, 10)
	b = append(b, ' ')
	if len(e.Name) > 0 {
		for len(b)-start < NameColumn {
			b = append(b, ' ')
		}
		b = append(b, e.Name...)
	}
	return b, nil
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
	for n := len(tmp) - i; n < width; n++ {
		b = append(b, '0')
	}
	return append(b, tmp[i:]...)
}

// hex parses lowercase or uppercase hex digits at l[i:] up to the byte end,
// which must follow at least one digit. It returns the value and the index
// after end.
func hex(l []byte, i int, end byte) (uint64, int, bool) {
	var v uint64
	start := i
	for i < len(l) {
		c := l[i]
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		case c == end:
			if i == start {
				return 0, i, false
			}
			return v, i + 1, true
		default:
			return 0, i, false
		}
		if v>>60 != 0 {
			return 0, i, false // would overflow 64 bits
		}
		v = v<<4 | uint64(d)
		i++
	}
	return 0, i, false
}
