//go:build linux && amd64

package jit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/vmm"
)

// A generated program, for the differential fuzz target: straight-line
// ALU code over ten registers, loads and stores to a scratch buffer,
// forward conditional branches, flag producers and consumers (adc, sbb,
// setcc, cmovcc), push/pop pairs, pushfq/popfq pairs, and direct and
// indirect calls to generated subroutines. It never faults: memory goes
// through r15 (the buffer, never written), branches only go forward,
// calls return, and there is no division.
//
// Layout of the buffer r15 points at:
//
//	[0, 128)     scratch memory the program loads from and stores to
//	[128, 256)   initial register values
//	[256, 384)   final register values
//	[384]        final flags
//	[392, 456)   subroutine addresses, for indirect calls
//	[512, ...)   landing pads of the programs' indirect jumps
const (
	bufScratch = 0
	bufInit    = 128
	bufFinal   = 256
	bufFlags   = 384
	bufSubs    = 392
	bufPads    = 512
	bufSize    = 4096
	numSubs    = 8
	maxPads    = 256
)

// fuzzRegs are the registers programs compute with; r15 holds the
// buffer and rsp the stack.
var fuzzRegs = []amd64.Reg{amd64.RAX, amd64.RBX, amd64.RCX, amd64.RDX, amd64.RSI, amd64.RDI, amd64.R8, amd64.R9, amd64.R10, amd64.R11, amd64.R12, amd64.RBP}

// gen turns fuzz input into programs.
type gen struct {
	in  []byte
	pos int
	a   *amd64.Assembler
	// subs are the subroutines' offsets once emitted.
	subs []int
	// abi keeps the program within the psABI's flag rules: no flag is
	// read after a call returns before something writes them all, and no
	// subroutine reads the flags it was called with.
	abi bool
	// quiet restricts instructions to those that leave the flags alone,
	// for subroutines through which flags must pass unchanged.
	quiet bool
	// pads are the offsets of indirect jumps' landing pads, in the
	// order of their buffer slots.
	pads []int
}

// byte returns the next choice: the input's bytes in turn, mixed on each
// pass over it with a counter, so that a short input still makes a
// program of full length.
func (g *gen) byte() byte {
	if len(g.in) == 0 {
		return 0
	}
	i := g.pos
	g.pos++
	x := uint32(g.in[i%len(g.in)]) ^ uint32(i/len(g.in))*0x9e3779b1
	x ^= x >> 15
	x *= 0x2c1b3c6d
	x ^= x >> 12
	return byte(x)
}

func (g *gen) reg() amd64.Reg { return fuzzRegs[int(g.byte())%len(fuzzRegs)] }

func rexRM(w bool, reg, rm amd64.Reg) byte {
	r := byte(0x40)
	if w {
		r |= 8
	}
	return r | byte(reg>>3&1)<<2 | byte(rm>>3&1)
}

func modrmRR(reg, rm amd64.Reg) byte { return 0xc0 | byte(reg&7)<<3 | byte(rm&7) }

// insn emits one instruction (or a balanced pair) chosen by the input;
// depth limits nested calls. It returns false when the input is spent.
func (g *gen) insn(depth int, flagsWritten *bool) bool {
	if len(g.in) == 0 || g.a.Len() > 48<<10 {
		return false
	}
	a := g.a
	op := g.byte() % 26
	if g.quiet {
		op = []byte{10, 11, 16, 17}[op%4]
	}
	d, s := g.reg(), g.reg()
	switch op {
	case 0, 1, 2, 3, 4, 5, 6: // add sub xor and or cmp test
		codes := []byte{0x01, 0x29, 0x31, 0x21, 0x09, 0x39, 0x85}
		a.Raw(rexRM(true, s, d), codes[op], modrmRR(s, d))
		*flagsWritten = true
	case 7, 8: // adc, sbb: read CF
		if g.abi && !*flagsWritten {
			return true
		}
		a.Raw(rexRM(true, s, d), []byte{0x11, 0x19}[op-7], modrmRR(s, d))
	case 9: // imul d, s
		a.Raw(rexRM(true, d, s), 0x0f, 0xaf, modrmRR(d, s))
		*flagsWritten = true
	case 10: // mov d, s
		a.MovRR(d, s)
	case 11: // lea d, [s + d*scale + disp8]
		_ = a.Lea(d, amd64.MI(s, d, 1<<(g.byte()%4), int32(int8(g.byte()))))
	case 12: // shift/rotate by imm
		ext := []byte{4, 5, 7, 0}[g.byte()%4]
		a.Raw(rexRM(true, 0, d), 0xc1, 0xc0|ext<<3|byte(d&7), 1+g.byte()%63)
		if ext != 0 {
			*flagsWritten = true
		}
	case 13: // inc, dec, neg, not
		switch g.byte() % 4 {
		case 0:
			a.Raw(rexRM(true, 0, d), 0xff, 0xc0|byte(d&7))
		case 1:
			a.Raw(rexRM(true, 0, d), 0xff, 0xc8|byte(d&7))
		case 2:
			a.Raw(rexRM(true, 0, d), 0xf7, 0xd8|byte(d&7))
			*flagsWritten = true
		case 3:
			a.Raw(rexRM(true, 0, d), 0xf7, 0xd0|byte(d&7))
		}
	case 14: // cmovcc d, s
		if g.abi && !*flagsWritten {
			return true
		}
		a.Raw(rexRM(true, d, s), 0x0f, 0x40|g.byte()%16, modrmRR(d, s))
	case 15: // setcc d8 (with REX: no ah..bh), then movzx d, d8
		if g.abi && !*flagsWritten {
			return true
		}
		a.Raw(rexRM(false, 0, d), 0x0f, 0x90|g.byte()%16, 0xc0|byte(d&7))
		a.Raw(rexRM(false, d, d), 0x0f, 0xb6, modrmRR(d, d))
	case 16: // load
		_ = a.MovLoad(d, amd64.M(amd64.R15, int32(8*(g.byte()%16))))
	case 17: // store
		_ = a.MovStore(amd64.M(amd64.R15, int32(8*(g.byte()%16))), s)
	case 18: // push s; ...; pop d
		a.Push(s)
		g.insn(depth, flagsWritten)
		a.Pop(d)
	case 19: // forward jcc over a few instructions
		if g.abi && !*flagsWritten {
			return true
		}
		f := a.JccShort(amd64.Cond(g.byte() % 16))
		for range int(g.byte() % 4) {
			g.insn(depth, flagsWritten)
		}
		if a.Bind(f) != nil {
			return false
		}
	case 20, 21: // direct or indirect call to a subroutine
		if depth > 0 || len(g.subs) == 0 {
			return true
		}
		k := int(g.byte()) % len(g.subs)
		if op == 20 {
			_ = a.CallRel32(a.Base + uintptr(g.subs[k]))
		} else {
			_ = a.MovLoad(d, amd64.M(amd64.R15, int32(bufSubs+8*k)))
			a.CallReg(d)
		}
		if g.abi {
			*flagsWritten = false
		}
	case 22: // pushfq; something; popfq: the flags come back as they were
		fw := *flagsWritten
		a.Pushfq()
		g.insn(depth, flagsWritten)
		a.Popfq()
		*flagsWritten = fw
	case 23: // add [mem], s
		_ = g.a.MovLoad(d, amd64.M(amd64.R15, int32(8*(g.byte()%16))))
		a.Raw(rexRM(true, s, d), 0x01, modrmRR(s, d))
		*flagsWritten = true
	case 25: // call through the stack: push the address, call [rsp], pop
		if depth > 0 || len(g.subs) == 0 {
			return true
		}
		k := int(g.byte()) % len(g.subs)
		_ = a.MovLoad(d, amd64.M(amd64.R15, int32(bufSubs+8*k)))
		a.Push(d)
		_ = a.CallMem(amd64.M(amd64.RSP, 0))
		a.Pop(d)
		if g.abi {
			*flagsWritten = false
		}
	case 24: // a switch: jmp [pads + 8*(s&3)] to one of four pads
		if depth > 0 || len(g.pads)+4 > maxPads || s == d {
			return true
		}
		first := len(g.pads)
		a.MovRR(d, s)
		a.Raw(rexRM(true, 0, d), 0x83, 0xe0|byte(d&7), 3) // and d, 3
		*flagsWritten = true
		_ = a.MovLoad(d, amd64.MI(amd64.R15, d, 8, int32(bufPads+8*first)))
		a.JmpReg(d)
		var ends []amd64.Fixup
		for range 4 {
			g.pads = append(g.pads, a.Len())
			g.insn(depth+1, flagsWritten)
			ends = append(ends, a.JmpLabel())
		}
		for _, e := range ends {
			_ = a.Bind(e)
		}
	}
	return true
}

// program emits a whole program: numSubs subroutines, then the entry
// point, which saves the callee-saved registers, loads the initial
// registers from the buffer, runs the body, and stores the registers
// and flags back. It returns the entry's offset.
func (g *gen) program() int {
	a := g.a
	for k := range numSubs {
		g.subs = append(g.subs, a.Len())
		fw := !g.abi
		// Some subroutines leave the flags alone, and, outside the
		// psABI, some read the caller's flags at once: flags then
		// cross calls both ways.
		g.quiet = k%3 == 1
		if k%3 == 2 && !g.abi {
			a.Raw(0x48, 0x11, 0xd8) // adc rax, rbx
		}
		for i := 0; i < 6 && g.insn(1, &fw); i++ {
		}
		g.quiet = false
		a.Ret()
	}
	entry := a.Len()
	saved := []amd64.Reg{amd64.RBX, amd64.RBP, amd64.R12, amd64.R13, amd64.R14, amd64.R15}
	for _, r := range saved {
		a.Push(r)
	}
	a.MovRR(amd64.R15, amd64.RDI)
	for i, r := range fuzzRegs {
		_ = a.MovLoad(r, amd64.M(amd64.R15, int32(bufInit+8*i)))
	}
	fw := !g.abi
	for i := 0; i < 48 && g.insn(0, &fw); i++ {
	}
	if !fw {
		// Within the psABI the flags a callee left are not the
		// caller's to read: set them before the epilogue saves them.
		a.Raw(0x48, 0x85, 0xc0) // test rax, rax
	}
	for i, r := range fuzzRegs {
		_ = a.MovStore(amd64.M(amd64.R15, int32(bufFinal+8*i)), r)
	}
	a.Pushfq()
	_ = a.PopMem(amd64.M(amd64.R15, bufFlags))
	for i := len(saved) - 1; i >= 0; i-- {
		a.Pop(saved[i])
	}
	a.Ret()
	return entry
}

// fuzzMachine runs generated programs: an executable unit for the code
// (in the first machine's vmcode, below 2 GiB), a buffer, and machines
// that translate them: exact flags (StrictFlags) and the psABI default,
// with vmcode low and high (the table addressed absolutely or not), and
// with one basic block a fragment (no superblocks: every call and return
// through a site).
type fuzzMachine struct {
	strict, abi []*Machine
	// code holds the programs: code[0] below 2 GiB, where sites take
	// their narrow forms, code[1] above (in a high machine's vmcode),
	// where they take their wide ones. Every machine runs both.
	code    [2]*codeUnit
	buf     []byte
	bufAddr uintptr
}

func newFuzzMachine(t testing.TB) *fuzzMachine {
	fm := &fuzzMachine{}
	for _, c := range []struct {
		cfg  vmm.Config
		opts Options
	}{
		{vmm.Config{VMCodeBase: lowBase}, Options{StrictFlags: true}},
		{vmm.Config{VMCodeBase: lowBase}, Options{}},
		{vmm.Config{}, Options{StrictFlags: true}},
		{vmm.Config{}, Options{}},
		{vmm.Config{VMCodeBase: lowBase}, Options{StrictFlags: true, MaxBlocks: 1}},
		{vmm.Config{}, Options{MaxBlocks: 1}},
	} {
		m, _ := newTestMachine(t, c.cfg, &c.opts)
		if c.opts.StrictFlags {
			fm.strict = append(fm.strict, m)
		} else {
			fm.abi = append(fm.abi, m)
		}
	}
	for i, m := range []*Machine{fm.strict[0], fm.strict[1]} {
		code, err := allocUnit(m.code, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { code.free() })
		fm.code[i] = code
	}
	if fm.code[1].exec < low {
		t.Fatalf("high vmcode at %#x", fm.code[1].exec)
	}
	a, err := fm.strict[0].v.HeapAlloc(bufSize)
	if err != nil {
		t.Fatal(err)
	}
	fm.bufAddr = a
	fm.buf = osmem.Bytes(a, bufSize)
	return fm
}

// run generates a program from input, and at each of the code's places
// runs it natively and under every machine from the same initial state,
// and compares the final registers, flags and scratch memory.
func (fm *fuzzMachine) run(t testing.TB, input []byte, abi bool) {
	for _, code := range fm.code {
		fm.runAt(t, code, input, abi)
	}
}

func (fm *fuzzMachine) runAt(t testing.TB, code *codeUnit, input []byte, abi bool) {
	g := &gen{in: input, a: amd64.NewAssembler(code.exec), abi: abi}
	entry := g.program()
	if g.a.Len() > int(code.size) {
		return
	}
	code.write(code.exec, g.a.Bytes())
	// Programs within the psABI run on every machine, the others on
	// the strict ones.
	ms := fm.strict
	if abi {
		ms = append(append([]*Machine(nil), fm.strict...), fm.abi...)
	}
	init := make([]byte, bufSize)
	for i := range init[:bufInit+8*len(fuzzRegs)] {
		init[i] = byte(i*131 + len(input))
	}
	for i, b := range input {
		init[i%(bufInit+8*len(fuzzRegs))] ^= b
	}
	for k, off := range g.subs {
		binary.LittleEndian.PutUint64(init[bufSubs+8*k:], uint64(code.exec+uintptr(off)))
	}
	for k, off := range g.pads {
		binary.LittleEndian.PutUint64(init[bufPads+8*k:], uint64(code.exec+uintptr(off)))
	}
	fn := code.exec + uintptr(entry)
	// Compare the arithmetic flags only (OF SF ZF AF PF CF).
	const flagMask = 0x8d5
	state := func() []byte {
		out := append([]byte(nil), fm.buf[:bufFlags+8]...)
		f := binary.LittleEndian.Uint64(out[bufFlags:])
		binary.LittleEndian.PutUint64(out[bufFlags:], f&flagMask)
		return out
	}
	copy(fm.buf, init)
	if _, err := ms[0].RunNative(fn, fm.bufAddr); err != nil {
		t.Fatal(err)
	}
	native := state()
	for mi, m := range ms {
		// The code changed under the cache: start over.
		m.Flush()
		// Three runs: the first learns the inline caches through
		// the dispatcher, the later ones hit them.
		for run := range 3 {
			copy(fm.buf, init)
			if _, err := m.Run(fn, fm.bufAddr); err != nil {
				t.Fatalf("machine %d run %d: %v", mi, run, err)
			}
			if got := state(); !bytes.Equal(native, got) {
				dumpCache(t, m)
				t.Fatalf("abi %v, machine %d (%+v), run %d: state differs for input %x:\n%s", abi, mi, m.opts, run, input, diffState(native, got))
			}
		}
	}
}

func diffState(native, translated []byte) string {
	var s string
	for off := 0; off+8 <= len(native); off += 8 {
		n, tr := binary.LittleEndian.Uint64(native[off:]), binary.LittleEndian.Uint64(translated[off:])
		if n != tr {
			what := fmt.Sprintf("scratch[%d]", off/8)
			switch {
			case off == bufFlags:
				what = "flags"
			case off >= bufFinal:
				what = fuzzRegs[(off-bufFinal)/8].String()
			case off >= bufInit:
				what = "init " + fuzzRegs[(off-bufInit)/8].String()
			}
			s += fmt.Sprintf("  %s: native %#x, translated %#x\n", what, n, tr)
		}
	}
	return s
}

// FuzzTranslate runs generated programs natively and under the
// translator and requires the same registers, flags and memory at the
// end: with StrictFlags for any program (flags read after calls and in
// callees included), and with the psABI default for programs that keep
// the psABI's flag rules.
func FuzzTranslate(f *testing.F) {
	for _, seed := range []string{
		"\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17",
		"\x13\x05\x03\x01\x14\x00\x00\x15\x01\x02\x07\x01\x02\x16\x05\x04\x0f\x03\x02\x05",
		"\x07\x01\x02\x13\x02\x03\x00\x01\x02\x0e\x04\x05\x09\x08\x09\x0f\x02\x03\x01\x14\x01",
		"reachvm translates generated code and compares the state",
	} {
		f.Add([]byte(seed))
	}
	fm := newFuzzMachine(f)
	f.Fuzz(func(t *testing.T, input []byte) {
		fm.run(t, input, false)
		fm.run(t, input, true)
	})
}

// TestTranslateGenerated runs a thousand generated programs from a fixed
// pseudo-random source: FuzzTranslate's check without the fuzzer. (It
// catches, among others, a site that keeps flags the target reads, a
// lookup that forgets to pop them, a restore wrongly skipped, and a
// liveness analysis that overclaims.)
func TestTranslateGenerated(t *testing.T) {
	fm := newFuzzMachine(t)
	x := uint64(0x9e3779b97f4a7c15)
	n := 1000
	if testing.Short() || raceEnabled {
		n = 150
	}
	for i := range n {
		input := make([]byte, 40+i%200)
		for j := range input {
			x ^= x << 13
			x ^= x >> 7
			x ^= x << 17
			input[j] = byte(x)
		}
		fm.run(t, input, false)
		fm.run(t, input, true)
	}
}

// TestFlagsAcrossCalls is a program outside the psABI's flag rules: a
// compare's flags cross a call into a subroutine that does not touch
// them, and are read after it returns and by a subroutine at its entry
// (adc). With StrictFlags, warm runs (inline caches hit) must keep them
// exactly.
func TestFlagsAcrossCalls(t *testing.T) {
	fm := newFuzzMachine(t)
	for _, code := range fm.code {
		a := amd64.NewAssembler(code.exec)
		sub1 := a.Len()
		a.MovRR(amd64.RCX, amd64.RDX) // no flags
		a.Ret()
		sub2 := a.Len()
		a.Raw(0x48, 0x11, 0xd8) // adc rax, rbx: reads CF
		a.Ret()
		entry := a.Len()
		for _, r := range []amd64.Reg{amd64.RBX, amd64.R15} {
			a.Push(r)
		}
		a.MovRR(amd64.R15, amd64.RDI)
		a.MovImm32(amd64.RAX, 1)
		a.MovImm32(amd64.RBX, 2)
		a.Raw(0x48, 0x39, 0xd8) // cmp rax, rbx: CF set
		_ = a.CallRel32(a.Base + uintptr(sub1))
		// sub1's return site learns this continuation, which calls sub2
		// straight away: the flags are live across it.
		_ = a.CallRel32(a.Base + uintptr(sub2))
		a.Raw(0x0f, 0x92, 0xc2) // setb dl: CF from adc (0)
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal), amd64.RAX)
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal+8), amd64.RDX)
		a.Pop(amd64.R15)
		a.Pop(amd64.RBX)
		a.Ret()
		code.write(code.exec, a.Bytes())
		fn := code.exec + uintptr(entry)
		// MaxBlocks 1: no superblock follows the calls, so the returns and
		// calls go through sites.
		m := fm.strict[2] // low, StrictFlags, MaxBlocks 1
		m.Flush()
		for run := range 4 {
			clear(fm.buf[:bufSize])
			var err error
			if run == 0 {
				_, err = m.RunNative(fn, fm.bufAddr)
			} else {
				_, err = m.Run(fn, fm.bufAddr)
			}
			if err != nil {
				t.Fatal(err)
			}
			rax, rdx := binary.LittleEndian.Uint64(fm.buf[bufFinal:]), binary.LittleEndian.Uint64(fm.buf[bufFinal+8:])&0xff
			if rax != 4 || rdx != 0 {
				t.Errorf("run %d: rax %d (want 1+2+CF = 4), dl %d (want 0)", run, rax, rdx)
			}
		}
	}
}

// TestShiftByMaskedZeroKeepsFlags runs, with StrictFlags and warm, an
// indirect call and a return whose targets begin with shl r32, 32: the
// count of a shift of a 32-bit operand is masked to 5 bits, so that
// shift counts 0 and leaves the flags alone (Intel SDM vol. 2B, SAL/SAR/
// SHL/SHR: "The count is masked to 5 bits (or 6 bits with a 64-bit
// operand)"; "If the count is 0, the flags are not affected"), and the
// setb after it reads the CF of the compare before the call. A liveness
// analysis that masks the count to 6 bits takes the shift for a flag
// writer and lets the sites' hits drop the saved flags.
func TestShiftByMaskedZeroKeepsFlags(t *testing.T) {
	fm := newFuzzMachine(t)
	for _, code := range fm.code {
		a := amd64.NewAssembler(code.exec)
		sub := a.Len()
		a.Raw(0xc1, 0xe0, 0x20) // shl eax, 32: count 0, flags kept
		a.Raw(0x0f, 0x92, 0xc2) // setb dl
		a.Ret()
		entry := a.Len()
		a.Push(amd64.R15)
		a.MovRR(amd64.R15, amd64.RDI)
		a.MovImm32(amd64.RAX, 1)
		a.MovImm32(amd64.RCX, 2)
		a.MovImm32(amd64.RDX, 0)
		a.MovImm32(amd64.RSI, 0)
		_ = a.MovLoad(amd64.R8, amd64.M(amd64.R15, bufSubs))
		a.Raw(0x48, 0x39, 0xc8) // cmp rax, rcx: CF set
		a.CallReg(amd64.R8)
		a.Raw(0xc1, 0xe1, 0x20)       // shl ecx, 32: count 0, flags kept
		a.Raw(0x40, 0x0f, 0x92, 0xc6) // setb sil
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal), amd64.RDX)
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal+8), amd64.RSI)
		a.Pop(amd64.R15)
		a.Ret()
		code.write(code.exec, a.Bytes())
		binary.LittleEndian.PutUint64(fm.buf[bufSubs:], uint64(code.exec+uintptr(sub)))
		fn := code.exec + uintptr(entry)
		for mi, m := range fm.strict {
			m.Flush()
			for run := range 4 {
				clear(fm.buf[bufFinal : bufFinal+16])
				var err error
				if run == 0 {
					_, err = m.RunNative(fn, fm.bufAddr)
				} else {
					_, err = m.Run(fn, fm.bufAddr)
				}
				if err != nil {
					t.Fatal(err)
				}
				dl, sil := fm.buf[bufFinal], fm.buf[bufFinal+8]
				if dl != 1 || sil != 1 {
					t.Errorf("machine %d (%+v) run %d: setb in the callee %d, after the return %d; want 1, 1 (CF of cmp 1, 2)", mi, m.opts, run, dl, sil)
				}
			}
		}
	}
}

// TestIndirectJumpKeepsRCX runs an indirect jump (a site that compares
// through rcx, and above 2 GiB through rdx unless the target is in a
// register) to code that reads rcx and rdx, warm: the site's hit must
// give them back.
func TestIndirectJumpKeepsRCX(t *testing.T) {
	fm := newFuzzMachine(t)
	for _, code := range fm.code {
		a := amd64.NewAssembler(code.exec)
		entry := a.Len()
		a.Push(amd64.R15)
		a.MovRR(amd64.R15, amd64.RDI)
		a.MovImm32(amd64.RCX, 0x1234)
		a.MovImm32(amd64.RDX, 0x5678)
		_ = a.MovLoad(amd64.RAX, amd64.M(amd64.R15, bufPads))
		a.JmpReg(amd64.RAX)
		pad := a.Len()
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal), amd64.RCX)
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal+8), amd64.RDX)
		_ = a.JmpMem(amd64.M(amd64.R15, bufPads+8))
		pad2 := a.Len()
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal+16), amd64.RCX)
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal+24), amd64.RDX)
		a.Pop(amd64.R15)
		a.Ret()
		code.write(code.exec, a.Bytes())
		binary.LittleEndian.PutUint64(fm.buf[bufPads:], uint64(code.exec+uintptr(pad)))
		binary.LittleEndian.PutUint64(fm.buf[bufPads+8:], uint64(code.exec+uintptr(pad2)))
		for _, m := range append(fm.strict, fm.abi...) {
			m.Flush()
			for run := range 3 {
				clear(fm.buf[bufFinal : bufFinal+32])
				if _, err := m.Run(code.exec+uintptr(entry), fm.bufAddr); err != nil {
					t.Fatal(err)
				}
				for i, want := range []uint64{0x1234, 0x5678, 0x1234, 0x5678} {
					if got := binary.LittleEndian.Uint64(fm.buf[bufFinal+8*i:]); got != want {
						t.Fatalf("%+v run %d: %s %#x after jump %d, want %#x", m.opts, run, []string{"rcx", "rdx"}[i%2], got, i/2+1, want)
					}
				}
			}
		}
	}
}

// TestCallSiteOperands runs, warm, the calls and returns whose operands
// the cmp form of a site must not compare in place: a call through a
// pointer kept just below rsp (the slot the form pushes over before
// comparing) and a return that pops 256 bytes of arguments (its address
// then lies beyond the red zone the form reads it from).
func TestCallSiteOperands(t *testing.T) {
	fm := newFuzzMachine(t)
	for _, code := range fm.code {
		a := amd64.NewAssembler(code.exec)
		sub := a.Len()
		a.Raw(0x48, 0x83, 0xc0, 0x07) // add rax, 7
		a.Ret()
		popper := a.Len()
		a.Raw(0x48, 0x83, 0xc0, 0x30) // add rax, 0x30
		a.Raw(0xc2, 0x00, 0x01)       // ret 256
		entry := a.Len()
		a.Push(amd64.R15)
		a.MovRR(amd64.R15, amd64.RDI)
		a.MovImm32(amd64.RAX, 1)
		_ = a.MovLoad(amd64.RCX, amd64.M(amd64.R15, bufSubs))
		_ = a.MovStore(amd64.M(amd64.RSP, -8), amd64.RCX)
		_ = a.CallMem(amd64.M(amd64.RSP, -8))
		a.SubRSP(256)
		_ = a.CallRel32(a.Base + uintptr(popper))
		_ = a.MovStore(amd64.M(amd64.R15, bufFinal), amd64.RAX)
		a.Pop(amd64.R15)
		a.Ret()
		code.write(code.exec, a.Bytes())
		binary.LittleEndian.PutUint64(fm.buf[bufSubs:], uint64(code.exec+uintptr(sub)))
		for _, m := range append(fm.strict, fm.abi...) {
			m.Flush()
			for run := range 3 {
				binary.LittleEndian.PutUint64(fm.buf[bufFinal:], 0)
				if _, err := m.Run(code.exec+uintptr(entry), fm.bufAddr); err != nil {
					t.Fatal(err)
				}
				if got := binary.LittleEndian.Uint64(fm.buf[bufFinal:]); got != 1+7+0x30 {
					t.Fatalf("%+v run %d: rax %#x, want %#x", m.opts, run, got, 1+7+0x30)
				}
			}
		}
	}
}
