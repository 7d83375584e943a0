package jit

import (
	"fmt"
	"slices"
	"sync"
	"unsafe"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// Trace buffers: inline code stores 16-byte records into a buffer of the
// thread's own, and Go sees them a buffer at a time (DynamoRIO's
// drx_buf): when the buffer fills, the thread leaves the cache, the
// buffer's Flush runs on it, and the thread goes on in the same fragment
// where it left. Nothing calls Go per record.
//
// The records of a client block are made the way drx_buf and Pin's
// buffers make them: the block's records into one buffer form runs of at
// most maxRun, in the block's order; the first instruction of a run
// makes room for the whole run with one bounds check, and each
// instruction with records loads the cursor once (or takes it from the
// register the run's previous instruction left it in: emitRecordGroup),
// stores its records at fixed offsets from it and stores it back bumped
// past them. The bump is per instruction rather than per run because
// any instruction that has a record touches memory and may fault: a handler that longjmps, or
// returns to the instruction in a fragment of its own, must find counted
// exactly the records of the instructions that ran (the faulting one's
// included, as they are made before it, as valgrind's are), never the
// rest of the run, which were not stored. The check only reserves, so an
// early end of the block leaves nothing to undo.
//
// Each thread's buffer is 64 KiB of a vmcode slot twice that size, laid
// out so that the cursor's bits 8 to 15 are zero exactly when at most
// maxRun records' room is left: the 64 KiB end traceSlack (256) bytes
// past an address aligned to 64 KiB, the cursor cell is its first word and records fill
// the rest. The bounds check tests that byte of the cursor cell, in
// memory: where the flags are dead,
//
//	cmp    byte [cursor+1], 0
//	je     (an exit that flushes; the dispatcher enters again past it)
//
// and where they are live, without touching them,
//
//	mov    [ctx.rcx], rcx         ; if live
//	movzx  ecx, byte [cursor+1]
//	jrcxz  full
//	mov    rcx, [ctx.rcx]
//	jmp    body
//	full:  mov rcx, [ctx.rcx], jmp to the exit that flushes
//	body:
//
// and each instruction's records, p and a registers dead at it where
// there are (liveness, Machine.deadAt), else spilled to their context
// slots:
//
//	mov    p, [cursor]
//	lea    a, [operand]           ; or the operand's register itself
//	mov    [p+16k], a             ; Record.Addr of its k-th record
//	mov    dword [p+16k+8], tag   ; Record.Tag
//	...
//	lea    p, [p+16n]
//	mov    [cursor], p

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

// traceSlot is the size of each thread's buffer, cursor included.
const traceSlot = 64 << 10

// traceSlack is how far the buffer ends past an address aligned to
// traceSlot: the room left when the bounds check finds the buffer full,
// the most one run may take (maxRun records).
const traceSlack = 256

// maxRun is the most records one bounds check makes room for.
const maxRun = traceSlack / traceRecordSize

// TraceBuffer is a trace buffer: each thread records into a buffer of
// its own, and Flush sees its records in order, on the thread.
type TraceBuffer struct {
	// flush is called with the records of a full buffer, or of what a
	// thread recorded when it exits. The slice is valid only during
	// the call.
	flush func(t *Thread, recs []TraceRecord)
}

// NewTraceBuffer returns a trace buffer whose records go to flush: when
// a thread's buffer (4095 records) has less room than the next run of a
// block's records needs (at most 16 records), and what is left when the
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
	// buffer ends at cursor+traceSlot, traceSlack past an address
	// aligned to traceSlot.
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
	// The buffer is [edge-traceSlot+traceSlack, edge+traceSlack), edge
	// aligned to traceSlot: the cursor's bits 8 to 15 are zero from edge
	// on, where at most traceSlack bytes are left. The commit is whole
	// pages around it; both fit the slot wherever the slot starts.
	edge := (s.Base() + traceSlot - traceSlack + traceSlot - 1) &^ (traceSlot - 1)
	cursor := edge - traceSlot + traceSlack
	if err := s.Commit(edge-traceSlot, traceSlot+mem.PageSize, mem.ProtRW); err != nil {
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

// planRecordRuns splits the records of a client block, ins (sorted by
// instruction), into runs: the records into one buffer in the block's
// order, maxRun at most to a run, each run's count on its first record
// (insertion.reserve), where its bounds check goes.
func planRecordRuns(ins []insertion) {
	// open is each buffer's run in progress: the index of its first
	// record in ins.
	type open struct {
		buf   *TraceBuffer
		first int
	}
	var runs []open
	for k := range ins {
		op := &ins[k]
		op.reserve = 0
		if op.kind != insertRecord {
			continue
		}
		i := slices.IndexFunc(runs, func(r open) bool { return r.buf == op.buf })
		switch {
		case i < 0:
			runs = append(runs, open{op.buf, k})
			op.reserve = 1
		case ins[runs[i].first].reserve == maxRun:
			runs[i].first = k
			op.reserve = 1
		default:
			ins[runs[i].first].reserve++
		}
	}
}

// recordGroup returns how many of ins, from ins[0], one instruction's
// records emit as one group: consecutive records into the same buffer, up
// to the start of its next run.
func recordGroup(ins []insertion) int {
	n := 1
	for n < len(ins) && ins[n].kind == insertRecord && ins[n].at == ins[0].at &&
		ins[n].buf == ins[0].buf && ins[n].reserve == 0 {
		n++
	}
	return n
}

// runLeft is what the bounds check of a buffer's run reserved that its
// records have not yet taken, while the translator emits a block.
type runLeft struct {
	buf *TraceBuffer
	// n is the records reserved and not yet emitted, >= 0.
	n int32
}

// take accounts for ops, a group of records into one buffer, against
// the run they belong to, and reports whether they have room: a group
// that does not open a run must follow its run's check in the block
// (the translator emits a prefix of a block's instructions, so it does).
func (cb *clientBlockState) take(ops []insertion) bool {
	buf := ops[0].buf
	i := slices.IndexFunc(cb.left, func(r runLeft) bool { return r.buf == buf })
	if i < 0 {
		cb.left = append(cb.left, runLeft{buf: buf})
		i = len(cb.left) - 1
	}
	if ops[0].reserve > 0 {
		cb.left[i].n = ops[0].reserve
	}
	cb.left[i].n -= int32(len(ops))
	return cb.left[i].n >= 0
}

// plainReg reports whether ea's address is one register's value as it is.
func plainReg(ea memOperand) bool {
	return !ea.rip && !ea.fs && !ea.addr32 && ea.base >= 0 && ea.index < 0 && ea.disp == 0
}

// immAddr reports whether ea's address is a constant that a store's
// sign-extended 32-bit immediate holds.
func immAddr(ea memOperand) bool {
	return ea.rip && !ea.fs && uintptr(int64(int32(ea.abs))) == ea.abs
}

// recordCarry is a cursor a group of records left in a register dead at
// its instruction, which the run's next group may use instead of loading
// the cursor again (a load that would wait for the store just before it).
type recordCarry struct {
	buf *TraceBuffer
	// reg holds the cursor, or NoReg when nothing is carried.
	reg amd64.Reg
	// at is the group's instruction; end the index in the block's
	// insertions just past the group: the next group may use reg only
	// if it starts there (no other insertion, which may borrow a dead
	// register, comes between).
	at, end int
}

// untouched reports whether no instruction of b from from up to but not
// including to reads or writes r, as decode.Effects knows them, and
// none after from up to to is a wrapped function's entry (an exit the
// dispatcher enters again past, with r not holding a cursor).
func (t *translator) untouched(b *Block, r amd64.Reg, from, to int) bool {
	for i := from; i < to; i++ {
		in := &b.instrs[i]
		read, kill, ok := decode.Effects(in.code, &in.in)
		if !ok || (read|kill)>>r&1 != 0 {
			return false
		}
	}
	if c := t.m.opts.Client; c != nil && c.wraps.Load() != nil {
		for i := from + 1; i <= to && i < len(b.instrs); i++ {
			if _, ok := c.wrapped(b.instrs[i].pc); ok {
				return false
			}
		}
	}
	return true
}

// carrySpan returns how many of the run's groups after the one at
// instruction at, whose insertions end at b.ins[end], could take the
// cursor from r in turn.
func (t *translator) carrySpan(b *Block, r amd64.Reg, at, end int) int {
	n := 0
	buf := b.ins[end-1].buf
	for end < len(b.ins) && b.ins[end].kind == insertRecord && b.ins[end].buf == buf && b.ins[end].reserve == 0 {
		g := b.ins[end:]
		g = g[:recordGroup(g)]
		if usesReg(g, r) || !t.untouched(b, r, at, g[0].at) {
			break
		}
		n++
		at, end = g[0].at, end+len(g)
	}
	return n
}

// usesReg reports whether one of ops' addresses reads r.
func usesReg(ops []insertion, r amd64.Reg) bool {
	for k := range ops {
		if ops[k].ea.base == int8(r) || ops[k].ea.index == int8(r) {
			return true
		}
	}
	return false
}

// emitRecordGroup emits the group of records that starts at b.ins[k],
// before instruction at (at pc), and returns how many insertions it
// took. A group that continues a run in the register the run's last
// group left the cursor in (cb.carry) uses it: that register was dead
// there, and nothing between touched it, so it is dead still and holds
// the cursor; the group leaves the cursor, where it can, in a register
// the run's next group can use in its turn.
func (t *translator) emitRecordGroup(pc uintptr, at, k int, dead uint16) (int, error) {
	cb := &t.cb
	b := &cb.b
	ops := b.ins[k:]
	ops = ops[:recordGroup(ops)]
	if !cb.take(ops) {
		return 0, fmt.Errorf("jit: internal error: records at %#x without their run's bounds check", pc)
	}
	carried := amd64.NoReg
	if c := cb.carry; c.reg != amd64.NoReg && c.buf == ops[0].buf && c.end == k && ops[0].reserve == 0 &&
		!usesReg(ops, c.reg) && t.untouched(b, c.reg, c.at, at) {
		carried = c.reg
	}
	cb.carry.reg = amd64.NoReg
	// The run's next group, if it can follow on: where the cursor is
	// best left.
	end := k + len(ops)
	next := -1
	if end < len(b.ins) && b.ins[end].kind == insertRecord && b.ins[end].buf == ops[0].buf && b.ins[end].reserve == 0 {
		next = b.ins[end].at
	}
	prefer := amd64.NoReg
	if next >= 0 && carried == amd64.NoReg {
		best := 0
		for r := amd64.RAX; r <= amd64.R15; r++ {
			if r == amd64.RSP || dead>>r&1 == 0 || usesReg(ops, r) {
				continue
			}
			if n := t.carrySpan(b, r, at, end); n > best {
				prefer, best = r, n
			}
		}
	}
	p, err := t.emitRecords(pc, ops, dead, carried, prefer)
	if err == nil && next >= 0 && p != amd64.NoReg {
		cb.carry = recordCarry{buf: ops[0].buf, reg: p, at: at, end: end}
	}
	return len(ops), err
}

// emitRecords emits ops, one instruction's group of records into one
// buffer (recordGroup), before the instruction at pc, with the bounds
// check of their run first if they open one. The cursor is in carried
// unless that is NoReg; else it is loaded into a register, prefer if it
// is not NoReg. emitRecords returns the register that holds the cursor
// past its records after it, if that is one dead at pc, else NoReg.
func (t *translator) emitRecords(pc uintptr, ops []insertion, dead uint16, carried, prefer amd64.Reg) (amd64.Reg, error) {
	m := t.m
	cursor, err := m.traceCursor(ops[0].buf)
	if err != nil {
		return amd64.NoReg, err
	}
	a := t.a
	try := func(e error) {
		if err == nil {
			err = e
		}
	}
	at := amd64.RIPRel(cursor)
	t.markFix(pc, none)
	if ops[0].reserve > 0 {
		t.emitRunCheck(pc, cursor, dead, try)
	}
	// The registers: p the cursor, a the address where a record's is
	// not a register or a constant, f the FS base where one is
	// FS-relative; none that an address reads (they are read after p is
	// loaded), dead ones first.
	used := uint16(1) << amd64.RSP
	needA, needF := false, false
	for k := range ops {
		ea := ops[k].ea
		if ea.base >= 0 {
			used |= 1 << ea.base
		}
		if ea.index >= 0 {
			used |= 1 << ea.index
		}
		needA = needA || !plainReg(ea) && !immAddr(ea)
		needF = needF || ea.fs
	}
	var spilled uint16
	pick := func(prefer amd64.Reg) amd64.Reg {
		best := prefer
		for r := amd64.RAX; r <= amd64.R15 && best == amd64.NoReg; r++ {
			if used>>r&1 == 0 && dead>>r&1 != 0 {
				best = r
			}
		}
		for r := amd64.RAX; r <= amd64.R15 && best == amd64.NoReg; r++ {
			if used>>r&1 == 0 {
				best = r
			}
		}
		used |= 1 << best
		if dead>>best&1 == 0 {
			spilled |= 1 << best
			try(a.MovStore(t.ctx(gpr(best)), best))
		}
		return best
	}
	p, ra, rf := carried, amd64.NoReg, amd64.NoReg
	if p == amd64.NoReg {
		p = pick(prefer)
		try(a.MovLoad(p, at))
	} else {
		used |= 1 << p
	}
	if needA {
		ra = pick(amd64.NoReg)
	}
	if needF {
		rf = pick(amd64.NoReg)
	}
	for k := range ops {
		ea := ops[k].ea
		off := int32(k * traceRecordSize)
		switch {
		case plainReg(ea):
			try(a.MovStore(amd64.M(p, off), amd64.Reg(ea.base)))
		case immAddr(ea):
			try(a.MovStoreImm32(amd64.M(p, off), int32(ea.abs)))
		default:
			base, index := operandRegs(ea)
			try(leaEA(a, ra, ea, base, index))
			if ea.fs {
				try(a.MovLoad(rf, t.ctx(ctxAppFS)))
				try(a.Lea(ra, amd64.MI(ra, rf, 1, 0)))
			}
			try(a.MovStore(amd64.M(p, off), ra))
		}
		try(a.MovStoreImm32D(amd64.M(p, off+8), int32(ops[k].tag)))
	}
	try(a.Lea(p, amd64.M(p, int32(len(ops)*traceRecordSize))))
	try(a.MovStore(at, p))
	for r := amd64.RAX; r <= amd64.R15; r++ {
		if spilled>>r&1 != 0 {
			try(a.MovLoad(r, t.ctx(gpr(r))))
		}
	}
	if spilled>>p&1 != 0 {
		p = amd64.NoReg
	}
	return p, err
}

// emitRunCheck emits a run's bounds check before the instruction at pc:
// an exit that flushes the buffers when the buffer whose cursor cell is
// at cursor has no room for a run. The dispatcher, having flushed,
// enters again just past the exit's branch, where the run's records are
// made into the emptied buffer.
func (t *translator) emitRunCheck(pc, cursor uintptr, dead uint16, try func(error)) {
	a := t.a
	full := amd64.RIPRel(cursor + 1) // the cursor's bits 8 to 15
	if t.m.flagsDeadAt(pc) {
		try(a.CmpMem8Imm8(full, 0))
		t.exits = append(t.exits, pendingExit{kind: exitFlush, target: pc, fix: a.JccLabel(amd64.CondE), hasFix: true})
		return
	}
	keep := dead>>amd64.RCX&1 == 0
	restore := func() {
		if keep {
			try(a.MovLoad(amd64.RCX, t.ctx(gpr(amd64.RCX))))
		}
	}
	if keep {
		try(a.MovStore(t.ctx(gpr(amd64.RCX)), amd64.RCX))
	}
	try(a.Movzx8Load(amd64.RCX, full))
	isFull := a.Jrcxz()
	restore()
	body := a.JmpShort()
	try(a.Bind(isFull))
	restore()
	t.exits = append(t.exits, pendingExit{kind: exitFlush, target: pc, fix: a.JmpLabel(), hasFix: true})
	try(a.Bind(body))
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
