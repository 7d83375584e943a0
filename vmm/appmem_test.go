package vmm_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

const pg = mem.PageSize

// appFile writes a file of n pages, page i filled with byte i+1, and
// returns its absolute path.
func appFile(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n*pg)
	for i := range b {
		b[i] = byte(i/pg + 1)
	}
	// os.MkdirTemp, not t.TempDir: the latter's cleanup fails under Wine
	// (docs/ARCHITECTURE.md, "Windows under Wine").
	dir, err := os.MkdirTemp("", "reachvm-app-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := filepath.Join(dir, "appfile")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// appStep is one operation of the application-memory script. It returns
// the operation's error; st carries ranges between steps.
type appStep struct {
	name string
	run  func(v *vmm.VMM, st *appState) error
}

type appState struct {
	file       string
	anon, res  mem.Range
	view       mem.Range
	moved      mem.Range
	shared     mem.Range
	fixedStart uintptr
}

func sub(r mem.Range, from, to int) mem.Range {
	return mem.Range{Start: r.Start + uintptr(from)*pg, End: r.Start + uintptr(to)*pg}
}

// appScript exercises every operation, each on a sub-range of what an
// earlier one made, with Linux rules.
func appScript() []appStep {
	return []appStep{
		{"map anon", func(v *vmm.VMM, st *appState) error {
			// 20 pages; the first 4 are freed by the fixed step.
			r, err := v.MapAppAnon(0, 20*pg, mem.ProtRW, mem.Hint, "app anon")
			st.anon = sub(r, 4, 20)
			return err
		}},
		{"reserve exact", func(v *vmm.VMM, st *appState) (err error) {
			// Far below the mmap area (the kernel's and the simulator's
			// placements go top-down from near the top), where nothing
			// lands unless asked for: the first free candidate.
			for a := uintptr(0x2_0000_0000); a < 0x10_0000_0000; a += 0x1_0000_0000 {
				if st.res, err = v.ReserveApp(a, 32*pg, mem.Exact, "app brk"); !errors.Is(err, mem.ErrExists) {
					return err
				}
			}
			return err
		}},
		{"commit part", func(v *vmm.VMM, st *appState) error {
			return v.CommitApp(sub(st.res, 0, 8), mem.ProtRW)
		}},
		{"protect part", func(v *vmm.VMM, st *appState) error {
			return v.ProtectApp(sub(st.anon, 4, 8), mem.ProtRead)
		}},
		{"decommit part", func(v *vmm.VMM, st *appState) error {
			return v.DecommitApp(sub(st.res, 4, 8))
		}},
		{"fixed over app and free", func(v *vmm.VMM, st *appState) error {
			// The 4 pages below the anonymous mapping, freed (at once, so
			// that nothing else has time to land there), and its first
			// 4, replaced by one anonymous mapping.
			if err := v.ReleaseApp(mem.Range{Start: st.anon.Start - 4*pg, End: st.anon.Start}); err != nil {
				return err
			}
			_, err := v.MapAppAnon(st.anon.Start-4*pg, 8*pg, mem.ProtRW, mem.Fixed, "app fixed")
			return err
		}},
		{"map file", func(v *vmm.VMM, st *appState) (err error) {
			st.view, err = v.MapAppFile(st.file, pg, 0, 3*pg, mem.ProtRead, mem.Hint, "app file")
			return err
		}},
		{"release middle", func(v *vmm.VMM, st *appState) error {
			return v.ReleaseApp(sub(st.anon, 2, 6))
		}},
		{"release over a hole", func(v *vmm.VMM, st *appState) error {
			return v.ReleaseApp(mem.Range{Start: st.res.Start - 8*pg, End: st.res.Start + 2*pg})
		}},
		{"protect view", func(v *vmm.VMM, st *appState) error {
			return v.ProtectApp(sub(st.view, 1, 2), mem.ProtNone)
		}},
		{"map for remap", func(v *vmm.VMM, st *appState) (err error) {
			st.moved, err = v.MapAppAnon(0, 4*pg, mem.ProtRW, mem.Hint, "app remap")
			return err
		}},
		{"remap fixed over app, grown", func(v *vmm.VMM, st *appState) (err error) {
			// Onto the last 8 pages of the brk reservation, replacing
			// them with the 4 pages moved and 2 new ones.
			st.moved, err = v.RemapApp(st.moved, 6*pg, mem.Fixed, st.res.Start+24*pg)
			return err
		}},
		{"remap shrink", func(v *vmm.VMM, st *appState) (err error) {
			st.moved, err = v.RemapApp(st.moved, 2*pg, mem.Exact, 0)
			return err
		}},
		{"remap grow in place", func(v *vmm.VMM, st *appState) (err error) {
			// The 4 pages after it were freed by the shrink.
			st.moved, err = v.RemapApp(st.moved, 3*pg, mem.Hint, 0)
			return err
		}},
		{"remap shrink view across mappings", func(v *vmm.VMM, st *appState) (err error) {
			st.view, err = v.RemapApp(st.view, pg, mem.Hint, 0)
			return err
		}},
		{"map shared file", func(v *vmm.VMM, st *appState) (err error) {
			f, err := os.OpenFile(st.file, os.O_RDWR, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			st.shared, err = v.MapAppSharedFile(int(f.Fd()), st.file, pg, 0, 2*pg, mem.ProtRW, mem.Hint, "app shared")
			return err
		}},
		{"protect shared", func(v *vmm.VMM, st *appState) error {
			return v.ProtectApp(sub(st.shared, 1, 2), mem.ProtRead)
		}},
	}
}

// runAppScript runs steps on v, failing t on an error, checking
// aspacem against the OS after each.
func runAppScript(t *testing.T, v *vmm.VMM, st *appState, steps []appStep) {
	t.Helper()
	for _, s := range steps {
		if err := s.run(v, st); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		vmmtest.SyncCheck(t, v, s.name)
		if err := v.Space().CheckInvariants(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
	}
}

func newAppVMM(t *testing.T, o mem.OS) *vmm.VMM {
	t.Helper()
	v, err := vmm.New(vmm.Config{OS: o, VMCodeSize: 64 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkNothingOwned fails t if aspacem records anything owned after Close.
func checkNothingOwned(t *testing.T, v *vmm.VMM) {
	t.Helper()
	if owned := v.Space().Owned(); len(owned) != 0 {
		t.Fatalf("after Close aspacem still records %v", owned)
	}
}

func TestAppMemSim(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	v := newAppVMM(t, s)
	st := &appState{file: appFile(t, 4)}
	runAppScript(t, v, st, appScript())

	seg, _ := v.Space().Lookup(st.view.Start)
	if seg.Kind != aspacem.KindFile || seg.Name != st.file || seg.Offset != pg || seg.Owner != "app file" {
		t.Fatalf("file view recorded as %v", seg)
	}
	if !v.IsApp(st.res.Start+2*pg, 6*pg) || v.IsApp(st.anon.Start, st.anon.Size()) {
		t.Fatalf("IsApp wrong: brk part should be app memory, the released anon middle not")
	}
	for _, a := range []uintptr{st.anon.Start - 4*pg, st.anon.Start} {
		if seg, _ := v.Space().Lookup(a); seg.Owner != "app fixed" || seg.Kind != aspacem.KindAnon || seg.Start != st.anon.Start-4*pg {
			t.Fatalf("fixed mapping recorded as %v at %#x", seg, a)
		}
	}
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	checkNothingOwned(t, v)
	if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
		t.Fatalf("Close left %v", rs)
	}
}

// notAppPlace is a page of memory that is not the application's.
type notAppPlace struct {
	// what names it in errors: vmcode, vmheap, slot or foreign.
	what string
	// addr is the page's address.
	addr uintptr
}

// newRefusalVMM returns a simulated OS and a VMM over it holding four
// pages of application memory, app (anonymous, read-write), and the
// places of memory that is not the application's: vmcode, vmheap, a
// slot and foreign memory (mapped behind the VMM's back and loaded by
// Refresh). The caller closes the VMM.
func newRefusalVMM(t *testing.T) (*sim.OS, *vmm.VMM, mem.Range, []notAppPlace) {
	t.Helper()
	s := sim.New(mem.RulesLinux, sim.Options{})
	v := newAppVMM(t, s)
	foreign, err := s.Reserve(0, 4*pg, mem.Hint)
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	if err := v.Refresh(); err != nil {
		v.Close()
		t.Fatal(err)
	}
	cb, _ := v.VMCode()
	hb, _ := v.VMHeap()
	slot, err := v.ReserveSlot(pg, "a slot")
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	app, err := v.MapAppAnon(0, 4*pg, mem.ProtRW, mem.Hint, "app")
	if err != nil {
		v.Close()
		t.Fatal(err)
	}
	return s, v, app, []notAppPlace{{"vmcode", cb}, {"vmheap", hb}, {"slot", slot.Base()}, {"foreign", foreign}}
}

// TestAppMemRefusals: nothing of vmcode, vmheap, a slot or foreign
// memory can be touched through the application API, and bad arguments
// are refused before any OS call.
func TestAppMemRefusals(t *testing.T) {
	s, v, app, notApp := newRefusalVMM(t)
	defer v.Close()
	calls := s.Calls()
	for _, at := range notApp {
		r := mem.Range{Start: at.addr, End: at.addr + pg}
		for op, err := range map[string]error{
			"commit":   v.CommitApp(r, mem.ProtRW),
			"protect":  v.ProtectApp(r, mem.ProtRW),
			"decommit": v.DecommitApp(r),
			"release":  v.ReleaseApp(r),
			"fixed":    func() error { _, err := v.MapAppAnon(at.addr, pg, mem.ProtRW, mem.Fixed, "x"); return err }(),
		} {
			var ae *vmm.AppError
			if !errors.Is(err, vmm.ErrNotApp) || !errors.As(err, &ae) {
				t.Errorf("%s over %s: got %v, want ErrNotApp", op, at.what, err)
			}
		}
	}
	if err := v.ReleaseApp(app); err != nil {
		t.Fatal(err)
	}
	calls++ // that release
	for name, err := range map[string]error{
		"unaligned":   v.CommitApp(mem.Range{Start: app.Start + 1, End: app.End}, mem.ProtRW),
		"empty":       v.ProtectApp(mem.Range{Start: app.Start, End: app.Start}, mem.ProtRW),
		"bad prot":    v.ProtectApp(app, mem.Prot(0x10)),
		"no owner":    func() error { _, err := v.ReserveApp(0, pg, mem.Hint, ""); return err }(),
		"ctl owner":   func() error { _, err := v.ReserveApp(0, pg, mem.Hint, "a\nb"); return err }(),
		"overflow":    func() error { _, err := v.ReserveApp(^uintptr(0)&^(pg-1), 2*pg, mem.Exact, "x"); return err }(),
		"unknown mod": func() error { _, err := v.ReserveApp(0, pg, mem.Mode(9), "x"); return err }(),
	} {
		if !errors.Is(err, mem.ErrInvalid) {
			t.Errorf("%s: got %v, want ErrInvalid", name, err)
		}
	}
	if got := s.Calls(); got != calls {
		t.Errorf("refused calls made %d OS calls", got-calls)
	}
	// Reserved pages cannot be protected (mprotect would make them
	// accessible).
	res, err := v.ReserveApp(0, 2*pg, mem.Hint, "app res")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.ProtectApp(res, mem.ProtRW); !errors.Is(err, mem.ErrNotMapped) {
		t.Errorf("protect of reserved pages: got %v, want ErrNotMapped", err)
	}
	// A hint the OS cannot honour is ignored, as mmap ignores it.
	far, err := v.ReserveApp(^uintptr(0)&^(pg-1), pg, mem.Hint, "far hint")
	if lo, hi := s.Bounds(); err != nil || far.Start < lo || far.End > hi {
		t.Errorf("reserve with a hint past the address space: %v, %v", far, err)
	}
	vmmtest.SyncCheck(t, v, "after the refusals")
}

// TestAppMemFaults fails every OS call of every step of the script in
// turn: the step reports an error, and aspacem still equals the
// simulator's state; Close then leaves nothing.
func TestAppMemFaults(t *testing.T) {
	file := appFile(t, 4)
	steps := appScript()
	failed := 0
	defer func() {
		// Every step makes at least one call, the two-part ones more.
		if !t.Failed() && failed < len(steps)+4 {
			t.Errorf("only %d calls failed over %d steps", failed, len(steps))
		}
	}()
	for j, step := range steps {
		for n := 1; ; n++ {
			s := sim.New(mem.RulesLinux, sim.Options{})
			v := newAppVMM(t, s)
			st := &appState{file: file}
			runAppScript(t, v, st, steps[:j])
			before := s.Calls()
			s.FailCall(n, mem.ErrNoMemory)
			err := step.run(v, st)
			made := s.Calls() - before
			s.ClearFaults()
			vmmtest.SyncCheck(t, v, fmt.Sprintf("%s with call %d failed", step.name, n))
			if err := v.Space().CheckInvariants(); err != nil {
				t.Fatal(err)
			}
			if made < n {
				// The step made fewer calls than n: it ran clean, and
				// every call of it has been failed once.
				if err != nil {
					t.Fatalf("%s: %v with no fault", step.name, err)
				}
				if err := v.Close(); err != nil {
					t.Fatal(err)
				}
				break
			}
			failed++
			if !errors.Is(err, mem.ErrNoMemory) {
				t.Fatalf("%s with call %d failed: got %v, want the injected ErrNoMemory", step.name, n, err)
			}
			// The rest of the script cannot be relied on; Close must still
			// leave nothing.
			if err := v.Close(); err != nil {
				t.Fatal(err)
			}
			checkNothingOwned(t, v)
			if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
				t.Fatalf("%s, call %d failed: Close left %v", step.name, n, rs)
			}
		}
	}
}

// TestAppMemPartialFailure: an mprotect that fails half way (a page was
// unmapped behind the VMM's back) is read back from the kernel, and
// aspacem matches it afterwards; the page the kernel no longer has stops
// being application memory.
func TestAppMemPartialFailure(t *testing.T) {
	s := sim.New(mem.RulesLinux, sim.Options{})
	v := newAppVMM(t, s)
	defer v.Close()
	r, err := v.MapAppAnon(0, 8*pg, mem.ProtRW, mem.Hint, "app")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Release(r.Start+5*pg, pg); err != nil {
		t.Fatal(err)
	}
	err = v.ProtectApp(r, mem.ProtRead)
	if !errors.Is(err, mem.ErrNotMapped) {
		t.Fatalf("got %v, want the kernel's ENOMEM", err)
	}
	vmmtest.SyncCheck(t, v, "after the partial protect")
	if seg, _ := v.Space().Lookup(r.Start); seg.Prot != mem.ProtRead {
		t.Fatalf("the pages the kernel changed are recorded as %v", seg)
	}
	if v.IsApp(r.Start+5*pg, pg) || !v.IsApp(r.Start+6*pg, 2*pg) {
		t.Fatal("the lost page is still application memory, or its neighbours are not")
	}
}

// TestAppMemNative runs the script on the kernel, checks the memory
// itself (committed pages are zero and writable, the file view holds the
// file's bytes), and that Close leaves nothing in aspacem.
func TestAppMemNative(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("application memory follows Linux rules: TestAppMemWindowsRules checks the refusal here")
	}
	v := newAppVMM(t, osmem.Native())
	st := &appState{file: appFile(t, 4)}
	runAppScript(t, v, st, appScript())
	b := rawmem.Bytes(st.res.Start+2*pg, 2*pg) // pages 0 and 1 were released
	for i := range b {
		if b[i] != 0 {
			t.Fatalf("committed page byte %d is %d", i, b[i])
		}
		b[i] = 0xaa
	}
	if got := rawmem.Bytes(st.view.Start, pg)[0]; got != 2 {
		t.Fatalf("view of page 1 reads %d, want 2", got)
	}
	if st.view.Size() != pg {
		t.Fatalf("the view is %v after the remap to one page", st.view)
	}
	// The shared view writes through to the file.
	rawmem.Bytes(st.shared.Start, 1)[0] = 0x5e
	if b, err := os.ReadFile(st.file); err != nil || b[pg] != 0x5e {
		t.Fatalf("a write through the shared view does not reach the file (%v)", err)
	}
	for i, c := range rawmem.Bytes(st.moved.Start, st.moved.Size()) {
		if c != 0 {
			t.Fatalf("remapped anonymous memory byte %d is %d", i, c)
		}
	}
	// Exact over something taken fails with ErrExists and changes
	// nothing.
	if _, err := v.ReserveApp(st.res.Start+2*pg, pg, mem.Exact, "again"); !errors.Is(err, mem.ErrExists) {
		t.Fatalf("exact over app memory: %v", err)
	}
	vmmtest.SyncCheck(t, v, "after the refused exact")
	// The application memory, marked right before Close: Unmapped then
	// tells a mapping Close left from one the Go runtime made in the
	// freed addresses since.
	foot := &vmmtest.Footprint{}
	for _, seg := range v.Space().Owned() {
		if v.IsApp(seg.Start, seg.End-seg.Start) {
			foot.Ranges = append(foot.Ranges, mem.Range{Start: seg.Start, End: seg.End})
		}
	}
	if len(foot.Ranges) == 0 {
		t.Fatal("no application memory before Close")
	}
	foot.Mark(v)
	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	if err := vmmtest.Unmapped(v, foot); err != nil {
		t.Fatalf("Close left application memory mapped: %v", err)
	}
	checkNothingOwned(t, v)
}

// TestAppMemConcurrent has goroutines map, protect, decommit and release
// application memory at once, on the kernel, then checks aspacem against
// it.
func TestAppMemConcurrent(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("application memory follows Linux rules: TestAppMemWindowsRules checks the refusal here")
	}
	v := newAppVMM(t, osmem.Native())
	defer v.Close()
	const workers, rounds = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				r, err := v.MapAppAnon(0, 8*pg, mem.ProtRW, mem.Hint, fmt.Sprintf("app %d", w))
				if err != nil {
					errs <- err
					return
				}
				rawmem.Bytes(r.Start, 1)[0] = byte(i)
				if err := v.ProtectApp(sub(r, 0, 4), mem.ProtRead); err != nil {
					errs <- err
					return
				}
				if err := v.DecommitApp(sub(r, 4, 6)); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					err = v.ReleaseApp(r)
				} else {
					err = v.ReleaseApp(sub(r, 2, 8))
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after the concurrent calls")
}
