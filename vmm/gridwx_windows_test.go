package vmm

import (
	"syscall"
	"testing"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// gridWXNoWriteExec walks [lo, hi) with VirtualQuery and fails if any page
// is writable and executable (or may become so on write: WRITECOPY).
func gridWXNoWriteExec(t *testing.T, lo, hi uintptr, when string) {
	t.Helper()
	for a := lo; a < hi; {
		m := gridVQ(t, a)
		switch m.Protect &^ (windows.PAGE_GUARD | windows.PAGE_NOCACHE | windows.PAGE_WRITECOMBINE) {
		case windows.PAGE_EXECUTE_READWRITE, windows.PAGE_EXECUTE_WRITECOPY:
			t.Fatalf("%s: [%#x, +%#x) is writable and executable (protect %#x)", when, m.BaseAddress, m.RegionSize, m.Protect)
		}
		if m.RegionSize == 0 {
			t.Fatalf("%s: VirtualQuery(%#x) returned an empty region", when, a)
		}
		a = m.BaseAddress + m.RegionSize
	}
}

// TestGridWXNative runs W^X vmcode on the native Windows backend (Wine):
// code emitted through the writable view runs from the executable one,
// patching it through the writable view changes what runs, no page of
// vmcode or its alias is ever writable and executable, SyncCheck is exact,
// reused slots read zero, and Close leaves nothing.
func TestGridWXNative(t *testing.T) {
	o := osmem.Native()
	if o.Rules() != mem.RulesWindows {
		t.Skip("native backend without Windows rules")
	}
	v, err := New(Config{VMCodeSize: 64 << 20, NoVMHeap: true, WX: WXOn})
	if err != nil {
		t.Fatal(err)
	}
	if !v.WX() {
		t.Fatal("WXOn gave no W^X")
	}
	base, size := v.VMCode()
	rw, _ := v.WritableView()
	check := func(when string) {
		t.Helper()
		gridWXNoWriteExec(t, base, base+size, when)
		gridWXNoWriteExec(t, rw, rw+size, when)
		mism, err := v.Space().SyncCheck(o)
		if err != nil {
			t.Fatalf("%s: SyncCheck: %v", when, err)
		}
		for _, m := range mism {
			t.Errorf("%s: %v", when, m)
		}
		if len(mism) > 0 {
			t.FailNow()
		}
	}
	check("new")
	var units []*Slot
	for i := 0; i < 3; i++ {
		u, err := v.ReserveUnit(4096, "fcache")
		if err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
			t.Fatal(err)
		}
		if err := u.Commit(u.Base(), u.Size(), mem.ProtRWX); err == nil {
			t.Fatal("an rwx commit succeeded")
		}
		units = append(units, u)
	}
	check("units committed")
	for i, u := range units {
		if m := gridVQ(t, u.Base()); m.Protect != windows.PAGE_EXECUTE_READ {
			t.Fatalf("unit %d: executable view protection %#x", i, m.Protect)
		}
		w, ok := v.Writable(u.Base())
		if !ok {
			t.Fatal("no writable address")
		}
		if m := gridVQ(t, w); m.Protect != windows.PAGE_READWRITE {
			t.Fatalf("unit %d: writable view protection %#x", i, m.Protect)
		}
		// mov eax, imm32; ret
		code := rawmem.Bytes(w, 6)
		for _, want := range []uintptr{uintptr(40 + i), 7} {
			copy(code, []byte{0xb8, byte(want), 0, 0, 0, 0xc3})
			if got, _, _ := syscall.SyscallN(u.Base()); got != want {
				t.Fatalf("unit %d: code written at %#x returned %d from %#x, want %d", i, w, got, u.Base(), want)
			}
		}
		// The end of a unit too.
		end := u.Size() - 6
		copy(rawmem.Bytes(w+end, 6), []byte{0xb8, 99, 0, 0, 0, 0xc3})
		if got, _, _ := syscall.SyscallN(u.Base() + end); got != 99 {
			t.Fatalf("unit %d: code at the end returned %d", i, got)
		}
	}
	check("code written and run")
	// Free the middle unit: it is kept idle, both views open, filled
	// with int3 so that a stale jump into it traps.
	mid := units[1].Base()
	if err := units[1].Release(); err != nil {
		t.Fatal(err)
	}
	// 0x40000 is MEM_MAPPED.
	if m := gridVQ(t, mid); m.State != windows.MEM_COMMIT || m.Protect != windows.PAGE_EXECUTE_READ || m.Type != 0x40000 {
		t.Fatalf("freed unit, idle: state %#x, protection %#x, type %#x", m.State, m.Protect, m.Type)
	}
	if w, _ := v.Writable(mid); gridVQ(t, w).Protect != windows.PAGE_READWRITE {
		t.Fatalf("idle unit's writable view protection %#x", gridVQ(t, w).Protect)
	}
	for i, b := range rawmem.Bytes(mid, units[1].Size()) {
		if b != 0xcc {
			t.Fatalf("byte %d of an idle unit is %#x, want int3", i, b)
		}
	}
	check("unit freed")
	// Trimmed, it is torn down: reserved again, its alias closed.
	if err := v.Trim(); err != nil {
		t.Fatal(err)
	}
	if m := gridVQ(t, mid); m.State != windows.MEM_RESERVE {
		t.Fatalf("trimmed unit: state %#x", m.State)
	}
	if w, _ := v.Writable(mid); gridVQ(t, w).Protect != windows.PAGE_NOACCESS {
		t.Fatalf("trimmed unit's writable view protection %#x", gridVQ(t, w).Protect)
	}
	check("idle unit trimmed")
	u, err := v.ReserveUnit(4096, "fcache")
	if err != nil {
		t.Fatal(err)
	}
	if u.Base() != mid {
		// The allocator takes the most recently freed extent of the
		// request's size class (extent.go), the slot just freed; without
		// reuse the zero check below would test a fresh slot.
		t.Fatalf("the slot was not reused (%#x, then %#x)", mid, u.Base())
	}
	if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	for i, b := range rawmem.Bytes(u.Base(), u.Size()) {
		if b != 0 {
			t.Fatalf("byte %d of a reused unit is %#x", i, b)
		}
	}
	check("unit reused")
	// Released and taken over while idle: zero again, and runs new code.
	if err := u.Release(); err != nil {
		t.Fatal(err)
	}
	if u, err = v.ReserveUnit(4096, "fcache"); err != nil || u.Base() != mid {
		t.Fatalf("the idle unit was not taken over: %v, %#x", err, u.Base())
	}
	if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	for i, b := range rawmem.Bytes(u.Base(), u.Size()) {
		if b != 0 {
			t.Fatalf("byte %d of an idle unit taken over is %#x", i, b)
		}
	}
	w, _ := v.Writable(u.Base())
	copy(rawmem.Bytes(w, 6), []byte{0xb8, 77, 0, 0, 0, 0xc3})
	if got, _, _ := syscall.SyscallN(u.Base()); got != 77 {
		t.Fatalf("code in an idle unit taken over returned %d, want 77", got)
	}
	check("idle unit taken over")
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	gridWantFree(t, base, base+size)
	gridWantFree(t, rw, rw+size)
}

// TestGridWXNativeDefaultSize makes the default-size vmcode (2 GiB) W^X (WXOn) on the
// native Windows backend: the section and its writable view are vmcode's
// size; a unit runs code and Close leaves nothing.
func TestGridWXNativeDefaultSize(t *testing.T) {
	o := osmem.Native()
	if o.Rules() != mem.RulesWindows {
		t.Skip("native backend without Windows rules")
	}
	now := gridClock()
	if now == nil {
		now = gridMonotonic
	}
	t0 := now()
	v, err := New(Config{NoVMHeap: true, WX: WXOn})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("New: %v, placement %+v", now()-t0, v.Placement())
	if !v.WX() {
		t.Fatal("WXOn gave no W^X under Windows rules")
	}
	base, size := v.VMCode()
	rw, _ := v.WritableView()
	u, err := v.ReserveUnit(4096, "fcache")
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Commit(u.Base(), u.Size(), mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	w, _ := v.Writable(u.Base())
	copy(rawmem.Bytes(w, 6), []byte{0xb8, 5, 0, 0, 0, 0xc3})
	if got, _, _ := syscall.SyscallN(u.Base()); got != 5 {
		t.Fatalf("code returned %d, want 5", got)
	}
	gridWXNoWriteExec(t, base, base+size, "committed")
	gridWXNoWriteExec(t, rw, rw+size, "committed")
	if mism, err := v.Space().SyncCheck(o); err != nil || len(mism) != 0 {
		t.Fatalf("SyncCheck: %v %v", err, mism)
	}
	t0 = now()
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Close: %v", now()-t0)
	gridWantFree(t, base, base+size)
	gridWantFree(t, rw, rw+size)
}
