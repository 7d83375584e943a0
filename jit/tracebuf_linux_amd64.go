package jit

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Trace buffers: inline code stores 16-byte records into a buffer of the
// thread's own, and Go sees them a buffer at a time (DynamoRIO's
// drx_buf): when the buffer fills, the thread leaves the cache, the
// buffer's Flush runs on it, and the thread goes on in the same fragment
// where it left, making the record again; at the thread's exit the rest
// is flushed. Nothing calls Go per record.
//
// Each thread's buffer is 64 KiB of a vmcode slot twice that size, the
// 64 KiB that end at an address aligned to it: its first word is the
// cursor, records fill the rest up to the end. The cursor's low 16 bits are zero exactly when the buffer is
// full, which the inserted code tests without touching the flags:
//
//	mov    [ctx.spill], s         ; s: a scratch register, if live
//	lea    s, [operand]           ; the address recorded
//	mov    [ctx.rcx], rcx         ; if live
//	mov    rcx, [cursor]
//	movzx  ecx, cx
//	jrcxz  full
//	mov    rcx, [cursor]
//	mov    [rcx], s               ; Record.Addr
//	mov    dword [rcx+8], tag     ; Record.Tag
//	lea    rcx, [rcx+16]
//	mov    [cursor], rcx
//	mov    rcx, [ctx.rcx]
//	mov    s, [ctx.spill]
//	jmp    done
//	full:  (restore rcx and s), jmp to an exit that flushes
//	jmp    (the start)            ; where the dispatcher enters again
//	done:

// TraceRecord is one record of a TraceBuffer.
type TraceRecord struct {
	// Addr is the address recorded (RecordEA, RecordAddr).
	Addr uint64
	// Tag is the client's tag for the instruction (a site number, its
	// size and kind of access: whatever the client needs to decode
	// the record).
	Tag uint32
	// Extra is zero.
	Extra uint32
}

// traceRecordSize is a record's size in the buffer.
const traceRecordSize = 16

// traceSlot is the size of each thread's buffer, cursor included; the
// buffer ends at an address aligned to it.
const traceSlot = 64 << 10

// TraceBuffer is a trace buffer: each thread records into a buffer of
// its own, and Flush sees its records in order, on the thread.
type TraceBuffer struct {
	// flush is called with the records of a full buffer, or of what a
	// thread recorded when it exits. The slice is valid only during
	// the call.
	flush func(t *Thread, recs []TraceRecord)
}

// NewTraceBuffer returns a trace buffer whose records go to flush: when
// a thread's buffer (4095 records) fills, and what is left when the
// thread exits. flush runs on the thread that recorded them, which waits
// for it.
func NewTraceBuffer(flush func(t *Thread, recs []TraceRecord)) *TraceBuffer {
	return &TraceBuffer{flush: flush}
}

// traceArena is a machine's buffers, one slot per TraceBuffer.
type traceArena struct {
	// mu guards slots.
	mu    sync.Mutex
	v     *vmm.VMM
	slots map[*TraceBuffer]traceSlotOf
	// order is the buffers in the order of their slots' creation, the
	// order flushAll flushes them in.
	order []*TraceBuffer
}

// traceSlotOf is a thread's buffer for one TraceBuffer.
type traceSlotOf struct {
	slot *vmm.Slot
	// cursor is the cursor cell's address, the buffer's start; the
	// buffer ends at cursor+traceSlot, aligned to traceSlot.
	cursor uintptr
}

// cursor returns the cursor cell of buf's buffer on this machine,
// making the buffer the first time.
func (m *Machine) traceCursor(buf *TraceBuffer) (uintptr, error) {
	if m.traces == nil {
		m.traces = &traceArena{v: m.v, slots: make(map[*TraceBuffer]traceSlotOf)}
	}
	a := m.traces
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.slots[buf]; ok {
		return s.cursor, nil
	}
	s, err := a.v.ReserveSlot(2*traceSlot, "jit trace buffer")
	if err != nil {
		return 0, fmt.Errorf("jit: reserving a trace buffer: %w", err)
	}
	end := (s.Base() + 2*traceSlot - 1) &^ (traceSlot - 1)
	cursor := end - traceSlot
	if err := s.Commit(cursor, traceSlot, mem.ProtRW); err != nil {
		s.Release()
		return 0, fmt.Errorf("jit: committing a trace buffer: %w", err)
	}
	*(*uint64)(rawmem.Ptr(cursor)) = uint64(cursor + traceRecordSize)
	a.slots[buf] = traceSlotOf{slot: s, cursor: cursor}
	a.order = append(a.order, buf)
	return cursor, nil
}

// flushTraces hands each of the machine's buffers' records to its
// buffer's Flush and empties it.
func (m *Machine) flushTraces() {
	a := m.traces
	if a == nil {
		return
	}
	a.mu.Lock()
	order := a.order
	a.mu.Unlock()
	t := m.clientThread()
	for _, buf := range order {
		a.mu.Lock()
		s := a.slots[buf]
		a.mu.Unlock()
		cursor := (*uint64)(rawmem.Ptr(s.cursor))
		first := s.cursor + traceRecordSize
		n := (uintptr(*cursor) - first) / traceRecordSize
		if n > 0 && buf.flush != nil {
			recs := unsafe.Slice((*TraceRecord)(rawmem.Ptr(first)), n)
			buf.flush(t, recs)
		}
		*cursor = uint64(first)
	}
}

// release frees the buffers' slots, their records unflushed.
func (a *traceArena) release() error {
	if a == nil {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	var first error
	for buf, s := range a.slots {
		if err := s.slot.Release(); err != nil && first == nil {
			first = err
		}
		delete(a.slots, buf)
	}
	a.order = nil
	return first
}

// RecordEA inserts, before instruction i, code that appends a record of
// the effective address of its explicit memory operand (as ArgEA
// computes it) and tag to buf, without changing the application's
// registers or flags.
func (b *Block) RecordEA(i int, buf *TraceBuffer, tag uint32) {
	if b.err != nil {
		return
	}
	if i < 0 || i >= len(b.instrs) {
		b.err = fmt.Errorf("jit: client: RecordEA at instruction %d of a block of %d", i, len(b.instrs))
		return
	}
	ea, err := effAddr(&b.instrs[i])
	if err != nil {
		b.err = fmt.Errorf("jit: client: RecordEA: %w", err)
		return
	}
	b.record(i, buf, ea, tag)
}

// RecordAddr inserts, before instruction i, code that appends a record
// of the address base+disp, base's value being the application's before
// the instruction, and tag to buf: for the implicit operands of push
// (rsp-8), pop and ret (rsp), and the string instructions (rsi, rdi).
func (b *Block) RecordAddr(i int, buf *TraceBuffer, base Reg, disp int32, tag uint32) {
	if b.err != nil {
		return
	}
	if i < 0 || i >= len(b.instrs) || base > R15 {
		b.err = fmt.Errorf("jit: client: RecordAddr at instruction %d of a block of %d, base %v", i, len(b.instrs), base)
		return
	}
	b.record(i, buf, memOperand{base: int8(base), index: -1, disp: disp}, tag)
}

func (b *Block) record(i int, buf *TraceBuffer, ea memOperand, tag uint32) {
	if buf == nil {
		b.err = fmt.Errorf("jit: client: a record into a nil trace buffer")
		return
	}
	b.ins = append(b.ins, insertion{at: i, kind: insertRecord, buf: buf, ea: ea, tag: tag})
}

// recordScratch are the registers emitRecord may borrow for the address.
var recordScratch = [...]amd64.Reg{amd64.RAX, amd64.RDX, amd64.RSI, amd64.RDI, amd64.R8, amd64.R9, amd64.R10, amd64.R11}

// emitRecord emits op's record before the instruction at pc.
func (t *translator) emitRecord(pc uintptr, op *insertion, dead uint16) error {
	m := t.m
	cursor, err := m.traceCursor(op.buf)
	if err != nil {
		return err
	}
	a := t.a
	ea := op.ea
	try := func(e error) {
		if err == nil {
			err = e
		}
	}
	// The scratch register: not one the address reads, dead if one
	// is.
	s := amd64.NoReg
	for _, r := range recordScratch {
		if int8(r) == ea.base || int8(r) == ea.index {
			continue
		}
		if s == amd64.NoReg || dead>>r&1 != 0 && dead>>s&1 == 0 {
			s = r
		}
	}
	keepS, keepRCX := dead>>s&1 == 0, dead>>amd64.RCX&1 == 0
	t.markFix(pc, none)
	start := a.Len()
	if keepS {
		try(a.MovStore(t.ctx(ctxSpill), s))
	}
	base, index := operandRegs(ea)
	try(leaEA(a, s, ea, base, index))
	if keepRCX {
		try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	}
	if ea.fs {
		try(a.MovLoad(amd64.RCX, t.ctx(ctxAppFS)))
		try(a.Lea(s, amd64.MI(s, amd64.RCX, 1, 0)))
	}
	at := amd64.RIPRel(cursor)
	try(a.MovLoad(amd64.RCX, at))
	a.Movzx16(amd64.RCX, amd64.RCX)
	full := a.Jrcxz()
	try(a.MovLoad(amd64.RCX, at))
	try(a.MovStore(amd64.M(amd64.RCX, 0), s))
	try(a.MovStoreImm32D(amd64.M(amd64.RCX, 8), int32(op.tag)))
	try(a.Lea(amd64.RCX, amd64.M(amd64.RCX, traceRecordSize)))
	try(a.MovStore(at, amd64.RCX))
	restore := func() {
		if keepRCX {
			try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		}
		if keepS {
			try(a.MovLoad(s, t.ctx(ctxSpill)))
		}
	}
	restore()
	done := a.JmpShort()
	try(a.Bind(full))
	restore()
	t.exits = append(t.exits, pendingExit{kind: exitFlush, target: pc, fix: a.JmpLabel(), hasFix: true})
	// The dispatcher, having flushed, enters again here: the record
	// is made from the start.
	again := a.JmpLabel()
	try(a.BindAt(again, start))
	try(a.Bind(done))
	return err
}

// RecordRef inserts, before instruction i, code that appends a record of
// the address of ref (one of the instruction's MemRefs, explicit or
// implicit) and tag to buf. A GS-relative reference, or one indexed by a
// register that is not a general register's 64 bits (xlat's al), fails
// the translation.
func (b *Block) RecordRef(i int, buf *TraceBuffer, ref MemRef, tag uint32) {
	if b.err != nil {
		return
	}
	if i < 0 || i >= len(b.instrs) {
		b.err = fmt.Errorf("jit: client: RecordRef at instruction %d of a block of %d", i, len(b.instrs))
		return
	}
	ea := memOperand{base: -1, index: -1, scale: ref.Scale, addr32: ref.Addr32, fs: ref.Seg == SegFS}
	switch {
	case ref.Seg == SegGS:
		b.err = fmt.Errorf("jit: client: RecordRef of a GS-relative reference at %#x, whose base reachvm does not track", b.instrs[i].pc)
		return
	case ref.RIPRelative:
		ea.rip, ea.abs = true, uintptr(ref.Disp)
	default:
		if ref.Disp != int64(int32(ref.Disp)) {
			b.err = fmt.Errorf("jit: client: RecordRef of a displacement %#x past 32 bits at %#x", ref.Disp, b.instrs[i].pc)
			return
		}
		ea.disp = int32(ref.Disp)
		if ref.HasBase {
			ea.base = int8(ref.Base)
		}
		if ref.HasIndex {
			ea.index = int8(ref.Index)
		}
		if ref.HasBase && ref.Base > R15 || ref.HasIndex && ref.Index > R15 {
			b.err = fmt.Errorf("jit: client: RecordRef of a reference through a register that is not a general one at %#x", b.instrs[i].pc)
			return
		}
	}
	b.record(i, buf, ea, tag)
}
