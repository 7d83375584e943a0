package decode

import (
	"encoding/hex"
	"errors"
	"testing"
)

// cases are hand-checked encodings (objdump agrees on every length).
var cases = []struct {
	hex    string
	len    int
	kind   Kind
	rip    bool
	rel    int32
	disp   int32 // RIP displacement when rip
	immLen int
}{
	{"90", 1, Plain, false, 0, 0, 0},
	{"c3", 1, Ret, false, 0, 0, 0},
	{"c20800", 3, Ret, false, 0, 0, 2},
	{"f3c3", 2, Ret, false, 0, 0, 0},                       // rep ret
	{"e8fbffffff", 5, CallRel, false, -5, 0, 4},            // call self
	{"e900010000", 5, JmpRel, false, 0x100, 0, 4},          // jmp
	{"eb fe", 2, JmpRel, false, -2, 0, 1},                  // jmp $
	{"7410", 2, JccRel, false, 0x10, 0, 1},                 // je
	{"0f8500000080", 6, JccRel, false, -0x80000000, 0, 4},  // jne
	{"e3f0", 2, LoopRel, false, -16, 0, 1},                 // jrcxz
	{"e2f0", 2, LoopRel, false, -16, 0, 1},                 // loop
	{"ffd0", 2, CallInd, false, 0, 0, 0},                   // call rax
	{"41ff24c4", 4, JmpInd, false, 0, 0, 0},                // jmp [r12+rax*8]
	{"ff2502000000", 6, JmpInd, true, 0, 2, 0},             // jmp [rip+2]
	{"f2ff2502000000", 7, JmpInd, true, 0, 2, 0},           // bnd jmp [rip+2]
	{"3effe0", 3, JmpInd, false, 0, 0, 0},                  // notrack jmp rax
	{"0f05", 2, Syscall, false, 0, 0, 0},                   // syscall
	{"cc", 1, Trap, false, 0, 0, 0},                        // int3
	{"cd80", 2, Trap, false, 0, 0, 1},                      // int 0x80
	{"0f0b", 2, Trap, false, 0, 0, 0},                      // ud2
	{"f30f1efa", 4, Plain, false, 0, 0, 0},                 // endbr64
	{"0f01ee", 3, Plain, false, 0, 0, 0},                   // rdpkru
	{"0f01ef", 3, Plain, false, 0, 0, 0},                   // wrpkru
	{"488b05f0ffffff", 7, Plain, true, 0, -16, 0},          // mov rax, [rip-16]
	{"488d3d00000000", 7, Plain, true, 0, 0, 0},            // lea rdi, [rip]
	{"c705f0ffffff01000000", 10, Plain, true, 0, -16, 4},   // mov dword [rip-16], 1
	{"66c705f0ffffff0100", 9, Plain, true, 0, -16, 2},      // mov word [rip-16], 1
	{"48c705f0ffffff01000000", 11, Plain, true, 0, -16, 4}, // mov qword [rip-16], 1
	{"803df0ffffff00", 7, Plain, true, 0, -16, 1},          // cmp byte [rip-16], 0
	{"f605f0ffffff01", 7, Plain, true, 0, -16, 1},          // test byte [rip-16], 1
	{"f705f0ffffff01000000", 10, Plain, true, 0, -16, 4},   // test dword [rip-16], 1
	{"f715f0ffffff", 6, Plain, true, 0, -16, 0},            // not dword [rip-16]
	{"48b88877665544332211", 10, Plain, false, 0, 0, 8},    // mov rax, imm64
	{"66b83412", 4, Plain, false, 0, 0, 2},                 // mov ax, imm16
	{"a0efcdab8967452301", 9, Plain, false, 0, 0, 8},       // mov al, [moffs64]
	{"67a078563412", 6, Plain, false, 0, 0, 4},             // mov al, [moffs32]
	{"c8100001", 4, Plain, false, 0, 0, 3},                 // enter 16, 1
	{"c5f877", 3, Plain, false, 0, 0, 0},                   // vzeroupper
	{"c5fd6f05f0ffffff", 8, Plain, true, 0, -16, 0},        // vmovdqa ymm0, [rip-16]
	{"c4e27d5905f0ffffff", 9, Plain, true, 0, -16, 0},      // vpbroadcastq ymm0, [rip-16]
	{"c4e37d1805f0ffffff01", 10, Plain, true, 0, -16, 1},   // vinsertf128 ymm0, ymm0, [rip-16], 1
	{"62f1fe486f05f0ffffff", 10, Plain, true, 0, -16, 0},   // vmovdqu64 zmm0, [rip-16]
	{"62f37d48390501000000ff", 11, Plain, true, 0, 1, 1},   // vextracti32x8-ish with imm
	{"62f17c4828442401", 8, Plain, false, 0, 0, 0},         // vmovaps zmm0, [rsp+64] (disp8*N)
	{"660f3a0f05f0ffffff08", 10, Plain, true, 0, -16, 1},   // palignr xmm0, [rip-16], 8
	{"660f380005f0ffffff", 9, Plain, true, 0, -16, 0},      // pshufb xmm0, [rip-16]
	{"0f1f840000000000", 8, Plain, false, 0, 0, 0},         // nop
	{"2e0f1f840000000000", 9, Plain, false, 0, 0, 0},       // cs nop
	{"66662e0f1f840000000000", 11, Plain, false, 0, 0, 0},  // padding nop
	{"f0480fb10d00000000", 9, Plain, true, 0, 0, 0},        // lock cmpxchg [rip], rcx
	{"0f0f05f0ffffffb4", 8, Plain, true, 0, -16, 1},        // 3DNow! pfadd
	{"64488b042528000000", 9, Plain, false, 0, 0, 0},       // mov rax, fs:0x28
	{"c7f800000000", 6, System, false, 0, 0, 4},            // xbegin
	{"ff1d00000000", 6, System, true, 0, 0, 0},             // call far [rip]
	{"cb", 1, System, false, 0, 0, 0},                      // retf
	{"4c8d1d00000000", 7, Plain, true, 0, 0, 0},            // lea r11, [rip]
	{"4d8b9c24ffffff7f", 8, Plain, false, 0, 0, 0},         // mov r11, [r12+0x7fffffff]
	{"498b0424", 4, Plain, false, 0, 0, 0},                 // mov rax, [r12]
	{"498b4500", 4, Plain, false, 0, 0, 0},                 // mov rax, [r13+0]
	{"8b042500100000", 7, Plain, false, 0, 0, 0},           // mov eax, [0x1000]
	{"8b04c500100000", 7, Plain, false, 0, 0, 0},           // mov eax, [rax*8+0x1000]
	{"f30fb8c0", 4, Plain, false, 0, 0, 0},                 // popcnt eax, eax
	{"66480f6ec0", 5, Plain, false, 0, 0, 0},               // movq xmm0, rax
	{"f2480f2a05f0ffffff", 9, Plain, true, 0, -16, 0},      // cvtsi2sd xmm0, qword [rip-16]
	{"c4e2f8f705f0ffffff", 9, Plain, true, 0, -16, 0},      // bextr-ish VEX GPR
	{"62f1fd48d405f0ffffff", 10, Plain, true, 0, -16, 0},   // vpaddq zmm0, zmm0, [rip-16]
	{"62f57c4858c1", 6, Plain, false, 0, 0, 0},             // vaddph zmm0, zmm0, zmm1 (map 5)
	{"0f01d0", 3, Plain, false, 0, 0, 0},                   // xgetbv
	{"0fae2d00000000", 7, Plain, true, 0, 0, 0},            // xrstor [rip]
	{"480fae2500000000", 8, Plain, true, 0, 0, 0},          // xsave64 [rip]
	{"6a01", 2, Plain, false, 0, 0, 1},                     // push 1
	{"68ffffff7f", 5, Plain, false, 0, 0, 4},               // push imm32
	{"6bc007", 3, Plain, false, 0, 0, 1},                   // imul eax, eax, 7
	{"69c000010000", 6, Plain, false, 0, 0, 4},             // imul eax, eax, 256
	{"660f78c00102", 6, Plain, false, 0, 0, 2},             // extrq xmm0, 1, 2 (SSE4a)
}

func TestCases(t *testing.T) {
	for _, c := range cases {
		b, err := hex.DecodeString(stripSpaces(c.hex))
		if err != nil {
			t.Fatal(err)
		}
		in, err := Decode(b)
		if err != nil {
			t.Errorf("%s: %v", c.hex, err)
			continue
		}
		if int(in.Len) != c.len || in.Kind != c.kind || in.RIPRelative() != c.rip || int(in.ImmLen) != c.immLen {
			t.Errorf("%s: len %d kind %v rip %v imm %d, want %d %v %v %d", c.hex, in.Len, in.Kind, in.RIPRelative(), in.ImmLen, c.len, c.kind, c.rip, c.immLen)
			continue
		}
		if in.Rel != c.rel {
			t.Errorf("%s: rel %d, want %d", c.hex, in.Rel, c.rel)
		}
		if c.rip {
			if in.DispLen != 4 || in.Disp(b) != c.disp || int(in.DispOff)+4+int(in.ImmLen) != int(in.Len) {
				t.Errorf("%s: disp %d at %d (%d bytes), want %d ending before the immediate", c.hex, in.Disp(b), in.DispOff, in.DispLen, c.disp)
			}
		}
		// Every prefix of the instruction is truncated.
		for k := range b {
			if _, err := Decode(b[:k]); !errors.Is(err, ErrTruncated) {
				t.Errorf("%s: first %d bytes: got %v, want ErrTruncated", c.hex, k, err)
			}
		}
	}
}

func stripSpaces(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != ' ' {
			out = append(out, s[i])
		}
	}
	return string(out)
}

func TestRegisters(t *testing.T) {
	// mov r9, [rip]: REX.R makes the reg field 9.
	in, err := Decode([]byte{0x4c, 0x8b, 0x0d, 0, 0, 0, 0})
	if err != nil || in.RegField() != 9 || in.REXOff != 0 {
		t.Fatalf("mov r9, [rip]: reg %d rex at %d, %v", in.RegField(), in.REXOff, err)
	}
	// andn rax, rbx, [rip] (VEX.vvvv = rbx): c4 e2 e0 f2 05 ...
	in, err = Decode([]byte{0xc4, 0xe2, 0xe0, 0xf2, 0x05, 0, 0, 0, 0})
	if err != nil || in.Vvvv != 3 || in.RegField() != 0 || !in.RIPRelative() || in.Encoding != VEX {
		t.Fatalf("andn: vvvv %d reg %d rip %v enc %v, %v", in.Vvvv, in.RegField(), in.RIPRelative(), in.Encoding, err)
	}
	// A REX followed by a legacy prefix is ignored.
	in, err = Decode([]byte{0x48, 0x66, 0xb8, 0x34, 0x12})
	if err != nil || in.REXOff != -1 || in.Len != 5 {
		t.Fatalf("rex then 66: rex at %d len %d, %v", in.REXOff, in.Len, err)
	}
}

func TestInvalid(t *testing.T) {
	for _, h := range []string{"06", "27", "60", "82c001", "9a", "ce", "d4", "ea", "0f04", "c5", "48c5f877", "66c5f877", "ffff", "c66363a5", "c70801000000", "fe10"} {
		b, _ := hex.DecodeString(h)
		if _, err := Decode(b); err == nil {
			t.Errorf("%s decoded", h)
		}
	}
	long := make([]byte, 16)
	for i := range long {
		long[i] = 0x66
	}
	if _, err := Decode(long); !errors.Is(err, ErrTooLong) {
		t.Errorf("16 prefixes: %v", err)
	}
}

func BenchmarkDecode(b *testing.B) {
	code, _ := hex.DecodeString("488b05f0ffffff" + "4d8b9c24ffffff7f" + "c5fd6f05f0ffffff" + "e8fbffffff" + "0f8500000080" + "f30f1efa" + "4889c7")
	var in Inst
	for b.Loop() {
		for off := 0; off < len(code); off += int(in.Len) {
			if err := DecodeInto(code[off:], &in); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*7), "ns/inst")
}
