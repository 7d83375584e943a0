package decode

import (
	"bufio"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// libraries are real code to check the decoder on: libz (the issue's),
// libc and libcrypto (AVX2 and AVX-512 string and crypto routines, CET
// ENDBR64s, RDPKRU in pkey_get).
var libraries = []string{
	"/usr/lib/x86_64-linux-gnu/libz.so.1",
	"/usr/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
}

// dataInText marks libraries with data between their functions (perlasm
// tables): the x86asm sweep covers only their function symbols.
var dataInText = map[string]bool{"/usr/lib/x86_64-linux-gnu/libcrypto.so.3": true}

// text returns a library's .text bytes and address.
func text(t testing.TB, path string) ([]byte, uint64) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("%s: %v", path, err)
	}
	defer f.Close()
	s := f.Section(".text")
	if s == nil {
		t.Skipf("%s: no .text", path)
	}
	b, err := s.Data()
	if err != nil {
		t.Fatal(err)
	}
	return b, s.Addr
}

// funcs returns the [start, end) offsets into .text of the library's
// function symbols, sorted and without overlaps: sweeping only these keeps
// the tables perlasm puts in libcrypto's .text out of the comparison.
func funcs(t testing.TB, path string, addr uint64, size int) [][2]int {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	more, _ := f.Symbols()
	syms = append(syms, more...)
	var r [][2]int
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || s.Value < addr || s.Value+s.Size > addr+uint64(size) {
			continue
		}
		r = append(r, [2]int{int(s.Value - addr), int(s.Value - addr + s.Size)})
	}
	sort.Slice(r, func(i, j int) bool { return r[i][0] < r[j][0] })
	out := r[:0]
	for _, x := range r {
		if len(out) > 0 && x[0] < out[len(out)-1][1] {
			out[len(out)-1][1] = max(out[len(out)-1][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// knownGap reports whether x86asm's failure to decode b is one of its
// known gaps (ANCHORS.md): ENDBR64/ENDBR32, RDPKRU, WRPKRU, and the other
// CET and newer system instructions it predates. (It also reads a ModRM
// byte after VZEROUPPER and VZEROALL; the sweep counts that apart.)
func knownGap(in Inst, b []byte) string {
	switch {
	case in.REXOff > 0 && b[in.REXOff-1]&0xf0 == 0x40:
		return "redundant rex"
	case in.Encoding == XOP:
		return "xop"
	case in.Map == Map0F && in.Op == 0x1e && in.Prefixes&PF3 != 0 && (in.ModRM == 0xfa || in.ModRM == 0xfb):
		return "endbr"
	case in.Map == Map0F && in.Op == 0x01 && (in.ModRM == 0xee || in.ModRM == 0xef):
		return "rdpkru/wrpkru"
	case in.Map == Map0F && in.Op == 0x01:
		return fmt.Sprintf("0f 01 %02x", in.ModRM)
	case in.Map == Map0F && in.Op == 0x1e && in.Prefixes&PF3 != 0:
		return "rdssp"
	case in.Map == Map0F && in.Op == 0xae && in.Prefixes&PF3 != 0:
		return "f3 0f ae (cet, fsgsbase)"
	case in.Map == Map0F && in.Op == 0xc7 && in.Prefixes&PF3 != 0:
		return "f3 0f c7 (rdpid)"
	case in.Encoding == EVEX:
		return "evex"
	case in.Encoding == VEX:
		return "vex"
	case in.Map == Map0F38 || in.Map == Map0F3A:
		return "0f38/0f3a"
	}
	return ""
}

// TestDifferentialX86asm sweeps each library's .text with both decoders
// and requires the same length, the same branch displacements and the same
// RIP-relative displacements wherever x86asm decodes; where x86asm fails,
// the instruction must be one of its known gaps. VEX and EVEX RIP-relative
// operands, which x86asm reports with no base, are counted separately.
func TestDifferentialX86asm(t *testing.T) {
	for _, lib := range libraries {
		t.Run(lib[strings.LastIndex(lib, "/")+1:], func(t *testing.T) {
			if testing.Short() && !strings.Contains(lib, "libz") {
				t.Skip("-short: libz only")
			}
			code, addr := text(t, lib)
			var n, gaps, vexRIP, branches, rips int
			gapKinds := map[string]int{}
			var in Inst
			ranges := [][2]int{{0, len(code)}}
			if dataInText[lib] {
				ranges = funcs(t, lib, addr, len(code))
			}
			for _, fn := range ranges {
				for off := fn[0]; off < fn[1]; {
					b := code[off:fn[1]]
					err := DecodeInto(b, &in)
					x, xerr := x86asm.Decode(b, 64)
					if xerr == nil && x.Op == 0 {
						// x86asm "decodes" ENDBR64 as a REP prefix on
						// opcode 0: a gap, not an instruction.
						xerr = fmt.Errorf("x86asm: unknown opcode (%v)", x)
					}
					switch {
					case err != nil && xerr != nil:
						off++
						continue
					case err != nil:
						t.Fatalf("%#x: % x: ours %v, x86asm %v (len %d)", addr+uint64(off), b[:min(len(b), 15)], err, x, x.Len)
					case xerr != nil:
						g := knownGap(in, b)
						if g == "" {
							t.Fatalf("%#x: % x: x86asm %v, ours len %d", addr+uint64(off), b[:in.Len], xerr, in.Len)
						}
						gaps++
						gapKinds[g]++
						off += int(in.Len)
						continue
					}
					if int(in.Len) != x.Len && (x.Op == x86asm.VZEROUPPER || x.Op == x86asm.VZEROALL) {
						// x86asm reads a ModRM byte after VZEROUPPER
						// and VZEROALL, which have none: its gap.
						gaps++
						gapKinds["vzeroupper/vzeroall length"]++
						off += int(in.Len)
						continue
					}
					if int(in.Len) != x.Len {
						t.Fatalf("%#x: % x: len %d, x86asm %d (%v)", addr+uint64(off), b[:max(int(in.Len), x.Len)], in.Len, x.Len, x)
					}
					n++
					xRel, xRIP, xNoBase := false, false, false
					var rel int64
					var disp int64
					for _, a := range x.Args {
						switch a := a.(type) {
						case x86asm.Rel:
							xRel, rel = true, int64(a)
						case x86asm.Mem:
							if a.Base == x86asm.RIP {
								xRIP, disp = true, a.Disp
							}
							if a.Base == 0 && a.Index == 0 {
								xNoBase = true
							}
						}
					}
					switch in.Kind {
					case JmpRel, JccRel, CallRel, LoopRel:
						branches++
						if !xRel || int64(in.Rel) != rel {
							t.Fatalf("%#x: % x: rel %d, x86asm %v", addr+uint64(off), b[:in.Len], in.Rel, x)
						}
					default:
						if xRel && in.Kind != System {
							t.Fatalf("%#x: % x: x86asm has a rel operand (%v), ours kind %v", addr+uint64(off), b[:in.Len], x, in.Kind)
						}
					}
					if in.RIPRelative() {
						rips++
						switch {
						case xRIP:
							if int64(int32(disp)) != int64(in.Disp(b)) {
								t.Fatalf("%#x: % x: disp %d, x86asm %v", addr+uint64(off), b[:in.Len], in.Disp(b), x)
							}
						case in.Encoding != Legacy && xNoBase:
							vexRIP++ // x86asm's VEX/EVEX gap
						default:
							t.Fatalf("%#x: % x: ours RIP-relative, x86asm %v", addr+uint64(off), b[:in.Len], x)
						}
					} else if xRIP {
						t.Fatalf("%#x: % x: x86asm RIP-relative (%v), ours not", addr+uint64(off), b[:in.Len], x)
					}
					checkKind(t, addr+uint64(off), b[:in.Len], in, x)
					off += int(in.Len)
				}
			}
			t.Logf("%d instructions agree (%d branches, %d RIP-relative of which %d VEX/EVEX that x86asm reports with no base); %d in x86asm's gaps %v", n, branches, rips, vexRIP, gaps, gapKinds)
		})
	}
}

// checkKind compares the control-flow class with x86asm's mnemonic.
func checkKind(t *testing.T, pc uint64, b []byte, in Inst, x x86asm.Inst) {
	t.Helper()
	want := Plain
	switch x.Op {
	case x86asm.JMP:
		want = JmpInd
		if _, ok := x.Args[0].(x86asm.Rel); ok {
			want = JmpRel
		}
	case x86asm.CALL:
		want = CallInd
		if _, ok := x.Args[0].(x86asm.Rel); ok {
			want = CallRel
		}
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL,
		x86asm.JLE, x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS:
		want = JccRel
	case x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.JRCXZ, x86asm.JECXZ:
		want = LoopRel
	case x86asm.RET:
		want = Ret
	case x86asm.SYSCALL:
		want = Syscall
	case x86asm.INT, x86asm.UD0, x86asm.UD1, x86asm.UD2, x86asm.HLT, x86asm.ICEBP:
		want = Trap
	case x86asm.LJMP, x86asm.LCALL, x86asm.LRET, x86asm.IRET, x86asm.IRETD, x86asm.IRETQ,
		x86asm.SYSENTER, x86asm.SYSEXIT, x86asm.SYSRET, x86asm.XBEGIN:
		want = System
	}
	if in.Kind != want {
		t.Fatalf("%#x: % x: kind %v, x86asm %v (want %v)", pc, b, in.Kind, x, want)
	}
}

// TestDifferentialObjdump checks lengths and RIP-relative operands against
// GNU objdump, which, unlike x86asm, decodes every VEX and EVEX
// RIP-relative operand and every CET instruction: the independent oracle
// for x86asm's gaps.
func TestDifferentialObjdump(t *testing.T) {
	if _, err := exec.LookPath("objdump"); err != nil {
		t.Skip("no objdump")
	}
	for _, lib := range libraries {
		t.Run(lib[strings.LastIndex(lib, "/")+1:], func(t *testing.T) {
			if testing.Short() && !strings.Contains(lib, "libz") {
				t.Skip("-short: libz only")
			}
			code, addr := text(t, lib)
			out, err := exec.Command("objdump", "-d", "-j", ".text", "-M", "intel", "--insn-width=15", "-w", lib).Output()
			if err != nil {
				t.Skipf("objdump: %v", err)
			}
			var n, rips, vexRIPs, refused int
			sc := bufio.NewScanner(bytes.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				line := sc.Text()
				// "  1234:\t48 8b 05 ..\tmov rax,QWORD PTR [rip+0x..]"
				f := strings.SplitN(line, "\t", 3)
				if len(f) < 3 || !strings.HasSuffix(f[0], ":") {
					continue
				}
				pc, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(f[0], ":")), 16, 64)
				if err != nil || pc < addr || pc >= addr+uint64(len(code)) {
					continue
				}
				asm := f[2]
				if strings.Contains(asm, "(bad)") || strings.HasPrefix(asm, ".byte") {
					continue
				}
				olen := len(strings.Fields(f[1]))
				b := code[pc-addr:]
				in, err := Decode(b)
				if err != nil {
					if isPrefixLine(asm) || errors.Is(err, ErrUnsupported) && dataInText[lib] {
						// Data in .text (perlasm tables) that
						// objdump takes apart byte by byte, or
						// decodes as a 16-bit branch, which we
						// refuse on purpose.
						refused++
						continue
					}
					t.Fatalf("%#x: % x: %v (objdump: %s)", pc, b[:olen], err, asm)
				}
				// objdump prints a prefix it considers separate (rex,
				// rep, data16, cs on their own) as its own line; a
				// shorter length then is fine if what remains agrees.
				if int(in.Len) != olen {
					if isPrefixLine(asm) && olen < int(in.Len) {
						continue
					}
					if b[0] == 0x9b && in.Len == 1 {
						// objdump shows fwait and the x87
						// instruction after it as one (fstsw
						// for fwait; fnstsw): two to the CPU.
						continue
					}
					t.Fatalf("%#x: % x: len %d, objdump %d (%s)", pc, b[:max(int(in.Len), olen)], in.Len, olen, asm)
				}
				n++
				orip := strings.Contains(asm, "[rip") || strings.Contains(asm, "[eip")
				if orip != in.RIPRelative() {
					t.Fatalf("%#x: % x: RIP-relative %v, objdump %s", pc, b[:in.Len], in.RIPRelative(), asm)
				}
				if orip {
					rips++
					if in.Encoding != Legacy {
						vexRIPs++
					}
				}
			}
			t.Logf("%d instructions agree with objdump, %d RIP-relative (%d VEX/EVEX); %d lines of data refused", n, rips, vexRIPs, refused)
		})
	}
}

func isPrefixLine(asm string) bool {
	switch strings.Fields(asm)[0] {
	case "rex", "rex.W", "rex.R", "rex.X", "rex.B", "rex.WB", "rep", "repz", "repnz", "data16", "cs", "ds", "ss", "es", "fs", "gs", "lock", "bnd", "notrack", "addr32":
		return true
	}
	return strings.HasPrefix(asm, "rex")
}

// FuzzDecode checks that Decode never panics nor reads past its input, and
// that it agrees on length with x86asm wherever both decode and x86asm is
// not in a known gap.
func FuzzDecode(f *testing.F) {
	for _, c := range cases {
		b, _ := hexBytes(c.hex)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		in, err := Decode(b)
		if err != nil {
			return
		}
		if int(in.Len) > len(b) || in.Len > MaxLen || in.Len == 0 {
			t.Fatalf("% x: len %d", b, in.Len)
		}
		x, xerr := x86asm.Decode(b, 64)
		if xerr != nil || x.Op == 0 || in.Encoding != Legacy || knownGap(in, b) != "" {
			return
		}
		if x.Len != int(in.Len) && !fuzzTolerated(in, x) {
			t.Fatalf("% x: len %d, x86asm %d (%v)", b[:max(int(in.Len), x.Len)], in.Len, x.Len, x)
		}
	})
}

// fuzzTolerated lists encodings where x86asm's length is known to differ
// from the processor's (and objdump's) on byte soup: MOV to or from a
// control or debug register ignores ModRM.mod (SDM: "the mod field is
// ignored"), x86asm reads a displacement when mod is not 11.
func fuzzTolerated(in Inst, x x86asm.Inst) bool {
	return in.Map == Map0F && in.Op >= 0x20 && in.Op <= 0x23
}

func hexBytes(s string) ([]byte, error) {
	s = stripSpaces(s)
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

var _ = os.Getenv
