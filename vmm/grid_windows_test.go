//go:build windows

package vmm

// The grid on the real OS: Windows, or Wine in CI (scripts/wine/test.sh).
// What the simulator's tests prove about the grid's bookkeeping, these
// prove against VirtualQuery, with real bytes: 2 GiB of 640 KiB slots
// reserved, files mapped at the exact addresses asked and read back,
// unmapped and re-reserved, the release-to-map window measured, W^X dual
// views of one section (write through one, run from the other), and
// release leaving nothing.

import (
	"bytes"
	"slices"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// gridVQ is the raw VirtualQuery.
func gridVQ(t *testing.T, addr uintptr) windows.MemoryBasicInformation {
	t.Helper()
	var m windows.MemoryBasicInformation
	if err := windows.VirtualQuery(addr, &m, unsafe.Sizeof(m)); err != nil {
		t.Fatalf("VirtualQuery(%#x): %v", addr, err)
	}
	return m
}

// MEMORY_BASIC_INFORMATION values missing from golang.org/x/sys/windows.
const (
	gridMemFree   = 0x10000
	gridMemMapped = 0x40000
)

// gridWantSlotsReserved checks with VirtualQuery that slots [k0, k1) are
// each exactly one reservation of their own. A slot may read back as
// several runs: Wine splits runs that differ only in its own page flags
// (decommitted pages beside never-committed ones).
func gridWantSlotsReserved(t *testing.T, g *grid, k0, k1 int) {
	t.Helper()
	for k := k0; k < k1; k++ {
		s0, s1 := g.slotAddr(k), g.slotEnd(k)
		a := s0
		for a < s1 {
			m := gridVQ(t, a)
			if m.State != windows.MEM_RESERVE || m.AllocationBase != s0 || m.RegionSize == 0 {
				t.Fatalf("slot %d at %#x: VirtualQuery(%#x) says state %#x base %#x alloc base %#x size %#x; want its own reservation of %#x",
					k, s0, a, m.State, m.BaseAddress, m.AllocationBase, m.RegionSize, g.slotLen(k))
			}
			a = m.BaseAddress + m.RegionSize
		}
		if a != s1 {
			t.Fatalf("slot %d at %#x: its reservation ends at %#x, want %#x", k, s0, a, s1)
		}
	}
}

// gridWantFree checks with VirtualQuery that [lo, hi) is all MEM_FREE.
func gridWantFree(t *testing.T, lo, hi uintptr) {
	t.Helper()
	for a := lo; a < hi; {
		m := gridVQ(t, a)
		if m.State != gridMemFree {
			t.Fatalf("[%#x, +%#x) is state %#x (alloc base %#x), want MEM_FREE", m.BaseAddress, m.RegionSize, m.State, m.AllocationBase)
		}
		if m.RegionSize == 0 {
			t.Fatalf("VirtualQuery(%#x): empty region", a)
		}
		a = m.BaseAddress + m.RegionSize
	}
}

// gridCheckNative compares what the grid says with what VirtualQuery
// shows over the grid's range.
func gridCheckNative(t *testing.T, g *grid, when string) {
	t.Helper()
	want, got := gridExpect(g), gridActual(t, g.os, g)
	if !slices.Equal(want, got) {
		t.Fatalf("%s: the grid says\n\t%v\nVirtualQuery shows\n\t%v", when, gridFmt(want), gridFmt(got))
	}
	if err := g.checkInvariants(); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

// gridTimerResolution returns the smallest step time.Now was seen to
// take, for the log: it is why the grid is given QPC here.
func gridTimerResolution() time.Duration {
	best := time.Duration(1 << 62)
	for range 5 {
		t0 := time.Now()
		for {
			if d := time.Since(t0); d > 0 {
				best = min(best, d)
				break
			}
		}
	}
	return best
}

func TestGridNative(t *testing.T) {
	o := osmem.Native()
	if o.Rules() != mem.RulesWindows {
		t.Skip("native backend without Windows rules")
	}
	now := gridClock()
	if now == nil {
		t.Log("QueryPerformanceCounter unavailable: timing with time.Since")
	}
	t.Logf("time.Now resolution seen here: %v", gridTimerResolution())

	g, err := newGrid(o, 2*gridGiB, 0, gridOptions{now: now})
	if err != nil {
		t.Fatal(err)
	}
	released := false
	defer func() {
		if !released {
			g.release()
		}
	}()
	st := g.Stats()
	t.Logf("2 GiB grid: %d slots of %#x at %#x, placed in %v (%d attempt(s): %v)", st.Slots, st.SlotSize, st.Base, st.PlaceTime, len(st.Attempts), st.Attempts)
	if st.Slots != 3277 {
		t.Fatalf("%d slots, want 3277", st.Slots)
	}
	gridWantSlotsReserved(t, g, 0, g.n)
	gridCheckNative(t, g, "placed")

	bigData, smallData := gridPattern(1536*gridKiB), gridPattern(64*gridKiB)
	big := gridOpen(t, o, len(bigData))
	small := gridOpen(t, o, len(smallData))

	// 1.5 MiB into three released slots, at the exact address asked.
	a := g.slotAddr(100)
	if err := g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if m := gridVQ(t, a); m.Type != gridMemMapped || m.AllocationBase != a {
		t.Fatalf("view at %#x: type %#x alloc base %#x", a, m.Type, m.AllocationBase)
	}
	if !bytes.Equal(rawmem.Bytes(a, 1536*gridKiB), bigData) {
		t.Fatal("the 1.5 MiB view does not read back as the file")
	}
	tail := a + 1536*gridKiB
	if m := gridVQ(t, tail); m.State != windows.MEM_RESERVE || m.AllocationBase != tail || tail+m.RegionSize != g.slotEnd(102) {
		t.Fatalf("tail at %#x: state %#x alloc base %#x size %#x", tail, m.State, m.AllocationBase, m.RegionSize)
	}
	// 64 KiB into one slot.
	b := g.slotAddr(200)
	if err := g.mapFile(small, 0, b, 64*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rawmem.Bytes(b, 64*gridKiB), smallData) {
		t.Fatal("the 64 KiB view does not read back as the file")
	}
	if m := gridVQ(t, b+64*gridKiB); m.State != windows.MEM_RESERVE || m.AllocationBase != b+64*gridKiB {
		t.Fatalf("64 KiB tail: state %#x alloc base %#x", m.State, m.AllocationBase)
	}
	gridCheckNative(t, g, "mapped")

	// Commit across a slot boundary: two reservations, two calls; the
	// pages hold bytes.
	c := g.slotAddr(300) + 600*gridKiB
	if err := g.commit(c, 128*gridKiB, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	buf := rawmem.Bytes(c, 128*gridKiB)
	copy(buf, bigData[:len(buf)])
	if !bytes.Equal(rawmem.Bytes(c, 128*gridKiB), bigData[:len(buf)]) {
		t.Fatal("committed pages across slots do not hold what was written")
	}
	gridCheckNative(t, g, "committed")

	// Unmap: the slots are reservations again.
	if err := g.reset(a, 3*gridSS); err != nil {
		t.Fatal(err)
	}
	if err := g.reset(b, gridSS); err != nil {
		t.Fatal(err)
	}
	if err := g.reset(g.slotAddr(300), 2*gridSS); err != nil {
		t.Fatal(err)
	}
	gridWantSlotsReserved(t, g, 0, g.n)
	gridCheckNative(t, g, "reset")

	// The window, over many maps.
	const rounds = 100
	for i := range rounds {
		k := 400 + (i%10)*3
		if err := g.mapFile(big, 0, g.slotAddr(k), 1536*gridKiB, mem.ProtRead); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		if err := g.reset(g.slotAddr(k), 3*gridSS); err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
	}
	gridWantSlotsReserved(t, g, 0, g.n)
	st = g.Stats()
	t.Logf("release-to-map window over %d maps (QPC: %v): max %v, mean %v; %d retries, %d slots lost; reset window max %v",
		st.Maps, now != nil, st.WindowMax, st.WindowTotal/time.Duration(max(st.Maps, 1)), st.MapRetries, st.Lost, st.ResetWindowMax)
	if st.Maps != rounds+2 || (now != nil && st.WindowMax <= 0) {
		t.Fatalf("stats %+v", st)
	}

	t0 := now
	if t0 == nil {
		t0 = gridMonotonic
	}
	start := t0()
	if err := g.release(); err != nil {
		t.Fatal(err)
	}
	t.Logf("release of 3,277 slots: %v", t0()-start)
	released = true
	gridWantFree(t, g.base, g.base+g.size)
}

// TestGridWXDualViews maps one pagefile-backed section twice into grid
// slots, writable and executable, writes code through the writable view
// and runs it from the executable one.
func TestGridWXDualViews(t *testing.T) {
	o := osmem.Native()
	if o.Rules() != mem.RulesWindows {
		t.Skip("native backend without Windows rules")
	}
	g, err := newGrid(o, 64*gridSS, 0, gridOptions{now: gridClock()})
	if err != nil {
		t.Fatal(err)
	}
	defer g.release()
	sec, err := o.CreateShared("reachvm-grid-wx", 64*gridKiB)
	if err != nil {
		t.Fatal(err)
	}
	defer o.CloseObject(sec)
	rw, rx := g.slotAddr(10), g.slotAddr(11)
	if err := g.mapFile(sec, 0, rw, 64*gridKiB, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	if err := g.mapFile(sec, 0, rx, 64*gridKiB, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	if m := gridVQ(t, rw); m.Protect != windows.PAGE_READWRITE {
		t.Fatalf("writable view protection %#x", m.Protect)
	}
	if m := gridVQ(t, rx); m.Protect != windows.PAGE_EXECUTE_READ {
		t.Fatalf("executable view protection %#x", m.Protect)
	}
	// The executable view can never be made writable: Windows fixed its
	// access when it was mapped.
	if err := g.protect(rx, 4*gridKiB, mem.ProtRWX); err == nil {
		t.Fatal("the executable view was made writable")
	}
	// mov eax, imm32; ret
	code := rawmem.Bytes(rw, 6)
	for _, want := range []uintptr{42, 7} {
		copy(code, []byte{0xb8, byte(want), 0, 0, 0, 0xc3})
		if got, _, _ := syscall.SyscallN(rx); got != want {
			t.Fatalf("code written through the writable view returned %d from the executable view, want %d", got, want)
		}
	}
	gridCheckNative(t, g, "dual views")
	if err := g.reset(rw, 2*gridSS); err != nil {
		t.Fatal(err)
	}
	gridWantSlotsReserved(t, g, 0, g.n)
	if err := g.release(); err != nil {
		t.Fatal(err)
	}
	gridWantFree(t, g.base, g.base+g.size)
}
