//go:build linux && amd64

package clients

import (
	"encoding/binary"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
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
	f.Add(slices.Concat(head(3, 1, 0), insertRecord(insertAdd, 0, fuzzLo+8, 5, flagLocked, 0)))
	f.Add(slices.Concat(head(3, 2, 0), insertRecord(insertAdd, 2, fuzzLo+8, -5, 0, 0),
		insertRecord(insertCleanCall, 1, fuzzLo+0x100, 0, flagVector, 3, cArg{kind: argPC}, cArg{kind: argReg, reg: 15}, cArg{kind: argEA})))
	f.Add(slices.Concat(head(1, 1, 0), insertRecord(insertAdd, 0, fuzzHi-4, 1, 0, 0)))
	f.Add(slices.Concat(head(1, 1, 0), insertRecord(insertCleanCall, 0, fuzzLo, 0, 0, 7)))
	f.Add(slices.Concat(head(1, 1, 0), insertRecord(insertCleanCall, 0, fuzzLo, 0, 0, 1, cArg{kind: argReg, reg: 16})))
	f.Add(slices.Concat(head(2, 9, 0), insertRecord(9, 0, 0, 0, 0, 0)))
	f.Add(head(2, 0, 2))
	f.Add(slices.Concat(head(0x82, 2, 0), insertRecord(insertRecordEA, 1, 0, 7, 0, 0),
		insertRecord(insertRecordAddr, 0, 0, 1<<32-1, 0, 1, cArg{kind: argReg, reg: 4, value: -8})))
	f.Add(slices.Concat(head(2, 1, 0), insertRecord(insertRecordEA, 0, 0, 7, 0, 0)))
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

// wrapRecord encodes an rv_wrap as FuzzNativeWraps's input holds it.
func wrapRecord(fn uint64, pre, post uintptr) []byte {
	w := cWrap{fn: fn, pre: pre, post: post}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w)), unsafe.Sizeof(w))
}

// FuzzNativeWraps: whatever a module_load event leaves in its wrap
// table, checkWraps returns an error or wraps that the jit may take
// (a function, a hook at least, hooks in the client's image), all the
// table holds, and never panics. The input is the table's n and error,
// then the records.
func FuzzNativeWraps(f *testing.F) {
	head := func(n uint32, e int32) []byte {
		b := binary.LittleEndian.AppendUint32(nil, n)
		return binary.LittleEndian.AppendUint32(b, uint32(e))
	}
	f.Add(slices.Concat(head(1, 0), wrapRecord(0x7000, fuzzLo, fuzzLo+8)))
	f.Add(slices.Concat(head(2, 0), wrapRecord(0x7000, fuzzLo, 0), wrapRecord(0x7100, 0, fuzzHi-1)))
	f.Add(slices.Concat(head(1, 0), wrapRecord(0, fuzzLo, 0)))
	f.Add(slices.Concat(head(1, 0), wrapRecord(0x7000, 0, 0)))
	f.Add(slices.Concat(head(1, 0), wrapRecord(0x7000, fuzzHi, 0)))
	f.Add(slices.Concat(head(3, 0), wrapRecord(0x7000, fuzzLo, 0)))
	f.Add(slices.Concat(head(0, 1)))
	f.Add(slices.Concat(head(1, 9), wrapRecord(0x7000, fuzzLo, 0)))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 8 {
			return
		}
		n := &native{name: "fuzz", images: []image{{fuzzLo, fuzzHi}}}
		tab := cWrapTable{n: binary.LittleEndian.Uint32(data), error: int32(binary.LittleEndian.Uint32(data[4:]))}
		size := int(unsafe.Sizeof(cWrap{}))
		room := make([]cWrap, (len(data)-8)/size)
		copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(room))), len(room)*size), data[8:])
		tab.cap = uint32(len(room))
		ws, err := n.checkWraps("/fuzz", &tab, room)
		if err != nil {
			if ws != nil {
				t.Errorf("an error (%v) and %d wraps", err, len(ws))
			}
			return
		}
		if len(ws) != int(tab.n) {
			t.Errorf("no error, %d wraps of %d", len(ws), tab.n)
		}
		for _, w := range ws {
			if w.fn == 0 || w.pre == 0 && w.post == 0 || w.pre != 0 && !n.inImage(w.pre, 1) || w.post != 0 && !n.inImage(w.post, 1) {
				t.Errorf("wrap %+v passed", w)
			}
		}
	})
}

// libcPath is the C library's file, where the usual systems keep it, or
// "".
func libcPath() string {
	for _, p := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

// FuzzNativeSymbols: the header's rv_module_symbol and rv_module_lookup,
// compiled with gcc and loaded privately, answer on the tables reachvm
// makes of the C library (struct rv_module's syms and names) exactly as
// jit's Module.Symbol and Lookup do, for any address in and around it
// and any name, and refuse NULL pointers. The input is an offset from
// the library's base and a name.
func FuzzNativeSymbols(f *testing.F) {
	libc := libcPath()
	if libc == "" {
		f.Skip("no C library where it is looked for")
	}
	so := testClient(f, "symhelpers")
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { v.Close() })
	lib, err := privload.Load(v, so, privload.Options{System: nativeSystem})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { lib.Close() })
	symAt, err := lib.Func("sym_at")
	if err != nil {
		f.Fatal(err)
	}
	lookup, err := lib.Func("lookup")
	if err != nil {
		f.Fatal(err)
	}
	mod := &jit.Module{Path: libc, Base: 0x7f1200000000, End: 0x7f1200400000}
	nm := newNModule(mod)
	if nm.c.nsyms == 0 || nm.c.nnames == 0 {
		f.Fatalf("%s: %d functions, %d names", libc, nm.c.nsyms, nm.c.nnames)
	}
	cm := uintptr(unsafe.Pointer(&nm.c))
	if malloc, ok := mod.Lookup("malloc"); ok {
		f.Add(uint64(malloc-mod.Base), "malloc")
		f.Add(uint64(malloc-mod.Base+3), "__libc_malloc")
	}
	f.Add(uint64(0), "")
	f.Add(uint64(1<<22), "no such function")
	f.Add(^uint64(0), "free")
	f.Add(uint64(nm.syms[len(nm.syms)-1].start-uint64(mod.Base)), privload.GoString(nm.names[len(nm.names)-1].name))
	f.Fuzz(func(t *testing.T, off uint64, name string) {
		pc := uintptr(uint64(mod.Base) + off)
		var out [2]uint64
		r, err := symAt.Call3(cm, pc, uintptr(unsafe.Pointer(&out)))
		if err != nil {
			t.Fatal(err)
		}
		gname, gstart, ok := mod.Symbol(pc)
		if ok != (r == 0) || ok && (uintptr(out[0]) != gstart || privload.GoString(uintptr(out[1])) != gname) {
			t.Errorf("pc %#x: rv_module_symbol %d (%#x %q), Symbol %v (%#x %q)", pc, r, out[0], privload.GoString(uintptr(out[1])), ok, gstart, gname)
		}
		if !ok && r != 6 {
			t.Errorf("pc %#x: rv_module_symbol %d, want RV_ERR_NOT_FOUND", pc, r)
		}
		if r, _ := symAt.Call3(0, pc, uintptr(unsafe.Pointer(&out))); r != 5 {
			t.Errorf("rv_module_symbol of a NULL module: %d", r)
		}
		if r, _ := symAt.Call3(cm, pc, 0); r != 5 {
			t.Errorf("rv_module_symbol with a NULL result: %d", r)
		}

		if strings.IndexByte(name, 0) >= 0 {
			return // C would see a shorter name
		}
		cname := append([]byte(name), 0)
		var addr uint64
		r, err = lookup.Call3(cm, uintptr(unsafe.Pointer(&cname[0])), uintptr(unsafe.Pointer(&addr)))
		if err != nil {
			t.Fatal(err)
		}
		gaddr, ok := mod.Lookup(name)
		if ok != (r == 0) || ok && uintptr(addr) != gaddr || !ok && (r != 6 || addr != 0) {
			t.Errorf("%q: rv_module_lookup %d (%#x), Lookup %v (%#x)", name, r, addr, ok, gaddr)
		}
		if r, _ := lookup.Call3(cm, 0, uintptr(unsafe.Pointer(&addr))); r != 5 {
			t.Errorf("rv_module_lookup of a NULL name: %d", r)
		}
		runtime.KeepAlive(cname)
		// The C code reads nm's arrays through cm, a uintptr.
		runtime.KeepAlive(nm)
	})
}
