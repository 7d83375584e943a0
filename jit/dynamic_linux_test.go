//go:build linux && amd64

package jit

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// buildDynamic builds jit/kernels' C library program name dynamically
// linked as kind, or, with static, statically linked (kern.Libc).
func buildDynamic(t testing.TB, name, kind string, static ...bool) string {
	t.Helper()
	build := kern.Dynamic
	if len(static) > 0 && static[0] {
		build = func(name, kind string, _ ...string) (string, error) { return kern.Libc(name, kind) }
	}
	p, err := build(name, kind)
	if errors.Is(err, kern.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// hasInterp skips the test where the system has no ld.so for dynamic
// programs.
func hasInterp(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/lib64/ld-linux-x86-64.so.2"); err != nil {
		t.Skipf("no dynamic loader: %v", err)
	}
}

// TestDynamicPrograms runs the libc program, dynamically linked (ld.so
// loads the C library and libm, which it dlopens), as an ET_EXEC and as
// a PIE, natively and under reachvm: same output (stdio, errno, realloc
// of big blocks through mremap, qsort, floating point, the vDSO's clock,
// a signal handler that longjmps, atexit), same status.
func TestDynamicPrograms(t *testing.T) {
	hasInterp(t)
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			prog := buildDynamic(t, "libc", kind.name)
			want, wantCode := runNative(t, prog, "5")
			got, stderr, code := runProgram(t, prog, false, "5")
			if code != wantCode || got != want {
				t.Errorf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
			}
		})
	}
}

// TestAuxv runs the auxv program, which prints its auxiliary vector in
// the order it came and what libc made of it, natively and under
// reachvm, static executables too: the same lines, field by field, for
// everything that does not depend on where the program was loaded (and
// for that, its relation to the load addresses: AT_PHDR and AT_ENTRY
// from the executable's base, AT_BASE being ld.so's).
func TestAuxv(t *testing.T) {
	hasInterp(t)
	for _, c := range []struct {
		name, kind string
		static     bool
	}{{"exec", kern.Exec, false}, {"pie", kern.PIE, false}, {"static", kern.Exec, true}, {"static-pie", kern.PIE, true}} {
		t.Run(c.name, func(t *testing.T) {
			prog := buildDynamic(t, "auxv", c.kind, c.static)
			want, wantCode := runNative(t, prog)
			got, stderr, code := runProgram(t, prog, false)
			if code != wantCode {
				t.Fatalf("status %d, want %d; stderr: %s", code, wantCode, stderr)
			}
			if d := lineDiff(want, got); d != "" {
				t.Errorf("lines that differ:\n%s", d)
				t.Logf("natively:\n%s\nunder reachvm:\n%s", want, got)
			}
		})
	}
}

// TestDynamicChild is not a test: run by TestLibrariesNearVMCode in a
// child process (REACHVM_DYN_PROGRAM set), it runs that program on a
// machine with vmcode low, as reachvm run places it, and without the
// vDSO (which lies where the kernel put it), and prints the machine's
// counters on standard error after the run; it exits with the program's
// status, 111 if the run failed.
func TestDynamicChild(t *testing.T) {
	path := os.Getenv("REACHVM_DYN_PROGRAM")
	if path == "" {
		t.Skip("a helper for TestLibrariesNearVMCode")
	}
	v, err := vmm.New(vmm.Config{VMCodeBase: DefaultVMCodeBase, AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20})
	if err != nil {
		childFail(err)
	}
	m, err := NewMachine(vmcode.New(v), &Options{NoVDSO: true})
	if err != nil {
		childFail(err)
	}
	p, err := m.LoadProgram(path)
	if err != nil {
		childFail(err)
	}
	code, err := p.Run([]string{path}, []string{"RV=yes"})
	if err != nil {
		childFail(err)
	}
	st := m.Stats()
	fmt.Fprintf(os.Stderr, "mangled %d fragments %d\n", st.Mangled, st.Fragments)
	cb, _ := v.VMCode()
	fmt.Fprintf(os.Stderr, "vmcode %#x\n", cb)
	v.Space().WriteMaps(os.Stderr, 0, 1<<47)
	os.Exit(code)
}

// TestLibrariesNearVMCode runs the libc program (which dlopens libm) as a
// PIE with vmcode low: ld.so, the program and every library it maps are
// placed within rel32 reach of the cache, so no RIP-relative operand of
// theirs needs rewriting.
func TestLibrariesNearVMCode(t *testing.T) {
	hasInterp(t)
	prog := buildDynamic(t, "libc", kern.PIE)
	want, wantCode := runNative(t, prog)
	got, stderr, code := runChildTest(t, "TestDynamicChild", []string{"REACHVM_DYN_PROGRAM=" + prog}, programTimeout)
	if code != wantCode || got != want {
		t.Fatalf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
	}
	var mangled, frags int
	if _, err := fmt.Sscanf(stderr, "mangled %d fragments %d", &mangled, &frags); err != nil {
		t.Fatalf("stderr %q: %v", stderr, err)
	}
	if mangled != 0 || frags < 100 {
		t.Errorf("%d RIP-relative operands rewritten in %d fragments: want none (in many)\n%s", mangled, frags, stderr)
	}
}

// TestBigLibraryNearVMCode runs a PIE linked against a library of more
// than 2 MiB (a big table beside its code, as libpython is): the kernel
// pads such a file mapping to align it, so a mere hint near vmcode put it
// anywhere; reachvm maps it exactly there instead, and none of its
// RIP-relative operands needs rewriting.
func TestBigLibraryNearVMCode(t *testing.T) {
	hasInterp(t)
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip(err)
	}
	dir := t.TempDir()
	lib := `static const unsigned char table[3 << 20] = {1, 2, 3};
int big(int i) { return table[i % sizeof table] + i; }
`
	prog := `#include <stdio.h>
int big(int);
int main(void) { long s = 0; for (int i = 0; i < 1000; i++) s += big(i * 7919); printf("%ld\n", s); return 0; }
`
	for name, src := range map[string]string{"big.c": lib, "main.c": prog} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"-O2", "-shared", "-fPIC", "-o", "libbig.so", "big.c"},
		{"-O2", "-fPIE", "-pie", "-o", "main", "main.c", "-L.", "-lbig", "-Wl,-rpath," + dir},
	} {
		cmd := exec.Command("gcc", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gcc %v: %v\n%s", args, err, out)
		}
	}
	path := filepath.Join(dir, "main")
	want, wantCode := runNative(t, path)
	got, stderr, code := runChildTest(t, "TestDynamicChild", []string{"REACHVM_DYN_PROGRAM=" + path}, programTimeout)
	if code != wantCode || got != want {
		t.Fatalf("status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
	}
	var mangled, frags int
	if _, err := fmt.Sscanf(stderr, "mangled %d fragments %d", &mangled, &frags); err != nil {
		t.Fatalf("stderr %q: %v", stderr, err)
	}
	if mangled != 0 {
		t.Errorf("%d RIP-relative operands rewritten in %d fragments: want none\n%s", mangled, frags, stderr)
	}
}

// TestReturnAddressReplaced runs swapret, whose function returns to an
// address it wrote over its return address: the return the translator
// inlined for the followed call misses, and the return site it falls
// back on (with its own out-of-line paths) goes where the stack says.
func TestReturnAddressReplaced(t *testing.T) {
	hasInterp(t)
	prog := buildDynamic(t, "swapret", kern.PIE)
	want, wantCode := runNative(t, prog)
	got, stderr, code := runProgram(t, prog, false)
	if code != wantCode || got != want {
		t.Errorf("status %d, output %q (stderr %q); natively %d, %q", code, got, stderr, wantCode, want)
	}
}
