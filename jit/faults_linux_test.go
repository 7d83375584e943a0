//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/vmm"
)

// The differential fault fuzzer: generated code computes (the program
// generator of FuzzTranslate, without calls or switches, so that the
// code runs wherever it is mapped) and then faults; the faultrun program
// runs it, natively and under reachvm, and its handler prints the signal,
// si_code, si_addr, rip, every register, the defined flags, the top of
// the stack and the data, which must be the same.
//
// It checks in two steps, which depend on different parts:
//
//   - The fault itself (the signal layer: a fault in the code cache
//     translated back to the application's PC): faultrun with no handler,
//     whose run under reachvm ends with a *SignalError, must die of the
//     signal it dies of natively, with the si_code, fault address and PC
//     the native handler reports.
//   - What the handler sees (the signal emulation as well: faultrun's
//     handlers are installed with rt_sigaction and SA_ONSTACK on a
//     sigaltstack, and must be given the registers, flags and memory of
//     the fault).

// faultKind is a way generated code faults. emit writes the instruction
// (and what sets it up, without touching the flags) with g's assembler;
// y is a register the body computed with, bad a bad address's choice.
type faultKind struct {
	name string
	emit func(g *gen, y, s amd64.Reg, bad byte)
}

// badAddr sets y to a bad address without touching the flags: null, a
// small one, a non-canonical one, or in the PROT_NONE page after the
// data (r15 points at the data).
func badAddr(g *gen, y amd64.Reg, bad byte) {
	switch bad % 4 {
	case 0:
		g.a.MovImm32(y, 0)
	case 1:
		g.a.MovImm32(y, 0x18)
	case 2:
		g.a.MovImm64(y, 0x8000000000000000)
	default:
		_ = g.a.Lea(y, amd64.M(amd64.R15, 4096+8*int32(bad%16)))
	}
}

var faultKinds = []faultKind{
	{"load", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, y, bad)
		_ = g.a.MovLoad(s, amd64.M(y, 0))
	}},
	{"store", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, y, bad)
		_ = g.a.MovStore(amd64.M(y, 8), s)
	}},
	{"add to memory", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, y, bad)
		// add [y+16], s: ModRM mod 01 (disp8), and a SIB byte when y is
		// r12 (rm 100 means a SIB follows).
		g.a.Raw(rexRM(true, s, y), 0x01, 0x40|byte(s&7)<<3|byte(y&7))
		if y&7 == 4 {
			g.a.Raw(0x24)
		}
		g.a.Raw(16)
	}},
	{"division by zero", func(g *gen, y, s amd64.Reg, bad byte) {
		g.a.MovImm32(y, 0)
		g.a.Raw(rexRM(true, 0, y), 0xf7, 0xf0|byte(y&7)) // div y
	}},
	{"division overflow", func(g *gen, y, s amd64.Reg, bad byte) {
		if y == amd64.RAX || y == amd64.RDX {
			y = amd64.RBX
		}
		g.a.MovImm64(amd64.RAX, 1<<63)
		g.a.MovImm64(amd64.RDX, ^uint64(0))
		g.a.MovImm64(y, ^uint64(0))
		g.a.Raw(rexRM(true, 0, y), 0xf7, 0xf8|byte(y&7)) // idiv y
	}},
	{"ud2", func(g *gen, y, s amd64.Reg, bad byte) { g.a.Ud2() }},
	{"int3", func(g *gen, y, s amd64.Reg, bad byte) { g.a.Int3() }},
	{"hlt", func(g *gen, y, s amd64.Reg, bad byte) { g.a.Raw(0xf4) }},
	{"invalid opcode", func(g *gen, y, s amd64.Reg, bad byte) { g.a.Raw(0x06) }},
	{"int 0x41", func(g *gen, y, s amd64.Reg, bad byte) { g.a.Raw(0xcd, 0x41) }},
	{"push with a bad rsp", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, y, bad)
		g.a.MovRR(amd64.RSP, y)
		g.a.Push(s)
	}},
	{"jump to a bad address", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, y, bad)
		g.a.JmpReg(y)
	}},
	{"call to a bad address", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, y, bad)
		g.a.CallReg(y)
	}},
	{"misaligned movaps", func(g *gen, y, s amd64.Reg, bad byte) {
		_ = g.a.Lea(amd64.RSI, amd64.M(amd64.R15, 8))
		g.a.Raw(0x0f, 0x28, 0x06) // movaps xmm0, [rsi]
	}},
	{"rep movsb into the guard page", func(g *gen, y, s amd64.Reg, bad byte) {
		// Faults after 16+bad%16 bytes: rcx, rsi and rdi tell how far
		// it got.
		_ = g.a.Lea(amd64.RSI, amd64.M(amd64.R15, 0))
		_ = g.a.Lea(amd64.RDI, amd64.M(amd64.R15, 4096-16-int32(bad%16)))
		g.a.MovImm32(amd64.RCX, 64)
		g.a.Raw(0xf3, 0xa4)
	}},
	{"lock cmpxchg to a bad address", func(g *gen, y, s amd64.Reg, bad byte) {
		badAddr(g, amd64.RDI, bad)
		g.a.Raw(0xf0, 0x48, 0x0f, 0xb1, 0x37) // lock cmpxchg [rdi], rsi
	}},
}

// faultProgram is faultrun's input: the generated code and the state it
// starts with.
type faultProgram struct {
	// kind names the fault.
	kind string
	// deathPending, when set, says why reachvm does not yet report this
	// fault as the processor does (see FuzzFaults).
	deathPending string
	// code is entered at its first byte; the faulting instruction is
	// at faultOff.
	code     []byte
	faultOff int
	// flagMask are the arithmetic flags defined at the fault.
	flagMask uint64
	// regs are the registers the code starts with (faultrun's order:
	// rax rcx rdx rbx rsp rbp rsi rdi r8-r15, then rflags; faultrun sets
	// rsp and r15 itself), data the first 128 bytes of its data.
	regs [17]uint64
	data [16]uint64
}

// genFault makes a program from fuzz input: input[0] picks the fault,
// input[1] the bad address, the rest drives the generator for a body of
// up to 32 instructions before it.
func genFault(input []byte) *faultProgram {
	var k, bad byte
	if len(input) > 0 {
		k = input[0]
	}
	if len(input) > 1 {
		bad = input[1]
	}
	fk := faultKinds[int(k)%len(faultKinds)]
	body := []byte(nil)
	if len(input) > 2 {
		body = input[2:]
	}
	g := &gen{in: body, a: amd64.NewAssembler(0)}
	var f flagState
	// depth 1: no calls and no switches, whose targets are absolute.
	for i := 0; i < 32 && g.insn(1, &f); i++ {
	}
	y, s := g.reg(), g.reg()
	p := &faultProgram{kind: fk.name}
	p.faultOff = g.a.Len()
	fk.emit(g, y, s, bad)
	// Should the fault not fire (it always does), ud2.
	g.a.Ud2()
	p.code = g.a.Bytes()
	p.flagMask = uint64(flagsAll &^ f.undef)
	if fk.name == "call to a bad address" {
		// The fault comes at the callee's first instruction, and the
		// translator gives the flags no role across a call (the call
		// site compares its target with cmp) unless StrictFlags.
		p.flagMask = 0
	}
	for i := range p.regs[:16] {
		p.regs[i] = 0x0101010101010101 * uint64(i+1)
	}
	for i, b := range input {
		p.regs[i%16] ^= uint64(b) << (8 * (i % 8))
	}
	p.regs[16] = 0x202 | uint64(k)&flagsAll
	for i := range p.data {
		p.data[i] = 0x1000 * uint64(i+1)
	}
	return p
}

// bytes returns faultrun's input file.
func (p *faultProgram) bytes() []byte {
	var b []byte
	b = append(b, "RVFAULT1"...)
	b = binary.LittleEndian.AppendUint64(b, p.flagMask)
	for _, r := range p.regs {
		b = binary.LittleEndian.AppendUint64(b, r)
	}
	for _, d := range p.data {
		b = binary.LittleEndian.AppendUint64(b, d)
	}
	b = binary.LittleEndian.AppendUint64(b, uint64(len(p.code)))
	return append(b, p.code...)
}

// faultSeeds are one input per fault kind, with bodies of different
// lengths and bad addresses of each choice.
func faultSeeds() [][]byte {
	var seeds [][]byte
	for k := range faultKinds {
		in := []byte{byte(k), byte(k * 7)}
		for j := 0; j < 8+k*3; j++ {
			in = append(in, byte(j*37+k*11))
		}
		seeds = append(seeds, in)
	}
	return seeds
}

// FuzzFaults runs generated code that faults under faultrun, natively and
// under reachvm (a Program in a child process, ET_EXEC or static PIE and
// with or without superblocks by the input's second byte), and compares
// the fault (with no handler: the signal, si_code, fault address and PC)
// and what the handler printed, and the exit status. Each run has a
// timeout.
func FuzzFaults(f *testing.F) {
	for _, s := range faultSeeds() {
		f.Add(s)
	}
	runners := map[string]string{}
	for _, kind := range programKinds {
		runners[kind.name] = buildProgram(f, "faultrun", kind.name)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, input []byte) {
		p := genFault(input)
		file := filepath.Join(dir, fmt.Sprintf("fault-%d", os.Getpid()))
		if err := os.WriteFile(file, p.bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		var sel byte
		if len(input) > 1 {
			sel = input[1]
		}
		kind := programKinds[int(sel>>2)%len(programKinds)].name
		maxBlocks := []string{"0", "1"}[sel>>3&1]
		name := fmt.Sprintf("%s (input %x, %s, max-blocks %s, fault at code+%d)", p.kind, input, kind, maxBlocks, p.faultOff)
		want, ws := runNativeStatus(t, runners[kind], file)
		if !ws.Exited() || ws.ExitStatus() != 0 || !strings.HasPrefix(want, "si_signo ") {
			t.Fatalf("%s: faultrun natively: status %v, output %q: want the handler's report and exit 0", name, ws, want)
		}
		report := map[string]string{}
		for _, l := range strings.Split(want, "\n") {
			if k, v, ok := strings.Cut(l, " "); ok {
				report[k] = v
			}
		}
		// The fault, with no handler.
		_, dws := runNativeStatus(t, runners[kind], file, "nohandler")
		if !dws.Signaled() || fmt.Sprint(int(dws.Signal())) != report["si_signo"] {
			t.Fatalf("%s: faultrun natively with no handler: status %v, want death by signal %s", name, dws, report["si_signo"])
		}
		env := []string{"REACHVM_FAULT_PROGRAM=" + runners[kind], "REACHVM_PROGRAM_MAX_BLOCKS=" + maxBlocks}
		out, stderr, code := runChildTest(t, "TestFaultChild", env, 20*time.Second, file, "nohandler")
		got, wantDeath := faultDeath(out), fmt.Sprintf("signal %s code %s addr %s pc %s", report["si_signo"], report["si_code"], report["si_addr"], report["rip"])
		sameDeath := code == 0 && got == wantDeath
		switch {
		case p.deathPending != "" && sameDeath:
			t.Errorf("%s: with no handler, the same under reachvm: its pending mark (%s) can go", name, p.deathPending)
		case p.deathPending != "":
			t.Logf("%s: with no handler: pending (%s): %q, native %q", name, p.deathPending, got, wantDeath)
		case !sameDeath:
			t.Errorf("%s: with no handler: %q (status %d, stderr %q), want %q", name, got, code, stderr, wantDeath)
		}
		// The handler's report.
		got, stderr, code = runProgramEnv(t, runners[kind], []string{"REACHVM_PROGRAM_MAX_BLOCKS=" + maxBlocks}, 20*time.Second, file)
		if got != want || code != 0 {
			t.Errorf("%s: status %d, stderr %q\n%s", name, code, stderr, lineDiff(want, got))
		}
	})
}

// faultDeath turns TestFaultChild's output for faultrun with no handler
// ("bases CODE DATA STACK", then "signal N code C addr A pc P") into the
// signal, si_code, and the fault address and PC as faultrun's handler
// prints them (relative to the code, data or stack, or in hex).
func faultDeath(out string) string {
	var code, data, stack, signo, sicode, addr, pc uint64
	var bases, death bool
	for _, l := range strings.Split(out, "\n") {
		if n, _ := fmt.Sscanf(l, "bases %v %v %v", &code, &data, &stack); n == 3 {
			bases = true
		}
		if n, _ := fmt.Sscanf(l, "signal %d code %d addr %v pc %v", &signo, &sicode, &addr, &pc); n == 4 {
			death = true
		}
	}
	if !bases || !death {
		return "no bases and signal lines in " + strconv.Quote(out)
	}
	rel := func(v uint64) string {
		switch {
		case v-code < 64<<10:
			return fmt.Sprintf("code+%d", v-code)
		case v-data < 2*4096:
			return fmt.Sprintf("data+%d", v-data)
		case v-stack <= 64<<10:
			return fmt.Sprintf("stack+%d", v-stack)
		}
		return fmt.Sprintf("%#x", v)
	}
	return fmt.Sprintf("signal %d code %d addr %s pc %s", signo, int32(sicode), rel(addr), rel(pc))
}

// TestFaultChild is not a test: run by FuzzFaults in a child process
// (REACHVM_FAULT_PROGRAM set), it runs the program under a fresh machine
// (REACHVM_PROGRAM_MAX_BLOCKS sets Options.MaxBlocks) with the arguments
// in REACHVM_PROGRAM_ARGS, and prints how the run ended: "signal N code C
// addr A pc P" (hex) for a *SignalError, "exit N" for an exit; anything
// else on stderr, with status 111.
func TestFaultChild(t *testing.T) {
	path := os.Getenv("REACHVM_FAULT_PROGRAM")
	if path == "" {
		t.Skip("a helper for FuzzFaults")
	}
	_, _, p, args := childProgram(path, vmm.Config{AllowElsewhere: true, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	code, err := p.Run(append([]string{path}, args...), nil)
	var se *SignalError
	switch {
	case errors.As(err, &se):
		fmt.Printf("signal %d code %d addr %#x pc %#x\n", int(se.Signal), se.Code, se.Addr, se.PC)
	case err != nil:
		childFail(err)
	default:
		fmt.Printf("exit %d\n", code)
	}
	os.Exit(0)
}

// lineDiff shows, line by line, where got differs from want.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "  native %-28q reachvm %q\n", wl, gl)
		}
	}
	return b.String()
}
