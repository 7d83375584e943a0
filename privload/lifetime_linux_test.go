//go:build linux

package privload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// smallVMM returns a VMM small enough to make hundreds of.
func smallVMM(t testing.TB) *vmm.VMM {
	t.Helper()
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// demoObject loads the demo library into v, calls demo_compute twice and
// points its finaliser's hook at a fresh int64, returned with the object:
// after the library closed, by its Close or the VMM's, it must hold 2.
func demoObject(t *testing.T, v *vmm.VMM, path string) (vmmtest.Object, *int64) {
	t.Helper()
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	fn, err := lib.Func(demolib.Compute)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if got, err := fn.Call2(3, 4); err != nil || int64(got) != demolib.Expected(3, 4) {
			t.Fatalf("demo_compute(3, 4) = %d, %v, want %d", got, err, demolib.Expected(3, 4))
		}
	}
	hookAddr, ok := lib.Lookup(demolib.FiniHook)
	if !ok {
		t.Fatal("no demo_fini_hook")
	}
	sink := new(int64)
	*sink = -1
	binary.LittleEndian.PutUint64(rawmem.Bytes(hookAddr, 8), uint64(uintptr(unsafe.Pointer(sink))))
	return vmmtest.Object{
		Name:  "lib",
		Close: lib.Close,
		Use: func() error {
			var errs []error
			if a, ok := lib.Lookup(demolib.Compute); ok {
				errs = append(errs, fmt.Errorf("Lookup after Close found %#x", a))
			}
			if a, ok := lib.LookupVersion(demolib.Compute, "V1"); ok {
				errs = append(errs, fmt.Errorf("LookupVersion after Close found %#x", a))
			}
			if _, err := lib.Func(demolib.Compute); !errors.Is(err, ErrClosed) {
				errs = append(errs, fmt.Errorf("Func after Close: %v, want an error wrapping ErrClosed", err))
			}
			_, err := fn.Call2(3, 4)
			errs = append(errs, vmmtest.WantClosed("calling demo_compute", err))
			errs = append(errs, vmmtest.WantClosed("second Close", lib.Close()))
			return errors.Join(errs...)
		},
	}, sink
}

// TestCloseOrdersLibrary closes a VMM, a library, a Code, one of its
// units and a slot in every order of two, three and all five. The
// library's finaliser must have run exactly once, whoever closed it, with
// its code still mapped.
func TestCloseOrdersLibrary(t *testing.T) {
	demo := writeTemp(t, demolib.Name, demolib.SO)
	names := []string{"vmm", "lib", "code", "unit", "slot"}
	vmmtest.CloseOrders(t, names, []int{2, 3, 5}, func(t *testing.T) vmmtest.World {
		v := smallVMM(t)
		lib, sink := demoObject(t, v, demo)
		c := vmcode.New(v)
		u, err := c.Alloc(4096)
		if err != nil {
			t.Fatal(err)
		}
		s, err := v.ReserveSlot(4096, "slot")
		if err != nil {
			t.Fatal(err)
		}
		return vmmtest.World{
			VMM: v,
			Objects: []vmmtest.Object{
				{Name: "vmm", Close: v.Close, Use: func() error {
					_, err := Load(v, demo, Options{})
					return errors.Join(vmmtest.WantClosed("Load", err), vmmtest.WantClosed("second Close", v.Close()))
				}},
				lib,
				{Name: "code", Close: c.Close, Use: func() error {
					_, err := c.Alloc(4096)
					return vmmtest.WantClosed("Alloc", err)
				}},
				{Name: "unit", Parents: []string{"code"}, Close: u.Free, Use: func() error {
					return errors.Join(vmmtest.WantClosed("Write", u.Write(0, []byte{0xc3})), vmmtest.WantClosed("second Free", u.Free()))
				}},
				{Name: "slot", Close: s.Release, Use: func() error { return vmmtest.WantClosed("second Release", s.Release()) }},
			},
			Check: func() error {
				if *sink != 2 {
					return fmt.Errorf("the finaliser wrote %d, want 2 (demo_calls): it did not run, or ran late", *sink)
				}
				return nil
			},
		}
	})
}

// groupTrace is where TestCloseVMMClosesGroup's fixtures record their
// initialisers and finalisers.
var groupTrace [16]int64

// TestCloseVMMClosesGroup loads the fixture chain (a root and two private
// dependencies) and closes the VMM: the group's finalisers run once, in
// the reverse of the initialisers' order, and every library of the group
// is closed after.
func TestCloseVMMClosesGroup(t *testing.T) {
	// groupTrace, written by native code long after its address was
	// taken, is a package variable: a local that does not escape lives on
	// the goroutine's stack, which moves when it grows.
	chain := fxPath(t, "libfx_chain_a.so")
	v := smallVMM(t)
	foot := vmmtest.FootprintOf(v)
	trace := &groupTrace
	*trace = [16]int64{}
	opts := Options{SearchPath: []string{filepath.Join(filepath.Dir(chain), "search")}, Imports: map[string]uintptr{"fx_trace": uintptr(unsafe.Pointer(&trace[0]))}}
	lib, err := Load(v, chain, opts)
	if err != nil {
		t.Fatal(err)
	}
	libs := lib.Libraries()
	if len(libs) != 3 {
		t.Fatalf("the chain loaded %d libraries, want 3", len(libs))
	}
	foot.Mark(v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := vmmtest.Unmapped(v, foot); err != nil {
		t.Fatal(err)
	}
	vmmtest.Forgotten(t, v, foot, "after the VMM closed")
	if got := trace[:trace[0]+1]; !equalInts(got, []int64{6, 3, 2, 1, -1, -2, -3}) {
		t.Errorf("initialisers and finalisers ran as %v, want c, b, a, then a, b, c", got[1:])
	}
	for _, l := range libs {
		if _, ok := l.Lookup("fx_a"); ok {
			t.Errorf("%s: Lookup after the VMM closed found fx_a", l.Name())
		}
		if _, err := l.Func("fx_a"); !errors.Is(err, ErrClosed) || !errors.Is(err, vmm.ErrClosed) {
			t.Errorf("%s: Func after the VMM closed: %v, want ErrClosed", l.Name(), err)
		}
	}
	if err := lib.Close(); !errors.Is(err, ErrClosed) || !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("Close after the VMM closed: %v, want ErrClosed", err)
	}
}

// TestCloseConcurrentLibraries closes the VMM while 4 goroutines load the
// demo library, look symbols up and close it: each Load succeeds or fails
// with ErrClosed, and afterwards nothing of the VMM is left. (Calls into a
// library must not race with its Close; the jit's Machine.Run, which Close
// waits for, is tested in the jit.)
func TestCloseConcurrentLibraries(t *testing.T) {
	demo := writeTemp(t, demolib.Name, demolib.SO)
	for round := range 10 {
		v := smallVMM(t)
		foot := vmmtest.FootprintOf(v)
		var wg sync.WaitGroup
		var ops atomic.Int64
		errs := make(chan error, 64)
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					lib, err := Load(v, demo, Options{})
					if err != nil {
						if !errors.Is(err, vmm.ErrClosed) {
							errs <- err
						}
						return
					}
					lib.Lookup(demolib.Compute)
					if err := lib.Close(); err != nil && !errors.Is(err, vmm.ErrClosed) {
						errs <- err
					}
					ops.Add(1)
				}
			}()
		}
		vmmtest.CloseDuring(t, v, foot, &ops, 8, wg.Wait, errs, fmt.Sprintf("round %d", round))
	}
}
