package decode

import (
	"encoding/hex"
	"testing"
)

// TestEffects checks register effects against hand-derived expectations.
func TestEffects(t *testing.T) {
	const (
		rax = 1 << iota
		rcx
		rdx
		rbx
		rsp
		rbp
		rsi
		rdi
		r8
	)
	for _, c := range []struct {
		hex        string
		read, kill Regs
		ok         bool
	}{
		{"4889c7", rax, rdi, true},         // mov rdi, rax
		{"89c7", rax, rdi, true},           // mov edi, eax (zero-extends)
		{"6689c7", rax | rdi, 0, true},     // mov di, ax (partial)
		{"488b7f08", rdi, rdi, true},       // mov rdi, [rdi+8]: read first
		{"488d0c11", rcx | rdx, rcx, true}, // lea rcx, [rcx+rdx]
		{"31c0", 0, rax, true},             // xor eax, eax
		{"31c8", rax | rcx, 0, true},       // xor eax, ecx
		{"4829d2", 0, rdx, true},           // sub rdx, rdx
		{"4839d1", rcx | rdx, 0, true},     // cmp rcx, rdx
		{"4885c0", rax, 0, true},           // test rax, rax
		{"b801000000", 0, rax, true},       // mov eax, 1
		{"41b801000000", 0, r8, true},      // mov r8d, 1
		{"b401", rax, 0, true},             // mov ah, 1
		{"40b601", rsi, 0, true},           // mov sil, 1
		{"4899", rax, rdx, true},           // cqo
		{"4883c201", rdx, 0, true},         // add rdx, 1
		{"488b04c8", rax | rcx, rax, true}, // mov rax, [rax+rcx*8]
		{"488b0500000000", 0, rax, true},   // mov rax, [rip]
		{"53", rbx, 0, true},               // push rbx
		{"5b", 0, rbx, true},               // pop rbx
		{"f30f1efa", 0, 0, true},           // endbr64
		{"0f1f440000", 0, 0, true},         // nop
		{"480fb6c8", rax, rcx, true},       // movzx rcx, al
		{"0fb6cc", rax, rcx, true},         // movzx ecx, ah
		{"48d3e0", 0, 0, false},            // shl rax, cl: implicit rcx
		{"48f7e1", 0, 0, false},            // mul rcx: implicit rax, rdx
		{"f348ab", 0, 0, false},            // rep stosq
		{"c5f877", 0, 0, false},            // vzeroupper
		{"f20f2ac0", 0, 0, false},          // cvtsi2sd xmm0, eax
		{"480f44c1", rax | rcx, 0, true},   // cmove rax, rcx
		{"486bc007", rax, rax, true},       // imul rax, rax, 7: read first
		{"c7c001000000", 0, rax, true},     // mov eax, 1 (C7)
		{"c70001000000", rax, 0, true},     // mov dword [rax], 1
		{"8807", rax | rdi, 0, true},       // mov [rdi], al
		{"48890424", rax | rsp, 0, true},   // mov [rsp], rax
	} {
		b, _ := hex.DecodeString(c.hex)
		in, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", c.hex, err)
		}
		r, k, ok := Effects(b, &in)
		if ok != c.ok || ok && (r != c.read || k != c.kill) {
			t.Errorf("%s: read %016b kill %016b ok %v, want %016b %016b %v", c.hex, r, k, ok, c.read, c.kill, c.ok)
		}
	}
}

func TestFlagEffect(t *testing.T) {
	for _, c := range []struct {
		hex string
		f   Flags
		ok  bool
	}{
		{"4839d1", FlagsWrite, true},   // cmp rcx, rdx
		{"4885c0", FlagsWrite, true},   // test rax, rax
		{"4889c7", FlagsNone, true},    // mov rdi, rax
		{"488d0c11", FlagsNone, true},  // lea
		{"4811d0", FlagsRead, true},    // adc rax, rdx
		{"48ffc0", FlagsRead, true},    // inc rax
		{"480f44c1", FlagsRead, true},  // cmove
		{"0f94c0", FlagsRead, true},    // sete al
		{"48c1e003", FlagsWrite, true}, // shl rax, 3
		{"48c1c003", FlagsRead, true},  // rol rax, 3
		{"48c1e020", FlagsWrite, true}, // shl rax, 32
		{"48c1e040", FlagsRead, true},  // shl rax, 64: count 0
		{"c1e020", FlagsRead, true},    // shl eax, 32: count 0
		{"c1e021", FlagsWrite, true},   // shl eax, 33: count 1
		{"66c1e820", FlagsRead, true},  // shr ax, 32: count 0
		{"c0f820", FlagsRead, true},    // sar al, 32: count 0
		{"c0f808", FlagsWrite, true},   // sar al, 8
		{"48f7d8", FlagsWrite, true},   // neg rax
		{"48f7d0", FlagsNone, true},    // not rax
		{"31c0", FlagsWrite, true},     // xor eax, eax
		{"4883fa01", FlagsWrite, true}, // cmp rdx, 1
		{"4883d201", FlagsRead, true},  // adc rdx, 1
		{"f30f1efa", FlagsNone, true},  // endbr64
		{"48d3e0", 0, false},           // shl rax, cl
		{"9c", 0, false},               // pushfq: unknown
	} {
		b, _ := hex.DecodeString(c.hex)
		in, err := Decode(b)
		if err != nil {
			t.Fatalf("%s: %v", c.hex, err)
		}
		f, ok := FlagEffect(b, &in)
		if ok != c.ok || ok && f != c.f {
			t.Errorf("%s: %v %v, want %v %v", c.hex, f, ok, c.f, c.ok)
		}
	}
}
