//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/reachvm/reachvm/internal/native"
	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// lowBase is DynamoRIO's default vm_base on Linux: vmcode below 2 GiB,
// where code addresses fit 32-bit displacements and the translator's
// indirect-branch sites take their narrow form.
const lowBase = 0x3f000000

// newTestMachine returns a machine over a fresh VMM with a small vmcode.
// A VMCodeBase of lowBase falls back to other low addresses when taken,
// and skips the test when none is free.
func newTestMachine(t testing.TB, cfg vmm.Config, opts *Options) (*Machine, *vmcode.Code) {
	t.Helper()
	if cfg.VMCodeSize == 0 {
		cfg.VMCodeSize = 256 << 20
	}
	if cfg.VMHeapSize == 0 {
		cfg.VMHeapSize = 256 << 20
	}
	var v *vmm.VMM
	var err error
	if cfg.VMCodeBase == lowBase {
		for _, b := range []uintptr{lowBase, 0x10000000, 0x50000000, 0x60000000} {
			cfg.VMCodeBase = b
			if v, err = vmm.New(cfg); err == nil {
				break
			}
		}
		if err != nil {
			t.Skipf("no free vmcode below 2 GiB: %v", err)
		}
	} else if v, err = vmm.New(cfg); err != nil {
		t.Fatal(err)
	}
	code := vmcode.New(v)
	m, err := NewMachine(code, opts)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Close(); err != nil {
			t.Error(err)
		}
		if err := v.Close(); err != nil {
			t.Error(err)
		}
	})
	return m, code
}

// disasm decodes code at pc, failing the test on any byte the decoder
// cannot decode, and returns one line per instruction, in x86asm's
// syntax where x86asm agrees on the length (its gaps, ENDBR64 in
// particular, show as hex).
func disasm(t testing.TB, code []byte, pc uintptr) []string {
	t.Helper()
	out, err := disasmErr(code, pc)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// disasmErr is disasm returning what it decoded and the first error.
func disasmErr(code []byte, pc uintptr) ([]string, error) {
	var out []string
	for off := 0; off < len(code); {
		in, err := decode.Decode(code[off:])
		if err != nil {
			return out, fmt.Errorf("%#x: cannot decode % x: %v", pc+uintptr(off), code[off:min(len(code), off+15)], err)
		}
		text := fmt.Sprintf("% x", code[off:off+int(in.Len)])
		if inst, err := x86asm.Decode(code[off:], 64); err == nil && inst.Len == int(in.Len) && inst.Op != 0 {
			text = strings.ToLower(x86asm.IntelSyntax(inst, uint64(pc)+uint64(off), nil))
		}
		out = append(out, fmt.Sprintf("%#x: %s", pc+uintptr(off), text))
		off += int(in.Len)
	}
	return out, nil
}

// TestGencodeDecodes checks that the emitted context switch decodes
// completely and that it names the context only RIP-relatively, never
// through FS or GS.
func TestGencodeDecodes(t *testing.T) {
	m, _ := newTestMachine(t, vmm.Config{}, nil)
	g := m.genUnit
	lines := disasm(t, g.bytes(g.exec, g.used), g.exec)
	text := strings.Join(lines, "\n")
	if strings.Contains(text, "fs:") || strings.Contains(text, "gs:") {
		t.Fatalf("the context switch uses a segment register:\n%s", text)
	}
	for _, want := range []string{"pushfq", "popfq", "cld", "ret"} {
		if !strings.Contains(text, want) {
			t.Errorf("no %s in the context switch", want)
		}
	}
	if m.vs.xsave && !strings.Contains(text, "xsave") {
		t.Error("XSAVE is available but not used")
	}
	t.Logf("vector state: %+v\n%s", m.vs, text)
}

// TestContextSwitch enters a hand-made fragment that computes with the
// application's registers and flags and leaves through an exit stub's
// sequence: every application register must come back as the fragment
// left it, the vector state too, and the host (Go) must survive.
func TestContextSwitch(t *testing.T) {
	m, code := newTestMachine(t, vmm.Config{}, nil)
	u, err := allocUnit(code, 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer u.free()
	a := amd64.NewAssembler(u.exec)
	c := func(off uintptr) amd64.Mem { return amd64.RIPRel(m.ctx + off) }
	// rax = rbx + r12; r15 = rsp; xmm0 += xmm0; set CF (stc) ... exit 7.
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(a.Lea(amd64.RAX, amd64.MI(amd64.RBX, amd64.R12, 1, 0)))
	a.MovRR(amd64.R15, amd64.RSP)
	a.Raw(0x66, 0x0f, 0xd4, 0xc0) // paddq xmm0, xmm0
	a.Raw(0xf9)                   // stc
	must(a.MovStore(c(gpr(amd64.RAX)), amd64.RAX))
	a.MovImm32(amd64.RAX, 7)
	must(a.JmpRel32(m.gen.fret))
	u.write(u.exec, a.Bytes())
	t.Log(strings.Join(disasm(t, a.Bytes(), u.exec), "\n"))

	clear(m.mem[ctxGPR : ctxGPR+128])
	for r := amd64.RAX; r <= amd64.R15; r++ {
		m.setReg(r, 0x1000+uint64(r))
	}
	sp := uint64(m.stack + m.stackSize - 128)
	m.setReg(amd64.RSP, sp)
	binary.LittleEndian.PutUint64(m.mem[ctxFlags:], initialFlags)
	area := m.mem[ctxXsave : ctxXsave+m.lay.xsaveSize]
	resetVectorState(area)
	if m.vs.xsave {
		// XSTATE_BV: x87 and SSE present, so xmm0 is read from the
		// area.
		binary.LittleEndian.PutUint64(area[512:], 3)
	}
	binary.LittleEndian.PutUint64(area[160:], 21) // xmm0 low qword
	id := native.Call1(m.gen.enter, u.exec)
	if id != 7 {
		t.Fatalf("exit %d, want 7", id)
	}
	if got := m.reg(amd64.RAX); got != 0x1000+3+0x1000+12 {
		t.Errorf("rax %#x", got)
	}
	if got := m.reg(amd64.R15); got != sp {
		t.Errorf("r15 (the application's rsp) %#x, want %#x", got, sp)
	}
	for _, r := range []amd64.Reg{amd64.RBX, amd64.RCX, amd64.RDX, amd64.RBP, amd64.RSI, amd64.RDI, amd64.R8, amd64.R12, amd64.R14} {
		if got := m.reg(r); got != 0x1000+uint64(r) {
			t.Errorf("%v = %#x, want %#x", r, got, 0x1000+uint64(r))
		}
	}
	if got := m.reg(amd64.RSP); got != sp {
		t.Errorf("rsp %#x, want %#x", got, sp)
	}
	if fl := binary.LittleEndian.Uint64(m.mem[ctxFlags:]); fl&1 == 0 {
		t.Errorf("flags %#x: CF lost", fl)
	}
	if got := binary.LittleEndian.Uint64(area[160:]); got != 42 {
		t.Errorf("xmm0 %d, want 42", got)
	}
}
