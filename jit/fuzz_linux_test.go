//go:build linux && amd64

package jit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/internal/rawmem"
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

// The arithmetic flags, as RFLAGS bits.
const (
	flagCF   = 0x001
	flagPF   = 0x004
	flagAF   = 0x010
	flagZF   = 0x040
	flagSF   = 0x080
	flagOF   = 0x800
	flagsAll = flagCF | flagPF | flagAF | flagZF | flagSF | flagOF
)

// flagEffect is what an instruction does to the arithmetic flags, as the
// Intel SDM (vol. 2) and the AMD APM (vol. 3) give it: set sets them
// to values defined by the operands, undef leaves them undefined, and
// the others it does not affect. An undefined flag is any value the CPU
// likes: an AMD EPYC of family 1Ah keeps imul's SF ZF AF PF unchanged,
// other CPUs may compute them; and the translator, which takes an
// instruction that leaves a flag undefined for one that writes it, may
// change the flags before such an instruction when no defined flag is
// live. So no generated instruction reads an undefined flag, and the
// comparison ignores those undefined at the end.
type flagEffect struct{ set, undef uint16 }

var (
	// add, sub, cmp, adc, sbb, neg: all six set.
	effArith = flagEffect{set: flagsAll}
	// and, or, xor, test: "The OF and CF flags are cleared; the SF, ZF,
	// and PF flags are set according to the result. The state of the AF
	// flag is undefined."
	effLogic = flagEffect{set: flagsAll &^ flagAF, undef: flagAF}
	// inc, dec: "The CF flag is not affected. The OF, SF, ZF, AF, and
	// PF flags are set according to the result."
	effIncDec = flagEffect{set: flagsAll &^ flagCF}
	// imul r, r/m: CF and OF set when the result is truncated; "The SF,
	// ZF, AF, and PF flags are undefined."
	effImul = flagEffect{set: flagCF | flagOF, undef: flagSF | flagZF | flagAF | flagPF}
)

// shiftEffect is the flag effect of a shift (ext 4, 5, 7) or a rotate
// (ext 0) of a 64-bit (w) or 32-bit operand by an immediate count. The
// count is masked to 6 bits with a 64-bit operand and to 5 otherwise,
// and a masked count of 0 affects no flag. Otherwise shifts set CF, SF,
// ZF and PF and leave AF undefined; rotates set CF and leave the others
// alone; both set OF for a count of 1 and leave it undefined for more
// (SDM vol. 2B, SAL/SAR/SHL/SHR and RCL/RCR/ROL/ROR, "Flags Affected").
func shiftEffect(ext, count byte, w bool) flagEffect {
	if w {
		count &= 63
	} else {
		count &= 31
	}
	var e flagEffect
	switch {
	case count == 0:
		return e
	case ext == 0:
		e.set = flagCF
	default:
		e.set = flagCF | flagSF | flagZF | flagPF
		e.undef = flagAF
	}
	if count == 1 {
		e.set |= flagOF
	} else {
		e.undef |= flagOF
	}
	return e
}

// condFlags are the flags each condition code reads.
var condFlags = [16]uint16{
	flagOF, flagOF, // o, no
	flagCF, flagCF, // b, ae
	flagZF, flagZF, // e, ne
	flagCF | flagZF, flagCF | flagZF, // be, a
	flagSF, flagSF, // s, ns
	flagPF, flagPF, // p, np
	flagSF | flagOF, flagSF | flagOF, // l, ge
	flagZF | flagSF | flagOF, flagZF | flagSF | flagOF, // le, g
}

// flagState is what the generator knows of the flags at a point of a
// program.
type flagState struct {
	// undef are the flags left undefined: by an instruction, or by a
	// call within the psABI, which gives the flags no value after it.
	undef uint16
	// inherited are, in a subroutine, the flags that may still hold
	// their values from its entry (on some path): defined only where
	// they are defined at the call. Disjoint from undef.
	inherited uint16
}

func (f *flagState) apply(e flagEffect) {
	f.undef = f.undef&^e.set | e.undef
	f.inherited &^= e.set | e.undef
}

// merge joins the state of another path to the same point: a flag is
// undefined if it is on either path, and inherited if it is on either
// and not undefined.
func (f *flagState) merge(o flagState) {
	f.undef |= o.undef
	f.inherited = (f.inherited | o.inherited) &^ f.undef
}

// subFlags is what a subroutine does with the flags: needs are the flags
// it reads from its caller, which a call must have defined, and out its
// state at the return, where out.inherited come from the caller.
type subFlags struct {
	needs uint16
	out   flagState
}

// gen turns fuzz input into programs.
type gen struct {
	in  []byte
	pos int
	a   *amd64.Assembler
	// subs are the subroutines' offsets once emitted, and subFlags
	// their effects on the flags.
	subs     []int
	subFlags []subFlags
	// needs collects, while a subroutine is generated, the flags it
	// reads from its caller.
	needs uint16
	// abi keeps the program within the psABI's flag rules: no flag is
	// read after a call returns before something writes it, and no
	// subroutine reads the flags it was called with.
	abi bool
	// quiet restricts instructions to those that leave the flags alone,
	// for subroutines through which flags must pass unchanged.
	quiet bool
	// pads are the offsets of indirect jumps' landing pads, in the
	// order of their buffer slots.
	pads []int
	// undefAtEnd are the flags left undefined at the end of the
	// program, which the comparison ignores.
	undefAtEnd uint16
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

// read reports whether an instruction may read the flags in mask at f:
// none of them undefined. The inherited ones it reads go to the
// subroutine's needs.
func (g *gen) read(f *flagState, mask uint16) bool {
	if f.undef&mask != 0 {
		return false
	}
	g.needs |= f.inherited & mask
	return true
}

// call reports whether the program may call subroutine k at f, and if so
// gives f the state after the call returns.
func (g *gen) call(f *flagState, k int) bool {
	sf := g.subFlags[k]
	if f.undef&sf.needs != 0 {
		return false
	}
	if g.abi {
		f.undef, f.inherited = flagsAll, 0
		return true
	}
	g.needs |= f.inherited & sf.needs
	f.undef = f.undef&sf.out.inherited | sf.out.undef
	f.inherited &= sf.out.inherited
	return true
}

func rexRM(w bool, reg, rm amd64.Reg) byte {
	r := byte(0x40)
	if w {
		r |= 8
	}
	return r | byte(reg>>3&1)<<2 | byte(rm>>3&1)
}

func modrmRR(reg, rm amd64.Reg) byte { return 0xc0 | byte(reg&7)<<3 | byte(rm&7) }

// aluOps are the two-register ALU instructions (op r/m64, r64) the
// generator emits: add sub xor and or cmp test.
var aluOps = []struct {
	code byte
	eff  flagEffect
}{{0x01, effArith}, {0x29, effArith}, {0x31, effLogic}, {0x21, effLogic}, {0x09, effLogic}, {0x39, effArith}, {0x85, effLogic}}

// shiftInsn encodes a shift or rotate of d by count: ext is the ModRM
// reg field (4 shl, 5 shr, 7 sar, 0 rol), w the 64-bit operand size.
func shiftInsn(ext, count byte, w bool, d amd64.Reg) []byte {
	return []byte{rexRM(w, 0, d), 0xc1, 0xc0 | ext<<3 | byte(d&7), count}
}

// unaryOps are inc, dec, neg, not of a 64-bit register: their ModRM
// bytes without the register, and effects.
var unaryOps = []struct {
	code, modrm byte
	eff         flagEffect
}{{0xff, 0xc0, effIncDec}, {0xff, 0xc8, effIncDec}, {0xf7, 0xd8, effArith}, {0xf7, 0xd0, flagEffect{}}}

// insn emits one instruction (or a balanced pair) chosen by the input;
// depth limits nested calls. It returns false when the input is spent.
func (g *gen) insn(depth int, f *flagState) bool {
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
		a.Raw(rexRM(true, s, d), aluOps[op].code, modrmRR(s, d))
		f.apply(aluOps[op].eff)
	case 7, 8: // adc, sbb: read CF
		if !g.read(f, flagCF) {
			return true
		}
		a.Raw(rexRM(true, s, d), []byte{0x11, 0x19}[op-7], modrmRR(s, d))
		f.apply(effArith)
	case 9: // imul d, s
		a.Raw(rexRM(true, d, s), 0x0f, 0xaf, modrmRR(d, s))
		f.apply(effImul)
	case 10: // mov d, s
		a.MovRR(d, s)
	case 11: // lea d, [s + d*scale + disp8]
		_ = a.Lea(d, amd64.MI(s, d, 1<<(g.byte()%4), int32(int8(g.byte()))))
	case 12: // shift/rotate by imm, of 64 or 32 bits, by any count
		sel := g.byte()
		ext, w := []byte{4, 5, 7, 0}[sel%4], sel&4 != 0
		count := g.byte()
		if count >= 0xc0 {
			// The edges of the masked count: none, one, and (of a
			// 32-bit operand) the same once masked.
			count = []byte{0, 1, 32, 33}[count%4]
		}
		count %= 64
		a.Raw(shiftInsn(ext, count, w, d)...)
		f.apply(shiftEffect(ext, count, w))
	case 13: // inc, dec, neg, not
		u := unaryOps[g.byte()%4]
		a.Raw(rexRM(true, 0, d), u.code, u.modrm|byte(d&7))
		f.apply(u.eff)
	case 14: // cmovcc d, s
		cc := g.byte() % 16
		if !g.read(f, condFlags[cc]) {
			return true
		}
		a.Raw(rexRM(true, d, s), 0x0f, 0x40|cc, modrmRR(d, s))
	case 15: // setcc d8 (with REX: no ah..bh), then movzx d, d8
		cc := g.byte() % 16
		if !g.read(f, condFlags[cc]) {
			return true
		}
		a.Raw(rexRM(false, 0, d), 0x0f, 0x90|cc, 0xc0|byte(d&7))
		a.Raw(rexRM(false, d, d), 0x0f, 0xb6, modrmRR(d, d))
	case 16: // load
		_ = a.MovLoad(d, amd64.M(amd64.R15, int32(8*(g.byte()%16))))
	case 17: // store
		_ = a.MovStore(amd64.M(amd64.R15, int32(8*(g.byte()%16))), s)
	case 18: // push s; ...; pop d
		a.Push(s)
		g.insn(depth, f)
		a.Pop(d)
	case 19: // forward jcc over a few instructions
		cc := g.byte() % 16
		if !g.read(f, condFlags[cc]) {
			return true
		}
		fx := a.JccShort(amd64.Cond(cc))
		taken := *f
		for range int(g.byte() % 4) {
			g.insn(depth, f)
		}
		f.merge(taken)
		if a.Bind(fx) != nil {
			return false
		}
	case 20, 21: // direct or indirect call to a subroutine
		if depth > 0 || len(g.subs) == 0 {
			return true
		}
		k := int(g.byte()) % len(g.subs)
		if !g.call(f, k) {
			return true
		}
		if op == 20 {
			_ = a.CallRel32(a.Base + uintptr(g.subs[k]))
		} else {
			_ = a.MovLoad(d, amd64.M(amd64.R15, int32(bufSubs+8*k)))
			a.CallReg(d)
		}
	case 22: // pushfq; something; popfq: the flags come back as they were
		saved := *f
		a.Pushfq()
		g.insn(depth, f)
		a.Popfq()
		*f = saved
	case 23: // add [mem], s
		_ = g.a.MovLoad(d, amd64.M(amd64.R15, int32(8*(g.byte()%16))))
		a.Raw(rexRM(true, s, d), 0x01, modrmRR(s, d))
		f.apply(effArith)
	case 25: // call through the stack: push the address, call [rsp], pop
		if depth > 0 || len(g.subs) == 0 {
			return true
		}
		k := int(g.byte()) % len(g.subs)
		if !g.call(f, k) {
			return true
		}
		_ = a.MovLoad(d, amd64.M(amd64.R15, int32(bufSubs+8*k)))
		a.Push(d)
		_ = a.CallMem(amd64.M(amd64.RSP, 0))
		a.Pop(d)
	case 24: // a switch: jmp [pads + 8*(s&3)] to one of four pads
		if depth > 0 || len(g.pads)+4 > maxPads || s == d {
			return true
		}
		first := len(g.pads)
		a.MovRR(d, s)
		a.Raw(rexRM(true, 0, d), 0x83, 0xe0|byte(d&7), 3) // and d, 3
		f.apply(effLogic)
		_ = a.MovLoad(d, amd64.MI(amd64.R15, d, 8, int32(bufPads+8*first)))
		a.JmpReg(d)
		var ends []amd64.Fixup
		start := *f
		var out flagState
		for i := range 4 {
			g.pads = append(g.pads, a.Len())
			*f = start
			g.insn(depth+1, f)
			if i == 0 {
				out = *f
			} else {
				out.merge(*f)
			}
			ends = append(ends, a.JmpLabel())
		}
		*f = out
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
		// Within the psABI a subroutine starts with no flags to
		// read; outside it, with its caller's.
		f := flagState{inherited: flagsAll}
		if g.abi {
			f = flagState{undef: flagsAll}
		}
		g.needs = 0
		// Some subroutines leave the flags alone, and, outside the
		// psABI, some read the caller's flags at once: flags then
		// cross calls both ways.
		g.quiet = k%3 == 1
		if k%3 == 2 && !g.abi {
			g.read(&f, flagCF)
			a.Raw(0x48, 0x11, 0xd8) // adc rax, rbx
			f.apply(effArith)
		}
		for i := 0; i < 6 && g.insn(1, &f); i++ {
		}
		g.quiet = false
		a.Ret()
		g.subFlags = append(g.subFlags, subFlags{needs: g.needs, out: f})
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
	// The entry's flags are the machine's initial ones, native or
	// translated; within the psABI they are not the program's to read.
	var f flagState
	if g.abi {
		f.undef = flagsAll
	}
	for i := 0; i < 48 && g.insn(0, &f); i++ {
	}
	if f.undef == flagsAll {
		// Within the psABI the flags a callee left are not the
		// caller's to read: set them before the epilogue saves them.
		a.Raw(0x48, 0x39, 0xd8) // cmp rax, rbx
		f.apply(effArith)
	}
	g.undefAtEnd = f.undef
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
	fm.buf = rawmem.Bytes(a, bufSize)
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
	// Compare the arithmetic flags only (OF SF ZF AF PF CF), and of
	// those the ones the program left defined.
	flagMask := uint64(flagsAll &^ g.undefAtEnd)
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

// TestGenFlagEffects checks the generator's flag model against this CPU,
// natively: for every flag-writing instruction the generator emits, over
// a range of operands and every combination of incoming arithmetic
// flags, the flags the model calls set must not depend on the incoming
// ones, and the flags it calls unaffected must come out as they went in.
// (The model may call a flag undefined that a CPU computes, as the
// manuals do, never the reverse: taking imul for a writer of all six
// fails on an AMD EPYC of family 1Ah, where imul keeps SF ZF AF PF.)
func TestGenFlagEffects(t *testing.T) {
	fm := newFuzzMachine(t)
	type insnCase struct {
		name string
		code []byte
		eff  flagEffect
		// reads are the flags the instruction reads: the set ones
		// may depend on them.
		reads uint64
	}
	d, s := amd64.RAX, amd64.RCX
	var cases []insnCase
	for _, op := range aluOps {
		cases = append(cases, insnCase{fmt.Sprintf("%02x", op.code), []byte{rexRM(true, s, d), op.code, modrmRR(s, d)}, op.eff, 0})
	}
	cases = append(cases,
		insnCase{"adc", []byte{rexRM(true, s, d), 0x11, modrmRR(s, d)}, effArith, flagCF},
		insnCase{"sbb", []byte{rexRM(true, s, d), 0x19, modrmRR(s, d)}, effArith, flagCF},
		insnCase{"imul", []byte{rexRM(true, d, s), 0x0f, 0xaf, modrmRR(d, s)}, effImul, 0},
		insnCase{"and 3", []byte{rexRM(true, 0, d), 0x83, 0xe0 | byte(d&7), 3}, effLogic, 0},
	)
	for _, u := range unaryOps {
		cases = append(cases, insnCase{fmt.Sprintf("%02x/%d", u.code, u.modrm>>3&7), []byte{rexRM(true, 0, d), u.code, u.modrm | byte(d&7)}, u.eff, 0})
	}
	for _, ext := range []byte{4, 5, 7, 0} {
		for _, w := range []bool{true, false} {
			for _, count := range []byte{0, 1, 2, 31, 32, 33, 63} {
				cases = append(cases, insnCase{fmt.Sprintf("c1/%d w%v %d", ext, w, count), shiftInsn(ext, count, w, d), shiftEffect(ext, count, w), 0})
			}
		}
	}
	// One function per case: load rax, rcx and the flags from the
	// buffer, run the instruction, store the flags.
	code := fm.code[0]
	a := amd64.NewAssembler(code.exec)
	entries := make([]uintptr, len(cases))
	for i, c := range cases {
		entries[i] = code.exec + uintptr(a.Len())
		_ = a.MovLoad(d, amd64.M(amd64.RDI, 0))
		_ = a.MovLoad(s, amd64.M(amd64.RDI, 8))
		_ = a.PushMem(amd64.M(amd64.RDI, 16))
		a.Popfq()
		a.Raw(c.code...)
		a.Pushfq()
		_ = a.PopMem(amd64.M(amd64.RDI, 24))
		a.Ret()
	}
	code.write(code.exec, a.Bytes())
	operands := [][2]uint64{{0, 0}, {1, 2}, {3, 5}, {^uint64(0), 1}, {1 << 63, 1 << 63}, {0x0123456789abcdef, 0x1000}, {1<<63 - 1, 1}, {^uint64(6), 3}, {0x80000001, 0xffffffff}}
	for i, c := range cases {
		for _, ops := range operands {
			// The outputs with the flags the instruction reads as
			// in this input, and none of the others, set.
			refs := map[uint64]uint64{}
			for in := uint64(0); in < 64; in++ {
				// The six flags from the bits of in.
				var fin uint64
				for b, f := range []uint64{flagCF, flagPF, flagAF, flagZF, flagSF, flagOF} {
					fin |= (in >> b & 1) * f
				}
				binary.LittleEndian.PutUint64(fm.buf[0:], ops[0])
				binary.LittleEndian.PutUint64(fm.buf[8:], ops[1])
				binary.LittleEndian.PutUint64(fm.buf[16:], 0x202|fin)
				if _, err := fm.strict[0].RunNative(entries[i], fm.bufAddr); err != nil {
					t.Fatal(err)
				}
				out := binary.LittleEndian.Uint64(fm.buf[24:]) & flagsAll
				ref, ok := refs[fin&c.reads]
				if !ok {
					ref, refs[fin&c.reads] = out, out
				}
				set, unaffected := uint64(c.eff.set), uint64(flagsAll&^c.eff.set&^c.eff.undef)
				if (out^ref)&set != 0 {
					t.Errorf("%s (% x) on %#x, %#x: flags %#x come out %#x with flags %#x in, %#x with only the read ones: the model calls them set", c.name, c.code, ops[0], ops[1], (out^ref)&set, out&set, fin, ref&set)
				}
				if (out^fin)&unaffected != 0 {
					t.Errorf("%s (% x) on %#x, %#x: flags %#x come out %#x with %#x in: the model calls them unaffected", c.name, c.code, ops[0], ops[1], (out^fin)&unaffected, out&unaffected, fin&unaffected)
				}
			}
		}
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
