package amd64

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestEncoding checks each form against its bytes and against x86asm's
// disassembly of those bytes (Intel syntax, at PC 0x1000).
func TestEncoding(t *testing.T) {
	const base = 0x1000
	tests := []struct {
		emit func(a *Assembler) error
		hex  string
		dis  string
	}{
		{func(a *Assembler) error { return a.CallRel32(0x2000) }, "e8fb0f0000", "call 0x2000"},
		{func(a *Assembler) error { return a.CallRel32(0x800) }, "e8fbf7ffff", "call 0x800"},
		{func(a *Assembler) error { return a.JmpRel32(0x1005) }, "e900000000", "jmp 0x1005"},
		{func(a *Assembler) error { a.Ret(); return nil }, "c3", "ret"},
		{func(a *Assembler) error { a.MovImm64(RAX, 0x1122334455667788); return nil }, "48b88877665544332211", "mov rax, 0x1122334455667788"},
		{func(a *Assembler) error { a.MovImm64(R11, 1); return nil }, "49bb0100000000000000", "mov r11, 0x1"},
		{func(a *Assembler) error { a.CallReg(RAX); return nil }, "ffd0", "call rax"},
		{func(a *Assembler) error { a.CallReg(R11); return nil }, "41ffd3", "call r11"},
		{func(a *Assembler) error { a.Push(RBX); return nil }, "53", "push rbx"},
		{func(a *Assembler) error { a.Push(R12); return nil }, "4154", "push r12"},
		{func(a *Assembler) error { a.Pop(RBX); return nil }, "5b", "pop rbx"},
		{func(a *Assembler) error { a.Pop(R15); return nil }, "415f", "pop r15"},
		{func(a *Assembler) error { a.SubRSP(8); return nil }, "4883ec08", "sub rsp, 0x8"},
		{func(a *Assembler) error { a.MovRR(RAX, RDI); return nil }, "4889f8", "mov rax, rdi"},
		{func(a *Assembler) error { a.MovRR(R9, R10); return nil }, "4d89d1", "mov r9, r10"},
		{func(a *Assembler) error { a.MovRR(RBX, R12); return nil }, "4c89e3", "mov rbx, r12"},
		{func(a *Assembler) error { a.AddRR(RAX, RSI); return nil }, "4801f0", "add rax, rsi"},
		{func(a *Assembler) error { a.AddRR(R15, RCX); return nil }, "4901cf", "add r15, rcx"},
		{func(a *Assembler) error { a.AddRSP(8); return nil }, "4883c408", "add rsp, 0x8"},
		{func(a *Assembler) error { a.SubRSP(0x1000); return nil }, "4881ec00100000", "sub rsp, 0x1000"},
		{func(a *Assembler) error { a.AddRSP(-0x100); return nil }, "4881c400ffffff", "add rsp, -0x100"},
	}
	for _, tt := range append(tests, formTests...) {
		a := NewAssembler(base)
		if err := tt.emit(a); err != nil {
			t.Errorf("%s: %v", tt.dis, err)
			continue
		}
		if got := hex.EncodeToString(a.Bytes()); got != tt.hex {
			t.Errorf("%s: encoded %s, want %s", tt.dis, got, tt.hex)
			continue
		}
		got, err := disassemble(a.Bytes(), base)
		if err != nil {
			t.Errorf("%s: %v", tt.dis, err)
			continue
		}
		if got != tt.dis {
			t.Errorf("%s: x86asm says %q", tt.hex, got)
		}
	}
}

// disassemble decodes every instruction of b with x86asm (Intel syntax, b
// at pc) and joins them with "; ". It fails unless the instructions cover
// b exactly.
func disassemble(b []byte, pc uint64) (string, error) {
	var out []string
	for off := 0; off < len(b); {
		inst, err := x86asm.Decode(b[off:], 64)
		if err != nil {
			return "", fmt.Errorf("x86asm cannot decode % x at offset %d: %v", b[off:], off, err)
		}
		out = append(out, strings.ToLower(x86asm.IntelSyntax(inst, pc+uint64(off), nil)))
		off += inst.Len
	}
	return strings.Join(out, "; "), nil
}

func TestRel32OutOfReach(t *testing.T) {
	a := NewAssembler(0x1000)
	err := a.CallRel32(0x1000 + 5 + 1<<31)
	if _, ok := err.(*ReachError); !ok {
		t.Fatalf("call beyond +2 GiB: got %v, want *ReachError", err)
	}
	if a.Len() != 0 {
		t.Fatalf("a failed call emitted %d bytes", a.Len())
	}
	// The last reachable byte on each side.
	if err := a.CallRel32(0x1005 + (1<<31 - 1)); err != nil {
		t.Fatalf("call to +2^31-1: %v", err)
	}
	b := NewAssembler(1 << 32)
	if err := b.JmpRel32(1<<32 + 5 - 1<<31); err != nil {
		t.Fatalf("jmp to -2^31: %v", err)
	}
	if err := b.JmpRel32(1<<32 + 5 - 1<<31 - 1); err == nil {
		t.Fatal("jmp to -2^31-1 succeeded")
	}
}

// TestMemRoundTrip encodes loads, stores and leas over many base, index,
// scale and displacement combinations and checks that x86asm decodes the
// same operand back, with the instruction's whole length.
func TestMemRoundTrip(t *testing.T) {
	regs := []Reg{RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15, NoReg}
	disps := []int32{0, 1, -1, 127, -128, 128, -129, 0x7fffffff, -0x80000000}
	x86reg := func(r Reg) x86asm.Reg {
		if r == NoReg {
			return 0
		}
		return x86asm.RAX + x86asm.Reg(r)
	}
	n := 0
	for _, base := range regs {
		for _, index := range regs {
			if index == RSP {
				continue
			}
			for _, scale := range []uint8{1, 2, 4, 8} {
				for _, disp := range disps {
					m := MI(base, index, scale, disp)
					for k, emit := range []func(a *Assembler) error{
						func(a *Assembler) error { return a.MovLoad(R9, m) },
						func(a *Assembler) error { return a.MovStore(m, RDX) },
						func(a *Assembler) error { return a.Lea(RSI, m) },
						func(a *Assembler) error { return a.MovStoreImm32(m, -7) },
					} {
						a := NewAssembler(0x1000)
						if err := emit(a); err != nil {
							t.Fatalf("%+v form %d: %v", m, k, err)
						}
						inst, err := x86asm.Decode(a.Bytes(), 64)
						if err != nil || inst.Len != a.Len() {
							t.Fatalf("%+v form %d: % x: len %d, %v", m, k, a.Bytes(), inst.Len, err)
						}
						arg := inst.Args[1]
						if k == 1 || k == 3 {
							arg = inst.Args[0]
						}
						got, ok := arg.(x86asm.Mem)
						if !ok {
							t.Fatalf("%+v form %d: operand %v", m, k, arg)
						}
						want := x86asm.Mem{Base: x86reg(base), Index: x86reg(index), Disp: int64(disp)}
						if index != NoReg {
							want.Scale = scale
						}
						got.Segment = 0
						// x86asm reports a disp32 zero-extended.
						got.Disp = int64(int32(got.Disp))
						if got.Index == 0 {
							got.Scale = 0
						}
						if got != want {
							t.Fatalf("%+v form %d: % x decodes to %+v, want %+v", m, k, a.Bytes(), got, want)
						}
						n++
					}
				}
			}
		}
	}
	t.Logf("%d encodings round-tripped", n)
}

// TestRIPOutOfReach: every RIP-relative form refuses a target out of
// reach with a *ReachError and leaves the buffer as it was.
func TestRIPOutOfReach(t *testing.T) {
	far := RIPRel(0x1000 + 3<<30)
	a := NewAssembler(0x1000)
	a.Int3()
	for k, emit := range []func() error{
		func() error { return a.MovLoad(RAX, far) },
		func() error { return a.MovStore(far, RAX) },
		func() error { return a.MovStoreImm32(far, 1) },
		func() error { return a.Lea(RAX, far) },
		func() error { return a.JmpMem(far) },
		func() error { return a.Xsave64(far) },
		func() error { return a.JccRel32(CondE, far.Target) },
	} {
		var re *ReachError
		if err := emit(); !errors.As(err, &re) {
			t.Errorf("form %d: got %v, want *ReachError", k, err)
		}
		if a.Len() != 1 {
			t.Fatalf("form %d: a refused form left %d bytes", k, a.Len()-1)
		}
	}
	// The nearest unreachable byte past the end of a 7-byte load.
	if err := a.MovLoad(RAX, RIPRel(0x1001+7+1<<31)); err == nil {
		t.Error("load at +2^31 succeeded")
	}
	if err := a.MovLoad(RAX, RIPRel(0x1001+7+1<<31-1)); err != nil {
		t.Errorf("load at +2^31-1: %v", err)
	}
}

func TestLabels(t *testing.T) {
	a := NewAssembler(0)
	f := a.Jrcxz()
	a.Nop(200)
	if err := a.Bind(f); err == nil {
		t.Error("a rel8 bound 200 bytes away succeeded")
	}
	if err := a.MovLoad(RAX, MI(RAX, RSP, 1, 0)); err == nil {
		t.Error("rsp as an index register was accepted")
	}
}
