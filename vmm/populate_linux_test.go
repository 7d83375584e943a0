package vmm_test

import (
	"errors"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// threadFaults returns the minor page faults of the calling OS thread so
// far.
//
// Preconditions: the goroutine is locked to its OS thread.
func threadFaults(t testing.TB) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		t.Fatal(err)
	}
	return ru.Minflt
}

// touchUnit writes a byte to each of the first n pages of a W^X unit
// through its writable view, then reads each through its executable
// view, as the jit writes a fragment and runs it.
func touchUnit(v *vmm.VMM, s *vmm.Slot, n int) byte {
	rw, _ := v.Writable(s.Base())
	var sum byte
	for i := range n {
		rawmem.Bytes(rw+uintptr(i)*mem.PageSize, 1)[0] = byte(i) | 1
	}
	for i := range n {
		sum += rawmem.Bytes(s.Base()+uintptr(i)*mem.PageSize, 1)[0]
	}
	return sum
}

// newUnit reserves and commits a W^X unit of size bytes.
func newUnit(t testing.TB, v *vmm.VMM, size uintptr) *vmm.Slot {
	t.Helper()
	s, err := v.ReserveUnit(size, "test unit")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPopulate checks that a populated W^X unit's pages are written
// through the writable view and read through the executable one without
// a page fault each, that their contents stay, that aspacem still agrees
// with the kernel, and that reserved pages are refused.
func TestPopulate(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true, WX: vmm.WXOn})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	const pages = 32
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	plain := newUnit(t, v, pages*mem.PageSize)
	before := threadFaults(t)
	touchUnit(v, plain, pages)
	plainFaults := threadFaults(t) - before

	s := newUnit(t, v, pages*mem.PageSize)
	rw, _ := v.Writable(s.Base())
	rawmem.Bytes(rw, 4)[0] = 0xc3
	if err := s.Populate(s.Base(), s.Size(), vmm.ViewOwn|vmm.ViewWritable); err != nil {
		t.Fatal(err)
	}
	if got := rawmem.Bytes(s.Base(), 1)[0]; got != 0xc3 {
		t.Fatalf("populating changed the first byte to %#x", got)
	}
	before = threadFaults(t)
	touchUnit(v, s, pages)
	popFaults := threadFaults(t) - before
	// Without populating, every page faults in the writable view (and
	// the executable view's reads fault a few times, each mapping up to
	// 16 pages around); populated, none should. The bounds leave room
	// for a fault of the Go runtime's on this thread.
	if plainFaults < pages {
		t.Errorf("touching %d fresh pages took %d faults: the measure does not see them", pages, plainFaults)
	}
	if popFaults > 4 {
		t.Errorf("touching %d populated pages took %d faults (%d unpopulated)", pages, popFaults, plainFaults)
	}
	t.Logf("%d pages written and read: %d faults unpopulated, %d populated", pages, plainFaults, popFaults)
	vmmtest.SyncCheck(t, v, "after populating")

	r, err := v.ReserveUnit(mem.PageSize, "reserved unit")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Populate(r.Base(), r.Size(), vmm.ViewOwn|vmm.ViewWritable); err == nil {
		t.Error("populating a reserved page succeeded")
	}
	if err := r.Release(); err != nil {
		t.Fatal(err)
	}
	if err := r.Populate(r.Base(), r.Size(), vmm.ViewOwn); !errors.Is(err, vmm.ErrClosed) {
		t.Errorf("populating a released slot: %v, want ErrClosed", err)
	}
}

// TestPopulateSimulated checks that populating on a backend that cannot
// (the simulator) is no error and changes nothing.
func TestPopulateSimulated(t *testing.T) {
	v, err := vmm.New(vmm.Config{OS: sim.New(mem.RulesLinux, sim.Options{}), VMCodeSize: 16 << 20, NoVMHeap: true, WX: vmm.WXOn})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	s, err := v.ReserveUnit(64<<10, "test unit")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(s.Base(), s.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	before := v.Space().Segments(s.Base(), s.Base()+s.Size())
	if err := s.Populate(s.Base(), s.Size(), vmm.ViewOwn|vmm.ViewWritable); err != nil {
		t.Fatal(err)
	}
	after := v.Space().Segments(s.Base(), s.Base()+s.Size())
	if len(before) != len(after) {
		t.Fatalf("segments %v, then %v", before, after)
	}
	for i := range before {
		if before[i] != after[i] {
			t.Fatalf("segments %v, then %v", before, after)
		}
	}
}

// BenchmarkPopulate writes and runs 64 KiB of fresh W^X vmcode (a byte
// a page through the writable view, then a read through the executable
// view), as the jit fills the next chunk of a unit: with the page faults
// that takes (fault), or populating the chunk first (populate). Each op
// takes the next chunk of a 32 MiB unit, replaced (timer stopped) when it
// is used up.
func BenchmarkPopulate(b *testing.B) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 256 << 20, NoVMHeap: true, WX: vmm.WXOn})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	const chunk, unit = 64 << 10, 32 << 20
	for _, populate := range []bool{false, true} {
		name := "fault"
		if populate {
			name = "populate"
		}
		b.Run(name, func(b *testing.B) {
			s, off := newUnit(b, v, unit), uintptr(0)
			for b.Loop() {
				if off == unit {
					b.StopTimer()
					if err := s.Release(); err != nil {
						b.Fatal(err)
					}
					s, off = newUnit(b, v, unit), 0
					b.StartTimer()
				}
				at := s.Base() + off
				if populate {
					if err := s.Populate(at, chunk, vmm.ViewOwn|vmm.ViewWritable); err != nil {
						b.Fatal(err)
					}
				}
				rw, _ := v.Writable(at)
				for i := uintptr(0); i < chunk; i += mem.PageSize {
					rawmem.Bytes(rw+i, 1)[0] = 1
				}
				for i := uintptr(0); i < chunk; i += mem.PageSize {
					_ = rawmem.Bytes(at+i, 1)[0]
				}
				off += chunk
			}
			if err := s.Release(); err != nil {
				b.Fatal(err)
			}
		})
	}
}
