package vmm

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

var procK32GetProcessMemoryInfo = windows.NewLazySystemDLL("kernel32.dll").NewProc("K32GetProcessMemoryInfo")

// processMemoryCounters is PROCESS_MEMORY_COUNTERS_EX.
type processMemoryCounters struct {
	CB                         uint32
	PageFaultCount             uint32
	PeakWorkingSetSize         uintptr
	WorkingSetSize             uintptr
	QuotaPeakPagedPoolUsage    uintptr
	QuotaPagedPoolUsage        uintptr
	QuotaPeakNonPagedPoolUsage uintptr
	QuotaNonPagedPoolUsage     uintptr
	PagefileUsage              uintptr
	PeakPagefileUsage          uintptr
	PrivateUsage               uintptr
}

// gridCharge returns the process's PagefileUsage and PrivateUsage (the
// commit charge as Windows reports it; Wine 8.0 does not count sections
// in either, SEC_COMMIT or not: measured).
func gridCharge(t *testing.T) (pagefile, private uintptr) {
	t.Helper()
	var c processMemoryCounters
	c.CB = uint32(unsafe.Sizeof(c))
	if r, _, err := procK32GetProcessMemoryInfo.Call(uintptr(windows.CurrentProcess()), uintptr(unsafe.Pointer(&c)), uintptr(c.CB)); r == 0 {
		t.Fatalf("GetProcessMemoryInfo: %v", err)
	}
	return c.PagefileUsage, c.PrivateUsage
}

// gridCommitted returns the bytes VirtualQuery reports MEM_COMMIT in
// [lo, hi): for a view of a pagefile section, the section's pages charged
// against the commit limit.
func gridCommitted(t *testing.T, lo, hi uintptr) uintptr {
	t.Helper()
	var n uintptr
	for a := lo; a < hi; {
		m := gridVQ(t, a)
		end := min(m.BaseAddress+m.RegionSize, hi)
		if m.State == windows.MEM_COMMIT {
			n += end - a
		}
		a = end
	}
	return n
}

// TestGridWXCommitCharge measures what W^X vmcode of 2 GiB commits on the
// native backend: the SEC_RESERVE section commits nothing when vmcode is
// made and one grid slot per unit, where the SEC_COMMIT section it replaces
// committed all 2 GiB at once. The process counters are logged too.
func TestGridWXCommitCharge(t *testing.T) {
	o := osmem.Native()
	if o.Rules() != mem.RulesWindows {
		t.Skip("native backend without Windows rules")
	}
	const size = DefaultVMCodeSize
	pf0, pr0 := gridCharge(t)
	v, err := New(Config{VMCodeSize: size, NoVMHeap: true, WX: WXOn})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	pf1, pr1 := gridCharge(t)
	rw, _ := v.WritableView()
	got := gridCommitted(t, rw, rw+size)
	charge, _ := v.SectionCharge()
	t.Logf("W^X vmcode (SEC_RESERVE), just made: section committed %d KiB (SectionCharge %d KiB); PagefileUsage %+d KiB, PrivateUsage %+d KiB",
		got>>10, charge>>10, (int64(pf1)-int64(pf0))>>10, (int64(pr1)-int64(pr0))>>10)
	if got != 0 || charge != 0 {
		t.Errorf("a new W^X vmcode commits %#x bytes of its section (SectionCharge %#x), want 0", got, charge)
	}
	u, err := v.ReserveUnit(4096, "fcache")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	got = gridCommitted(t, rw, rw+size)
	charge, _ = v.SectionCharge()
	t.Logf("after one unit: section committed %d KiB (SectionCharge %d KiB)", got>>10, charge>>10)
	if got != DefaultGridSlotSize || charge != got {
		t.Errorf("one unit commits %#x bytes of the section (SectionCharge %#x), want one slot, %#x", got, charge, DefaultGridSlotSize)
	}
	if err := u.Release(); err != nil {
		t.Fatal(err)
	}

	// What the SEC_COMMIT section of the same size commits (the backing
	// before SEC_RESERVE).
	pf0, pr0 = gridCharge(t)
	obj, err := o.CreateShared("reachvm-charge", size)
	if err != nil {
		t.Fatal(err)
	}
	defer o.CloseObject(obj)
	view, err := o.MapObject(obj, 0, 0, size, mem.ProtRW, mem.Hint)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Unmap(view, size)
	pf1, pr1 = gridCharge(t)
	t.Logf("SEC_COMMIT section of the same size, mapped: committed %d KiB; PagefileUsage %+d KiB, PrivateUsage %+d KiB",
		gridCommitted(t, view, view+size)>>10, (int64(pf1)-int64(pf0))>>10, (int64(pr1)-int64(pr0))>>10)
}

// BenchmarkGridUnits is the W^X on/off comparison on the native Windows
// backend: per iteration, one small code unit is reserved, committed,
// written (256 bytes, through the writable view under W^X; in place and
// then sealed read-execute without), read back at its executable address,
// and released. The W^X designs measured, in one run against wx=off:
//
//   - wx=on: released units kept idle (gridwx_idle.go), the default: the
//     next unit takes the idle one over with no OS call;
//   - wx=on/teardown: no idle units (idleMax 0), the design before them:
//     each release closes the alias, discards the pages, unmaps the
//     executable view and re-reserves the slot, each commit does it all
//     the other way;
//   - wx=on/idle-noaccess: idle units whose executable view is made
//     PAGE_NOACCESS while idle and read-execute again when taken over
//     (two VirtualProtects a unit), the variant that would make a stale
//     jump into a freed unit fault rather than hit int3.
func BenchmarkGridUnits(b *testing.B) {
	if osmem.Native().Rules() != mem.RulesWindows {
		b.Skip("native backend without Windows rules")
	}
	for _, c := range []struct {
		name     string
		mode     WXMode
		idleMax  int
		noaccess bool
	}{
		{"wx=on", WXOn, gridIdleMax, false},
		{"wx=on/teardown", WXOn, 0, false},
		{"wx=on/idle-noaccess", WXOn, gridIdleMax, true},
		{"wx=off", WXOff, 0, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			v, err := New(Config{VMCodeSize: 64 << 20, NoVMHeap: true, WX: c.mode})
			if err != nil {
				b.Fatal(err)
			}
			defer v.Close()
			d, _ := v.back.(*gridDual)
			if d != nil {
				d.idleMax = c.idleMax
			}
			code := make([]byte, 256)
			for i := range code {
				code[i] = 0xc3
			}
			wx := v.WX()
			for b.Loop() {
				u, err := v.ReserveUnit(uintptr(len(code)), "fcache")
				if err != nil {
					b.Fatal(err)
				}
				prot := mem.ProtRX
				if !wx {
					prot = mem.ProtRW
				}
				if c.noaccess && d.isIdle(u.Base()) {
					if err := d.g.protect(u.Base(), u.Size(), mem.ProtRX); err != nil {
						b.Fatal(err)
					}
				}
				if err := u.Commit(u.Base(), u.Size(), prot); err != nil {
					b.Fatal(err)
				}
				w, _ := v.Writable(u.Base())
				gridWrite(w, code)
				if !wx {
					if err := u.Protect(u.Base(), u.Size(), mem.ProtRX); err != nil {
						b.Fatal(err)
					}
				}
				if rawmem.Bytes(u.Base(), 1)[0] != 0xc3 {
					b.Fatal("code not visible at the executable address")
				}
				base, size := u.Base(), u.Size()
				if err := u.Release(); err != nil {
					b.Fatal(err)
				}
				if c.noaccess && d.isIdle(base) {
					if err := d.g.protect(base, size, mem.ProtNone); err != nil {
						b.Fatal(err)
					}
				}
			}
			if d != nil {
				b.ReportMetric(float64(d.idleBytes()>>10), "idle-KiB")
			}
		})
	}
}

// isIdle reports whether the unit at a is idle.
func (d *gridDual) isIdle(a uintptr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := d.units[a]
	return u != nil && u.idle
}

// gridWrite copies code to w. It is a function of its own because
// inlining it into BenchmarkGridUnits, with the copy's length known
// constant, crashes the Go 1.26.8 compiler ("disjointTypes: one of
// arguments is not a pointer").
//
//go:noinline
func gridWrite(w uintptr, code []byte) { copy(rawmem.Bytes(w, uintptr(len(code))), code) }
