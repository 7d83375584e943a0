//go:build linux && amd64

package jit_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

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

// TestRunPointerToLocal passes Machine.Run the address of a Go local,
// which libz's uncompress writes the output length through at its end,
// after the translator has run (Go code, on the calling goroutine's
// stack) for every fragment on the way. Each run starts from a flushed
// cache on a new goroutine, whose small stack the translator grows and
// so moves: the local must be where the application wrote, which it is
// because Run is //go:uintptrescapes (without it, the write lands in the
// stack the goroutine left, and destLen keeps its old value).
func TestRunPointerToLocal(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { v.Close() })
	lib, err := privload.Load(v, "/usr/lib/x86_64-linux-gnu/libz.so.1", privload.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lib.Close() })
	m, err := jit.NewMachine(vmcode.New(v), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })

	data := bytes.Repeat([]byte("reachvm keeps what the call's arguments point to in place. "), 200)
	compress, err := lib.Func("compress")
	if err != nil {
		t.Fatal(err)
	}
	comp := make([]byte, 2*len(data))
	compLen := uint64(len(comp))
	if rc, err := compress.Call4(uintptr(unsafe.Pointer(&comp[0])), uintptr(unsafe.Pointer(&compLen)), uintptr(unsafe.Pointer(&data[0])), uintptr(len(data))); rc != 0 || err != nil {
		t.Fatalf("compress = %d, %v", rc, err)
	}
	comp = comp[:compLen]
	uncompress, _ := lib.Lookup("uncompress")

	type outcome struct {
		rc      uintptr
		err     error
		destLen uint64
		moved   bool
	}
	const runs = 20
	moved := 0
	for i := range runs {
		m.Flush()
		dest := make([]byte, len(data)+100)
		ch := make(chan outcome)
		go func() {
			var marker byte
			before := uintptr(unsafe.Pointer(&marker))
			var destLen uint64 = uint64(len(dest))
			rc, err := m.Run(uncompress, uintptr(unsafe.Pointer(&dest[0])), uintptr(unsafe.Pointer(&destLen)), uintptr(unsafe.Pointer(&comp[0])), uintptr(len(comp)))
			ch <- outcome{rc, err, destLen, uintptr(unsafe.Pointer(&marker)) != before}
		}()
		o := <-ch
		if o.rc != 0 || o.err != nil {
			t.Fatalf("run %d: uncompress = %d, %v", i, o.rc, o.err)
		}
		if o.destLen != uint64(len(data)) || !bytes.Equal(dest[:len(data)], data) {
			t.Fatalf("run %d: destLen = %d after the run, want %d (the application wrote elsewhere: stack moved %v)", i, o.destLen, len(data), o.moved)
		}
		if o.moved {
			moved++
		}
	}
	if moved == 0 {
		t.Fatalf("the goroutine's stack never moved during Run in %d runs: the test did not test the pointer rule", runs)
	}
	t.Logf("the stack moved during Run in %d of %d runs", moved, runs)
}
