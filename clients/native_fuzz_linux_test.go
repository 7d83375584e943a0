//go:build linux && amd64

package clients

import (
	"encoding/binary"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/jit"
)

// recorder is a blockSink that checks what reaches it against what
// insert promises the jit: instructions in the block, cells aligned
// words of the image, functions in it, at most six arguments.
type recorder struct {
	t      *testing.T
	n      *native
	len    int
	calls  int
	failed bool
}

func (r *recorder) Len() int { return r.len }

func (r *recorder) check(i int, ok bool, what string) {
	r.calls++
	if i < 0 || i >= r.len || !ok {
		r.t.Errorf("%s reached the jit at instruction %d of %d", what, i, r.len)
	}
}

func (r *recorder) AddCell(i int, cell uintptr, n int64, locked bool) {
	r.check(i, r.n.inImage(cell, 8) && cell%8 == 0 && n == int64(int32(n)), "AddCell")
}

func (r *recorder) CleanCall(i int, fn uintptr, args ...jit.Arg) {
	r.check(i, r.n.inImage(fn, 1) && len(args) <= maxArgs, "CleanCall")
}

func (r *recorder) CleanCallVector(i int, fn uintptr, args ...jit.Arg) {
	r.check(i, r.n.inImage(fn, 1) && len(args) <= maxArgs, "CleanCallVector")
}

func (r *recorder) RecordEA(i int, buf *jit.TraceBuffer, tag uint32) {
	r.check(i, buf != nil && buf == r.n.tbuf, "RecordEA")
}

func (r *recorder) RecordAddr(i int, buf *jit.TraceBuffer, base jit.Reg, disp int32, tag uint32) {
	r.check(i, buf != nil && buf == r.n.tbuf && base <= jit.R15, "RecordAddr")
}

func (r *recorder) RecordRef(i int, buf *jit.TraceBuffer, ref jit.MemRef, tag uint32) {
	r.check(i, buf != nil && buf == r.n.tbuf && ref.Size == 8, "RecordRef")
}

// MemRefs gives every instruction one reference, an 8-byte load.
func (r *recorder) MemRefs(i int) []jit.MemRef {
	return []jit.MemRef{{Base: jit.RAX, HasBase: true, Size: 8, Read: true}}
}

// fuzzImage bounds the image of FuzzNativeInsert's client.
const fuzzLo, fuzzHi = 0x10000, 0x20000

// insertRecord encodes an rv_insert as the fuzzer's input holds it.
func insertRecord(kind uint32, at int32, target uint64, n int64, flags, nargs uint32, args ...cArg) []byte {
	in := cInsert{kind: kind, at: at, target: target, n: n, flags: flags, nargs: nargs}
	copy(in.args[:], args)
	return unsafe.Slice((*byte)(unsafe.Pointer(&in)), unsafe.Sizeof(in))
}

// FuzzNativeInsert: whatever a block event leaves in its struct
// rv_block and records, insert returns an error or passes on only
// insertions the jit may take, never panics, and passes on all of them
// when it returns nil. The input is the block's length, its ninserts
// and error, then the records.
func FuzzNativeInsert(f *testing.F) {
	head := func(n byte, ninserts uint32, e int32) []byte {
		b := []byte{n}
		b = binary.LittleEndian.AppendUint32(b, ninserts)
		return binary.LittleEndian.AppendUint32(b, uint32(e))
	}
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	f.Add(cat(head(3, 1, 0), insertRecord(insertAdd, 0, fuzzLo+8, 5, flagLocked, 0)))
	f.Add(cat(head(3, 2, 0), insertRecord(insertAdd, 2, fuzzLo+8, -5, 0, 0),
		insertRecord(insertCleanCall, 1, fuzzLo+0x100, 0, flagVector, 3, cArg{kind: argPC}, cArg{kind: argReg, reg: 15}, cArg{kind: argEA})))
	f.Add(cat(head(1, 1, 0), insertRecord(insertAdd, 0, fuzzHi-4, 1, 0, 0)))
	f.Add(cat(head(1, 1, 0), insertRecord(insertCleanCall, 0, fuzzLo, 0, 0, 7)))
	f.Add(cat(head(1, 1, 0), insertRecord(insertCleanCall, 0, fuzzLo, 0, 0, 1, cArg{kind: argReg, reg: 16})))
	f.Add(cat(head(2, 9, 0), insertRecord(9, 0, 0, 0, 0, 0)))
	f.Add(head(2, 0, 2))
	f.Add(cat(head(0x82, 2, 0), insertRecord(insertRecordEA, 1, 0, 7, 0, 0),
		insertRecord(insertRecordAddr, 0, 0, 1<<32-1, 0, 1, cArg{kind: argReg, reg: 4, value: -8})))
	f.Add(cat(head(2, 1, 0), insertRecord(insertRecordEA, 0, 0, 7, 0, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 9 {
			return
		}
		n := &native{name: "fuzz", images: []image{{fuzzLo, fuzzHi}}}
		if data[0]&0x80 != 0 {
			n.tbuf = jit.NewTraceBuffer(func(*jit.Thread, []jit.TraceRecord) {})
		}
		r := &recorder{t: t, n: n, len: int(data[0]%64) + 1}
		blk := cBlock{n: int32(r.len), ninserts: binary.LittleEndian.Uint32(data[1:]), error: int32(binary.LittleEndian.Uint32(data[5:]))}
		size := int(unsafe.Sizeof(cInsert{}))
		ins := make([]cInsert, (len(data)-9)/size)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(ins))), len(ins)*size), data[9:])
		blk.insertsCap = uint32(len(ins))
		err := n.insert(r, &blk, ins)
		if err == nil && r.calls != int(blk.ninserts) {
			t.Errorf("no error, %d insertions passed on of %d", r.calls, blk.ninserts)
		}
	})
}
