//go:build linux && amd64

package jit

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/reachvm/reachvm/internal/rawsig"
	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// programKinds are the executable types the tests build: ET_EXEC linked
// at kernels.ExecBase (Go links the test binary at 0x400000, where
// ET_EXEC programs go by default), and static PIEs.
var programKinds = []struct{ name string }{{kern.Exec}, {kern.PIE}}

// buildProgram builds jit/kernels' program name as kind.
func buildProgram(t testing.TB, name, kind string, extra ...string) string {
	t.Helper()
	p, err := kern.Program(name, kind, extra...)
	if errors.Is(err, kern.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestProgramChild is not a test: run by runProgram in a child process
// (REACHVM_PROGRAM set), it runs a program under a fresh machine and
// exits with its status, so that the parent sees its output and status
// as a process's. Exit status 111 means the run failed (the error is on
// stderr). REACHVM_PROGRAM_MAX_BLOCKS sets Options.MaxBlocks; with
// REACHVM_PROGRAM_DIE set, a program a signal kills kills the child with
// the same signal, as reachvm run does; with REACHVM_PROGRAM_STATS set, the
// last line of stderr is the machine's Stats (%+v). TestMain runs it
// before any test, on the main thread (programChild).
func TestProgramChild(t *testing.T) {
	path := os.Getenv("REACHVM_PROGRAM")
	if path == "" {
		t.Skip("a helper for the program tests")
	}
	programChild(path)
}

// programChild is TestProgramChild's run of the program at path; it
// exits.
func programChild(path string) {
	cfg := vmm.Config{AllowElsewhere: true, VMCodeSize: 256 << 20, VMHeapSize: 256 << 20}
	if os.Getenv("REACHVM_PROGRAM_LOW") != "" {
		cfg.VMCodeBase = lowBase
	}
	v, m, p, args := childProgram(path, cfg)
	// The vet program is given vmcode's address to map over, and a page
	// of Go's heap to drop.
	base, _ := v.VMCode()
	goHeap := make([]byte, 3*4096)
	for i := range goHeap {
		goHeap[i] = 0xab
	}
	page := (uintptr(unsafe.Pointer(&goHeap[0])) + 4095) &^ 4095
	for i, a := range args {
		args[i] = strings.ReplaceAll(a, "VMCODE", fmt.Sprintf("%#x", base))
		args[i] = strings.ReplaceAll(args[i], "GOHEAP", fmt.Sprintf("%#x", page))
	}
	code, err := p.Run(append([]string{path}, args...), []string{"RV=yes", "HOME=/"})
	var se *SignalError
	if errors.As(err, &se) && os.Getenv("REACHVM_PROGRAM_DIE") != "" {
		// Killed: die of the same signal, as reachvm run does.
		fmt.Fprintln(os.Stderr, err)
		if err := rawsig.Die(se.Signal); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		os.Exit(111)
	}
	if err != nil {
		childFail(err)
	}
	for i, b := range goHeap {
		if b != 0xab {
			fmt.Fprintf(os.Stderr, "the program changed Go's heap at byte %d\n", i)
			os.Exit(113)
		}
	}
	// Everything reachvm owns, the program's memory included, must match
	// the kernel after the run and after Close.
	if ms, err := v.Space().SyncCheck(v.OS()); err != nil || len(ms) != 0 {
		fmt.Fprintf(os.Stderr, "sync check after the run: %v %v\n", ms, err)
		os.Exit(112)
	}
	if err := p.Close(); err != nil {
		childFail(fmt.Errorf("close: %w", err))
	}
	// Everything reachvm owns must still match the kernel.
	if ms, err := v.Space().SyncCheck(v.OS()); err != nil || len(ms) != 0 {
		fmt.Fprintf(os.Stderr, "sync check after Close: %v %v\n", ms, err)
		os.Exit(112)
	}
	if os.Getenv("REACHVM_PROGRAM_STATS") != "" {
		fmt.Fprintf(os.Stderr, "%+v\n", m.Stats())
	}
	m.Close()
	v.Close()
	os.Exit(code)
}

// childProgram, for a test run in a child process, loads the program
// at path on a fresh VMM (cfg) and machine, whose Options.MaxBlocks is
// REACHVM_PROGRAM_MAX_BLOCKS if set and which follows the program's
// execve (followExec) with REACHVM_PROGRAM_FOLLOW, and returns them with the program's
// arguments (REACHVM_PROGRAM_ARGS, separated by \x1f; none if empty). It
// exits through childFail on an error.
func childProgram(path string, cfg vmm.Config) (*vmm.VMM, *Machine, *Program, []string) {
	v, err := vmm.New(cfg)
	if err != nil {
		childFail(err)
	}
	var opts Options
	if os.Getenv("REACHVM_PROGRAM_FOLLOW") != "" {
		opts.Exec = followExec
	}
	switch os.Getenv("REACHVM_PROGRAM_CLIENT") {
	case "events":
		opts.Client = eventsClient(os.Stderr)
	case "wrap":
		opts.Client = wrapClient(os.Stderr, path)
	}
	opts.NoSlotBranches = os.Getenv("REACHVM_PROGRAM_NO_SLOT_BRANCHES") != ""
	opts.StrictFlags = os.Getenv("REACHVM_PROGRAM_STRICT_FLAGS") != ""
	if b := os.Getenv("REACHVM_PROGRAM_MAX_BLOCKS"); b != "" {
		if opts.MaxBlocks, err = strconv.Atoi(b); err != nil {
			childFail(fmt.Errorf("REACHVM_PROGRAM_MAX_BLOCKS: %w", err))
		}
	}
	m, err := NewMachine(vmcode.New(v), &opts)
	if err != nil {
		childFail(err)
	}
	if os.Getenv("REACHVM_PROGRAM_FS") == "arch_prctl" {
		// FS switched at every exit (what a kernel without wrfsbase
		// would cost), not the default's translated operands.
		if err := m.reemit(fsSyscall); err != nil {
			childFail(err)
		}
	}
	p, err := m.LoadProgram(path)
	if err != nil {
		childFail(err)
	}
	var args []string
	if a := os.Getenv("REACHVM_PROGRAM_ARGS"); a != "" {
		args = strings.Split(a, "\x1f")
	}
	return v, m, p, args
}

// childFail ends a child process whose run failed: the error on stderr,
// exit status 111.
func childFail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(111)
}

// loadFunc loads program (ET_EXEC) on a fresh machine with codeSize
// bytes of vmcode at lowBase, as reachvm run places it, and returns the
// machine, the program, its path and the address of its function fn,
// for a native baseline to call untranslated (Machine.RunNative). The
// machine and its VMM are closed when b ends.
func loadFunc(b *testing.B, program string, codeSize uintptr, fn string) (*Machine, *Program, string, uintptr) {
	b.Helper()
	path := buildProgram(b, program, kern.Exec)
	v, err := vmm.New(vmm.Config{AllowElsewhere: true, VMCodeBase: lowBase, VMCodeSize: codeSize, VMHeapSize: 64 << 20})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { v.Close() })
	m, err := NewMachine(vmcode.New(v), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	p, err := m.LoadProgram(path)
	if err != nil {
		b.Fatal(err)
	}
	f, err := elf.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	for _, s := range syms {
		if s.Name == fn {
			return m, p, path, p.bias + uintptr(s.Value)
		}
	}
	b.Fatalf("no %s in %s", fn, program)
	return nil, nil, "", 0
}

// runProgram runs path under reachvm in a child process and returns its
// standard output, standard error and exit status.
func runProgram(t *testing.T, path string, low bool, args ...string) (string, string, int) {
	t.Helper()
	var env []string
	if low {
		env = append(env, "REACHVM_PROGRAM_LOW=1")
	}
	return runProgramEnv(t, path, env, programTimeout, args...)
}

// programTimeout bounds a program's run in a child: a translator that
// loops fails the test instead of hanging it.
const programTimeout = 2 * time.Minute

// runProgramEnv is runProgram with env added to the child's environment
// (REACHVM_PROGRAM_LOW, REACHVM_PROGRAM_MAX_BLOCKS) and a timeout, after
// which the child is killed and the test fails.
func runProgramEnv(t *testing.T, path string, env []string, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	return runChildTest(t, "TestProgramChild", append([]string{"REACHVM_PROGRAM=" + path}, env...), timeout, args...)
}

// runChildTest runs this test binary's test name in a child process with
// env added to the environment and args in REACHVM_PROGRAM_ARGS, and a
// timeout, after which the child is killed and the test fails; it returns
// the child's standard output, standard error and exit status.
func runChildTest(t *testing.T, name string, env []string, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+name+"$")
	cmd.Env = append(append(os.Environ(), "REACHVM_PROGRAM_ARGS="+strings.Join(args, "\x1f")), env...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q: still running after %v (stdout %q, stderr %q)", name, args, timeout, stdout.String(), stderr.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

// runNative runs path natively.
func runNative(t *testing.T, path string, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = []string{"RV=yes", "HOME=/"}
	out, err := cmd.Output()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

// TestPrograms runs the hello program (arguments, environment, brk,
// mmap, function pointers) and every kernel as static executables, ET_EXEC
// and static PIE, under reachvm and natively: same output, same status,
// and aspacem in step with the kernel afterwards.
func TestPrograms(t *testing.T) {
	for _, kind := range programKinds {
		t.Run(kind.name, func(t *testing.T) {
			hello := buildProgram(t, "hello", kind.name)
			want, wantCode := runNative(t, hello, "5", "abc")
			got, stderr, code := runProgram(t, hello, false, "5", "abc")
			// argv[0] differs: the child passes the path as given.
			if code != wantCode || got != want {
				t.Errorf("hello: status %d, output:\n%s\nstderr: %s\nwant status %d, output:\n%s", code, got, stderr, wantCode, want)
			}
			// The same build runs natively (a static PIE relocates
			// itself, rt.h's rt_relocate) and gives the reference.
			kprog := buildProgram(t, "kernels", kind.name)
			for _, k := range kernels {
				if k.need != nil && !k.need() {
					continue
				}
				arg := strconv.Itoa(int(k.args[0]))
				want, wantCode := runNative(t, kprog, k.name, arg)
				got, stderr, code := runProgram(t, kprog, kind.name == "pie", k.name, arg)
				if code != wantCode || got != want {
					t.Errorf("%s: status %d, output %q (stderr %q), want %d, %q", k.name, code, got, stderr, wantCode, want)
				}
			}
		})
	}
}

// TestProgramVetting runs a program that maps MAP_FIXED over vmcode: the
// call fails (and munmap over it too) and the program goes on to exit
// normally; a madvise that would drop a page of Go's heap fails too.
// Asking for a thread then ends the run with an error naming it.
func TestProgramVetting(t *testing.T) {
	vet := buildProgram(t, "vet", "pie")
	out, stderr, code := runProgram(t, vet, true, "VMCODE")
	if code != 7 || !strings.Contains(out, "-> -12\n") || !strings.Contains(out, "munmap -> -12") || !strings.Contains(out, "still running") {
		t.Errorf("status %d, output %q, stderr %q: want the fixed mmap and the munmap refused (-12) and status 7", code, out, stderr)
	}
	out, stderr, code = runProgram(t, vet, true, "VMCODE", "madvise", "GOHEAP")
	if code != 7 || !strings.Contains(out, "madvise -> -12\n") {
		t.Errorf("madvise of Go's heap: status %d, output %q, stderr %q: want it refused (-12), the heap intact and status 7", code, out, stderr)
	}
	for what, want := range map[string]string{"thread": "a thread"} {
		_, stderr, code := runProgram(t, vet, true, "VMCODE", what)
		if code != 111 || !strings.Contains(stderr, want) {
			t.Errorf("%s: status %d, stderr %q: want an error naming %q", what, code, stderr, want)
		}
	}
}

// TestProgramCollision loads an ET_EXEC linked at 0x400000, where the
// (non-PIE) test binary itself lies: a clear error.
func TestProgramCollision(t *testing.T) {
	hello := buildProgram(t, "hello", "exec", "-Wl,-Ttext-segment=0x400000")
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	m, err := NewMachine(vmcode.New(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.LoadProgram(hello)
	var pe *ProgramError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "taken") || !strings.Contains(err.Error(), "-buildmode=pie") {
		t.Fatalf("got %v, want a ProgramError saying the addresses are taken", err)
	}
	t.Log(err)
}
