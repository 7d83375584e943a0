package cfi

import (
	"bufio"
	"debug/elf"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// source has frames of every shape GCC gives x86-64 code: a leaf, a
// function saving every callee-saved register and growing its frame, a
// variable-length array (a frame-pointer CFA), a 64-byte aligned local,
// and the PLT's CFA expression in the linked object.
const source = `
__attribute__((noinline)) long leaf(long a, long b) { return a * b + 3; }
__attribute__((noinline)) long saver(long n) {
	long a = n, b = n * 2, c = n * 3, d = n * 5, e = n * 7;
	for (long i = 0; i < n; i++) { a += leaf(b, c); b ^= leaf(c, d); c += leaf(d, e); d -= leaf(e, a); e += leaf(a, b); }
	return a + b + c + d + e;
}
__attribute__((noinline)) long vla(long n) {
	volatile char buf[n];
	for (long i = 0; i < n; i++) buf[i] = (char)i;
	return buf[n / 2] + leaf(n, n);
}
__attribute__((noinline)) long aligned(long n) {
	volatile long x __attribute__((aligned(64))) = n;
	return leaf(x, n) + saver(n);
}
extern long ext(long);
long entry(long n) { return vla(n) + aligned(n) + saver(n) + ext(n); }
`

// regNames are readelf's names of the columns.
var regNames = []string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "ra"}

// readelfRule prints a rule as readelf -wF does.
func readelfRule(r Rule) string {
	switch r.Kind {
	case Unspecified, Undefined:
		return "u"
	case SameValue:
		return "s"
	case Offset:
		return fmt.Sprintf("c%+d", r.N)
	case ValOffset:
		return fmt.Sprintf("v%+d", r.N)
	case Register:
		return regNames[r.Reg]
	case Expression:
		return "exp"
	case ValExpression:
		return "vexp"
	}
	return "?"
}

func readelfCFA(c CFA) string {
	if c.Expr != "" {
		return "exp"
	}
	return fmt.Sprintf("%s%+d", regNames[c.Reg], c.Off)
}

// TestEHFrameMatchesReadelf builds shared objects with GCC at -O0 and -O2,
// parses their .eh_frame and checks every row readelf -wF prints: the
// same CFA and the same rule for every column it shows.
func TestEHFrameMatchesReadelf(t *testing.T) {
	for _, tool := range []string{"gcc", "readelf"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "f.c")
	if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, opt := range []string{"-O0", "-O2"} {
		so := filepath.Join(dir, "f"+opt+".so")
		if out, err := exec.Command("gcc", opt, "-shared", "-nostdlib", "-fPIC", "-o", so, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		f, err := elf.Open(so)
		if err != nil {
			t.Fatal(err)
		}
		sec := f.Section(".eh_frame")
		data, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		tab, err := Parse(data, sec.Addr, true)
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("readelf", "-wF", so).Output()
		if err != nil {
			t.Fatal(err)
		}
		rows := 0
		var cols []string
		sc := bufio.NewScanner(strings.NewReader(string(out)))
		inCIE := false
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			switch {
			case len(fields) >= 4 && fields[3] == "CIE":
				inCIE = true
			case len(fields) >= 4 && fields[3] == "FDE":
				inCIE = false
			case len(fields) > 0 && fields[0] == "LOC":
				cols = fields[2:]
			case len(fields) >= 2 && !inCIE && len(fields[0]) == 16:
				loc, err := strconv.ParseUint(fields[0], 16, 64)
				if err != nil {
					continue
				}
				r, ok := tab.Row(loc)
				if !ok {
					t.Errorf("%s: no row at %#x", opt, loc)
					continue
				}
				rows++
				if got := readelfCFA(r.CFA); got != fields[1] {
					t.Errorf("%s: %#x: CFA %s, readelf %s", opt, loc, got, fields[1])
				}
				for i, name := range cols {
					reg := -1
					for k, n := range regNames {
						if n == name {
							reg = k
						}
					}
					if reg < 0 || 2+i >= len(fields) {
						continue
					}
					if got := readelfRule(r.Regs[reg]); got != fields[2+i] {
						t.Errorf("%s: %#x: %s %s, readelf %s", opt, loc, name, got, fields[2+i])
					}
				}
			}
		}
		if rows < 10 {
			t.Errorf("%s: only %d rows compared:\n%s", opt, rows, out)
		}
		t.Logf("%s: %d rows match readelf", opt, rows)
	}
}

// randomRow returns a row with every kind of rule.
func randomRow(rng *rand.Rand) Row {
	var r Row
	switch rng.Intn(4) {
	case 0:
		r.CFA = CFA{Expr: string([]byte{0x77, byte(rng.Intn(64)), 0x06})}
	default:
		r.CFA = CFA{Reg: uint64(rng.Intn(16)), Off: int64(rng.Intn(300)) - 20}
	}
	for i := range r.Regs {
		switch k := RuleKind(rng.Intn(10)); k {
		case Offset, ValOffset:
			r.Regs[i] = Rule{Kind: k, N: int64(rng.Intn(4000)) - 2000}
		case Register:
			r.Regs[i] = Rule{Kind: k, Reg: uint64(rng.Intn(16))}
		case Expression, ValExpression:
			r.Regs[i] = Rule{Kind: k, Expr: string([]byte{0x76, byte(rng.Intn(64))})}
		case Undefined, SameValue, Unspecified:
			r.Regs[i] = Rule{Kind: k}
		}
	}
	return r
}

// TestEncodeRoundTrip writes FDEs of random rows, some repeated and some
// far apart, and reads them back: every row at its address and just
// before the next.
func TestEncodeRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	e := NewEncoder()
	type fdeRows struct {
		rows []At
		hi   uint64
	}
	var all []fdeRows
	base := uint64(0x7f0000000000)
	for n := 0; n < 50; n++ {
		var rows []At
		addr := base
		for i := 0; i < 1+rng.Intn(20); i++ {
			r := randomRow(rng)
			if i > 0 && rng.Intn(4) == 0 {
				r = *rows[i-1].Row
			}
			rows = append(rows, At{Addr: addr, Row: &r})
			gaps := []uint64{1, 5, 63, 64, 200, 300, 70000}
			addr += gaps[rng.Intn(len(gaps))]
		}
		hi := addr
		if err := e.FDE(rows, hi); err != nil {
			t.Fatal(err)
		}
		all = append(all, fdeRows{rows, hi})
		base = hi + 16
	}
	if err := e.FDE(nil, 5); err == nil {
		t.Error("an FDE with no rows: no error")
	}
	if err := e.FDE([]At{{Addr: 10, Row: &Row{}}, {Addr: 5, Row: &Row{}}}, 20); err == nil {
		t.Error("rows out of order: no error")
	}
	tab, err := Parse(e.Bytes(), 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range all {
		for i, r := range f.rows {
			end := f.hi
			if i+1 < len(f.rows) {
				end = f.rows[i+1].Addr
			}
			for _, at := range []uint64{r.Addr, end - 1} {
				got, ok := tab.Row(at)
				if !ok || *got != *r.Row {
					t.Fatalf("row at %#x: %+v (%v), want %+v", at, got, ok, r.Row)
				}
			}
		}
		if _, ok := tab.Row(f.hi); ok && !tab.Covers(f.hi) {
			t.Fatalf("a row past the FDE at %#x", f.hi)
		}
	}
	if tab.Covers(0x1000) {
		t.Error("covers an address no FDE has")
	}
}

// TestParseRefuses feeds truncated and corrupt sections: an error or an
// empty table, never a panic.
func TestParseRefuses(t *testing.T) {
	e := NewEncoder()
	if err := e.FDE([]At{{Addr: 0x1000, Row: &Row{CFA: CFA{Reg: 7, Off: 8}}}}, 0x1100); err != nil {
		t.Fatal(err)
	}
	good := e.Bytes()
	for n := 0; n < len(good); n++ {
		tab, err := Parse(good[:n], 0, false)
		if err == nil {
			tab.Row(0x1000)
		}
	}
	rng := rand.New(rand.NewSource(2))
	for i := 0; i < 2000; i++ {
		b := append([]byte(nil), good...)
		b[rng.Intn(len(b))] = byte(rng.Intn(256))
		for _, eh := range []bool{false, true} {
			if tab, err := Parse(b, 0, eh); err == nil {
				tab.Row(0x1000)
				tab.Row(uint64(rng.Int63()))
			}
		}
	}
}

// FuzzParse reads arbitrary bytes as .eh_frame and .debug_frame and looks
// rows up in whatever it accepts: the parser is given sections of the
// application's files, which reachvm does not trust. It must refuse with
// an error or answer, never panic or loop.
func FuzzParse(f *testing.F) {
	e := NewEncoder()
	if err := e.FDE([]At{
		{Addr: 0x1000, Row: &Row{CFA: CFA{Reg: 7, Off: 8}}},
		{Addr: 0x1004, Row: &Row{CFA: CFA{Reg: 7, Off: 16}}},
	}, 0x1100); err != nil {
		f.Fatal(err)
	}
	f.Add(e.Bytes(), uint64(0x1000), false)
	f.Add(e.Bytes(), uint64(0x1000), true)
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0}, uint64(0), true)
	f.Fuzz(func(t *testing.T, sec []byte, pc uint64, eh bool) {
		tab, err := Parse(sec, 0x400000, eh)
		if err != nil {
			return
		}
		tab.Row(pc)
		tab.Row(0x400000)
		tab.Covers(pc)
	})
}
