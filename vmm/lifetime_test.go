package vmm_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// smallConfig is a VMM small enough to make hundreds of in one test.
func smallConfig() vmm.Config {
	return vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: 16 << 20}
}

// TestCloseStageOrder tracks dependents of every stage, interleaved, and
// checks Close calls them by stage and, within one, latest first; that a
// closer may release its slot (a call back into the VMM while Close runs);
// that a closer's error is reported without stopping Close; that untrack
// removes a dependent; and that Track fails once Close started.
func TestCloseStageOrder(t *testing.T) {
	v, err := vmm.New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	foot := vmmtest.FootprintOf(v)
	var got []string
	boom := errors.New("boom")
	track := func(stage vmm.Stage, name string, fail bool) func() {
		s, err := v.ReserveSlot(4096, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
			t.Fatal(err)
		}
		untrack, err := v.Track(stage, name, func() error {
			got = append(got, name)
			if err := s.Release(); err != nil {
				return err
			}
			if fail {
				return boom
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return untrack
	}
	track(vmm.StageData, "data1", false)
	track(vmm.StageCode, "code1", false)
	track(vmm.StageRun, "run1", false)
	track(vmm.StageLoad, "load1", true)
	untrack := track(vmm.StageRun, "gone", false)
	track(vmm.StageRun, "run2", false)
	track(vmm.StageLoad, "load2", false)
	track(vmm.StageData, "data2", false)
	untrack()
	untrack() // harmless twice
	want := []string{"run2", "run1", "load2", "load1", "code1", "data2", "data1"}
	if d := v.Dependents(); !slices.Equal(d, want) {
		t.Errorf("Dependents() = %v, want %v", d, want)
	}
	if _, err := v.Track(vmm.StageData, "nil", nil); err == nil {
		t.Error("Track with a nil closer succeeded")
	}
	if _, err := v.Track(vmm.StageData+1, "bad stage", func() error { return nil }); err == nil {
		t.Error("Track with an unknown stage succeeded")
	}
	foot.Mark(v)
	err = v.Close()
	if !errors.Is(err, boom) {
		t.Errorf("Close: %v, want the load1 closer's error", err)
	}
	if !slices.Equal(got, want) {
		t.Errorf("closers ran in order %v, want %v", got, want)
	}
	if _, err := v.Track(vmm.StageData, "late", func() error { return nil }); !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("Track after Close: %v, want ErrClosed", err)
	}
	if err := v.Close(); !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
	vmmtest.Gone(t, v, foot, "after Close")
}

// TestCloseWhileClosing checks what a closer sees while Close runs: new
// slots, vmheap allocations and Track are refused with ErrClosed, while
// the slots and allocations it holds can still be released.
func TestCloseWhileClosing(t *testing.T) {
	v, err := vmm.New(smallConfig())
	if err != nil {
		t.Fatal(err)
	}
	foot := vmmtest.FootprintOf(v)
	addr, err := v.HeapAlloc(4096)
	if err != nil {
		t.Fatal(err)
	}
	var inside []error
	if _, err := v.Track(vmm.StageData, "probe", func() error {
		_, err := v.ReserveSlot(4096, "new")
		inside = append(inside, vmmtest.WantClosed("ReserveSlot while closing", err))
		_, err = v.HeapAlloc(4096)
		inside = append(inside, vmmtest.WantClosed("HeapAlloc while closing", err))
		_, err = v.Track(vmm.StageData, "new", func() error { return nil })
		inside = append(inside, vmmtest.WantClosed("Track while closing", err))
		return v.HeapFree(addr, 4096)
	}); err != nil {
		t.Fatal(err)
	}
	foot.Mark(v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(inside...); err != nil {
		t.Error(err)
	}
	vmmtest.Gone(t, v, foot, "after Close")
}

// vmmObject is the VMM itself as a close-order test object.
func vmmObject(v *vmm.VMM) vmmtest.Object {
	return vmmtest.Object{
		Name:  "vmm",
		Close: v.Close,
		Use: func() error {
			_, err := v.ReserveSlot(4096, "late")
			_, herr := v.HeapAlloc(4096)
			_, terr := v.Track(vmm.StageData, "late", func() error { return nil })
			var zeros error
			if n := v.Trimmable(); n != 0 {
				zeros = fmt.Errorf("Trimmable after Close = %#x, want 0", n)
			}
			if b, n := v.VMHeap(); b != 0 || n != 0 {
				zeros = errors.Join(zeros, fmt.Errorf("VMHeap after Close = %#x, %#x, want zeros", b, n))
			}
			return errors.Join(
				vmmtest.WantClosed("ReserveSlot", err),
				vmmtest.WantClosed("HeapAlloc", herr),
				vmmtest.WantClosed("Track", terr),
				vmmtest.WantClosed("Trim", v.Trim()),
				vmmtest.WantClosed("second Close", v.Close()),
				zeros)
		},
	}
}

// slotObject reserves a slot (a unit if unit), commits it and returns it
// as a close-order test object: closing releases it, using it commits and
// releases again.
func slotObject(t *testing.T, v *vmm.VMM, name string, unit bool) vmmtest.Object {
	t.Helper()
	reserve := v.ReserveSlot
	if unit {
		reserve = v.ReserveUnit
	}
	s, err := reserve(64<<10, name)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	return vmmtest.Object{
		Name:  name,
		Close: s.Release,
		Use: func() error {
			return errors.Join(
				vmmtest.WantClosed("Commit", s.Commit(s.Base(), s.Size(), mem.ProtRW)),
				vmmtest.WantClosed("Protect", s.Protect(s.Base(), s.Size(), mem.ProtRead)),
				vmmtest.WantClosed("Decommit", s.Decommit(s.Base(), s.Size())),
				vmmtest.WantClosed("second Release", s.Release()))
		},
	}
}

// heapObject allocates vmheap as a close-order test object: closing frees
// it; a second free fails, with ErrClosed once the VMM is closed (while it
// is open, the range is simply not allocated).
func heapObject(t *testing.T, v *vmm.VMM) vmmtest.Object {
	t.Helper()
	addr, err := v.HeapAlloc(8192)
	if err != nil {
		t.Fatal(err)
	}
	return vmmtest.Object{
		Name:  "heap",
		Close: func() error { return v.HeapFree(addr, 8192) },
		Use: func() error {
			err := v.HeapFree(addr, 8192)
			if err == nil {
				return errors.New("a second HeapFree succeeded")
			}
			return nil
		},
	}
}

// embedderObject is an embedder's own object tracked by the VMM: a slot
// it releases at its Close, which the VMM's Close calls if it comes first.
func embedderObject(t *testing.T, v *vmm.VMM) vmmtest.Object {
	t.Helper()
	s, err := v.ReserveSlot(4096, "embedder")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	closed := false
	var untrack func()
	closeIt := func() error {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return fmt.Errorf("embedder: %w", vmm.ErrClosed)
		}
		closed = true
		untrack()
		return s.Release()
	}
	if untrack, err = v.Track(vmm.StageData, "embedder", closeIt); err != nil {
		t.Fatal(err)
	}
	return vmmtest.Object{
		Name:  "embedder",
		Close: closeIt,
		Use:   func() error { return vmmtest.WantClosed("second Close", closeIt()) },
	}
}

// TestCloseOrdersVMM closes a VMM, a slot, a unit, a vmheap allocation and
// an embedder's tracked object in every order of every two, three and all
// five, on the real kernel.
func TestCloseOrdersVMM(t *testing.T) {
	names := []string{"vmm", "slot", "unit", "heap", "embedder"}
	vmmtest.CloseOrders(t, names, []int{2, 3, 5}, func(t *testing.T) vmmtest.World {
		v, err := vmm.New(smallConfig())
		if err != nil {
			t.Fatal(err)
		}
		return vmmtest.World{VMM: v, Objects: []vmmtest.Object{
			vmmObject(v), slotObject(t, v, "slot", false), slotObject(t, v, "unit", true), heapObject(t, v), embedderObject(t, v),
		}}
	})
}

// TestCloseOrdersSimWindows is TestCloseOrdersVMM's pairs under Windows
// rules (the grid, with W^X's pagefile section), on the simulator.
func TestCloseOrdersSimWindows(t *testing.T) {
	names := []string{"vmm", "slot", "unit", "heap", "embedder"}
	vmmtest.CloseOrders(t, names, []int{2, 3}, func(t *testing.T) vmmtest.World {
		cfg := smallConfig()
		cfg.OS = sim.New(mem.RulesWindows, sim.Options{})
		cfg.VMCodeSize = 64 * 640 << 10
		v, err := vmm.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return vmmtest.World{VMM: v, Objects: []vmmtest.Object{
			vmmObject(v), slotObject(t, v, "slot", false), slotObject(t, v, "unit", true), heapObject(t, v), embedderObject(t, v),
		}}
	})
}

// TestCloseConcurrentVMM closes a VMM while 6 goroutines reserve, commit,
// protect and release slots, allocate and free vmheap and track
// dependents: every call succeeds or fails with ErrClosed, and afterwards
// nothing of the VMM is left.
func TestCloseConcurrentVMM(t *testing.T) {
	for round := range 20 {
		v, err := vmm.New(smallConfig())
		if err != nil {
			t.Fatal(err)
		}
		foot := vmmtest.FootprintOf(v)
		var wg sync.WaitGroup
		var ops atomic.Int64
		errs := make(chan error, 64)
		start := make(chan struct{})
		note := func(op string, err error) bool {
			if err == nil {
				return true
			}
			if !errors.Is(err, vmm.ErrClosed) {
				errs <- fmt.Errorf("round %d: %s: %w", round, op, err)
			}
			return false
		}
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; ; i++ {
					s, err := v.ReserveSlot(uintptr(1+i%4)<<16, fmt.Sprintf("g%d", g))
					if !note("ReserveSlot", err) {
						return
					}
					ok := note("Commit", s.Commit(s.Base(), s.Size(), mem.ProtRW)) &&
						note("Protect", s.Protect(s.Base(), s.Size(), mem.ProtRead))
					if _, err := v.Track(vmm.StageData, "probe", func() error { return nil }); err == nil && !ok {
						errs <- fmt.Errorf("round %d: Track succeeded after a slot operation failed with ErrClosed", round)
					}
					rok := note("Release", s.Release())
					ops.Add(1)
					a, err := v.HeapAlloc(4096)
					if note("HeapAlloc", err) {
						note("HeapFree", v.HeapFree(a, 4096))
					}
					if !ok || !rok {
						return
					}
				}
			}()
		}
		close(start)
		// Close once the goroutines are well under way.
		vmmtest.CloseDuring(t, v, foot, &ops, 60, wg.Wait, errs, fmt.Sprintf("round %d", round))
	}
}
