// Package elfrel decodes ELF relocation encodings that debug/elf does not:
// DT_RELR, the packed relative relocations of x86-64 ELF files linked with
// -z pack-relative-relocs. jit's program loader and privload both decode
// it here, with the checks a table read from an untrusted file needs.
package elfrel

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// RELREntSize is the size of one DT_RELR entry on a 64-bit target (the
// only value DT_RELRENT may hold there).
const RELREntSize = 8

// relrBits is the number of places one bitmap entry covers.
const relrBits = 63

// RELRError reports a malformed DT_RELR table.
type RELRError struct {
	// Index is the entry at fault (-1 for the table as a whole).
	Index int
	// Reason says what is wrong with it.
	Reason string
}

func (e *RELRError) Error() string {
	if e.Index < 0 {
		return "DT_RELR " + e.Reason
	}
	return fmt.Sprintf("DT_RELR entry %d %s", e.Index, e.Reason)
}

// DecodeRELR decodes the DT_RELR table table (little-endian 64-bit
// entries) and calls fn with the offset (a link-time address) of every
// 8-byte word it relocates, in table order, stopping at fn's first error,
// which it returns as is. The table is checked as it is read: its size is
// a multiple of RELREntSize; an address entry is 8-byte aligned (the
// linker packs only aligned words); a bitmap entry follows an address
// entry; no offset, nor the end of the word it names, wraps around the
// address space. Bounds (whether an offset lies in a writable segment of
// the image) are the caller's to check, in fn.
func DecodeRELR(table []byte, fn func(off uint64) error) error {
	if len(table)%RELREntSize != 0 {
		return &RELRError{Index: -1, Reason: fmt.Sprintf("size %#x is not a multiple of %d", len(table), RELREntSize)}
	}
	// where is the first place the next bitmap entry covers; full says
	// it would be 2^64 or beyond, so that the next bitmap covers nothing
	// that exists.
	var where uint64
	haveBase, full := false, false
	for i := 0; i < len(table)/RELREntSize; i++ {
		e := binary.LittleEndian.Uint64(table[i*RELREntSize:])
		if e&1 == 0 {
			if e%RELREntSize != 0 {
				return &RELRError{Index: i, Reason: fmt.Sprintf("address %#x is not aligned to %d", e, RELREntSize)}
			}
			if err := fn(e); err != nil {
				return err
			}
			// e is aligned, so its word ends at 2^64 at the latest.
			where, haveBase, full = e+RELREntSize, true, e+RELREntSize == 0
			continue
		}
		if !haveBase {
			return &RELRError{Index: i, Reason: "is a bitmap with no address entry before it"}
		}
		bm := e >> 1
		if n := uint64(bits.Len64(bm)); n > 0 && (full || where > -(n*RELREntSize)) {
			return &RELRError{Index: i, Reason: fmt.Sprintf("bitmap %#x names places past the end of the address space", e)}
		}
		for bit := uint64(0); bm != 0; bit, bm = bit+1, bm>>1 {
			if bm&1 != 0 {
				if err := fn(where + bit*RELREntSize); err != nil {
					return err
				}
			}
		}
		if next := where + relrBits*RELREntSize; next < where {
			full = true
		} else {
			where = next
		}
	}
	return nil
}
