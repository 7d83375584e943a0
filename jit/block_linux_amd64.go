package jit

import (
	"fmt"
	"slices"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
)

// Block is a basic block as Client.Block sees it: the application's
// straight-line code from PC up to and including its first control
// transfer. It and its instructions are valid only during the call.
//
// The translator's fragments are superblocks (they go on through
// conditional branches' fall-through and through direct jumps and
// calls); a client sees each of their basic blocks in turn, so that code
// inserted at a block's first instruction runs exactly when the block's
// instructions run (DynamoRIO's basic block event, without its elision of
// direct jumps and calls: a followed jump ends a block here).
type Block struct {
	// instrs are the block's instructions, at least one.
	instrs []Instr
	// thread is the thread whose machine translates the block.
	thread *Thread
	// ins are the insertions, in the order the client made them;
	// sorted by instruction (stably) once the event returns.
	ins []insertion
	// err is the first bad insertion, which fails the translation.
	err error
}

// Instr is an application instruction of a Block.
type Instr struct {
	pc uintptr
	// code is the instruction's bytes, in the application's memory.
	code []byte
	in   decode.Inst
	// dec is the operand decode, nil until a client asks for it
	// (operand_linux_amd64.go).
	dec *decoded
}

// PC returns the instruction's application address.
func (i *Instr) PC() uintptr { return i.pc }

// Len returns the instruction's length in bytes.
func (i *Instr) Len() int { return int(i.in.Len) }

// Bytes returns the instruction's bytes, which the caller must not
// change or keep after the event.
func (i *Instr) Bytes() []byte { return i.code }

// IsControl reports whether the instruction transfers control (a
// branch, call, return, system call or trap): a block's last
// instruction, if any is.
func (i *Instr) IsControl() bool { return i.in.Kind != decode.Plain }

// PC returns the block's first address.
func (b *Block) PC() uintptr { return b.instrs[0].pc }

// Len returns the number of instructions in the block.
func (b *Block) Len() int { return len(b.instrs) }

// Instr returns instruction i, 0 <= i < Len().
func (b *Block) Instr(i int) *Instr { return &b.instrs[i] }

// Thread returns the thread the block is translated for: the code
// inserted runs on that thread only (each thread has its own code
// cache).
func (b *Block) Thread() *Thread { return b.thread }

// insertKind is what an insertion emits.
type insertKind uint8

const (
	insertCounter insertKind = iota
	insertCell
	insertCleanCall
	insertRecord
	insertMeta
)

// maxLen bounds the code the insertion emits.
func (op *insertion) maxLen() uintptr {
	switch op.kind {
	case insertCleanCall:
		return cleanCallLen
	case insertRecord:
		return recordLen
	case insertMeta:
		return metaLen
	}
	return insertLen
}

// insertion is code a client inserts before an instruction of a block.
type insertion struct {
	// at is the instruction's index in the block.
	at   int
	kind insertKind
	// ctr and n: add n to ctr (insertCounter); cell, n and locked: add
	// n to the cell at address cell (insertCell).
	ctr    *Counter
	n      int32
	cell   uintptr
	locked bool
	// fn, args and vector: call fn with args, the vector state saved
	// if vector (insertCleanCall).
	fn     uintptr
	args   []Arg
	vector bool
	// buf, ea and tag: append a record of ea and tag to buf
	// (insertRecord). reserve is, on the first record of a run
	// (planRecordRuns), the run's records, 1 to maxRun, for which its
	// one bounds check makes room; 0 on the run's other records.
	buf     *TraceBuffer
	ea      memOperand
	tag     uint32
	reserve int32
	// meta writes meta instructions (insertMeta).
	meta func(*Meta)
}

// AddCounter inserts, before instruction i, code that adds n to c. Where
// the arithmetic flags are dead it is one `add` (`lock add` for a Shared
// counter) to the cell RIP-relatively; elsewhere it keeps the flags (a
// load, lea and store through a register spilled to the context, or
// lahf/seto around the locked add). n must fit in 32 bits.
func (b *Block) AddCounter(i int, c *Counter, n int64) {
	switch {
	case b.err != nil:
	case i < 0 || i >= len(b.instrs):
		b.err = fmt.Errorf("jit: client: AddCounter at instruction %d of a block of %d", i, len(b.instrs))
	case c == nil:
		b.err = fmt.Errorf("jit: client: AddCounter with a nil counter")
	case n != int64(int32(n)):
		b.err = fmt.Errorf("jit: client: AddCounter of %d, which does not fit in 32 bits", n)
	default:
		b.ins = append(b.ins, insertion{at: i, kind: insertCounter, ctr: c, n: int32(n)})
	}
}

// clientBlockState is the translator's client block in progress.
type clientBlockState struct {
	// b is the block given to the client, reused.
	b Block
	// next is the index in b of the next instruction the translator
	// emits; next == len(b.instrs) when a new block starts.
	next int
	// ins is the index in b.ins of the next insertion to emit.
	ins int
	// left is, per trace buffer, the room its current run's check
	// reserved that the run's emitted records have not taken.
	left []runLeft
	// carry is the cursor the last group of records emitted left in a
	// register for its run's next group.
	carry recordCarry
}

// maxCopyLen bounds the code the translator emits for one instruction
// that does not end a block (a far RIP-relative operand or an FS-relative
// one rewritten, a jump table's index saved), and insertLen one
// insertion, so that a client block that fits the room left fits whole:
// a fragment never ends inside one, which would run the code inserted at
// its start twice.
const (
	maxCopyLen   = 64
	insertLen    = 48
	cleanCallLen = 640
	recordLen    = 160
	metaLen      = 512
)

// clientBlock lists the client block at head, up to max instructions,
// and gives it to the client. It reports false when the block, with what
// the client inserted, may not fit in room with what the fragment holds
// already: the fragment then ends before it.
func (t *translator) clientBlock(head uintptr, max int, first bool) (bool, error) {
	cb := &t.cb
	b := &cb.b
	b.instrs, b.ins, b.err = b.instrs[:0], b.ins[:0], nil
	cb.next, cb.ins, cb.left = 0, 0, cb.left[:0]
	cb.carry.reg = amd64.NoReg
	pc := head
	for len(b.instrs) < max {
		code, err := t.m.codes.at(pc)
		if err != nil {
			break
		}
		var in decode.Inst
		if decode.DecodeInto(code, &in) != nil {
			break
		}
		b.instrs = append(b.instrs, Instr{pc: pc, code: code[:in.Len], in: in})
		pc += uintptr(in.Len)
		if in.Kind != decode.Plain {
			break
		}
	}
	if len(b.instrs) == 0 {
		return true, nil
	}
	b.thread = t.m.clientThread()
	t.m.opts.Client.Block(b)
	if b.err != nil {
		return false, b.err
	}
	slices.SortStableFunc(b.ins, func(x, y insertion) int { return x.at - y.at })
	planRecordRuns(b.ins)
	need := uintptr(t.a.Len()) + uintptr(len(t.exits)+len(b.instrs)+2)*stubLen + 512 +
		uintptr(len(b.instrs))*maxCopyLen
	for k := range b.ins {
		need += b.ins[k].maxLen()
	}
	if need > t.room {
		if first {
			return false, errFull
		}
		return false, nil
	}
	return true, nil
}

// clientInsert emits the client's insertions before the current
// instruction of its block, at pc, and moves on to the next instruction.
func (t *translator) clientInsert(pc uintptr) error {
	cb := &t.cb
	b := &cb.b
	if cb.next >= len(b.instrs) || b.instrs[cb.next].pc != pc {
		// Not the instruction the block listed (the translator went
		// another way): nothing is inserted.
		return nil
	}
	at := cb.next
	cb.next++
	if cb.ins >= len(b.ins) || b.ins[cb.ins].at != at {
		return nil
	}
	// The insertions are no instruction boundary: a signal in them,
	// even between two that borrow nothing, is delivered at the next
	// block's start, so that none of them runs twice. At a block's
	// start a one-byte nop keeps the block's own mark, where a signal
	// that comes before the insertions is delivered, apart from theirs.
	if at == 0 {
		t.a.Nop(1)
	}
	t.markFix(pc, none)
	flags := -1 // unknown until an insertion needs it
	var dead uint16
	deadKnown := false
	for ; cb.ins < len(b.ins) && b.ins[cb.ins].at == at; cb.ins++ {
		op := &b.ins[cb.ins]
		if (op.kind == insertCounter || op.kind == insertCell) && flags < 0 {
			flags = 0
			if t.m.flagsDeadAt(pc) {
				flags = 1
			}
		}
		var err error
		switch op.kind {
		case insertCounter:
			err = t.emitCounter(pc, op.ctr, op.n, flags == 1)
		case insertCell:
			err = t.emitAdd(pc, op.cell, op.n, op.locked, flags == 1)
		case insertCleanCall:
			err = t.emitCleanCall(pc, &b.instrs[at], op)
		case insertRecord, insertMeta:
			if !deadKnown {
				dead, deadKnown = uint16(t.m.deadAt(pc)), true
			}
			if op.kind == insertMeta {
				err = t.emitMeta(pc, &b.instrs[at], op, dead)
				break
			}
			var n int
			n, err = t.emitRecordGroup(pc, at, cb.ins, dead)
			cb.ins += n - 1
		}
		if err != nil {
			return err
		}
	}
	t.markExact(pc)
	return nil
}

// Fail fails the block's translation with err, the client's own reason
// (a client that cannot instrument the block): the run ends with it.
// Insertions after it are ignored; a nil err does nothing.
func (b *Block) Fail(err error) {
	if b.err == nil && err != nil {
		b.err = fmt.Errorf("jit: client: %w", err)
	}
}
