package jit

import (
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/jit/internal/amd64"
)

// TestTraceBufferKernels: a record before every instruction with a
// memory operand of every kernel leaves the results as they are
// natively, and the buffers hand Go exactly as many records as a counter
// beside them counts, over several flushes.
func TestTraceBufferKernels(t *testing.T) {
	ctr := NewCounter(PerThread)
	var recs, flushes uint64
	var tags [256]uint64
	buf := NewTraceBuffer(func(th *Thread, r []TraceRecord) {
		flushes++
		recs += uint64(len(r))
		for _, x := range r {
			tags[x.Tag&255]++
			if x.Extra != 0 {
				t.Errorf("record %+v: Extra is not zero", x)
			}
		}
	})
	// instrs counts at each block's start, as inscount does: a full
	// buffer's exit must not make a block's start run twice.
	instrs, plain := NewCounter(PerThread), NewCounter(PerThread)
	client := &Client{Block: func(b *Block) {
		b.AddCounter(0, instrs, int64(b.Len()))
		for i := range b.Len() {
			if b.Instr(i).HasMemOperand() {
				b.RecordEA(i, buf, uint32(i))
				b.AddCounter(i, ctr, 1)
			}
		}
	}}
	m, _ := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	ref, _ := newTestMachine(t, placements[1].cfg, &Options{Client: &Client{Block: func(b *Block) {
		b.AddCounter(0, plain, int64(b.Len()))
	}}})
	refLib := loadKernels(t, ref.v)
	lib := loadKernels(t, m.v)
	runKernels(t, m, lib, "recording", func(k kernel) {
		if _, err := ref.Run(lookup(t, refLib, k.name), k.args...); err != nil {
			t.Fatal(err)
		}
	})
	if instrs.Value() != plain.Value() {
		t.Errorf("%d instructions counted with the trace buffers, %d without", instrs.Value(), plain.Value())
	}
	m.flushTraces()
	if recs == 0 || recs != ctr.Value() {
		t.Errorf("%d records flushed, %d counted", recs, ctr.Value())
	}
	if flushes < 3 {
		t.Errorf("%d flushes for %d records: the full buffer's exit was not taken", flushes, recs)
	}
	t.Logf("%d records in %d flushes", recs, flushes)
}

// TestTraceBufferAddrs: the records hold the addresses the instructions
// use, on code whose registers are known.
func TestTraceBufferAddrs(t *testing.T) {
	var got []TraceRecord
	buf := NewTraceBuffer(func(th *Thread, r []TraceRecord) { got = append(got, r...) })
	client := &Client{Block: func(b *Block) {
		for i := range b.Len() {
			if in := b.Instr(i); in.HasMemOperand() {
				b.RecordEA(i, buf, uint32(i))
			}
		}
		b.RecordAddr(b.Len()-1, buf, RSP, 0, 100) // ret reads [rsp]
		b.RecordAddr(0, buf, RAX, 8, 101)
	}}
	m, code := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	u, err := allocUnit(code, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.free() })
	a := amd64.NewAssembler(u.exec)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fn := a.PC()
	// rax, rcx, rdx and r11 as the address registers: the ones
	// the record borrows when they are free.
	a.MovRR(amd64.RAX, amd64.RDI)
	a.MovRR(amd64.RCX, amd64.RSI)
	must(a.MovLoad(amd64.RDX, amd64.MI(amd64.RAX, amd64.RCX, 8, 16))) // 2: rdi+rsi*8+16
	must(a.Lea(amd64.R11, amd64.M(amd64.RCX, 0x100)))                 // 3: rsi+0x100, an address not loaded
	must(a.MovLoad(amd64.RCX, amd64.M(amd64.RSP, 0)))                 // 4: rsp
	a.MovRR(amd64.RAX, amd64.RDX)
	a.Ret()
	u.write(u.exec, a.Bytes())

	arr := make([]uint64, 8)
	arr[3] = 7
	base := uintptr(unsafe.Pointer(&arr[0]))
	res, err := m.Run(fn, base-16, 3)
	if err != nil {
		t.Fatal(err)
	}
	m.flushTraces()
	if res != 7 {
		t.Errorf("the code returned %d, want 7", res)
	}
	at := map[uint32]uint64{}
	for _, r := range got {
		at[r.Tag] = r.Addr
	}
	want := map[uint32]uint64{2: uint64(base + 24), 3: 3 + 0x100}
	for tag, w := range want {
		if at[tag] != w {
			t.Errorf("record %d: address %#x, want %#x (all: %+v)", tag, at[tag], w, got)
		}
	}
	if at[4] == 0 || at[100] != at[4] {
		t.Errorf("ret's [rsp] %#x, the load of [rsp] %#x: want equal", at[100], at[4])
	}
	if at[101] == 0 {
		t.Errorf("no record of rax+8: %+v", got)
	}
}

// TestTraceBufferInterleaved: records into two buffers, interleaved
// within instructions and with counters between them (which end a group
// of records and the register it left the cursor in), keep the kernels'
// results and reach each buffer exactly as counted, in the order made:
// each buffer's records of one instruction come in the order inserted.
func TestTraceBufferInterleaved(t *testing.T) {
	type tally struct{ recs, bad uint64 }
	var ta, tb tally
	check := func(s *tally) func(*Thread, []TraceRecord) {
		return func(th *Thread, r []TraceRecord) {
			s.recs += uint64(len(r))
			for k := range r {
				// Tags 2i and 2i+1 are made in that order at one
				// instruction, into the same buffer, with the same
				// address (a flush may fall between them, where a
				// run ends).
				if r[k].Tag&1 == 1 && k > 0 && (r[k-1].Tag != r[k].Tag-1 || r[k-1].Addr != r[k].Addr) {
					s.bad++
				}
			}
		}
	}
	bufA, bufB := NewTraceBuffer(check(&ta)), NewTraceBuffer(check(&tb))
	ca, cb := NewCounter(PerThread), NewCounter(PerThread)
	client := &Client{Block: func(b *Block) {
		for i := range b.Len() {
			if !b.Instr(i).HasMemOperand() {
				continue
			}
			tag := uint32(2 * (i % 1000))
			b.RecordEA(i, bufA, tag)
			b.RecordEA(i, bufA, tag+1)
			b.RecordEA(i, bufB, tag)
			b.AddCounter(i, ca, 2)
			b.RecordEA(i, bufB, tag+1)
			b.AddCounter(i, cb, 2)
		}
	}}
	m, _ := newTestMachine(t, placements[1].cfg, &Options{Client: client})
	lib := loadKernels(t, m.v)
	runKernels(t, m, lib, "recording", nil)
	m.flushTraces()
	if ta.recs == 0 || ta.recs != ca.Value() || tb.recs != cb.Value() || ta.bad+tb.bad != 0 {
		t.Errorf("buffer A %+v, counted %d; buffer B %+v, counted %d", ta, ca.Value(), tb, cb.Value())
	}
}
