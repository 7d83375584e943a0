package jit

import (
	"encoding/binary"
	"sort"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/sigtramp"
)

// State translation: from a cache address where a signal stopped the
// application to the application's PC and registers, as they were at the
// instruction the cache address stands for (DynamoRIO's
// recreate_app_state). A fragment is a copy of application code with
// known insertions, so the translator records, as it emits, how the
// state maps back from each offset on: a mark. Copied instructions get
// exact marks (the cache's state is the application's at pc); inside the
// code reachvm inserts (indirect-branch sites, exit stubs, a far
// RIP-relative operand's scratch register) a mark says what differs: the
// stack pointer moved by a push or pop done early, registers whose
// application values wait in the context.
//
// A fault can come only at an instruction that touches application memory
// or raises on purpose, and every such instruction is covered by a mark
// that makes its state exact once fixed. An asynchronous signal can come
// anywhere: it is delivered at once where the mark is exact, and
// otherwise the dispatcher single-steps the thread to the next exact mark
// (or out to the dispatcher), which the inserted sequences, a few
// instructions long, reach at once.

// mark maps the cache code from its offset up to the next mark.
type mark struct {
	// off is the offset from the fragment's entry.
	off uint32
	// rsp is added to the cache's rsp to give the application's.
	rsp int32
	// inCtx are the registers (bit r) whose application values are in
	// their context slots rather than in the registers.
	inCtx uint16
	// spill is the register whose application value is in ctxSpill,
	// or noSpill.
	spill int8
	// exact says the state needs no fix: an instruction boundary of the
	// application's code.
	exact bool
	// block says an exact mark is also the start of a client's basic
	// block, where no code the client inserted for the block has run
	// yet: with a client that inserts code, asynchronous signals are
	// delivered there only, so that a block is never resumed in the
	// middle (which would run its start's insertions twice).
	block bool
	// pc is the application's PC.
	pc uintptr
}

const noSpill = -1

// fix is a mark's state correction.
type fix struct {
	rsp   int32
	inCtx uint16
	spill int8
}

// none is no correction.
var none = fix{spill: noSpill}

// markExact records that the code emitted from here is pc's, exactly.
func (t *translator) markExact(pc uintptr) {
	t.addMark(mark{off: uint32(t.a.Len()), spill: noSpill, exact: true, pc: pc})
}

// markBlock records that the code emitted from here is pc's, exactly,
// and the start of a basic block (mark.block).
func (t *translator) markBlock(pc uintptr) {
	t.addMark(mark{off: uint32(t.a.Len()), spill: noSpill, exact: true, block: true, pc: pc})
}

// markFix records that the code emitted from here stands for the
// instruction at pc, its state corrected by f.
func (t *translator) markFix(pc uintptr, f fix) {
	t.addMark(mark{off: uint32(t.a.Len()), rsp: f.rsp, inCtx: f.inCtx, spill: f.spill, pc: pc})
}

func (t *translator) addMark(k mark) {
	if n := len(t.marks); n > 0 && t.marks[n-1].off == k.off {
		t.marks[n-1] = k
		return
	}
	t.marks = append(t.marks, k)
}

// inCtx is the fix of registers saved in the context.
func inCtx(regs ...amd64.Reg) fix {
	f := none
	for _, r := range regs {
		f.inCtx |= 1 << r
	}
	return f
}

// fragmentAt returns the fragment whose code holds cache address pc, or
// nil.
func (m *Machine) fragmentAt(pc uintptr) *fragment {
	for _, u := range m.units {
		if !u.contains(pc) {
			continue
		}
		i := sort.Search(len(u.frags), func(i int) bool { return u.frags[i].entry > pc }) - 1
		if i < 0 {
			return nil
		}
		if f := u.frags[i]; pc-f.entry < uintptr(f.codeLen) {
			return f
		}
		return nil
	}
	return nil
}

// sigReg returns interrupted register i (sigtramp.Reg*) from the signal
// area.
func (m *Machine) sigReg(i int) uint64 {
	return binary.LittleEndian.Uint64(m.mem[m.lay.sig+sigtramp.AreaRegs+8*uintptr(i):])
}

func (m *Machine) setSigReg(i int, v uint64) {
	binary.LittleEndian.PutUint64(m.mem[m.lay.sig+sigtramp.AreaRegs+8*uintptr(i):], v)
}

// sigInfo returns the siginfo in the signal area.
func (m *Machine) sigInfo() SigInfo {
	var s SigInfo
	copy(s[:], m.mem[m.lay.sig+sigtramp.AreaInfo:])
	return s
}

// recreate writes the application's state at the interrupted cache
// state into the context (registers, flags, vector state), fixed by k,
// and returns the application's PC. The trap flag and the resume flag are
// cleared: the application did not set them.
func (m *Machine) recreate(k mark) uintptr {
	for i, r := range sigRegOrder {
		if k.inCtx&(1<<r) != 0 {
			continue
		}
		v := m.sigReg(i)
		if int8(r) == k.spill {
			v = binary.LittleEndian.Uint64(m.mem[ctxSpill:])
		}
		if r == amd64.RSP {
			v += uint64(int64(k.rsp))
		}
		m.setReg(r, v)
	}
	flags := m.sigReg(sigtramp.RegEFLAGS) &^ (sigtramp.TF | 1<<16)
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], flags)
	area := m.lay.sig + sigtramp.AreaXsave
	copy(m.mem[ctxXsave:ctxXsave+m.lay.xsaveSize], m.mem[area:area+m.lay.xsaveSize])
	return k.pc
}
