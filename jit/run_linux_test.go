//go:build linux && amd64

package jit_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/jit"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
)

// TestRunDemo runs libdemo's demo_compute, which calls through its PLT
// and through a function pointer in data and reads a global through the
// GOT, under the package's default machine and under a machine over the
// library's own vmcode: both equal the native call. The default machine
// lives as long as the process, so that part runs in a child process:
// the package's other tests check that nothing of reachvm stays mapped
// after they close their VMMs.
func TestRunDemo(t *testing.T) {
	defaultToo := os.Getenv("REACHVM_TEST_DEFAULT_RUN") == "1"
	if !defaultToo {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRunDemo$", "-test.v")
		cmd.Env = append(os.Environ(), "REACHVM_TEST_DEFAULT_RUN=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "default machine agrees") {
			t.Fatalf("child with the default machine: %v\n%s", err, out)
		}
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	path := filepath.Join(t.TempDir(), demolib.Name)
	if err := os.WriteFile(path, demolib.SO, 0o644); err != nil {
		t.Fatal(err)
	}
	lib, err := privload.Load(v, path, privload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	fn, _ := lib.Lookup(demolib.Compute)
	m, err := jit.NewMachine(vmcode.New(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	for _, a := range [][2]uintptr{{6, 7}, {100, 3}} {
		native := jit.Call(fn, a[0], a[1])
		if defaultToo {
			if got := jit.Run(fn, a[0], a[1]); got != native {
				t.Errorf("Run(demo_compute, %d, %d) = %d, native %d", a[0], a[1], got, native)
			} else {
				t.Logf("default machine agrees: %d", got)
			}
		}
		got, err := m.Run(fn, a[0], a[1])
		if err != nil || got != native {
			t.Errorf("Machine.Run(demo_compute, %d, %d) = %d, %v; native %d", a[0], a[1], got, err, native)
		}
	}
}

// ExampleMachine_Run loads libz privately into vmcode and runs its crc32
// under the translator.
func ExampleMachine_Run() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		panic(err)
	}
	defer v.Close()
	lib, err := privload.Load(v, "/usr/lib/x86_64-linux-gnu/libz.so.1", privload.Options{})
	if err != nil {
		fmt.Println("no libz")
		return
	}
	defer lib.Close()
	m, err := jit.NewMachine(vmcode.New(v), nil)
	if err != nil {
		panic(err)
	}
	defer m.Close()
	crc, _ := lib.Lookup("crc32")
	// crc32(0, NULL, 0) is the initial value, 0.
	got, err := m.Run(crc, 0, 0, 0)
	fmt.Println(got, err)
	// Output: 0 <nil>
}
