//go:build linux && amd64

package jit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/internal/rawmem"
	kern "github.com/reachvm/reachvm/jit/kernels"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmcode"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// lifeWorld builds the objects of the jit's close-order tests in a fresh,
// small VMM: the VMM, the demo library (its demo_compute called once
// natively and once under the machine, and its finaliser's hook pointed
// at a counter the world checks), a Code with one unit, a machine over
// the Code with a program loaded, a slot and a vmheap allocation.
type lifeWorld struct {
	v    *vmm.VMM
	lib  *privload.Library
	fn   uintptr
	sink *int64
	code *vmcode.Code
	unit *vmcode.Unit
	m    *Machine
	p    *Program
	// prog is the program's memory, which aspacem must forget.
	prog []mem.Range
	slot *vmm.Slot
	heap uintptr
}

// lifeNames are the objects' names, in objects' order.
var lifeNames = []string{"vmm", "lib", "code", "unit", "machine", "program", "slot", "heap"}

func newLifeWorld(t *testing.T, demo, prog string) *lifeWorld {
	t.Helper()
	w := &lifeWorld{}
	var err error
	if w.v, err = vmm.New(vmm.Config{VMCodeSize: 32 << 20, VMHeapSize: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	if w.lib, err = privload.Load(w.v, demo, privload.Options{}); err != nil {
		t.Fatal(err)
	}
	var ok bool
	if w.fn, ok = w.lib.Lookup(demolib.Compute); !ok {
		t.Fatal("no demo_compute")
	}
	hook, ok := w.lib.Lookup(demolib.FiniHook)
	if !ok {
		t.Fatal("no demo_fini_hook")
	}
	w.sink = new(int64)
	*w.sink = -1
	binary.LittleEndian.PutUint64(rawmem.Bytes(hook, 8), uint64(uintptr(unsafe.Pointer(w.sink))))
	w.code = vmcode.New(w.v)
	if w.unit, err = w.code.Alloc(4096); err != nil {
		t.Fatal(err)
	}
	if w.m, err = NewMachine(w.code, &Options{StackSize: 256 << 10, UnitSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	want := uintptr(demolib.Expected(5, 6))
	if got := Call(w.fn, 5, 6); got != want {
		t.Fatalf("demo_compute(5, 6) = %d natively, want %d", got, want)
	}
	if got, err := w.m.Run(w.fn, 5, 6); err != nil || got != want {
		t.Fatalf("demo_compute(5, 6) = %d, %v under the machine, want %d", got, err, want)
	}
	if w.p, err = w.m.LoadProgram(prog); err != nil {
		t.Fatal(err)
	}
	w.prog = []mem.Range{{Start: w.p.lo, End: w.p.hi}, {Start: w.p.brkBase, End: w.p.brkMax}, {Start: w.p.stack, End: w.p.stack + w.p.stackSize}}
	if w.slot, err = w.v.ReserveSlot(4096, "slot"); err != nil {
		t.Fatal(err)
	}
	if err := w.slot.Commit(w.slot.Base(), w.slot.Size(), mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	if w.heap, err = w.v.HeapAlloc(4096); err != nil {
		t.Fatal(err)
	}
	return w
}

// objects returns w's objects in lifeNames' order.
func (w *lifeWorld) objects(prog string) []vmmtest.Object {
	v, lib, c, u, m, p, s := w.v, w.lib, w.code, w.unit, w.m, w.p, w.slot
	return []vmmtest.Object{
		{Name: "vmm", Close: v.Close, Use: func() error {
			_, err := v.ReserveSlot(4096, "late")
			_, lerr := privload.Load(v, lib.Path(), privload.Options{})
			_, merr := NewMachine(c, nil)
			return errors.Join(vmmtest.WantClosed("ReserveSlot", err), vmmtest.WantClosed("Load", lerr),
				vmmtest.WantClosed("NewMachine", merr), vmmtest.WantClosed("second Close", v.Close()))
		}},
		{Name: "lib", Close: lib.Close, Use: func() error {
			var errs []error
			if a, ok := lib.Lookup(demolib.Compute); ok {
				errs = append(errs, fmt.Errorf("Lookup after Close found %#x", a))
			}
			return errors.Join(append(errs, vmmtest.WantClosed("second Close", lib.Close()))...)
		}},
		{Name: "code", Close: c.Close, Use: func() error {
			_, err := c.Alloc(4096)
			_, serr := EmitCallStub(c, w.fn)
			_, merr := NewMachine(c, nil)
			return errors.Join(vmmtest.WantClosed("Alloc", err), vmmtest.WantClosed("EmitCallStub", serr),
				vmmtest.WantClosed("NewMachine", merr), vmmtest.WantClosed("second Close", c.Close()))
		}},
		{Name: "unit", Parents: []string{"code"}, Close: u.Free, Use: func() error {
			return errors.Join(vmmtest.WantClosed("Write", u.Write(0, []byte{0xc3})), vmmtest.WantClosed("Seal", u.Seal()),
				vmmtest.WantClosed("second Free", u.Free()))
		}},
		{Name: "machine", Parents: []string{"code"}, Close: m.Close, Use: func() error {
			_, err := m.Run(w.fn, 1, 2)
			_, nerr := m.RunNative(w.fn, 1, 2)
			_, perr := m.LoadProgram(prog)
			m.Flush()
			_ = m.Stats()
			return errors.Join(vmmtest.WantClosed("Run", err), vmmtest.WantClosed("RunNative", nerr),
				vmmtest.WantClosed("LoadProgram", perr), vmmtest.WantClosed("second Close", m.Close()))
		}},
		{Name: "program", Parents: []string{"machine"}, Close: p.Close, Use: func() error {
			_, err := p.Run([]string{prog}, nil)
			return errors.Join(vmmtest.WantClosed("Run", err), vmmtest.WantClosed("second Close", p.Close()))
		}},
		{Name: "slot", Close: s.Release, Use: func() error {
			return errors.Join(vmmtest.WantClosed("Commit", s.Commit(s.Base(), s.Size(), mem.ProtRW)),
				vmmtest.WantClosed("second Release", s.Release()))
		}},
		{Name: "heap", Close: func() error { return v.HeapFree(w.heap, 4096) }, Use: func() error {
			if err := v.HeapFree(w.heap, 4096); err == nil {
				return errors.New("a second HeapFree succeeded")
			}
			return nil
		}},
	}
}

// check is what must hold once everything closed: the library's
// finaliser ran once (demo_calls was 2: one native call, one translated)
// and aspacem forgot the program's memory, which lies outside the VMM.
func (w *lifeWorld) check() error {
	runtime.KeepAlive(w.sink)
	var errs []error
	if *w.sink != 2 {
		errs = append(errs, fmt.Errorf("the finaliser wrote %d, want 2: it did not run, or ran late", *w.sink))
	}
	for _, r := range w.prog {
		for _, seg := range w.v.Space().Segments(r.Start, r.End) {
			if seg.Kind != aspacem.KindFree {
				errs = append(errs, fmt.Errorf("aspacem still records the program's %v", seg))
			}
		}
	}
	return errors.Join(errs...)
}

// lifeFiles writes the demo library and builds a program to load.
func lifeFiles(t *testing.T) (demo, prog string) {
	demo = filepath.Join(t.TempDir(), demolib.Name)
	if err := os.WriteFile(demo, demolib.SO, 0o644); err != nil {
		t.Fatal(err)
	}
	return demo, buildProgram(t, "hello", kern.PIE)
}

// TestCloseOrdersJIT closes every pair and every triple of (VMM, library,
// Code, unit, machine, program, slot, vmheap allocation) in every order,
// uses each closed object once, and checks no crash, the errors (each
// wrapping vmm.ErrClosed), the library's finaliser run once with its code
// mapped, aspacem in sync with the kernel and nothing of the VMM mapped.
func TestCloseOrdersJIT(t *testing.T) {
	demo, prog := lifeFiles(t)
	sizes := []int{2, 3}
	if testing.Short() {
		sizes = []int{2}
	}
	vmmtest.CloseOrders(t, lifeNames, sizes, func(t *testing.T) vmmtest.World {
		w := newLifeWorld(t, demo, prog)
		return vmmtest.World{VMM: w.v, Objects: w.objects(prog), Check: w.check}
	})
}

// TestCloseAllJIT closes all eight objects in creation order and in
// reverse, and with the VMM first and last.
func TestCloseAllJIT(t *testing.T) {
	demo, prog := lifeFiles(t)
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5, 6, 7}, {7, 6, 5, 4, 3, 2, 1, 0}, {1, 2, 3, 4, 5, 6, 7, 0}, {5, 4, 3, 2, 1, 7, 6, 0}} {
		var names []string
		for _, i := range order {
			names = append(names, lifeNames[i])
		}
		t.Run(fmt.Sprint(names), func(t *testing.T) {
			w := newLifeWorld(t, demo, prog)
			vmmtest.CloseInOrder(t, lifeNames, order, vmmtest.World{VMM: w.v, Objects: w.objects(prog), Check: w.check})
		})
	}
}

// concurrentSink is where TestCloseConcurrentJIT's finaliser writes: a
// package variable, since a local that does not escape lives on the
// goroutine's stack, which moves when it grows.
var concurrentSink int64

// TestCloseConcurrentJIT closes the VMM while 2 goroutines run the
// library's code under machines of their own and 2 emit call stubs:
// every call returns the right result or fails with ErrClosed (a Run in
// progress is waited for, never unmapped under), the library's finaliser
// runs once after the last run, and nothing of the VMM is left.
func TestCloseConcurrentJIT(t *testing.T) {
	demo := filepath.Join(t.TempDir(), demolib.Name)
	if err := os.WriteFile(demo, demolib.SO, 0o644); err != nil {
		t.Fatal(err)
	}
	want := uintptr(demolib.Expected(5, 6))
	for round := range 10 {
		v, err := vmm.New(vmm.Config{VMCodeSize: 32 << 20, VMHeapSize: 16 << 20})
		if err != nil {
			t.Fatal(err)
		}
		foot := vmmtest.FootprintOf(v)
		lib, err := privload.Load(v, demo, privload.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fn, _ := lib.Lookup(demolib.Compute)
		hook, _ := lib.Lookup(demolib.FiniHook)
		sink := &concurrentSink
		*sink = -1
		binary.LittleEndian.PutUint64(rawmem.Bytes(hook, 8), uint64(uintptr(unsafe.Pointer(sink))))
		code := vmcode.New(v)
		var runs, ops atomic.Int64
		var runMu sync.Mutex
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		fail := func(op string, err error) bool {
			if err == nil {
				return false
			}
			if !errors.Is(err, vmm.ErrClosed) {
				errs <- fmt.Errorf("round %d: %s: %w", round, op, err)
			}
			return true
		}
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if g < 2 {
					m, err := NewMachine(code, &Options{StackSize: 256 << 10, UnitSize: 64 << 10})
					if fail("NewMachine", err) {
						return
					}
					for {
						// The library counts its calls with a plain
						// increment: two runs at once could lose one,
						// as natively, and the finaliser's count must
						// be exact.
						runMu.Lock()
						got, err := m.Run(fn, 5, 6)
						if err == nil {
							runs.Add(1)
						}
						runMu.Unlock()
						if fail("Run", err) {
							return
						}
						if got != want {
							errs <- fmt.Errorf("round %d: Run = %d, want %d", round, got, want)
						}
						ops.Add(1)
						m.Flush() // translate again: more work in each Run
					}
				}
				for {
					s, err := EmitCallStub(code, fn)
					if fail("EmitCallStub", err) {
						return
					}
					fail("Stub.Free", s.Free())
					ops.Add(1)
				}
			}()
		}
		vmmtest.CloseDuring(t, v, foot, &ops, 40, wg.Wait, errs, fmt.Sprintf("round %d", round))
		if *sink != runs.Load() {
			t.Errorf("round %d: the finaliser wrote %d, want %d (the runs that completed)", round, *sink, runs.Load())
		}
	}
}
