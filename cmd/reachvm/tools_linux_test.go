//go:build linux && amd64

package main

import (
	"bufio"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/jit/kernels"
)

// buildReachvm builds the reachvm command into a temporary directory: the
// debugger and the profiler run it as a process of its own.
func buildReachvm(t *testing.T) string {
	t.Helper()
	self := filepath.Join(t.TempDir(), "reachvm")
	if b, err := exec.Command("go", "build", "-o", self, ".").CombinedOutput(); err != nil {
		t.Fatalf("building reachvm: %v\n%s", err, b)
	}
	return self
}

// program builds a jit/kernels program, skipping the test without gcc.
func program(t *testing.T, name, kind string, flags ...string) string {
	t.Helper()
	p, err := kernels.Program(name, kind, flags...)
	if errors.Is(err, kernels.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// frameRE reads a frame of gdb's backtrace: "#1  0x00000000100011ef in
// f2 (v=2) at nested.c:17" (the address is left out for a frame at a
// line's start).
var frameRE = regexp.MustCompile(`^#(\d+)\s+(?:0x[0-9a-f]+ in )?(\S+) \(`)

// gdbBacktrace runs `reachvm run [--gdb] prog` under gdb, which stops at
// the program's SIGSEGV (before any handler, Go's included), and returns
// the functions of the backtrace, innermost first, and gdb's output.
//
// gdb needs to be told to pass over SIGURG, the Go runtime's preemption
// signal, which would stop it at random points otherwise; Go's
// runtime-gdb.py, which gdb offers to load for the binary, is not needed
// and not loaded.
func gdbBacktrace(t *testing.T, gdb, self string, args ...string) ([]string, string) {
	t.Helper()
	cmd := exec.Command(gdb, "-nx", "-batch",
		"-iex", "set auto-load python-scripts off",
		"-ex", "handle SIGURG nostop noprint pass",
		"-ex", "run", "-ex", "bt",
		"--args", self, "run")
	cmd.Args = append(cmd.Args, args...)
	out, _ := cmd.CombinedOutput()
	s := string(out)
	if strings.Contains(s, "ptrace: Operation not permitted") || strings.Contains(s, "Couldn't get registers") {
		t.Skipf("gdb may not trace processes here:\n%s", s)
	}
	var fns []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if m := frameRE.FindStringSubmatch(sc.Text()); m != nil {
			fns = append(fns, m[2])
		}
	}
	return fns, s
}

// TestRunGDB runs the nested program (main -> f1 -> f2 -> f3, which
// writes through a null pointer) under `reachvm run --gdb` under gdb, and
// checks the backtrace at the SIGSEGV: f3 (a frame in the code cache,
// named by the fragment's object), then f2, f1 and main (application
// addresses, named and unwound by the program's own object). Built -O0
// -g with frame pointers as an ET_EXEC (with source lines) and as a
// static PIE, and -O2 without frame pointers, where only the call frame
// information moved onto the cache unwinds frame 0. Without --gdb, gdb
// cannot name frame 0: what the test checks is --gdb's doing. The
// reachvm binary exports __jit_debug_register_code and
// __jit_debug_descriptor by those names, where gdb looks for them.
func TestRunGDB(t *testing.T) {
	gdb, err := exec.LookPath("gdb")
	if err != nil {
		t.Skip("gdb is not installed (apt-get install gdb)")
	}
	self := buildReachvm(t)
	f, err := elf.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	syms, err := f.Symbols()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]elf.SymType{"__jit_debug_register_code": elf.STT_FUNC, "__jit_debug_descriptor": elf.STT_OBJECT}
	for _, s := range syms {
		if typ, ok := want[s.Name]; ok && elf.ST_TYPE(s.Info) == typ {
			delete(want, s.Name)
		}
	}
	if len(want) != 0 {
		t.Fatalf("reachvm lacks the symbols gdb looks for: %v", want)
	}
	for _, c := range []struct {
		name, kind string
		flags      []string
		lines      bool
	}{
		{"exec-O0", kernels.Exec, []string{"-O0", "-g", "-fno-omit-frame-pointer"}, true},
		{"pie-O0", kernels.PIE, []string{"-O0", "-g", "-fno-omit-frame-pointer"}, false},
		{"exec-O2", kernels.Exec, []string{"-O2", "-g", "-fomit-frame-pointer"}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			prog := program(t, "nested", c.kind, c.flags...)
			fns, out := gdbBacktrace(t, gdb, self, "--gdb", prog)
			if !strings.Contains(out, "SIGSEGV") {
				t.Fatalf("gdb saw no SIGSEGV:\n%s", out)
			}
			if len(fns) < 4 || fns[0] != "f3" || fns[1] != "f2" || fns[2] != "f1" || fns[3] != "main" {
				t.Fatalf("backtrace %v, want f3, f2, f1, main:\n%s", fns, out)
			}
			if c.lines && !regexp.MustCompile(`in f2 \(.*\) at \S*nested\.c:\d+`).MatchString(out) {
				t.Errorf("no source line for f2:\n%s", out)
			}
			t.Logf("backtrace: %v", fns)
		})
	}
	// The control: without --gdb, frame 0 is code gdb knows nothing of.
	prog := program(t, "nested", kernels.Exec, "-O0", "-g", "-fno-omit-frame-pointer")
	if fns, out := gdbBacktrace(t, gdb, self, prog); len(fns) > 0 && fns[0] == "f3" {
		t.Errorf("gdb names frame 0 f3 without --gdb:\n%s", out)
	}
}

// perfSkip reports whether perf's output says it may not profile here:
// perf_event_paranoid, missing permissions, or no such event on this
// machine.
func perfSkip(out string) bool {
	for _, s := range []string{"perf_event_paranoid", "Permission denied", "not supported", "No permission", "Operation not permitted"} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// TestRunJitDump profiles `reachvm run --jitdump` on the kernels
// program's k_fib (built with DWARF) with perf (a software clock: this
// machine's hardware counters may not be available), injects the jitdump
// with perf inject --jit, and checks that perf report puts samples in
// translated code named after the program's fib
// ("reachvm:kernels-exec!fib+0x..."), in perf inject's jitted objects,
// and that perf annotate disassembles the most sampled one beside fib's
// source (from the jitdump's line records).
func TestRunJitDump(t *testing.T) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Skip("perf is not installed (apt-get install linux-perf)")
	}
	self := buildReachvm(t)
	prog := program(t, "kernels", kernels.Exec, "-g")
	dir := t.TempDir()
	data := filepath.Join(dir, "perf.data")
	args := []string{"k_fib", "32", "8"}
	want, err := exec.Command(prog, args...).Output()
	if err != nil {
		t.Fatalf("%s natively: %v", prog, err)
	}
	rec := exec.Command(perf, append([]string{"record", "-k", "1", "-e", "cpu-clock", "-F", "4000", "-o", data, "--", self, "run", "--jitdump", prog}, args...)...)
	rec.Env = append(os.Environ(), "JITDUMPDIR="+dir)
	out, err := rec.CombinedOutput()
	if err != nil {
		if perfSkip(string(out)) {
			t.Skipf("perf may not profile here (see /proc/sys/kernel/perf_event_paranoid):\n%s", out)
		}
		t.Fatalf("perf record: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), string(want)) {
		t.Fatalf("the program's output is missing:\n%s", out)
	}
	dumps, _ := filepath.Glob(filepath.Join(dir, "jit-*.dump"))
	if len(dumps) != 1 {
		t.Fatalf("jitdumps in JITDUMPDIR: %v", dumps)
	}
	injected := filepath.Join(dir, "perf.jit.data")
	if out, err := exec.Command(perf, "inject", "--jit", "-i", data, "-o", injected).CombinedOutput(); err != nil {
		t.Fatalf("perf inject: %v\n%s", err, out)
	}
	// One line per sample: the address, the symbol, then the object
	// (perf script prints nothing of a sample without its address).
	out, err = exec.Command(perf, "script", "-i", injected, "-F", "ip,sym,dso").CombinedOutput()
	if err != nil {
		t.Fatalf("perf script: %v\n%s", err, out)
	}
	total, fib := 0, 0
	count := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" {
			continue
		}
		total++
		f := strings.Fields(l)
		if len(f) >= 3 && strings.HasPrefix(f[1], "reachvm:kernels-exec!fib+0x") && strings.Contains(f[2], "jitted-") {
			fib++
			count[f[1]]++
		}
	}
	if fib < 20 || fib*5 < total {
		t.Fatalf("%d of %d samples in translated fib, want at least 20 and a fifth:\n%s", fib, total, out)
	}
	top := ""
	for s, n := range count {
		if top == "" || n > count[top] {
			top = s
		}
	}
	t.Logf("%d of %d samples in translated fib, %d in %s", fib, total, count[top], top)
	out, err = exec.Command(perf, "annotate", "-i", injected, "--stdio", top).CombinedOutput()
	if err != nil {
		t.Fatalf("perf annotate: %v\n%s", err, out)
	}
	// A disassembled instruction with its share of the samples:
	// "   14.29 :    8d:     mov    0x60(%rsp),%r9".
	if !strings.Contains(string(out), top) || !regexp.MustCompile(`(?m)^\s+\d+\.\d+ :\s+[0-9a-f]+:\s+[a-z]`).Match(out) {
		t.Errorf("perf annotate %s shows no disassembly:\n%s", top, out)
	}
	if !strings.Contains(string(out), "fib(n - 1)") {
		t.Errorf("perf annotate %s shows no line of fib's source:\n%s", top, out)
	}
}
