package jit

import (
	"encoding/binary"
	"slices"
)

// A fragment's marks are kept packed: a fragment has a mark per copied
// instruction and a few per inserted sequence, and a large program
// translates hundreds of thousands of instructions, so 24 bytes a mark
// was most of the Go memory a translation costs. Marks are read only
// when a signal arrives in the cache or a tool is shown the code, where
// decoding a fragment's few dozen is nothing.
//
// Each mark is:
//
//	head   byte: bit 0 exact, bit 1 a fix follows, bit 2 a block's start
//	off    uvarint: the offset from the previous mark's (the first's from 0)
//	pc     varint: the PC less the previous mark's (the first's less the tag)
//	fix    when bit 1: rsp varint, inCtx uvarint, spill+1 byte
//
// A copied instruction's mark is three bytes.
type packedMarks []byte

const (
	markHeadExact = 1 << 0
	markHeadFix   = 1 << 1
	markHeadBlock = 1 << 2
)

// appendMarks appends the encoding of ms, a fragment's marks in offset
// order, for a fragment whose tag is tag.
func appendMarks(b []byte, ms []mark, tag uintptr) []byte {
	var off uint32
	pc := tag
	for _, k := range ms {
		var head byte
		if k.exact {
			head |= markHeadExact
		}
		if k.block {
			head |= markHeadBlock
		}
		fixed := k.rsp != 0 || k.inCtx != 0 || k.spill != noSpill
		if fixed {
			head |= markHeadFix
		}
		b = append(b, head)
		b = binary.AppendUvarint(b, uint64(k.off-off))
		b = binary.AppendVarint(b, int64(k.pc-pc))
		if fixed {
			b = binary.AppendVarint(b, int64(k.rsp))
			b = binary.AppendUvarint(b, uint64(k.inCtx))
			b = append(b, byte(k.spill+1))
		}
		off, pc = k.off, k.pc
	}
	return b
}

// markReader decodes packed marks one at a time.
type markReader struct {
	b   packedMarks
	cur mark
}

func (p packedMarks) reader(tag uintptr) markReader {
	return markReader{b: p, cur: mark{pc: tag}}
}

// next decodes the next mark, reporting false at the end (or at bytes
// appendMarks did not write, which cannot happen).
func (r *markReader) next() (mark, bool) {
	if len(r.b) == 0 {
		return mark{}, false
	}
	head := r.b[0]
	b := r.b[1:]
	doff, n := binary.Uvarint(b)
	if n <= 0 {
		return mark{}, false
	}
	b = b[n:]
	dpc, n := binary.Varint(b)
	if n <= 0 {
		return mark{}, false
	}
	b = b[n:]
	k := mark{off: r.cur.off + uint32(doff), pc: r.cur.pc + uintptr(dpc), spill: noSpill, exact: head&markHeadExact != 0, block: head&markHeadBlock != 0}
	if head&markHeadFix != 0 {
		rsp, n := binary.Varint(b)
		if n <= 0 {
			return mark{}, false
		}
		b = b[n:]
		in, n := binary.Uvarint(b)
		if n <= 0 || len(b) <= n {
			return mark{}, false
		}
		k.rsp, k.inCtx, k.spill = int32(rsp), uint16(in), int8(b[n])-1
		b = b[n+1:]
	}
	r.b, r.cur = b, k
	return k, true
}

// unpackMarks appends f's marks to buf.
func (f *fragment) unpackMarks(buf []mark) []mark {
	r := f.marks.reader(f.tag)
	for k, ok := r.next(); ok; k, ok = r.next() {
		buf = append(buf, k)
	}
	return buf
}

// markAt returns the mark covering cache address pc of f.
func (f *fragment) markAt(pc uintptr) (mark, bool) {
	off := uint32(pc - f.entry)
	r := f.marks.reader(f.tag)
	var last mark
	found := false
	for k, ok := r.next(); ok && k.off <= off; k, ok = r.next() {
		last, found = k, true
	}
	return last, found
}

// markChunkLen is how many bytes of packed marks a chunk holds.
const markChunkLen = 64 << 10

// keepMarks packs a new fragment's marks into the current chunk and
// returns them. When the chunk has no room the next one is used
// (emptied: a flush left it to be reused) or a new one made; the full
// chunk stays with the fragments that use it.
func (m *Machine) keepMarks(ms []mark, tag uintptr) packedMarks {
	m.packBuf = appendMarks(m.packBuf[:0], ms, tag)
	b := m.packBuf
	if len(m.markChunks) == 0 {
		m.markChunks = append(m.markChunks, make([]byte, 0, markChunkLen))
	}
	c := m.markChunks[m.markChunk]
	if len(b) > cap(c)-len(c) {
		m.markChunk++
		if m.markChunk == len(m.markChunks) || cap(m.markChunks[m.markChunk]) < len(b) {
			m.markChunks = slices.Insert(m.markChunks, m.markChunk, make([]byte, 0, max(markChunkLen, len(b))))
		}
		c = m.markChunks[m.markChunk][:0]
	}
	n := len(c)
	c = append(c, b...)
	m.markChunks[m.markChunk] = c
	return packedMarks(c[n:len(c):len(c)])
}
