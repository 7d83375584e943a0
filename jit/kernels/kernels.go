// Package kernels holds the jit's C kernels and test programs, and builds
// them with gcc: as a shared object for privload (the translator's tests
// and benchmarks run library functions), and as freestanding static
// executables (ET_EXEC or static PIE) for `reachvm run` and `reachvm
// bench kernels`, which compare reachvm with native runs, valgrind and
// qemu on the same programs.
//
// The sources are embedded, so that a reachvm binary can build them
// anywhere gcc is installed. They need no libc: the shared object is
// built with -nostdlib and resolves nothing; the programs bring their own
// _start and raw system calls (c/programs/rt.h). The C library's
// programs (c/libc, Libc and Dynamic) are the exception: built the
// ordinary way against the system's C library, static or dynamic, they
// test what ld.so and libc do under reachvm.
package kernels

import (
	"crypto/sha256"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed c
var sources embed.FS

// Kernel is one kernel: `long NAME(long n)`.
type Kernel struct {
	Name string
	// Test is the argument the correctness tests use, Bench the
	// benchmarks' (a run of tens of milliseconds natively).
	Test, Bench int64
	// Micro marks a micro-benchmark of one cost (calls and returns),
	// reported apart from the suite's mean.
	Micro bool
	// AVX2 marks a kernel that needs the processor's AVX2.
	AVX2 bool
}

// All are the kernels, in report order.
var All = []Kernel{
	{Name: "k_fib", Test: 20, Bench: 30},
	{Name: "k_loops", Test: 3, Bench: 40},
	{Name: "k_fnptr", Test: 5000, Bench: 3000000},
	{Name: "k_interp", Test: 300, Bench: 60000},
	{Name: "k_sse2", Test: 100, Bench: 40000},
	{Name: "k_riprel", Test: 4, Bench: 1500},
	{Name: "k_bigstack", Test: 48, Bench: 48},
	{Name: "k_sort", Test: 4, Bench: 200},
	{Name: "k_avx2", Test: 100, Bench: 100000, AVX2: true},
	{Name: "k_dcalls", Test: 1000, Bench: 4000000, Micro: true},
	{Name: "k_icalls", Test: 1000, Bench: 4000000, Micro: true},
	{Name: "k_rets", Test: 1000, Bench: 1000000, Micro: true},
}

// Flags shared by every build: no libc, no stack protector (its canary
// lives in TLS), CET on (ENDBR64 at function entries, NOTRACK jumps for
// switches: the translator must handle both), and no loop turned back
// into a call to memset or memcpy.
var commonFlags = []string{
	"-O2", "-ffreestanding", "-fno-tree-loop-distribute-patterns",
	"-fno-stack-protector", "-fcf-protection=full",
}

// SharedFlags build the kernels as a shared object: hidden symbols but
// the k_ entry points (calls inside are direct, not through a PLT), bound
// at load time.
var SharedFlags = append(append([]string{}, commonFlags...),
	"-shared", "-fPIC", "-nostdlib", "-fvisibility=hidden", "-Wl,-z,now", "-Wl,--hash-style=gnu")

// Program kinds.
const (
	// Exec is an ET_EXEC linked at ExecBase.
	Exec = "exec"
	// PIE is a static position-independent executable.
	PIE = "pie"
)

// ExecBase is where Exec programs are linked: away from 0x400000, where
// a Go binary that is not a PIE (the reachvm command, a test binary)
// sits, and above the 1 GiB past that binary's end where the kernel
// places its brk heap at random (a cgo binary's malloc uses it), yet
// below 2 GiB, where indirect-branch sites take their narrow form.
const ExecBase = 0x60000000

// programFlags returns the flags of a program kind.
func programFlags(kind string) ([]string, error) {
	f := append(append([]string{}, commonFlags...), "-nostdlib")
	switch kind {
	case Exec:
		return append(f, "-static", fmt.Sprintf("-Wl,-Ttext-segment=%#x", ExecBase)), nil
	case PIE:
		return append(f, "-static-pie", "-fPIE"), nil
	}
	return nil, fmt.Errorf("kernels: unknown program kind %q", kind)
}

// ErrNoCompiler is returned when gcc cannot be found.
var ErrNoCompiler = errors.New("kernels: gcc not found")

// cacheDir returns a directory for builds of the given sources and
// flags, named by their hash, so that builds are reused.
func cacheDir(files []string, flags []string) (string, error) {
	h := sha256.New()
	for _, f := range files {
		b, err := sources.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintln(h, flags)
	ver, _ := exec.Command("gcc", "--version").Output()
	h.Write(ver)
	return filepath.Join(os.TempDir(), fmt.Sprintf("reachvm-kernels-%x", h.Sum(nil)[:8])), nil
}

// build writes files to a cache directory and compiles them with flags
// into name there, unless that was done before; it returns the output's
// path. libs (-lNAME) follow the sources on gcc's command line, where
// the linker looks for what they use.
func build(files []string, flags []string, name string, libs ...string) (string, error) {
	if _, err := exec.LookPath("gcc"); err != nil {
		return "", ErrNoCompiler
	}
	dir, err := cacheDir(files, append(append([]string{}, flags...), libs...))
	if err != nil {
		return "", err
	}
	out := filepath.Join(dir, name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var srcs []string
	for _, f := range files {
		b, _ := sources.ReadFile(f)
		p := filepath.Join(dir, filepath.FromSlash(f))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return "", err
		}
		if strings.HasSuffix(f, ".c") {
			srcs = append(srcs, p)
		}
	}
	tmp := fmt.Sprintf("%s.tmp%d", out, os.Getpid())
	args := append(append(append(append([]string{}, flags...), "-o", tmp), srcs...), libs...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("kernels: gcc %s: %v\n%s", strings.Join(args, " "), err, b)
	}
	return out, os.Rename(tmp, out)
}

// files lists the embedded sources under dir.
func files(dirs ...string) []string {
	var out []string
	for _, d := range dirs {
		_ = fs.WalkDir(sources, d, func(p string, e fs.DirEntry, err error) error {
			if err == nil && !e.IsDir() {
				out = append(out, p)
			}
			return nil
		})
	}
	return out
}

// jitCode is the header of the machine code that both the kernels and
// the programs write at run time. It lies outside both directories, so
// each build lists it itself, which also puts it in the build's cache
// key.
const jitCode = "c/jitcode.h"

// Shared builds the kernels as a shared object and returns its path.
func Shared() (string, error) {
	return build(append(files("c/kernels"), jitCode), SharedFlags, "libkernels.so")
}

// Program builds the program c/programs/NAME.c as kind (Exec or PIE),
// with extra gcc flags, and returns its path. The "kernels" program
// includes every kernel and runs one: `kernels NAME N [REPEAT]`.
func Program(name, kind string, extra ...string) (string, error) {
	flags, err := programFlags(kind)
	if err != nil {
		return "", err
	}
	flags = append(flags, extra...)
	fs := []string{"c/programs/rt.h", jitCode, "c/programs/" + name + ".c"}
	if name == "kernels" {
		fs = append(fs, files("c/kernels")...)
	}
	if _, err := sources.ReadFile("c/programs/" + name + ".c"); err != nil {
		return "", fmt.Errorf("kernels: no program %q", name)
	}
	return build(fs, flags, name+"-"+kind)
}

// ExecDefault is a kind of Dynamic program: an ET_EXEC at the linker's
// default address (0x400000), where a Go executable that is not a PIE
// sits: only a reachvm built as a PIE can load it.
const ExecDefault = "exec-default"

// dynamicFlags returns the flags of a Dynamic program of kind.
func dynamicFlags(kind string) ([]string, error) {
	f := []string{"-O2", "-Wall"}
	switch kind {
	case Exec:
		return append(f, "-no-pie", fmt.Sprintf("-Wl,-Ttext-segment=%#x", ExecBase)), nil
	case ExecDefault:
		return append(f, "-no-pie"), nil
	case PIE:
		return append(f, "-fPIE", "-pie"), nil
	}
	return nil, fmt.Errorf("kernels: unknown kind %q of a dynamic program", kind)
}

// Dynamic builds c/libc/NAME.c the ordinary way, dynamically linked
// against the system's C library (ld.so its interpreter), as kind: Exec
// (an ET_EXEC at ExecBase), ExecDefault (at 0x400000) or PIE; with extra
// gcc flags; and returns its path. Libc builds the same sources static.
func Dynamic(name, kind string, extra ...string) (string, error) {
	flags, err := dynamicFlags(kind)
	if err != nil {
		return "", err
	}
	src := "c/libc/" + name + ".c"
	if _, err := sources.ReadFile(src); err != nil {
		return "", fmt.Errorf("kernels: no C library program %q", name)
	}
	return build([]string{src}, append(flags, extra...), name+"-dyn-"+kind, "-lm")
}
