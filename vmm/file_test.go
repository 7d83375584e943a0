package vmm_test

import (
	"errors"
	"os"
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// TestFileObjectNotSupported checks that FileObject refuses, with
// mem.ErrNotSupported and without closing the file, where it cannot make
// an object of an open file: on a simulated backend under either OS's
// rules, and natively on Windows.
func TestFileObjectNotSupported(t *testing.T) {
	f, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cfgs []vmm.Config
	for _, rules := range []mem.Rules{mem.RulesLinux, mem.RulesWindows} {
		cfgs = append(cfgs, vmm.Config{OS: newSim(t, rules), VMCodeSize: 16 << 20, NoVMHeap: true})
	}
	if runtime.GOOS == "windows" {
		cfgs = append(cfgs, vmm.Config{VMCodeSize: 16 << 20, NoVMHeap: true})
	}
	for _, cfg := range cfgs {
		v, err := vmm.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if obj, err := v.FileObject(f); !errors.Is(err, mem.ErrNotSupported) || obj != nil {
			t.Errorf("%s: FileObject: %v, %v; want mem.ErrNotSupported", v.OS().Name(), obj, err)
		}
		if _, err := f.Stat(); err != nil {
			t.Fatalf("%s: the file was closed on error: %v", v.OS().Name(), err)
		}
		if err := v.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
