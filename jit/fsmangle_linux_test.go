package jit

import (
	"encoding/hex"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/reachvm/reachvm/jit/internal/amd64"
	"github.com/reachvm/reachvm/jit/internal/decode"
)

// TestRewriteFS checks the FS-relative operands the translator rewrites:
// the instruction without its override, its base replaced by the scratch
// register (which then holds FS base + base), as {hex, disassembly} pairs.
func TestRewriteFS(t *testing.T) {
	for _, tc := range []struct {
		in, want, asm string
		scratch       amd64.Reg
		base          bool
	}{
		// The stack protector's canary: [disp32] becomes [rsi+disp32].
		{"64488b042528000000", "488b842628000000", "mov rax, qword ptr [rsi+0x28]", amd64.RSI, false},
		{"64482b142528000000", "482b942628000000", "sub rdx, qword ptr [rsi+0x28]", amd64.RSI, false},
		// An initial-exec TLS variable: fs:[rax].
		{"648b00", "8b06", "mov eax, dword ptr [rsi]", amd64.RSI, true},
		// The base is rsi itself: rdi is the scratch.
		{"64488b06", "488b07", "mov rax, qword ptr [rdi]", amd64.RDI, true},
		// An r12 base (SIB) loses REX.B.
		{"6441890c24", "40890c26", "mov dword ptr [rsi], ecx", amd64.RSI, true},
		// [r12+r9*4] (REX.X and REX.B), rdi named: rsi, and REX.X stays.
		{"6443893c8c", "42893c8e", "mov dword ptr [rsi+4*r9], edi", amd64.RSI, true},
		// Index only: mod 00 base 101 becomes mod 10 with the scratch as base.
		{"64488b04c500000000", "488b84c600000000", "mov rax, qword ptr [rsi+8*rax]", amd64.RSI, false},
		// lock cmpxchg keeps its lock prefix.
		{"64f00fb10a", "f00fb10e", "lock cmpxchg dword ptr [rsi], ecx", amd64.RSI, true},
		// A VEX load (x86asm does not decode VEX).
		{"64c5fa6f4008", "c5fa6f4608", "", amd64.RSI, true},
	} {
		b, _ := hex.DecodeString(tc.in)
		in, err := decode.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !isSegFS(&in) {
			t.Fatalf("%s: no FS override decoded", tc.in)
		}
		isMem, ok, what := fsMemory(b, &in)
		if !isMem || !ok {
			t.Fatalf("%s: memory %v, rewritable %v (%s)", tc.in, isMem, ok, what)
		}
		op := fsOperandOf(b, &in)
		s, ok := fsScratch(&in, op)
		if !ok || s != tc.scratch || op.hasBase != tc.base {
			t.Errorf("%s: scratch %v (%v), base %v: want %v, base %v", tc.in, s, ok, op.hasBase, tc.scratch, tc.base)
			continue
		}
		got := rewriteFS(nil, b, &in, op, s)
		if hex.EncodeToString(got) != tc.want {
			t.Errorf("%s: rewritten %x, want %s", tc.in, got, tc.want)
			continue
		}
		if tc.asm == "" {
			continue
		}
		dis, err := x86asm.Decode(got, 64)
		if asm := x86asm.IntelSyntax(dis, 0, nil); err != nil || asm != tc.asm {
			t.Errorf("%s: %x disassembles as %q (%v), want %q", tc.in, got, asm, err, tc.asm)
		}
	}
}

// TestFSRefused: forms that reach memory through FS and cannot be
// rewritten are refused by name, never copied (they would read Go's thread
// pointer); an override on an instruction that reaches no memory is
// copied as it is.
func TestFSRefused(t *testing.T) {
	for _, tc := range []struct{ in, what string }{
		{"6448a12800000000000000", "moffs"},
		{"64a4", "string"},
		{"64488b0500000000", "RIP-relative"},
	} {
		b, _ := hex.DecodeString(tc.in)
		in, err := decode.Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		isMem, ok, what := fsMemory(b, &in)
		if !isMem || ok || what == "" {
			t.Errorf("%s: memory %v, rewritable %v, %q: want refused naming %s", tc.in, isMem, ok, what, tc.what)
		}
	}
	b, _ := hex.DecodeString("644889c0") // mov rax, rax with a stray override
	in, _ := decode.Decode(b)
	if isMem, ok, _ := fsMemory(b, &in); isMem || !ok {
		t.Errorf("register form: memory %v, rewritable %v: want copied", isMem, ok)
	}
}
