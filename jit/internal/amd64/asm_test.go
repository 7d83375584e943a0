package amd64

import (
	"encoding/hex"
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
	for _, tt := range tests {
		a := NewAssembler(base)
		if err := tt.emit(a); err != nil {
			t.Errorf("%s: %v", tt.dis, err)
			continue
		}
		if got := hex.EncodeToString(a.Bytes()); got != tt.hex {
			t.Errorf("%s: encoded %s, want %s", tt.dis, got, tt.hex)
			continue
		}
		inst, err := x86asm.Decode(a.Bytes(), 64)
		if err != nil {
			t.Errorf("%s: x86asm cannot decode %s: %v", tt.dis, tt.hex, err)
			continue
		}
		if inst.Len != len(a.Bytes()) {
			t.Errorf("%s: x86asm decoded %d of %d bytes", tt.dis, inst.Len, len(a.Bytes()))
		}
		if got := strings.ToLower(x86asm.IntelSyntax(inst, base, nil)); got != tt.dis {
			t.Errorf("%s: x86asm says %q", tt.hex, got)
		}
	}
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
