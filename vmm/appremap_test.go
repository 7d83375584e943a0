package vmm_test

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestAppRemapRefusals: RemapApp touches application memory only (not
// vmcode, vmheap, a slot or foreign memory, neither as the mapping nor as
// a fixed destination), refuses bad arguments before any OS call, and
// reports the kernel's EFAULT for a growth across two mappings.
func TestAppRemapRefusals(t *testing.T) {
	s, v, app, notApp := newRefusalVMM(t)
	defer v.Close()
	calls := s.Calls()
	for _, at := range notApp {
		r := mem.Range{Start: at.addr, End: at.addr + pg}
		if _, err := v.RemapApp(r, 2*pg, mem.Hint, 0); !errors.Is(err, vmm.ErrNotApp) {
			t.Errorf("remap of %s: got %v, want ErrNotApp", at.what, err)
		}
		if _, err := v.RemapApp(app, 4*pg, mem.Fixed, at.addr); !errors.Is(err, vmm.ErrNotApp) {
			t.Errorf("remap onto %s: got %v, want ErrNotApp", at.what, err)
		}
		// Shrinking unmaps the tail: it must not reach past the
		// application's memory either.
		if _, err := v.RemapApp(mem.Range{Start: app.End - pg, End: at.addr + pg}, pg, mem.Exact, 0); at.addr > app.End && !errors.Is(err, vmm.ErrNotApp) {
			t.Errorf("shrinking over %s: got %v, want ErrNotApp", at.what, err)
		}
	}
	for name, err := range map[string]error{
		"zero size":    func() error { _, err := v.RemapApp(app, 0, mem.Hint, 0); return err }(),
		"odd size":     func() error { _, err := v.RemapApp(app, pg+1, mem.Hint, 0); return err }(),
		"overlap":      func() error { _, err := v.RemapApp(app, 4*pg, mem.Fixed, app.Start+pg); return err }(),
		"odd address":  func() error { _, err := v.RemapApp(app, 4*pg, mem.Fixed, 1<<40+1); return err }(),
		"unknown mode": func() error { _, err := v.RemapApp(app, 4*pg, mem.Mode(9), 0); return err }(),
		"unaligned": func() error {
			_, err := v.RemapApp(mem.Range{Start: app.Start + 1, End: app.End}, pg, mem.Hint, 0)
			return err
		}(),
	} {
		if !errors.Is(err, mem.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if got := s.Calls(); got != calls {
		t.Errorf("refused remaps made %d OS calls", got-calls)
	}
	// Two mappings: the kernel's EFAULT, nothing changed.
	if err := v.ProtectApp(mem.Range{Start: app.Start + 2*pg, End: app.End}, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if _, err := v.RemapApp(app, 8*pg, mem.Hint, 0); !errors.Is(err, mem.ErrNotMapped) {
		t.Errorf("growing two mappings: got %v, want ErrNotMapped", err)
	}
	vmmtest.SyncCheck(t, v, "after the refusals")
	// Under Windows rules there is no application memory to remap.
	w := newAppVMM(t, sim.New(mem.RulesWindows, sim.Options{}))
	defer w.Close()
	if _, err := w.RemapApp(mem.Range{Start: 1 << 30, End: 1<<30 + pg}, 2*pg, mem.Hint, 0); !errors.Is(err, mem.ErrNotSupported) {
		t.Errorf("under Windows rules: got %v, want ErrNotSupported", err)
	}
}

// TestAppRemapNative moves, grows and shrinks application memory on the
// kernel: the contents follow, the new pages are zero (or the file's),
// and aspacem matches the kernel after each step.
func TestAppRemapNative(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("application memory follows Linux rules")
	}
	v := newAppVMM(t, osmem.Native())
	defer v.Close()
	// Four pages of memory and a reserved one after them, so that
	// growing must move; and a reservation to move the view onto.
	res, err := v.ReserveApp(0, 5*pg, mem.Hint, "app block")
	if err != nil {
		t.Fatal(err)
	}
	r, err := v.MapAppAnon(res.Start, 4*pg, mem.ProtRW, mem.Fixed, "app")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := v.ReserveApp(0, 8*pg, mem.Hint, "app destination")
	if err != nil {
		t.Fatal(err)
	}
	b := rawmem.Bytes(r.Start, r.Size())
	for i := range b {
		b[i] = byte(i*7 + 1)
	}
	want := append([]byte(nil), b...)
	got, err := v.RemapApp(r, 64*pg, mem.Hint, 0)
	if err != nil {
		t.Fatal(err)
	}
	if got.Start == r.Start {
		t.Fatalf("grown in place over a reservation: %v", got)
	}
	vmmtest.SyncCheck(t, v, "after the move")
	if v.IsApp(r.Start, r.Size()) {
		t.Error("the old addresses are still application memory")
	}
	m := rawmem.Bytes(got.Start, got.Size())
	if !bytes.Equal(m[:4*pg], want) || !bytes.Equal(m[4*pg:], make([]byte, 60*pg)) {
		t.Error("moved: the contents did not follow, or the new pages are not zero")
	}
	got, err = v.RemapApp(got, 2*pg, mem.Exact, 0)
	if err != nil || !bytes.Equal(rawmem.Bytes(got.Start, 2*pg), want[:2*pg]) {
		t.Fatalf("shrunk: %v, %v", got, err)
	}
	vmmtest.SyncCheck(t, v, "after the shrink")
	f := appFile(t, 4)
	view, err := v.MapAppFile(f, 0, 0, 2*pg, mem.ProtRead, mem.Hint, "app file")
	if err != nil {
		t.Fatal(err)
	}
	moved, err := v.RemapApp(view, 4*pg, mem.Fixed, dst.Start+2*pg)
	if err != nil || moved.Start != dst.Start+2*pg {
		t.Fatalf("fixed move of the view: %v, %v", moved, err)
	}
	vmmtest.SyncCheck(t, v, "after the view's move")
	for i := range 4 {
		if c := rawmem.Bytes(moved.Start+uintptr(i)*pg, 1)[0]; c != byte(i+1) {
			t.Errorf("moved view page %d reads %d, want %d", i, c, i+1)
		}
	}
}
