package decode

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"

	"github.com/reachvm/reachvm/jit/kernels"
)

// operandCases are hand-checked against the Intel SDM (access, flags,
// sizes) and objdump (mnemonics, addresses).
var operandCases = []struct {
	hex, want string
}{
	// Loads, stores, read-modify-write.
	{"0fb606", "movzx w:eax, r:[rsi]/1 ; flags r=- w=-"},
	{"480344bd10", "add rw:rax, r:[rbp+rdi*4+0x10]/8 ; flags r=- w=all"},
	{"01 47 08", "add rw:[rdi+0x8]/4, r:eax ; flags r=- w=all"},
	{"48890424", "mov w:[rsp]/8, r:rax ; flags r=- w=-"},
	{"66 89 07", "mov w:[rdi]/2, r:ax ; flags r=- w=-"},
	{"88 e0", "mov rw:al, r:ah ; flags r=- w=-"},
	{"f0 0fb10e", "lock cmpxchg rw:[rsi]/4, r:ecx ; flags r=- w=all"},
	{"87 06", "xchg rw:[rsi]/4, rw:eax ; flags r=- w=-"},
	{"0fc70e", "cmpxchg8b rw:[rsi]/8 ; flags r=- w=ZF"},
	{"48 0fc7 0e", "cmpxchg16b rw:[rsi]/16 ; flags r=- w=ZF"},
	{"0fba2e05", "bts rw:[rsi]/4, r:0x5 ; flags r=- w=CF|PF|AF|SF|OF"},
	{"3b 0d f0ffffff", "cmp r:ecx, r:[rip-0x10]/4 ; flags r=- w=all"},
	{"64488b042528000000", "mov w:rax, r:[fs:0x28]/8 ; flags r=- w=-"},
	{"65 48 8b 04 25 10 00 00 00", "mov w:rax, r:[gs:0x10]/8 ; flags r=- w=-"},
	{"67 8b 04 88", "mov w:eax, r:a32 [rax+rcx*4]/4 ; flags r=- w=-"},
	{"42 8b 04 a5 00 01 00 00", "mov w:eax, r:[r12*4+0x100]/4 ; flags r=- w=-"},
	{"41 8b 44 24 f8", "mov w:eax, r:[r12-0x8]/4 ; flags r=- w=-"},
	{"41 8b 45 00", "mov w:eax, r:[r13]/4 ; flags r=- w=-"},
	{"a1efcdab8967452301", "mov w:eax, r:[0x123456789abcdef]/4 ; flags r=- w=-"},
	{"488d0424", "lea w:rax, -:[rsp]/0 ; flags r=- w=-"},
	{"488d 05 10000000", "lea w:rax, -:[rip+0x10]/0 ; flags r=- w=-"},
	{"0f1f440000", "nop -:[rax+rax*1]/0 ; flags r=- w=-"},
	{"0f1800", "prefetchnta -:[rax]/0 ; flags r=- w=-"},
	{"0f1fc0", "nop -:eax ; flags r=- w=-"},
	{"660fae38", "clflushopt -:[rax]/0 ; flags r=- w=-"},
	{"66480f38f6c1", "adcx rw:rax, r:rcx ; flags r=CF w=CF"},
	{"f30f38f607", "adox rw:eax, r:[rdi]/4 ; flags r=OF w=OF"},
	{"f30f1efa", "endbr64 ; flags r=- w=-"},
	// Stack.
	{"50", "push r:rax | w:[rsp-0x8]/8 ; flags r=- w=-"},
	{"66 50", "push r:ax | w:[rsp-0x2]/2 ; flags r=- w=-"},
	{"6a 01", "push r:0x1 | w:[rsp-0x8]/8 ; flags r=- w=-"},
	{"ff742408", "push r:[rsp+0x8]/8 | w:[rsp-0x8]/8 ; flags r=- w=-"},
	{"8f00", "pop w:[rax]/8 | r:[rsp]/8 ; flags r=- w=-"},
	{"58", "pop w:rax | r:[rsp]/8 ; flags r=- w=-"},
	{"9c", "pushfq | w:[rsp-0x8]/8 ; flags r=all w=-"},
	{"9d", "popfq | r:[rsp]/8 ; flags r=- w=all"},
	{"c3", "ret | r:[rsp]/8 ; flags r=- w=-"},
	{"c20800", "ret r:0x8 | r:[rsp]/8 ; flags r=- w=-"},
	{"e800000000", "call r:.+0 | w:[rsp-0x8]/8 ; flags r=- w=-"},
	{"ff15f0ffffff", "call r:[rip-0x10]/8 | w:[rsp-0x8]/8 ; flags r=- w=-"},
	{"ffd0", "call r:rax | w:[rsp-0x8]/8 ; flags r=- w=-"},
	{"c9", "leave | r:[rbp]/8 ; flags r=- w=-"},
	{"c8100000", "enter r:0x10, r:0x0 | w:[rsp-0x8]/8 ; flags r=- w=-"},
	// String instructions.
	{"f3a4", "rep movsb | r:[rsi]/1, w:[rdi]/1 ; flags r=- w=-"},
	{"f348a5", "rep movsq | r:[rsi]/8, w:[rdi]/8 ; flags r=- w=-"},
	{"64 a5", "movsd | r:[fs:rsi]/4, w:[rdi]/4 ; flags r=- w=-"},
	{"aa", "stosb | w:[rdi]/1 ; flags r=- w=-"},
	{"f3 48 ab", "rep stosq | w:[rdi]/8 ; flags r=- w=-"},
	{"ac", "lodsb | r:[rsi]/1 ; flags r=- w=-"},
	{"f2ae", "repne scasb | r:[rdi]/1 ; flags r=- w=all"},
	{"f3a6", "repe cmpsb | r:[rsi]/1, r:[rdi]/1 ; flags r=- w=all"},
	// Flags.
	{"c1e003", "shl rw:eax, r:0x3 ; flags r=- w=all"},
	{"c1e020", "shl rw:eax, r:0x20 ; flags r=- w=-"},
	{"48c1e020", "shl rw:rax, r:0x20 ; flags r=- w=all"},
	{"d3e0", "shl rw:eax, r:cl ; flags r=- w=all"},
	{"d1c0", "rol rw:eax, r:0x1 ; flags r=- w=CF|OF"},
	{"d1d0", "rcl rw:eax, r:0x1 ; flags r=CF w=CF|OF"},
	{"ff c0", "inc rw:eax ; flags r=- w=PF|AF|ZF|SF|OF"},
	{"48 11 c8", "adc rw:rax, r:rcx ; flags r=CF w=all"},
	{"0f94c0", "sete rw:al ; flags r=ZF w=-"},
	{"0f4fc1", "cmovg rw:eax, r:ecx ; flags r=ZF|SF|OF w=-"},
	{"76 10", "jbe r:.+16 ; flags r=CF|ZF w=-"},
	{"0f 8c 00 01 00 00", "jl r:.+256 ; flags r=SF|OF w=-"},
	{"e2 f0", "loop r:.-16 ; flags r=- w=-"},
	{"9f", "lahf ; flags r=CF|PF|AF|ZF|SF w=-"},
	{"f5", "cmc ; flags r=CF w=CF"},
	{"480fafc1", "imul rw:rax, r:rcx ; flags r=- w=all"},
	{"486bc10a", "imul w:rax, r:rcx, r:0xa ; flags r=- w=all"},
	{"48f7e1", "mul r:rcx ; flags r=- w=all"},
	{"f30fb8c0", "popcnt w:eax, r:eax ; flags r=- w=all"},
	{"f3 48 0f bc c7", "tzcnt w:rax, r:rdi ; flags r=- w=all"},
	{"0f05", "syscall ; flags r=all w=-"},
	{"490fc7f0", "rdrand w:r8 ; flags r=- w=all"},
	{"0fc7f0", "rdrand w:eax ; flags r=- w=all"},
	{"cc", "int3 ; flags r=- w=-"},
	// Immediates: sign-extended where the instruction does, else not.
	{"83e0f0", "and rw:eax, r:-0x10 ; flags r=- w=all"},
	{"81e000ffffff", "and rw:eax, r:-0x100 ; flags r=- w=all"},
	{"b0ff", "mov rw:al, r:0xff ; flags r=- w=-"},
	{"66b8ffff", "mov rw:ax, r:-0x1 ; flags r=- w=-"},
	{"c20080", "ret r:0x8000 | r:[rsp]/8 ; flags r=- w=-"},
	{"660f70c0ff", "pshufd w:xmm0, r:xmm0, r:0xff ; flags r=- w=-"},
	// SSE.
	{"f20f1006", "movsd w:xmm0, r:[rsi]/8 ; flags r=- w=-"},
	{"f20f10c1", "movsd rw:xmm0, r:xmm1 ; flags r=- w=-"},
	{"f20f1107", "movsd w:[rdi]/8, r:xmm0 ; flags r=- w=-"},
	{"f30f1007", "movss w:xmm0, r:[rdi]/4 ; flags r=- w=-"},
	{"0f1200", "movlps rw:xmm0, r:[rax]/8 ; flags r=- w=-"},
	{"0f1700", "movhps w:[rax]/8, r:xmm0 ; flags r=- w=-"},
	{"f30f6f06", "movdqu w:xmm0, r:[rsi]/16 ; flags r=- w=-"},
	{"660f7f07", "movdqa w:[rdi]/16, r:xmm0 ; flags r=- w=-"},
	{"66 0f d6 07", "movq w:[rdi]/8, r:xmm0 ; flags r=- w=-"},
	{"660f6e07", "movd w:xmm0, r:[rdi]/4 ; flags r=- w=-"},
	{"660fef07", "pxor rw:xmm0, r:[rdi]/16 ; flags r=- w=-"},
	{"660f7407", "pcmpeqb rw:xmm0, r:[rdi]/16 ; flags r=- w=-"},
	{"660fd7c0", "pmovmskb w:eax, r:xmm0 ; flags r=- w=-"},
	{"660f3a1744240801", "extractps w:[rsp+0x8]/4, r:xmm0, r:0x1 ; flags r=- w=-"},
	{"660f2e07", "ucomisd r:xmm0, r:[rdi]/8 ; flags r=- w=all"},
	{"660f3a630f1a", "pcmpistri r:xmm1, r:[rdi]/16, r:0x1a ; flags r=- w=all"},
	{"0fae00", "fxsave w:[rax]/512 ; flags r=- w=-"},
	{"0fae08", "fxrstor r:[rax]/512 ; flags r=- w=-"},
	{"0fae1e", "stmxcsr w:[rsi]/4 ; flags r=- w=-"},
	// x87.
	{"d806", "fadd r:[rsi]/4 ; flags r=- w=-"},
	{"dd06", "fld r:[rsi]/8 ; flags r=- w=-"},
	{"db2e", "fld r:[rsi]/10 ; flags r=- w=-"},
	{"db3e", "fstp w:[rsi]/10 ; flags r=- w=-"},
	{"d93e", "fnstcw w:[rsi]/2 ; flags r=- w=-"},
	{"d926", "fldenv r:[rsi]/28 ; flags r=- w=-"},
	{"dec1", "faddp rw:st(1), r:st(0) ; flags r=- w=-"},
	{"dfe9", "fucomip r:st(0), r:st(1) ; flags r=- w=all"},
	// VEX and EVEX.
	{"c5fe6f06", "vmovdqu w:ymm0, r:[rsi]/32 ; flags r=- w=-"},
	{"c5fe7f07", "vmovdqu w:[rdi]/32, r:ymm0 ; flags r=- w=-"},
	{"c5fe6f0500000000", "vmovdqu w:ymm0, r:[rip]/32 ; flags r=- w=-"},
	{"c5fd74 0f", "vpcmpeqb w:ymm1, r:ymm0, r:[rdi]/32 ; flags r=- w=-"},
	{"c5fdd7c1", "vpmovmskb w:eax, r:ymm1 ; flags r=- w=-"},
	{"c5f9ef c0", "vpxor w:xmm0, r:xmm0, r:xmm0 ; flags r=- w=-"},
	{"c5fdfe 47 20", "vpaddd w:ymm0, r:ymm0, r:[rdi+0x20]/32 ; flags r=- w=-"},
	{"c4e27d7806", "vpbroadcastb w:ymm0, r:[rsi]/1 ; flags r=- w=-"},
	{"c4e27d5906", "vpbroadcastq w:ymm0, r:[rsi]/8 ; flags r=- w=-"},
	{"c4e27d0006", "vpshufb w:ymm0, r:ymm0, r:[rsi]/32 ; flags r=- w=-"},
	{"c4e37d3806 01", "vinserti128 w:ymm0, r:ymm0, r:[rsi]/16, r:0x1 ; flags r=- w=-"},
	{"c5f877", "vzeroupper ; flags r=- w=-"},
	{"c4e27d1707", "vptest r:ymm0, r:[rdi]/32 ; flags r=- w=all"},
	{"c4e2f9a9 07", "vfmadd213sd rw:xmm0, r:xmm0, r:[rdi]/8 ; flags r=- w=-"},
	{"c5fb1007", "vmovsd w:xmm0, r:[rdi]/8 ; flags r=- w=-"},
	{"c5fa7e 46 08", "vmovq w:xmm0, r:[rsi+0x8]/8 ; flags r=- w=-"},
	{"62f17e486f4c2401", "vmovdqu32 w:zmm1, r:[rsp+0x40]/64 ; flags r=- w=-"},
	{"62f1fe496f06", "vmovdqu64 rw:zmm0, r:k1, r:[rsi]/64 ; flags r=- w=-"},
	{"62f1fec96f06", "vmovdqu64 w:zmm0, r:k1, r:[rsi]/64 ; flags r=- w=-"},
	{"62f37d28 3e 4f 02 05", "vpcmpub w:k1, r:ymm0, r:[rdi+0x40]/32, r:0x5 ; flags r=- w=-"},
	{"62 f1 7d 58 fe 47 01", "vpaddd w:zmm0, r:zmm0, r:[rdi+0x4]/4 ; flags r=- w=-"},
	{"c4e2f8f3 cf", "blsr w:rax, r:rdi ; flags r=- w=all"},
	{"c4e2fbf6c1", "mulx w:rax, w:rax, r:rcx ; flags r=- w=-"},
	{"c4e3fbf0c7 0d", "rorx w:rax, r:rdi, r:0xd ; flags r=- w=-"},
	{"c5f893 c1", "kmovw w:eax, r:k1 ; flags r=- w=-"},
	{"c5f898 c1", "kortestw r:k0, r:k1 ; flags r=- w=all"},
}

func TestOperands(t *testing.T) {
	for _, c := range operandCases {
		b, err := hexBytes(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		in, err := Decode(b)
		if err != nil {
			t.Errorf("%s: %v", c.hex, err)
			continue
		}
		if int(in.Len) != len(b) {
			t.Errorf("%s: length %d", c.hex, in.Len)
		}
		o, err := Operands(b, &in)
		if err != nil {
			t.Errorf("%s: %v", c.hex, err)
			continue
		}
		if got := o.String(); got != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.hex, got, c.want)
		}
	}
}

// notCoveredCases are instructions Operands must refuse, not guess.
var notCoveredCases = []struct{ hex, name string }{
	{"0fa30e", "bt"}, // bt [rsi], ecx: the bit offset reaches past the operand
	{"c8100001", "enter"},
	{"8f442408", "pop"},              // pop [rsp+8]: rsp after the pop                 // enter with a nesting level
	{"c4e27d900488", "vpgatherdd"},   // vector index
	{"62f27d4863 07", "vpcompressb"}, // the size depends on the mask
	{"0fae 27", "xsave"},             // size depends on XCR0
	{"d7", "xlatb"},                  // an index of al
	{"0f20c0", "mov"},                // control register
	{"8f e8 78 c0 c1 05", "xop"},     // XOP
	{"66 0f f7 c1", "maskmovdqu"},
	{"c5f9f7c1", "vmaskmovdqu"},           // implicit [rdi]
	{"62f27d48c6 4c 8801", "not decoded"}, // gather prefetch
	{"f3480faee8", "0f ae"},               // incsspq, which x86asm calls lfence
	{"f20faef0", "0f ae"},                 // umwait, which x86asm calls mfence
	{"660fae30", "0f ae"},                 // clwb, which x86asm calls xsaveopt
	{"c4e3f16b0cc100", "vex 0f3a 6b"},     // FMA4 vfmaddsd
}

func TestOperandsNotCovered(t *testing.T) {
	for _, c := range notCoveredCases {
		b, err := hexBytes(c.hex)
		if err != nil {
			t.Fatal(err)
		}
		in, err := Decode(b)
		if err != nil {
			t.Errorf("%s: %v", c.hex, err)
			continue
		}
		o, err := Operands(b, &in)
		var de *Error
		if err == nil || !errors.Is(err, ErrNotCovered) || !errors.As(err, &de) || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%s: got %v, %v; want an *Error wrapping ErrNotCovered naming %s", c.hex, o.String(), err, c.name)
		}
	}
}

// TestOpTables checks that every name the tables list is an x86asm
// opcode (a misspelt one would leave its instruction uncovered).
func TestOpTables(t *testing.T) {
	if m := tables().missing; len(m) != 0 {
		t.Errorf("names x86asm has no opcode for: %v", m)
	}
}

// objdumpSizes are the operand sizes objdump's Intel syntax names.
var objdumpSizes = map[string]uint16{
	"BYTE": 1, "WORD": 2, "DWORD": 4, "QWORD": 8, "TBYTE": 10, "XMMWORD": 16, "OWORD": 16, "YMMWORD": 32, "ZMMWORD": 64, "FWORD": 6,
}

// stringOps are the string instructions without their size suffix.
var stringOps = map[string]bool{"movs": true, "stos": true, "lods": true, "scas": true, "cmps": true, "ins": true, "outs": true}

// objdumpPrefixes are words objdump prints before a mnemonic.
var objdumpPrefixes = map[string]bool{
	"lock": true, "rep": true, "repz": true, "repnz": true, "repe": true, "repne": true, "notrack": true, "bnd": true,
	"data16": true, "data32": true, "addr32": true, "cs": true, "ds": true, "es": true, "ss": true, "fs": true, "gs": true,
	"xacquire": true, "xrelease": true, "{vex}": true, "{evex}": true,
}

var (
	// objdump spells comparison predicates into the mnemonic.
	cmpAlias   = regexp.MustCompile(`^(v?cmp)(eq|lt|le|unord|neq|nlt|nle|ord|ge|gt|ngt|nge|false|true)(_oq|_uq|_os|_us|_s|_q)?(ps|pd|ss|sd|sh|ph)$`)
	vpcmpAlias = regexp.MustCompile(`^(vpcmp)(eq|lt|le|neq|nlt|nle|false|true)(b|w|d|q|ub|uw|ud|uq)$`)
	clmulAlias = regexp.MustCompile(`^(v?)pclmul[lh]q[lh]qdq$`)
)

// objdumpMnemonic returns objdump's mnemonic for an instruction, with
// its prefixes dropped and its spellings mapped onto Operands' (a
// string instruction gets its size suffix, comparison predicates go
// back into the immediate).
func objdumpMnemonic(asm string) (mn string, size uint16, hasMem bool) {
	f := strings.Fields(asm)
	for len(f) > 1 && (objdumpPrefixes[f[0]] || strings.HasPrefix(f[0], "rex")) {
		f = f[1:]
	}
	mn = f[0]
	ops := strings.Join(f[1:], " ")
	if i := strings.Index(ops, "#"); i >= 0 {
		ops = ops[:i]
	}
	// A moffs or absolute operand shows as ds:0x... with no brackets.
	hasMem = strings.Contains(ops, "[") || strings.Contains(ops, " PTR ") || strings.Contains(ops, "s:0x")
	for _, w := range strings.FieldsFunc(ops, func(r rune) bool { return r == ' ' || r == ',' }) {
		if s, ok := objdumpSizes[w]; ok {
			size = s
			break
		}
	}
	switch mn {
	case "movs", "stos", "lods", "scas", "cmps", "ins", "outs":
		mn += map[uint16]string{1: "b", 2: "w", 4: "d", 8: "q"}[size]
	case "movabs":
		mn = "mov"
	case "pushf":
		mn = "pushfq"
	case "popf":
		mn = "popfq"
	}
	return mn, size, hasMem
}

// unalias returns the mnemonic objdump's alias mn stands for: a
// comparison with its predicate spelt into the name (cmpltsd, vpcmpnequb;
// pcmpeqb is both a real mnemonic and, in its EVEX vpcmp form, an alias)
// or a carry-less multiply with its halves spelt (pclmullqhqdq).
func unalias(mn string) string {
	if m := cmpAlias.FindStringSubmatch(mn); m != nil {
		return m[1] + m[4]
	}
	if m := vpcmpAlias.FindStringSubmatch(mn); m != nil {
		return m[1] + m[3]
	}
	if m := clmulAlias.FindStringSubmatch(mn); m != nil {
		return m[1] + "pclmulqdq"
	}
	return mn
}

// sameMnemonic reports whether Operands' mnemonic ours names objdump's
// theirs: the same but for the repeat prefix, or a known spelling pair.
func sameMnemonic(ours, theirs string) bool {
	ours = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(ours, "rep "), "repe "), "repne ")
	if ours == theirs || ours == unalias(theirs) {
		return true
	}
	switch ours + " " + theirs {
	case "nop xchg", // 66 90: objdump's xchg ax,ax
		"iretq iret", "xlatb xlat", "int1 icebp":
		return true
	}
	return false
}

// objdumpLibraries are the real code the mnemonics are checked on.
var objdumpLibraries = []string{
	"/usr/bin/ls",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
}

// objdumpSweep is what sweepObjdump found in a file.
type objdumpSweep struct {
	// n instructions compared, covered by Operands; withMem of those
	// with memory operands, sized with a size objdump names.
	n, covered, withMem, sized int
	// uncovered counts Operands's refusals by what they name; mismatch
	// the disagreements with objdump by kind, examples one of each.
	uncovered, mismatch map[string]int
	examples            map[string]string
}

// sweepObjdump compares Operands with objdump on every instruction of
// path's .text that both decode to the same length: the same mnemonic, a
// memory operand exactly when objdump shows one, the size objdump names
// for it, and the same explicit operands (compareArgs).
func sweepObjdump(t testing.TB, path string) objdumpSweep {
	t.Helper()
	r := objdumpSweep{uncovered: map[string]int{}, mismatch: map[string]int{}, examples: map[string]string{}}
	code, addr := text(t, path)
	out, err := exec.Command("objdump", "-d", "-j", ".text", "-M", "intel", "--insn-width=15", "-w", path).Output()
	if err != nil {
		t.Fatalf("objdump %s: %v", path, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) < 3 || !strings.HasSuffix(f[0], ":") {
			continue
		}
		pc, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(f[0], ":")), 16, 64)
		if err != nil || pc < addr || pc >= addr+uint64(len(code)) {
			continue
		}
		asm := f[2]
		if strings.Contains(asm, "(bad)") || strings.HasPrefix(asm, ".byte") || isPrefixLine(asm) {
			continue
		}
		b := code[pc-addr:]
		in, err := Decode(b)
		if err != nil || int(in.Len) != len(strings.Fields(f[1])) {
			continue // TestDifferentialObjdump's business
		}
		r.n++
		o, err := Operands(b, &in)
		mn, size, hasMem := objdumpMnemonic(asm)
		if err != nil {
			if !errors.Is(err, ErrNotCovered) {
				t.Fatalf("%s %#x: %v", path, pc, err)
			}
			msg := err.Error()
			r.uncovered[msg[len("decode: operands not covered: "):strings.LastIndex(msg, ":")]+" ("+mn+")"]++
			continue
		}
		r.covered++
		ours := false
		for _, m := range o.Mems[:o.NMems] {
			// objdump shows string instructions' operands.
			ours = ours || !m.Implicit || stringOps[strings.TrimRight(mn, "bwdq")]
		}
		kind := ""
		switch m := o.Mems[0]; {
		case !sameMnemonic(o.Mnemonic, mn):
			kind = "mnemonic " + o.Mnemonic + " / " + mn
		case hasMem != ours:
			kind = "memory operand of " + o.Mnemonic
		case size != 0 && o.NMems > 0 && !m.AddrOnly && m.Size != size:
			kind = fmt.Sprintf("size of %s %d / %d", o.Mnemonic, m.Size, size)
		default:
			if d := compareArgs(&o, asm, pc+uint64(in.Len)); d != "" {
				kind = "operands of " + o.Mnemonic + ": " + d
			}
		}
		if kind != "" {
			r.mismatch[kind]++
			if r.examples[kind] == "" {
				r.examples[kind] = fmt.Sprintf("%s %#x: % x: %s; objdump %s", path, pc, b[:in.Len], o.String(), asm)
			}
			continue
		}
		if hasMem {
			r.withMem++
			if size != 0 && !o.Mems[0].AddrOnly {
				r.sized++
			}
		}
	}
	return r
}

// report logs the sweep's numbers and fails t on any mismatch.
func (r objdumpSweep) report(t testing.TB, what string) {
	t.Helper()
	t.Logf("%s: %d instructions, %d covered (%.3f%%), all agreeing with objdump on mnemonic, operands (registers, immediates, targets) and memory operands (presence, size); %d with memory operands, %d sized by objdump",
		what, r.n, r.covered, 100*float64(r.covered)/float64(max(r.n, 1)), r.withMem, r.sized)
	t.Logf("not covered: %s", topCounts(r.uncovered, 20))
	for k, v := range r.mismatch {
		t.Errorf("%d of %s, e.g. %s", v, k, r.examples[k])
	}
}

// TestOperandsObjdump sweeps the text of ls, libc and the jit's kernels
// with Operands and objdump (sweepObjdump) and reports how much Operands
// covers.
func TestOperandsObjdump(t *testing.T) {
	if _, err := exec.LookPath("objdump"); err != nil {
		t.Skip("no objdump")
	}
	libs := append([]string(nil), objdumpLibraries...)
	if so, err := kernels.Shared(); err == nil {
		libs = append(libs, so)
	} else {
		t.Errorf("kernels: %v", err)
	}
	for _, lib := range libs {
		t.Run(lib[strings.LastIndex(lib, "/")+1:], func(t *testing.T) {
			if testing.Short() && strings.Contains(lib, "libc") {
				t.Skip("-short: not libc")
			}
			sweepObjdump(t, lib).report(t, lib)
		})
	}
}

// TestOperandsObjdumpSystem is TestOperandsObjdump over every shared
// library in /usr/lib/x86_64-linux-gnu and a few large programs, with
// REACHVM_DECODE_SWEEP=1 (minutes: about 50 million instructions on a
// Debian desktop-sized install). libcrypto is left out: perlasm tables in
// its .text are not code; so are texts over 8 MiB (libLLVM's), for time.
func TestOperandsObjdumpSystem(t *testing.T) {
	if os.Getenv("REACHVM_DECODE_SWEEP") != "1" {
		t.Skip("set REACHVM_DECODE_SWEEP=1 to sweep every system library")
	}
	libs, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/*.so*")
	libs = append(libs, "/usr/bin/ls", "/usr/bin/python3", "/usr/bin/gdb", "/usr/bin/perl", "/usr/bin/qemu-x86_64")
	all := objdumpSweep{uncovered: map[string]int{}, mismatch: map[string]int{}, examples: map[string]string{}}
	files := 0
	for _, lib := range libs {
		if strings.Contains(lib, "libcrypto") {
			continue
		}
		if f, err := elf.Open(lib); err != nil {
			continue
		} else if s := f.Section(".text"); s == nil || s.Type == elf.SHT_NOBITS || s.Size > 8<<20 {
			f.Close()
			continue
		} else {
			f.Close()
		}
		files++
		r := sweepObjdump(t, lib)
		all.n, all.covered, all.withMem, all.sized = all.n+r.n, all.covered+r.covered, all.withMem+r.withMem, all.sized+r.sized
		for k, v := range r.uncovered {
			all.uncovered[k] += v
		}
		for k, v := range r.mismatch {
			all.mismatch[k] += v
			if all.examples[k] == "" {
				all.examples[k] = r.examples[k]
			}
		}
	}
	all.report(t, fmt.Sprintf("%d files", files))
}

// objdumpRegs are the registers' names as objdump's Intel syntax spells
// them, with the RegName of each.
var objdumpRegs = func() map[string]string {
	m := map[string]string{"st": "st(0)"}
	for n := uint8(0); n < 32; n++ {
		for _, c := range []RegClass{RegXMM, RegYMM, RegZMM} {
			m[RegName(c, n, 0)] = RegName(c, n, 0)
		}
		if n < 16 {
			for _, size := range []uint16{1, 2, 4, 8} {
				m[RegName(RegGPR, n, size)] = RegName(RegGPR, n, size)
			}
		}
		if n < 8 {
			for _, c := range []RegClass{RegMMX, RegMask, RegX87} {
				m[RegName(c, n, 0)] = RegName(c, n, 0)
			}
		}
		if n < 6 {
			m[RegName(RegSeg, n, 0)] = RegName(RegSeg, n, 0)
		}
		if n < 4 {
			m[RegName(RegGPRHigh, n, 0)] = RegName(RegGPRHigh, n, 0)
		}
	}
	return m
}()

var maskSuffix = regexp.MustCompile(`\{(k[0-7])\}`)

// compareArgs compares o's explicit operands with objdump's, asm, in
// order: registers by name (an EVEX {kN} after the operand it masks, as
// x86asm lists it), memory operands by position, immediates by value
// (objdump shows them truncated to the operation's size), branch targets
// by address (end is the instruction's end). It returns "" if they agree,
// else what differs. String instructions, whose operands Operands makes
// implicit, and objdump's aliases, which fold an immediate into the
// mnemonic, are not compared.
func compareArgs(o *Ops, asm string, end uint64) string {
	f := strings.Fields(asm)
	for len(f) > 1 && (objdumpPrefixes[f[0]] || strings.HasPrefix(f[0], "rex")) {
		f = f[1:]
	}
	mn := f[0]
	if stringOps[strings.TrimRight(mn, "bwdq")] || unalias(mn) != mn || o.Rep || mn != o.Mnemonic {
		// Also the spelling pairs of sameMnemonic: objdump's xchg
		// ax,ax is a nop with no operands.
		return ""
	}
	ops := strings.Join(f[1:], " ")
	if i := strings.Index(ops, "#"); i >= 0 {
		ops = ops[:i]
	}
	ops = strings.TrimSpace(ops)
	var theirs []string
	if ops != "" {
		for _, op := range strings.Split(ops, ",") {
			op = strings.TrimSpace(op)
			if strings.HasPrefix(op, "{") && !strings.HasPrefix(op, "{k") {
				continue // {sae}, {rn-sae}
			}
			masks := maskSuffix.FindAllStringSubmatch(op, -1)
			if i := strings.Index(op, "{"); i > 0 {
				op = op[:i]
			}
			theirs = append(theirs, op)
			for _, m := range masks {
				theirs = append(theirs, m[1])
			}
		}
	}
	if len(theirs) != int(o.NArgs) {
		return fmt.Sprintf("%d operands, objdump %d", o.NArgs, len(theirs))
	}
	width := uint16(8)
	for _, a := range o.Args[:o.NArgs] {
		if a.Kind == ArgReg || a.Kind == ArgMem {
			width = a.Size
			break
		}
	}
	for i, a := range o.Args[:o.NArgs] {
		t := theirs[i]
		switch a.Kind {
		case ArgReg:
			if objdumpRegs[t] != RegName(a.Class, a.Reg, a.Size) {
				return fmt.Sprintf("operand %d: %s, objdump %s", i, RegName(a.Class, a.Reg, a.Size), t)
			}
		case ArgMem:
			if !strings.Contains(t, "[") && !strings.Contains(t, "PTR") && !strings.Contains(t, "s:0x") {
				return fmt.Sprintf("operand %d: memory, objdump %s", i, t)
			}
		case ArgImm:
			v, err := strconv.ParseUint(strings.TrimPrefix(t, "0x"), 16, 64)
			mask := uint64(1)<<(8*min(width, 8)) - 1
			if width >= 8 {
				mask = ^uint64(0)
			}
			if err != nil || uint64(a.Imm)&mask != v&mask {
				return fmt.Sprintf("operand %d: immediate %#x, objdump %s", i, a.Imm, t)
			}
		case ArgRel:
			v, err := strconv.ParseUint(strings.Fields(t)[0], 16, 64)
			if err != nil || end+uint64(a.Imm) != v {
				return fmt.Sprintf("operand %d: target %#x, objdump %s", i, end+uint64(a.Imm), t)
			}
		}
	}
	return ""
}

// topCounts formats the k largest counts of m.
func topCounts(m map[string]int, k int) string {
	type kv struct {
		k string
		v int
	}
	var s []kv
	for k, v := range m {
		s = append(s, kv{k, v})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].v > s[j].v || s[i].v == s[j].v && s[i].k < s[j].k })
	var b strings.Builder
	for i, x := range s {
		if i == k {
			fmt.Fprintf(&b, "... (%d kinds)", len(s))
			break
		}
		fmt.Fprintf(&b, "%s %d; ", x.k, x.v)
	}
	return b.String()
}

// TestOperandsEA checks the effective addresses Operands computes from
// ModRM and SIB against x86asm's over libc (with EVEX's scaled disp8
// taken from x86asm and checked), counting apart the VEX and EVEX
// RIP-relative operands x86asm gives no base.
func TestOperandsEA(t *testing.T) {
	lib := "/usr/lib/x86_64-linux-gnu/libc.so.6"
	if testing.Short() {
		lib = "/usr/bin/ls"
	}
	code, _ := text(t, lib)
	var n, noRIP int
	var in Inst
	for off := 0; off < len(code); {
		if DecodeInto(code[off:], &in) != nil {
			off++
			continue
		}
		b := code[off : off+int(in.Len)]
		off += int(in.Len)
		if !in.HasModRM() || in.Mod() == 3 {
			continue
		}
		o, err := Operands(b, &in)
		if err != nil || o.NMems == 0 || o.Mems[0].Implicit {
			continue
		}
		xi, err := x86asm.Decode(b, 64)
		if err != nil {
			continue
		}
		var xm x86asm.Mem
		found := false
		for _, a := range xi.Args {
			if m, ok := a.(x86asm.Mem); ok {
				xm, found = m, true
			}
		}
		if !found {
			t.Fatalf("% x: x86asm has no memory operand: %v", b, xi)
		}
		m := o.Mems[0]
		if m.RIP && xm.Base == 0 && in.Encoding != Legacy {
			noRIP++
			continue
		}
		n++
		want := Mem{Base: NoReg, Index: NoReg, RIP: xm.Base == x86asm.RIP || xm.Base == x86asm.EIP, Disp: xm.Disp}
		if r, ok := gprNum(xm.Base); ok {
			want.Base = r
		}
		if r, ok := gprNum(xm.Index); ok {
			want.Index, want.Scale = r, xm.Scale
		}
		// x86asm zero-extends a legacy disp32 (the address wraps the
		// same); the low 32 bits must agree, and EVEX's scaled disp8
		// all of them.
		if m.Base != want.Base || m.Index != want.Index || m.Scale != want.Scale || m.RIP != want.RIP || int32(m.Disp) != int32(want.Disp) || m.Disp != int64(int32(m.Disp)) {
			t.Fatalf("% x: %v; x86asm %v (%v)", b, m, want, xi)
		}
	}
	t.Logf("%d memory operands agree with x86asm; %d VEX/EVEX RIP-relative ones x86asm gives no base", n, noRIP)
	if n == 0 {
		t.Fatal("no memory operand compared")
	}
}

// gprNum returns a 32- or 64-bit x86asm address register's number.
func gprNum(r x86asm.Reg) (uint8, bool) {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return uint8(r - x86asm.RAX), true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return uint8(r - x86asm.EAX), true
	}
	return 0, false
}

// FuzzDecodeOperands: Operands never panics; its errors are *Error; a
// ModRM memory operand's fields agree with the ModRM and SIB bytes; every
// accessed memory operand has a size.
func FuzzDecodeOperands(f *testing.F) {
	for _, c := range operandCases {
		b, _ := hexBytes(c.hex)
		f.Add(b)
	}
	for _, c := range notCoveredCases {
		b, _ := hexBytes(c.hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Decode(b)
		if err != nil {
			return
		}
		o, err := Operands(b, &in)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || !errors.Is(err, ErrNotCovered) && !errors.Is(err, ErrTruncated) {
				t.Fatalf("% x: %v is not an *Error wrapping ErrNotCovered", b, err)
			}
			return
		}
		if o.Mnemonic == "" || o.NArgs > MaxArgs || o.NMems > MaxMems {
			t.Fatalf("% x: %s", b, o.String())
		}
		// Each explicit memory operand is one argument's; implicit ones
		// none's.
		refs := make([]int, o.NMems)
		for _, a := range o.Args[:o.NArgs] {
			if a.Kind < ArgReg || a.Kind > ArgRel {
				t.Fatalf("% x: %s: argument kind %d", b, o.String(), a.Kind)
			}
			if a.Kind == ArgMem {
				if a.Mem >= o.NMems || o.Mems[a.Mem].Implicit || a.Size != o.Mems[a.Mem].Size || a.Access != o.Mems[a.Mem].Access {
					t.Fatalf("% x: %s: argument %+v", b, o.String(), a)
				}
				refs[a.Mem]++
			}
		}
		for i, m := range o.Mems[:o.NMems] {
			if m.Implicit == (refs[i] == 1) || refs[i] > 1 {
				t.Fatalf("% x: %s: memory operand %d referenced %d times", b, o.String(), i, refs[i])
			}
		}
		for i := 0; i < int(o.NMems); i++ {
			m := o.Mems[i]
			if m.AddrOnly != (m.Access == 0) || !m.AddrOnly && m.Size == 0 {
				t.Fatalf("% x: %s: memory operand %d: %v access %v", b, o.String(), i, m, m.Access)
			}
			if m.Implicit {
				continue
			}
			mod, rm := in.Mod(), in.ModRM&7
			if !in.HasModRM() {
				continue // moffs
			}
			if mod == 3 {
				t.Fatalf("% x: memory operand with mod 3", b)
			}
			if m.RIP != (mod == 0 && rm == 5) {
				t.Fatalf("% x: RIP %v, ModRM %#x", b, m.RIP, in.ModRM)
			}
			if rm == 4 {
				sib := b[in.ModRMOff+1]
				if idx := sib>>3&7 | in.REX>>1&1<<3; idx != 4 && (m.Index != idx || m.Scale != 1<<(sib>>6)) || idx == 4 && m.Index != NoReg {
					t.Fatalf("% x: index %d*%d, SIB %#x", b, m.Index, m.Scale, sib)
				}
				if base := sib&7 | in.REX&1<<3; sib&7 == 5 && mod == 0 && m.Base != NoReg || !(sib&7 == 5 && mod == 0) && m.Base != base {
					t.Fatalf("% x: base %d, SIB %#x", b, m.Base, sib)
				}
			} else if !m.RIP && (m.Base != rm|in.REX&1<<3 || m.Index != NoReg) {
				t.Fatalf("% x: base %d, ModRM %#x", b, m.Base, in.ModRM)
			}
			if in.Encoding != EVEX && m.Disp != int64(in.Disp(b)) {
				t.Fatalf("% x: disp %d, bytes %d", b, m.Disp, in.Disp(b))
			}
		}
	})
}

// BenchmarkOperands measures Operands on libc's instructions; its
// baseline is BenchmarkOperandsDecodeOnly, the same sweep's Decode.
func BenchmarkOperands(b *testing.B) {
	insts := sweepInsts(b)
	b.ResetTimer()
	var o Ops
	for i := 0; i < b.N; i++ {
		x := &insts[i%len(insts)]
		operands(x.code, &x.in, &o)
	}
}

func BenchmarkOperandsDecodeOnly(b *testing.B) {
	insts := sweepInsts(b)
	b.ResetTimer()
	var in Inst
	for i := 0; i < b.N; i++ {
		DecodeInto(insts[i%len(insts)].code, &in)
	}
}

type sweptInst struct {
	code []byte
	in   Inst
}

// sweepInsts returns the first 100000 instructions of libc's text.
func sweepInsts(b *testing.B) []sweptInst {
	code, _ := text(b, "/usr/lib/x86_64-linux-gnu/libc.so.6")
	var r []sweptInst
	for off := 0; off < len(code) && len(r) < 100000; {
		in, err := Decode(code[off:])
		if err != nil {
			off++
			continue
		}
		r = append(r, sweptInst{code[off : off+int(in.Len)], in})
		off += int(in.Len)
	}
	return r
}
