package cfi

import (
	"encoding/binary"
	"errors"
)

// At is a row in force from Addr on.
type At struct {
	Addr uint64
	Row  *Row
}

// Encoder writes a .debug_frame: one CIE with no initial rules, code and
// data alignment 1 (every offset is written as it is), and an FDE for
// each run of rows given to FDE.
type Encoder struct {
	b []byte
}

// NewEncoder returns an Encoder holding the CIE.
func NewEncoder() *Encoder {
	e := &Encoder{}
	e.b = append(e.b, 0, 0, 0, 0)             // length
	e.b = append(e.b, 0xff, 0xff, 0xff, 0xff) // CIE id
	e.b = append(e.b, 3, 0)                   // version 3, no augmentation
	e.b = appendULEB(e.b, 1)                  // code alignment
	e.b = appendSLEB(e.b, 1)                  // data alignment
	e.b = appendULEB(e.b, RA)
	e.finish(0)
	return e
}

// finish pads the entry that starts at start with DW_CFA_nop to a
// multiple of 8 bytes and writes its length.
func (e *Encoder) finish(start int) {
	for (len(e.b)-start)%8 != 0 {
		e.b = append(e.b, cfaNop)
	}
	binary.LittleEndian.PutUint32(e.b[start:], uint32(len(e.b)-start-4))
}

// Bytes returns the section.
func (e *Encoder) Bytes() []byte { return e.b }

// Len returns the section's length so far.
func (e *Encoder) Len() int { return len(e.b) }

// FDE adds an FDE for [rows[0].Addr, hi) whose rows are rows, in
// ascending address order, each in force up to the next one's address.
func (e *Encoder) FDE(rows []At, hi uint64) error {
	if len(rows) == 0 || hi <= rows[0].Addr {
		return errors.New("cfi: an FDE with no rows or an empty range")
	}
	lo := rows[0].Addr
	start := len(e.b)
	e.b = append(e.b, 0, 0, 0, 0) // length
	e.b = append(e.b, 0, 0, 0, 0) // the CIE, at 0
	e.b = binary.LittleEndian.AppendUint64(e.b, lo)
	e.b = binary.LittleEndian.AppendUint64(e.b, hi-lo)
	var prev *Row
	loc := lo
	for _, r := range rows {
		if r.Addr < loc || r.Addr >= hi || r.Row == nil {
			e.b = e.b[:start]
			return errors.New("cfi: rows out of order, past the FDE's end or missing")
		}
		if prev != nil && (r.Row == prev || *r.Row == *prev) {
			continue
		}
		e.advance(loc, r.Addr)
		loc = r.Addr
		e.diff(prev, r.Row)
		prev = r.Row
	}
	e.finish(start)
	return nil
}

// advance moves the location from loc to to.
func (e *Encoder) advance(loc, to uint64) {
	d := to - loc
	switch {
	case d == 0:
	case d < 0x40:
		e.b = append(e.b, cfaAdvanceLoc|byte(d))
	case d <= 0xff:
		e.b = append(e.b, cfaAdvanceLoc1, byte(d))
	case d <= 0xffff:
		e.b = append(e.b, cfaAdvanceLoc2)
		e.b = binary.LittleEndian.AppendUint16(e.b, uint16(d))
	case d <= 0xffffffff:
		e.b = append(e.b, cfaAdvanceLoc4)
		e.b = binary.LittleEndian.AppendUint32(e.b, uint32(d))
	default:
		e.b = append(e.b, cfaSetLoc)
		e.b = binary.LittleEndian.AppendUint64(e.b, to)
	}
}

// diff writes the instructions that turn row prev into cur (every rule of
// cur when prev is nil: the CIE sets none).
func (e *Encoder) diff(prev, cur *Row) {
	first := prev == nil
	if first {
		prev = &Row{}
	}
	b := e.b
	if first || cur.CFA != prev.CFA {
		c := cur.CFA
		switch {
		case c.Expr != "":
			b = append(b, cfaDefCFAExpression)
			b = appendBlock(b, c.Expr)
		case !first && prev.CFA.Expr == "" && c.Reg == prev.CFA.Reg && c.Off >= 0:
			b = append(b, cfaDefCFAOffset)
			b = appendULEB(b, uint64(c.Off))
		case !first && prev.CFA.Expr == "" && c.Off == prev.CFA.Off:
			b = append(b, cfaDefCFARegister)
			b = appendULEB(b, c.Reg)
		case c.Off >= 0:
			b = append(b, cfaDefCFA)
			b = appendULEB(b, c.Reg)
			b = appendULEB(b, uint64(c.Off))
		default:
			b = append(b, cfaDefCFASF)
			b = appendULEB(b, c.Reg)
			b = appendSLEB(b, c.Off)
		}
	}
	for reg := range cur.Regs {
		r := cur.Regs[reg]
		if !first && r == prev.Regs[reg] || first && r.Kind == Unspecified {
			continue
		}
		switch r.Kind {
		case Unspecified:
			b = append(b, cfaRestore|byte(reg)) // to the CIE's: none
		case Undefined:
			b = append(b, cfaUndefined)
			b = appendULEB(b, uint64(reg))
		case SameValue:
			b = append(b, cfaSameValue)
			b = appendULEB(b, uint64(reg))
		case Offset:
			if r.N >= 0 {
				b = append(b, cfaOffset|byte(reg))
				b = appendULEB(b, uint64(r.N))
			} else {
				b = append(b, cfaOffsetExtendedSF)
				b = appendULEB(b, uint64(reg))
				b = appendSLEB(b, r.N)
			}
		case ValOffset:
			b = append(b, cfaValOffsetSF)
			b = appendULEB(b, uint64(reg))
			b = appendSLEB(b, r.N)
		case Register:
			b = append(b, cfaRegister)
			b = appendULEB(b, uint64(reg))
			b = appendULEB(b, r.Reg)
		case Expression:
			b = append(b, cfaExpression)
			b = appendULEB(b, uint64(reg))
			b = appendBlock(b, r.Expr)
		case ValExpression:
			b = append(b, cfaValExpression)
			b = appendULEB(b, uint64(reg))
			b = appendBlock(b, r.Expr)
		}
	}
	e.b = b
}

func appendBlock(b []byte, s string) []byte {
	b = appendULEB(b, uint64(len(s)))
	return append(b, s...)
}

func appendULEB(b []byte, v uint64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

func appendSLEB(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
