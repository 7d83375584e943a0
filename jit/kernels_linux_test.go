//go:build linux && amd64

package jit

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// kernelFlags build the kernels as a self-contained shared object:
// no libc (privload resolves nothing), hidden symbols but the k_
// entry points (so calls inside are direct, not through a PLT), and CET
// on, so that functions start with ENDBR64 and the switch's jump is a
// NOTRACK jmp, which the translator must handle.
var kernelFlags = []string{
	"-O2", "-shared", "-fPIC", "-nostdlib", "-fno-stack-protector",
	"-fvisibility=hidden", "-fno-tree-loop-distribute-patterns",
	"-fcf-protection=full", "-Wl,-z,now", "-Wl,--hash-style=gnu",
}

var (
	kernelOnce sync.Once
	kernelPath string
	kernelErr  error
)

// kernelLib builds testdata/kernels/*.c with gcc once per test binary and
// returns the shared object's path; it skips the test when gcc is absent.
// The build lands in a directory of the temporary directory named by a
// hash of the sources and flags, so repeated test runs reuse it.
func kernelLib(t testing.TB) string {
	t.Helper()
	kernelOnce.Do(func() {
		if _, err := exec.LookPath("gcc"); err != nil {
			kernelErr = err
			return
		}
		kernelPath, kernelErr = buildKernels("testdata/kernels", kernelFlags, "libkernels.so")
	})
	if kernelErr != nil {
		if errors.Is(kernelErr, exec.ErrNotFound) {
			t.Skip("gcc not found")
		}
		t.Fatal(kernelErr)
	}
	return kernelPath
}

// buildKernels compiles dir/*.c with flags into name, in a cache
// directory keyed by the sources, the flags and gcc's version.
func buildKernels(dir string, flags []string, name string) (string, error) {
	srcs, _ := filepath.Glob(filepath.Join(dir, "*.c"))
	hdrs, _ := filepath.Glob(filepath.Join(dir, "*.h"))
	h := sha256.New()
	for _, f := range append(srcs, hdrs...) {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	fmt.Fprintln(h, flags)
	ver, _ := exec.Command("gcc", "--version").Output()
	h.Write(ver)
	out := filepath.Join(os.TempDir(), fmt.Sprintf("reachvm-kernels-%x", h.Sum(nil)[:8]), name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return "", err
	}
	tmp := out + fmt.Sprintf(".tmp%d", os.Getpid())
	args := append(append([]string{}, flags...), "-o", tmp)
	args = append(args, srcs...)
	if b, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		return "", errors.New("gcc: " + err.Error() + "\n" + string(b))
	}
	return out, os.Rename(tmp, out)
}

// kernel is one entry point with the arguments the tests use.
type kernel struct {
	name  string
	args  []uintptr
	bench []uintptr
	// need reports whether the processor can run it.
	need func() bool
	// micro marks a micro-benchmark of one cost (a call and return),
	// reported on its own rather than in the suite's mean.
	micro bool
}

var kernels = []kernel{
	{name: "k_fib", args: []uintptr{20}, bench: []uintptr{30}},
	{name: "k_loops", args: []uintptr{3}, bench: []uintptr{40}},
	{name: "k_fnptr", args: []uintptr{5000}, bench: []uintptr{3000000}},
	{name: "k_interp", args: []uintptr{300}, bench: []uintptr{60000}},
	{name: "k_sse2", args: []uintptr{100}, bench: []uintptr{40000}},
	{name: "k_riprel", args: []uintptr{4}, bench: []uintptr{1500}},
	{name: "k_bigstack", args: []uintptr{48}, bench: []uintptr{48}},
	{name: "k_sort", args: []uintptr{4}, bench: []uintptr{200}},
	{name: "k_avx2", args: []uintptr{100}, bench: []uintptr{100000}, need: func() bool { return cpu.X86.HasAVX2 }},
	{name: "k_dcalls", args: []uintptr{1000}, bench: []uintptr{4000000}, micro: true},
	{name: "k_icalls", args: []uintptr{1000}, bench: []uintptr{4000000}, micro: true},
}

// loadKernels loads the kernel library into m's VMM.
func loadKernels(t testing.TB, v *vmm.VMM) *privload.Library {
	t.Helper()
	lib, err := privload.Load(v, kernelLib(t), privload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lib.Close(); err != nil {
			t.Error(err)
		}
	})
	return lib
}

func lookup(t testing.TB, lib *privload.Library, name string) uintptr {
	t.Helper()
	fn, ok := lib.Lookup(name)
	if !ok {
		t.Fatalf("%s: no symbol %s", lib.Name(), name)
	}
	return fn
}

// placements are where the tests put vmcode: where the OS chooses (high,
// the wide form of indirect-branch sites) and below 2 GiB (the narrow
// form).
var placements = []struct {
	name string
	cfg  vmm.Config
}{
	{"high", vmm.Config{}},
	{"low", vmm.Config{VMCodeBase: lowBase}},
}

// TestKernels runs every kernel natively and under the translator, with
// vmcode high and low: the results must be equal, twice (the second run
// goes through the warm, linked cache).
func TestKernels(t *testing.T) {
	for _, p := range placements {
		t.Run(p.name, func(t *testing.T) { testKernels(t, p.cfg) })
	}
}

func testKernels(t *testing.T, cfg vmm.Config) {
	m, _ := newTestMachine(t, cfg, nil)
	lib := loadKernels(t, m.v)
	for _, k := range kernels {
		t.Run(k.name, func(t *testing.T) {
			if k.need != nil && !k.need() {
				t.Skip("processor lacks the feature")
			}
			fn := lookup(t, lib, k.name)
			want := Call(fn, k.args...)
			for i := range 2 {
				got, err := m.Run(fn, k.args...)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("run %d: %s%v = %#x translated, %#x native", i, k.name, k.args, got, want)
				}
			}
		})
	}
	t.Logf("%+v", m.Stats())
}
