package vmm_test

import (
	"runtime"
	"runtime/debug"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
)

// TestGoHeapRange checks the stretch PopulateGoHeap populates: whole
// pages, cut at the end of the runtime's 4 MiB heap chunk.
func TestGoHeapRange(t *testing.T) {
	const top = ^uintptr(0) &^ (mem.PageSize - 1)
	for _, c := range []struct {
		at, size, from, to uintptr
	}{
		{0xc000_0123, 0x2000, 0xc000_0000, 0xc000_3000},
		{0xc000_1000, 0x1000, 0xc000_1000, 0xc000_2000},
		{0xc03f_ff00, 1 << 20, 0xc03f_f000, 0xc040_0000},
		{0xc040_0000, 1 << 20, 0xc040_0000, 0xc050_0000},
		{0xc000_0000, 0, 0xc000_0000, 0xc000_0000},
		{^uintptr(0) - 10, 100, top, top},
		{0x7fff_fff0_0010, ^uintptr(0), 0x7fff_fff0_0000, 0x8000_0000_0000},
	} {
		from, to := vmm.GoHeapRange(c.at, c.size)
		if from != c.from || to != c.to {
			t.Errorf("GoHeapRange(%#x, %#x) = [%#x, %#x), want [%#x, %#x)", c.at, c.size, from, to, c.from, c.to)
		}
	}
}

// TestPopulateGoHeap checks that PopulateGoHeap makes the pages of a Go
// heap object resident, as mincore sees them, without changing them. The
// page faults that writing them then takes are logged, not checked:
// anything else the test binary does meanwhile (a fork that makes every
// page copy-on-write, the collector) can add to them.
func TestPopulateGoHeap(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	const size = 1 << 20
	b := make([]byte, size) // a large object: a span of its own
	at := uintptr(unsafe.Pointer(&b[0]))
	b[0] = 0x5a
	from, to := vmm.GoHeapRange(at, size)
	resident := func() int {
		vec := make([]byte, (to-from)/mem.PageSize)
		if _, _, e := unix.Syscall(unix.SYS_MINCORE, from, to-from, uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
			t.Fatalf("mincore: %v", e)
		}
		n := 0
		for _, x := range vec {
			n += int(x & 1)
		}
		return n
	}
	pages := int((to - from) / mem.PageSize)
	before := resident()
	if end, err := v.PopulateGoHeap(at, size); err != nil {
		t.Fatal(err)
	} else if end != to {
		t.Errorf("PopulateGoHeap(%#x, %#x) ended at %#x, want %#x", at, uintptr(size), end, to)
	}
	if got := resident(); got != pages {
		t.Errorf("%d of the %d pages [%#x, %#x) resident after populating (%d before)", got, pages, from, to, before)
	}
	if b[0] != 0x5a {
		t.Errorf("populating changed the object's first byte to %#x", b[0])
	}
	faults := threadFaults(t)
	for i := uintptr(mem.PageSize); i < size && at+i < to; i += mem.PageSize {
		b[i] = byte(i >> 12)
	}
	t.Logf("[%#x, %#x): %d pages, %d resident before populating; writing them took %d faults", from, to, pages, before, threadFaults(t)-faults)
	runtime.KeepAlive(b)
}

// BenchmarkGoHeapPages writes a byte to each page of a fresh 1 MiB Go
// heap object, as the translator's records fill new heap pages: "fault"
// takes the page faults, "populate" calls PopulateGoHeap first. The heap
// is given back to the OS between iterations (untimed), so that each
// object's pages are new.
func BenchmarkGoHeapPages(b *testing.B) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true})
	if err != nil {
		b.Fatal(err)
	}
	defer v.Close()
	const size = 1 << 20
	for _, populate := range []bool{false, true} {
		name := "fault"
		if populate {
			name = "populate"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				debug.FreeOSMemory()
				b.StartTimer()
				p := make([]byte, size)
				if populate {
					_, _ = v.PopulateGoHeap(uintptr(unsafe.Pointer(&p[0])), size)
				}
				for i := 0; i < size; i += mem.PageSize {
					p[i] = 1
				}
				runtime.KeepAlive(p)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(size/mem.PageSize), "ns/page")
		})
	}
}
