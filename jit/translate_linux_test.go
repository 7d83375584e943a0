//go:build linux && amd64

package jit

import (
	"encoding/hex"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// appCode places machine code (hex, possibly with spaces) in an
// executable vmcode unit, standing in for an application function, and
// returns its address.
func appCode(t testing.TB, code *vmcode.Code, hexCode string) uintptr {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(hexCode), ""))
	if err != nil {
		t.Fatal(err)
	}
	u, err := allocUnit(code, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.free() })
	u.write(u.exec, b)
	return u.exec
}

// Application functions, assembled by gcc -O2 and copied here by hand.
const (
	// long add(long a, long b) { return a + b; }
	hexAdd = "48 8d 04 37 c3" // lea rax, [rdi+rsi]; ret
	// long sum(long n) { long s = 0; for (long i = 1; i <= n; i++) s += i; return s; }
	hexSum = `31 c0                   xor eax, eax
		48 85 ff                test rdi, rdi
		7e 11                   jle done
		ba 01 00 00 00          mov edx, 1
	loop:
		48 01 d0                add rax, rdx
		48 83 c2 01             add rdx, 1
		48 39 d7                cmp rdi, rdx
		7d f4                   jge loop
	done:
		c3                      ret`
	// long fib(long n) { return n < 2 ? n : fib(n-1) + fib(n-2); } at -O1
	hexFib = `55                      push rbp
		53                      push rbx
		48 83 ec 08             sub rsp, 8
		48 89 fb                mov rbx, rdi
		48 83 ff 01             cmp rdi, 1
		7e 19                   jle out
		48 8d 7f ff             lea rdi, [rdi-1]
		e8 e8 ff ff ff          call fib
		48 89 c5                mov rbp, rax
		48 8d 7b fe             lea rdi, [rbx-2]
		e8 dc ff ff ff          call fib
		48 8d 1c 28             lea rbx, [rax+rbp]
	out:
		48 89 d8                mov rax, rbx
		48 83 c4 08             add rsp, 8
		5b                      pop rbx
		5d                      pop rbp
		c3                      ret`
)

func stripComments(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasSuffix(line, ":") {
			continue
		}
		// Hex bytes are the leading two-character fields.
		var hexes []string
		for _, f := range strings.Fields(line) {
			if len(f) != 2 {
				break
			}
			if _, err := hex.DecodeString(f); err != nil {
				break
			}
			hexes = append(hexes, f)
		}
		out = append(out, hexes...)
	}
	return strings.Join(out, "")
}

func TestRunHandAssembled(t *testing.T) {
	m, code := newTestMachine(t, vmm.Config{}, nil)
	add := appCode(t, code, hexAdd)
	sum := appCode(t, code, stripComments(hexSum))
	fib := appCode(t, code, stripComments(hexFib))
	for _, tc := range []struct {
		name string
		fn   uintptr
		args []uintptr
	}{
		{"add", add, []uintptr{40, 2}},
		{"add-neg", add, []uintptr{^uintptr(4), 3}},
		{"sum", sum, []uintptr{1000}},
		{"sum0", sum, []uintptr{0}},
		{"fib", fib, []uintptr{20}},
	} {
		want := Call(tc.fn, tc.args...)
		got, err := m.Run(tc.fn, tc.args...)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got != want {
			t.Errorf("%s%v = %d translated, %d native", tc.name, tc.args, got, want)
		}
	}
	t.Logf("%+v", m.Stats())
}

// dumpFragment disassembles a fragment (body and stubs).
func dumpFragment(t testing.TB, f *fragment) string {
	return strings.Join(disasm(t, f.unit.bytes(f.entry, uintptr(f.codeLen)), f.entry), "\n")
}

func TestTranslateOnly(t *testing.T) {
	m, code := newTestMachine(t, vmm.Config{}, nil)
	for _, h := range []string{hexAdd, stripComments(hexSum), stripComments(hexFib)} {
		fn := appCode(t, code, h)
		f, err := m.fragmentFor(fn)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("fragment for %#x:\n%s", fn, dumpFragment(t, f))
	}
}
