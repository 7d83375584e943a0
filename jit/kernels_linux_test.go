//go:build linux && amd64

package jit

import (
	"errors"
	"testing"

	"golang.org/x/sys/cpu"

	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// kernelLib builds the kernels (jit/kernels) as a shared object with gcc
// (reusing an earlier build of the same sources) and returns its path;
// it skips the test when gcc is absent.
func kernelLib(t testing.TB) string {
	t.Helper()
	p, err := kern.Shared()
	if errors.Is(err, kern.ErrNoCompiler) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
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

// kernels are jit/kernels' list with this test's view of it.
var kernels = func() []kernel {
	var ks []kernel
	for _, k := range kern.All {
		kk := kernel{name: k.Name, args: []uintptr{uintptr(k.Test)}, bench: []uintptr{uintptr(k.Bench)}, micro: k.Micro}
		if k.AVX2 {
			kk.need = func() bool { return cpu.X86.HasAVX2 }
		}
		ks = append(ks, kk)
	}
	return ks
}()

// runKernels runs every kernel the processor can run on m, from lib (the
// kernel library loaded into m's VMM), and checks each result against
// the kernel called natively; how names the run in a failure ("recording").
// after, if not nil, is called after each kernel.
func runKernels(t testing.TB, m *Machine, lib *privload.Library, how string, after func(k kernel)) {
	t.Helper()
	for _, k := range kernels {
		if k.need != nil && !k.need() {
			continue
		}
		fn := lookup(t, lib, k.name)
		want := Call(fn, k.args...)
		got, err := m.Run(fn, k.args...)
		if err != nil {
			t.Fatalf("%s: %v", k.name, err)
		}
		if got != want {
			t.Errorf("%s%v = %#x %s, %#x native", k.name, k.args, got, how, want)
		}
		if after != nil {
			after(k)
		}
	}
}

// loadKernels loads the kernel library into m's VMM.
func loadKernels(t testing.TB, v *vmm.VMM) *privload.Library {
	t.Helper()
	return loadLib(t, v, kernelLib(t))
}

// loadLib loads path privately into v, to be closed when the test ends.
func loadLib(t testing.TB, v *vmm.VMM, path string) *privload.Library {
	t.Helper()
	lib, err := privload.Load(v, path, privload.Options{})
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
