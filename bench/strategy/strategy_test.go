package strategy

import (
	"errors"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

// newSim returns a simulator for st with a small seeded layout.
func newSim(st Strategy) *sim.OS {
	return sim.New(st.Rules(), sim.Options{Seed: 7})
}

func mustSetup(t *testing.T, st Strategy, o mem.OS) {
	t.Helper()
	if err := st.Setup(o); err != nil {
		t.Fatalf("%s: setup: %v", st.Name(), err)
	}
}

// mustNew returns New(name), failing the test if name is unknown.
func mustNew(t *testing.T, name string) Strategy {
	t.Helper()
	st, ok := New(name)
	if !ok {
		t.Fatalf("New(%q): unknown", name)
	}
	return st
}

// New knows every name Names lists, and the strategy it returns says so.
func TestNewNames(t *testing.T) {
	for _, name := range Names() {
		if st := mustNew(t, name); st.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, st.Name())
		}
	}
	if st, ok := New("Z"); ok || st != nil {
		t.Errorf("New(\"Z\") = %v, %v", st, ok)
	}
	for _, name := range Names() {
		st, ok := NewRegion(name, 256<<20)
		if name == "linux-near" {
			if ok {
				t.Errorf("NewRegion(linux-near) sized a strategy with no region")
			}
			continue
		}
		if !ok || st.Name() != name {
			t.Fatalf("NewRegion(%q) = %v, %v", name, st, ok)
		}
		if err := st.Setup(newSim(st)); err != nil {
			t.Fatalf("%s: setup: %v", name, err)
		}
		// Grids round the region down to whole slots.
		if r := st.Region(); r.Size() > 256<<20 || r.Size() <= 256<<20-DefaultSlot {
			t.Errorf("%s: region %#x bytes, want 256 MiB (less a part slot)", name, r.Size())
		}
		if err := st.Teardown(); err != nil {
			t.Fatal(err)
		}
	}
	n := Names()
	n[0] = "changed"
	if Names()[0] != "A" {
		t.Error("Names returned its own slice")
	}
}

func lib(size uintptr) Lib { return Lib{Name: "lib", Size: size, Pref: DefaultPref} }

// Every strategy completes its life cycle on an empty sim and leaves no
// mapping behind: neither the view it unloaded nor the views still placed
// at Teardown (one from init, and one from after init where the strategy
// can place there).
func TestLifeCycleLeavesNothing(t *testing.T) {
	for _, name := range Names() {
		st := mustNew(t, name)
		s := newSim(st)
		mustSetup(t, st, s)
		v, err := st.Place(lib(1740<<10), false)
		if err != nil {
			t.Fatalf("%s: init place: %v", name, err)
		}
		if _, err := st.Place(lib(200<<10), false); err != nil {
			t.Fatalf("%s: second init place: %v", name, err)
		}
		if err := st.EndInit(); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Place(lib(100<<10), true); err != nil && !errors.Is(err, ErrUnsupported) {
			t.Fatalf("%s: post-init place: %v", name, err)
		}
		if err := st.Unload(v); err != nil {
			t.Fatalf("%s: unload: %v", name, err)
		}
		if err := st.Teardown(); err != nil {
			t.Fatalf("%s: teardown: %v", name, err)
		}
		if n := len(s.Snapshot()); n != 0 {
			t.Errorf("%s: %d regions left after teardown: %v", name, n, s.Snapshot())
		}
		if err := s.Check(); err != nil {
			t.Error(err)
		}
	}
}

// A and C cannot place a reachable map after init; D, E and F can.
func TestPostInitMaps(t *testing.T) {
	for _, name := range []string{"A", "C", "D", "E", "F"} {
		st := mustNew(t, name)
		mustSetup(t, st, newSim(st))
		if _, err := st.Place(lib(300<<10), false); err != nil {
			t.Fatalf("%s: init: %v", name, err)
		}
		if err := st.EndInit(); err != nil {
			t.Fatal(err)
		}
		_, err := st.Place(lib(300<<10), true)
		lose := name == "A" || name == "C"
		if lose != errors.Is(err, ErrUnsupported) || (!lose && err != nil) {
			t.Errorf("%s: post-init map: %v, want loss=%v", name, err, lose)
		}
		_ = st.Teardown()
	}
}

// D and E place a 1.7 MiB library (dbghelp) across three consecutive
// released 640 KiB slots, re-reserving the tail of the third.
func TestGridSpansSlots(t *testing.T) {
	for _, name := range []string{"D", "E", "vmm-grid"} {
		st := mustNew(t, name)
		s := newSim(st)
		mustSetup(t, st, s)
		v, err := st.Place(lib(1740<<10), true)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if lo := st.Region().Start; name != "E" && (v.Addr-lo)%DefaultSlot != 0 {
			t.Errorf("%s: view at %#x not on a slot", name, v.Addr)
		}
		r, _ := s.Query(v.Addr)
		if r.Type != mem.TypeMapped || r.End-r.Start != 1792<<10 {
			t.Errorf("%s: view %+v, want one 1.75 MiB view", name, r)
		}
		tail, _ := s.Query(v.Addr + v.Size)
		if tail.State != mem.StateReserved || tail.End != v.Addr+3*DefaultSlot {
			t.Errorf("%s: tail %+v, want a reservation to the end of the third slot", name, tail)
		}
		next, _ := s.Query(v.Addr + 3*DefaultSlot)
		if next.State != mem.StateReserved || next.AllocBase != v.Addr+3*DefaultSlot {
			t.Errorf("%s: fourth slot %+v, want untouched", name, next)
		}
		_ = st.Teardown()
	}
}

// C packs at the top of the region at non-preferred bases: it relocates.
func TestCRelocates(t *testing.T) {
	st := &C{}
	mustSetup(t, st, newSim(st))
	hi := st.Region().End
	v, err := st.Place(lib(1740<<10), false)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Relocated || v.Addr+v.Size != hi {
		t.Errorf("view %+v: want relocated, ending at the top %#x", v, hi)
	}
	_ = st.Teardown()
}

// F's libraries live outside its region, within reach of all of it: that
// works with 512 MiB and cannot work with a 2 GiB region, which leaves no
// reachable space outside itself.
func TestFCannotGrow(t *testing.T) {
	st := &F{}
	mustSetup(t, st, newSim(st))
	region := st.Region()
	lo, hi := region.Start, region.End
	if hi-lo != 512<<20 {
		t.Fatalf("F region %#x bytes", hi-lo)
	}
	v, err := st.Place(lib(7373<<10), true)
	if err != nil || !v.Reachable(region) {
		t.Fatalf("512 MiB: %+v %v", v, err)
	}
	_ = st.Teardown()
	big := &F{Size: 2 << 30}
	mustSetup(t, big, newSim(big))
	if _, err := big.Place(lib(64<<10), true); !errors.Is(err, ErrUnsupported) {
		t.Errorf("2 GiB F placed a library: %v", err)
	}
	_ = big.Teardown()
}

// raceIntruder allocates a page of the first window it is shown, as
// another thread's mmap would, on the raw OS.
func raceIntruder(t *testing.T, o mem.OS) (func(free mem.Range), *[][2]uintptr) {
	var took [][2]uintptr
	return func(free mem.Range) {
		if len(took) > 0 {
			return
		}
		if a, err := o.Reserve(free.Start, o.Granularity(), mem.Exact); err == nil {
			took = append(took, [2]uintptr{a, a + o.Granularity()})
		}
	}, &took
}

// raceProperty: the munmap strategy loses the race the fixed one never
// even opens, on o.
func raceProperty(t *testing.T, o mem.OS) {
	fixed, racy := &LinuxFixed{}, &LinuxMunmap{}
	for _, st := range []Strategy{fixed, racy} {
		intr, took := raceIntruder(t, o)
		st.SetIntruder(intr)
		mustSetup(t, st, o)
		region := st.Region()
		lo, hi := region.Start, region.End
		v, err := st.Place(lib(1740<<10), true)
		if err != nil {
			t.Fatalf("%s: %v", st.Name(), err)
		}
		if d := v.Distance(region); !v.Reachable(region) || d > mem.Rel32Max {
			t.Errorf("%s: out of reach", st.Name())
		}
		w, l := st.Races()
		switch st {
		case fixed:
			if w != 0 || l != 0 || len(*took) != 0 {
				t.Errorf("fixed: %d windows, %d losses, intruder took %v", w, l, *took)
			}
		case racy:
			if w == 0 || l == 0 || len(*took) == 0 {
				t.Errorf("munmap: %d windows, %d losses: want a lost race", w, l)
			}
			if v.Addr < lo || v.Addr >= hi {
				t.Errorf("munmap: retried placement %#x outside region", v.Addr)
			}
		}
		if err := st.Teardown(); err != nil {
			t.Errorf("%s: teardown: %v", st.Name(), err)
		}
		for _, r := range *took {
			if err := o.Release(r[0], r[1]-r[0]); err != nil {
				t.Errorf("%s: intruder's page gone: %v", st.Name(), err)
			}
		}
	}
}

func TestRaceSim(t *testing.T) { raceProperty(t, sim.New(mem.RulesLinux, sim.Options{Seed: 3})) }

// linux-spill places inside its region while it has room and then spills
// to wherever the OS maps, beyond the region; linux-fixed just fails.
func TestSpill(t *testing.T) {
	spillProperty(t, func() mem.OS { return sim.New(mem.RulesLinux, sim.Options{Seed: 9}) })
}

func spillProperty(t *testing.T, newOS func() mem.OS) {
	sp := &LinuxSpill{}
	sp.Size = 4 << 20
	fx := &LinuxFixed{}
	fx.Size = 4 << 20
	for _, st := range []Strategy{sp, fx} {
		mustSetup(t, st, newOS())
		region := st.Region()
		lo, hi := region.Start, region.End
		in, err := st.Place(lib(3<<20), false)
		if err != nil || in.Addr < lo || in.Addr+in.Size > hi {
			t.Fatalf("%s: first library %+v %v, want inside", st.Name(), in, err)
		}
		out, err := st.Place(lib(3<<20), true)
		switch st {
		case sp:
			if err != nil || (out.Addr >= lo && out.Addr < hi) || sp.Spills != 1 {
				t.Errorf("spill: %+v %v (spills %d), want one outside", out, err, sp.Spills)
			}
		case fx:
			if !errors.Is(err, ErrUnsupported) {
				t.Errorf("fixed: %v, want ErrUnsupported", err)
			}
		}
		if err := st.Teardown(); err != nil {
			t.Error(err)
		}
	}
}

// B gives no guarantee: outside its 2 GiB region a library is out of reach
// of part of it.
func TestBNoGuarantee(t *testing.T) {
	st := &B{}
	mustSetup(t, st, newSim(st))
	region := st.Region()
	lo, hi := region.Start, region.End
	v, err := st.Place(Lib{Name: "x", Size: 64 << 10}, true)
	if err != nil {
		t.Fatal(err)
	}
	if v.Reachable(region) {
		t.Errorf("B's library at %#x within reach of [%#x, %#x)", v.Addr, lo, hi)
	}
	_ = st.Teardown()
}

// A puts its region at the preferred bases and maps there: no relocation,
// where C, packing from the top, relocates the same library.
func TestAHonoursPreferredBase(t *testing.T) {
	st := &A{}
	mustSetup(t, st, newSim(st))
	v, err := st.Place(lib(1740<<10), false)
	if err != nil {
		t.Fatal(err)
	}
	if v.Relocated || v.Addr != DefaultPref {
		t.Errorf("A: %+v, want at its preferred base %#x", v, uintptr(DefaultPref))
	}
	if err := st.EndInit(); err != nil {
		t.Fatal(err)
	}
	_ = st.Teardown()
}
