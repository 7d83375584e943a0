package vmm

// Tests of the grid on the simulator under Windows rules, on every OS. The
// oracle is the simulator itself: after every operation, successful or
// failed, what the simulator holds in the grid's range must be exactly
// what the grid says it holds (gridCheck), and after release nothing.
//
// Temporary files are removed with os.Remove, not t.TempDir, whose
// clean-up fails under Wine 8.0 (these tests run there too).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

const (
	gridKiB = 1 << 10
	gridMiB = 1 << 20
	gridGiB = 1 << 30
	// gridSS is the default slot size, for readability.
	gridSS = DefaultGridSlotSize
)

func gridSim() *sim.OS { return sim.New(mem.RulesWindows, sim.Options{}) }

// gridTempFile writes a file of size bytes whose every byte depends on its
// offset, and returns its path.
func gridTempFile(t testing.TB, size int) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "reachvm-grid-")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, fmt.Sprintf("grid-%d.bin", size))
	t.Cleanup(func() {
		os.Remove(path)
		os.Remove(dir)
	})
	if err := os.WriteFile(path, gridPattern(size), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// gridPattern is the content of gridTempFile's files.
func gridPattern(size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

func gridOpen(t testing.TB, o mem.OS, size int) mem.Object {
	t.Helper()
	obj, err := o.OpenFile(gridTempFile(t, size))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.CloseObject(obj) })
	return obj
}

// gridRun is a run of pages as the oracle compares them: state, the
// allocation they belong to, and whether it is a view. Protections are
// left out: the grid does not record them (aspacem does).
type gridRun struct {
	start, end uintptr
	state      mem.State
	base       uintptr
	view       bool
}

func (r gridRun) String() string {
	v := ""
	if r.view {
		v = " view"
	}
	return fmt.Sprintf("[%#x, %#x) %v base %#x%s", r.start, r.end, r.state, r.base, v)
}

func gridMerge(rs []gridRun) []gridRun {
	var out []gridRun
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].end == r.start && out[n-1].state == r.state && out[n-1].base == r.base && out[n-1].view == r.view {
			out[n-1].end = r.end
			continue
		}
		out = append(out, r)
	}
	return out
}

// gridExpect is what the grid says the OS holds in its range.
func gridExpect(g *grid) []gridRun {
	var out []gridRun
	for _, a := range g.allocs() {
		if a.view {
			out = append(out, gridRun{a.start, a.end, mem.StateCommitted, a.start, true})
			continue
		}
		at := a.start
		for _, c := range g.committedRuns(a.start, a.end) {
			if at < c[0] {
				out = append(out, gridRun{at, c[0], mem.StateReserved, a.start, false})
			}
			out = append(out, gridRun{c[0], c[1], mem.StateCommitted, a.start, false})
			at = c[1]
		}
		if at < a.end {
			out = append(out, gridRun{at, a.end, mem.StateReserved, a.start, false})
		}
	}
	return gridMerge(out)
}

// gridActual is what the OS holds in the grid's range, leaving out the
// allocations based at the addresses in foreign.
func gridActual(t testing.TB, o mem.OS, g *grid, foreign ...uintptr) []gridRun {
	t.Helper()
	rs, err := o.Regions(g.base, g.base+g.size)
	if err != nil {
		t.Fatalf("Regions: %v", err)
	}
	var out []gridRun
	for _, r := range rs {
		if slices.Contains(foreign, r.AllocBase) {
			continue
		}
		out = append(out, gridRun{r.Start, r.End, r.State, r.AllocBase, r.Type == mem.TypeMapped})
	}
	return gridMerge(out)
}

// gridCheck fails the test unless the OS holds exactly what the grid says,
// and the grid's own invariants hold.
func gridCheck(t testing.TB, s *sim.OS, g *grid, when string, foreign ...uintptr) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("%s: simulator: %v", when, err)
	}
	want, got := gridExpect(g), gridActual(t, s, g, foreign...)
	if !slices.Equal(want, got) {
		t.Fatalf("%s: the grid says\n\t%v\nthe OS holds\n\t%v", when, gridFmt(want), gridFmt(got))
	}
	if err := g.checkInvariants(); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
}

func gridFmt(rs []gridRun) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteString("\n\t")
		}
		b.WriteString(r.String())
	}
	return b.String()
}

// checkInvariants checks the grid's record against itself: states and
// view records agree, no claim or pin is left over, and committed bits lie
// only in the grid's reservations.
func (g *grid) checkInvariants() error {
	held := make(map[uintptr]bool) // page -> in one of the grid's reservations
	for _, a := range g.allocs() {
		if !a.view {
			for p := a.start; p < a.end; p += g.page {
				held[p] = true
			}
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k := range g.slots {
		s := &g.slots[k]
		if s.busy || s.pins != 0 {
			return fmt.Errorf("slot %d left busy %v pins %d", k, s.busy, s.pins)
		}
		if s.state == gridInView {
			v := g.views[int(s.view)]
			if v == nil || k < v.first || k >= v.first+v.n {
				return fmt.Errorf("slot %d in view %d, which does not hold it (%+v)", k, s.view, v)
			}
		}
	}
	for first, v := range g.views {
		if v.first != first || v.n < 1 {
			return fmt.Errorf("view record %d is %+v", first, v)
		}
		for k := v.first; k < v.first+v.n; k++ {
			if g.slots[k].state != gridInView || int(g.slots[k].view) != first {
				return fmt.Errorf("view %d: slot %d is %v in view %d", first, k, g.slots[k].state, g.slots[k].view)
			}
		}
	}
	var bad error
	g.runsLocked(g.base, g.base+g.size, true, func(a, e uintptr) {
		for p := a; p < e && bad == nil; p += g.page {
			if !held[p] {
				bad = fmt.Errorf("page %#x marked committed outside the grid's reservations", p)
			}
		}
	})
	return bad
}

// gridNoHoles fails the test if any slot the grid released is not back in
// a reservation or a view.
func gridNoHoles(t testing.TB, g *grid, when string) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, s := range g.slots {
		switch s.state {
		case gridReserved:
		case gridInView:
			v := g.views[int(s.view)]
			if !v.mapped || (v.tail < g.slotEnd(v.first+v.n-1) && !v.tailHeld) {
				t.Fatalf("%s: slot %d: view run %+v has a hole", when, k, *v)
			}
		default:
			t.Fatalf("%s: slot %d is %v", when, k, s.state)
		}
	}
}

// gridReleaseAll releases g and checks that it leaves nothing but the
// allocations based at foreign.
func gridReleaseAll(t testing.TB, s *sim.OS, g *grid, when string, foreign ...uintptr) {
	t.Helper()
	s.ClearFaults()
	if err := g.release(); err != nil {
		t.Fatalf("%s: release: %v", when, err)
	}
	if got := gridActual(t, s, g, foreign...); len(got) != 0 {
		t.Fatalf("%s: release left %v", when, gridFmt(got))
	}
	for k := range g.n {
		if st := g.slotState(k); st != gridFree && st != gridLost {
			t.Fatalf("%s: slot %d is %v after release", when, k, st)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func gridNew(t testing.TB, o mem.OS, size, slotSize uintptr, opts gridOptions) *grid {
	t.Helper()
	g, err := newGrid(o, size, slotSize, opts)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGridPlace(t *testing.T) {
	s := gridSim()
	t0 := time.Now()
	g := gridNew(t, s, 2*gridGiB, 0, gridOptions{})
	t.Logf("2 GiB grid on the simulator: %v", time.Since(t0))
	if g.n != 3277 || g.slotLen(3276) != 512*gridKiB || g.slotLen(0) != gridSS {
		t.Fatalf("2 GiB of 640 KiB slots: %d slots, last %#x", g.n, g.slotLen(g.n-1))
	}
	// 4 GiB rounded up to a multiple of the slot size.
	if base, size := g.bounds(); base != 0x1_0004_0000 || size != 2*gridGiB || base%gridSS != 0 {
		t.Fatalf("grid at [%#x, +%#x), want [0x100040000, +2 GiB)", base, size)
	}
	if g.fileAlign() != gridSS {
		t.Fatalf("fileAlign %#x", g.fileAlign())
	}
	rs, err := s.Regions(g.base, g.base+g.size)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3277 {
		t.Fatalf("%d regions, want 3277 reservations", len(rs))
	}
	for k, r := range rs {
		if r.Start != g.slotAddr(k) || r.End != g.slotEnd(k) || r.AllocBase != r.Start || r.State != mem.StateReserved {
			t.Fatalf("slot %d: region %+v", k, r)
		}
	}
	segs := g.reserved(g.base, g.size)
	if len(segs) != 3277 || segs[17].Owner != "grid slot 17/3277" || segs[3276].Owner != "grid slot 3276/3277" {
		t.Fatalf("reserved: %d segments, [17] %v, [last] %v", len(segs), segs[17], segs[len(segs)-1])
	}
	// A partial range is clipped to it.
	if segs := g.reserved(g.slotAddr(3)+64*gridKiB, gridSS); len(segs) != 2 ||
		segs[0].Start != g.slotAddr(3)+64*gridKiB || segs[1].End != g.slotAddr(4)+64*gridKiB || segs[1].Owner != "grid slot 4/3277" {
		t.Fatalf("reserved over two slots: %v", segs)
	}
	st := g.Stats()
	if len(st.Attempts) != 1 || st.Attempts[0].Err != nil || st.Attempts[0].Reserved != 3277 || st.Slots != 3277 || st.Base != g.base {
		t.Fatalf("stats %+v", st)
	}
	gridCheck(t, s, g, "placed")
	gridReleaseAll(t, s, g, "2 GiB")
	if err := g.release(); err != nil {
		t.Fatalf("second release: %v", err)
	}
}

// gridHookOS lets a test act between the grid's calls: someone else
// mapping into a hole the grid just released.
type gridHookOS struct {
	*sim.OS
	afterReserve func(addr, size uintptr)
	afterRelease func(addr, size uintptr)
	beforeMap    func(addr, size uintptr)
	afterMap     func(addr, size uintptr, err error)
}

func (h *gridHookOS) Reserve(addr, size uintptr, mode mem.Mode) (uintptr, error) {
	a, err := h.OS.Reserve(addr, size, mode)
	if err == nil && h.afterReserve != nil {
		h.afterReserve(a, size)
	}
	return a, err
}

func (h *gridHookOS) Release(addr, size uintptr) error {
	err := h.OS.Release(addr, size)
	if err == nil && h.afterRelease != nil {
		h.afterRelease(addr, size)
	}
	return err
}

func (h *gridHookOS) MapObject(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode) (uintptr, error) {
	if h.beforeMap != nil {
		h.beforeMap(addr, size)
	}
	a, err := h.OS.MapObject(obj, off, addr, size, prot, mode)
	if h.afterMap != nil {
		h.afterMap(addr, size, err)
	}
	return a, err
}

func TestGridPlaceRetries(t *testing.T) {
	const size = 64 * gridSS
	// The candidates: 4 GiB steps from 4 GiB, each rounded up to a
	// multiple of the slot size.
	cand := func(i int) uintptr { return (uintptr(i+1)*4*gridGiB + gridSS - 1) / gridSS * gridSS }
	start := cand(0)

	t.Run("occupied", func(t *testing.T) {
		// Something sits in the first candidate: skipped without a call.
		s := gridSim()
		foreign := start + 40*gridSS
		if err := s.MapForeign(foreign, foreign+64*gridKiB, mem.ProtRW, ""); err != nil {
			t.Fatal(err)
		}
		calls := s.Calls()
		g := gridNew(t, s, size, 0, gridOptions{})
		st := g.Stats()
		if g.base != cand(1) || len(st.Attempts) != 2 || !errors.Is(st.Attempts[0].Err, mem.ErrExists) || st.Attempts[0].Reserved != 0 {
			t.Fatalf("placed at %#x after %v", g.base, st.Attempts)
		}
		if got := s.Calls() - calls; got != 64 {
			t.Fatalf("%d calls, want 64 reservations", got)
		}
		t.Logf("attempts: %v", st.Attempts)
		gridCheck(t, s, g, "placed")
		gridReleaseAll(t, s, g, "occupied", foreign)
	})

	t.Run("race", func(t *testing.T) {
		// Someone maps into the candidate while the grid reserves it: the
		// slot's reservation fails, the attempt's slots are released, the
		// next candidate is used.
		s := gridSim()
		h := &gridHookOS{OS: s}
		foreign := start + 6*gridSS
		n := 0
		h.afterReserve = func(addr, size uintptr) {
			if n++; n == 5 {
				if err := s.MapForeign(foreign, foreign+64*gridKiB, mem.ProtNone, ""); err != nil {
					t.Error(err)
				}
			}
		}
		g := gridNew(t, h, size, 0, gridOptions{})
		st := g.Stats()
		if g.base != cand(1) || len(st.Attempts) != 2 || st.Attempts[0].Reserved != 6 || !errors.Is(st.Attempts[0].Err, mem.ErrExists) {
			t.Fatalf("placed at %#x after %v", g.base, st.Attempts)
		}
		if rs, _ := s.Regions(start, start+size); len(rs) != 1 || rs[0].Start != foreign {
			t.Fatalf("first candidate left %v", rs)
		}
		gridCheck(t, s, g, "placed")
		gridReleaseAll(t, s, g, "race", foreign)
	})

	t.Run("base", func(t *testing.T) {
		s := gridSim()
		base := uintptr(0x20_0000_0000)
		g := gridNew(t, s, size, 0, gridOptions{base: base})
		if g.base != base {
			t.Fatalf("at %#x, want %#x", g.base, base)
		}
		// Taken: refused without fallback, elsewhere with it.
		if _, err := newGrid(s, size, 0, gridOptions{base: base}); !errors.Is(err, mem.ErrExists) {
			t.Fatalf("grid over a grid: %v", err)
		} else {
			var pe *GridPlaceError
			if !errors.As(err, &pe) || len(pe.Attempts) != 1 || pe.Attempts[0].Base != base {
				t.Fatalf("error %v, want a *GridPlaceError with one attempt", err)
			}
			t.Logf("refused: %v", err)
		}
		g2 := gridNew(t, s, size, 0, gridOptions{base: base, fallback: true})
		if g2.base != start || g2.Stats().Attempts[0].Base != base {
			t.Fatalf("fallback placed at %#x after %v", g2.base, g2.Stats().Attempts)
		}
		gridReleaseAll(t, s, g2, "fallback", base)
		gridReleaseAll(t, s, g, "base")
	})

	t.Run("exhausted", func(t *testing.T) {
		s := gridSim()
		var foreign []uintptr
		for i := range 3 {
			a := start + uintptr(i)*4*gridGiB + 10*gridSS
			foreign = append(foreign, a)
			if err := s.MapForeign(a, a+64*gridKiB, mem.ProtRW, ""); err != nil {
				t.Fatal(err)
			}
		}
		_, err := newGrid(s, size, 0, gridOptions{attempts: 3})
		var pe *GridPlaceError
		if !errors.As(err, &pe) || len(pe.Attempts) != 3 || !strings.Contains(err.Error(), "after 3 attempt(s)") {
			t.Fatalf("got %v, want a *GridPlaceError naming 3 attempts", err)
		}
		t.Logf("%v", err)
		if rs, _ := s.Regions(s.Bounds()); len(rs) != 3 {
			t.Fatalf("left %v", rs)
		}
	})

	t.Run("bad", func(t *testing.T) {
		s := gridSim()
		for _, c := range []struct {
			size, slot uintptr
			opts       gridOptions
		}{
			{size, 4 * gridKiB, gridOptions{}},                     // slot not a multiple of 64 KiB
			{size + 4*gridKiB, 0, gridOptions{}},                   // size not a multiple of 64 KiB
			{0, 0, gridOptions{}},                                  // empty
			{size, 0, gridOptions{base: start + 4*gridKiB}},        // unaligned base
			{size, 0, gridOptions{base: 0x7fff_ffff_0000}},         // beyond the address space
			{2 * gridGiB, 0, gridOptions{start: 0x7fff_c000_0000}}, // no candidate fits
		} {
			if g, err := newGrid(s, c.size, c.slot, c.opts); err == nil {
				g.release()
				t.Errorf("newGrid(%#x, %#x, %+v) succeeded", c.size, c.slot, c.opts)
			} else {
				t.Logf("refused: %v", err)
			}
		}
		if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
			t.Fatalf("left %v", rs)
		}
	})
}

func TestGridMapFile(t *testing.T) {
	s := gridSim()
	var clock atomic.Int64
	g := gridNew(t, s, 64*gridSS, 0, gridOptions{now: func() time.Duration {
		return time.Duration(clock.Add(int64(time.Microsecond)))
	}})
	big := gridOpen(t, s, 1536*gridKiB)
	small := gridOpen(t, s, 64*gridKiB)
	odd := gridOpen(t, s, 100*gridKiB)

	// 1.5 MiB at slot 3: slots 3, 4 and 5 released, the view mapped
	// exactly at slot 3, the tail [slot 3 + 1.5 MiB, slot 6) re-reserved.
	a := g.slotAddr(3)
	calls := s.Calls()
	if err := g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls() - calls; got != 5 {
		t.Fatalf("mapFile of 3 slots made %d calls, want 3 releases, 1 map, 1 tail reservation", got)
	}
	r, _ := s.Query(a)
	if r.Start != a || r.End != a+1536*gridKiB || r.Type != mem.TypeMapped || r.Name != big.Name() {
		t.Fatalf("view reads back as %+v", r)
	}
	tail := a + 1536*gridKiB
	if r, _ := s.Query(tail); r.Start != tail || r.End != g.slotAddr(6) || r.AllocBase != tail || r.State != mem.StateReserved {
		t.Fatalf("tail reads back as %+v", r)
	}
	for k := 3; k < 6; k++ {
		if st := g.slotState(k); st != gridInView {
			t.Fatalf("slot %d is %v", k, st)
		}
	}
	gridCheck(t, s, g, "1.5 MiB mapped")

	// 64 KiB at slot 10: one slot, tail from 64 KiB.
	b := g.slotAddr(10)
	if err := g.mapFile(small, 0, b, 64*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Query(b + 64*gridKiB); r.AllocBase != b+64*gridKiB || r.End != g.slotAddr(11) {
		t.Fatalf("64 KiB tail reads back as %+v", r)
	}
	gridCheck(t, s, g, "64 KiB mapped")

	// 100 KiB at slot 20: the tail starts at the next granule, 128 KiB;
	// [100 KiB, 128 KiB) is free and no one's.
	c := g.slotAddr(20)
	if err := g.mapFile(odd, 0, c, 100*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Query(c + 100*gridKiB); r.State != mem.StateFree || r.End != c+128*gridKiB {
		t.Fatalf("gap reads back as %+v", r)
	}
	gridCheck(t, s, g, "100 KiB mapped")

	// The tail is a reservation like any other; the gap is not.
	if err := g.commit(tail, 128*gridKiB, mem.ProtRW); err != nil {
		t.Fatalf("commit in the tail: %v", err)
	}
	calls = s.Calls()
	for _, bad := range []struct {
		what string
		err  error
	}{
		{"commit in the gap", g.commit(c+96*gridKiB, 8*gridKiB, mem.ProtRW)},
		{"commit on a view", g.commit(a, 4*gridKiB, mem.ProtRW)},
		{"decommit a view", g.decommit(a, 4*gridKiB)},
		{"map over a view", g.mapFile(small, 0, a, 64*gridKiB, mem.ProtRead)},
		{"map into a tail", g.mapFile(small, 0, g.slotAddr(5), 64*gridKiB, mem.ProtRead)},
		{"map off a slot boundary", g.mapFile(small, 0, g.slotAddr(30)+64*gridKiB, 64*gridKiB, mem.ProtRead)},
		{"map past the grid", g.mapFile(big, 0, g.slotAddr(63), 1536*gridKiB, mem.ProtRead)},
		{"protect across a view and the gap", g.protect(c, 128*gridKiB, mem.ProtRead)},
		{"protect reserved pages", g.protect(g.slotAddr(40), 4*gridKiB, mem.ProtRead)},
		{"reset part of a view run", g.reset(a, gridSS)},
	} {
		if bad.err == nil {
			t.Errorf("%s succeeded", bad.what)
		} else {
			t.Logf("%s: %v", bad.what, bad.err)
		}
	}
	if got := s.Calls() - calls; got != 0 {
		t.Fatalf("refused operations made %d calls", got)
	}
	// Protect works per view, across its slots.
	if err := g.protect(a+gridSS-64*gridKiB, 128*gridKiB, mem.ProtRead); err != nil {
		t.Fatalf("protect across a view's slots: %v", err)
	}
	// Committed pages keep a slot from taking a file.
	if err := g.commit(g.slotAddr(30)+gridSS-4*gridKiB, 4*gridKiB, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	if err := g.mapFile(big, 0, g.slotAddr(28), 1536*gridKiB, mem.ProtRead); err == nil {
		t.Fatal("mapFile over committed pages succeeded")
	}
	gridCheck(t, s, g, "refusals")

	st := g.Stats()
	if st.Maps != 3 || st.MapRetries != 0 || st.WindowMax != time.Microsecond || st.WindowTotal != 3*time.Microsecond || st.Views != 3 {
		t.Fatalf("stats %+v", st)
	}

	// reset turns views back into whole-slot reservations.
	calls = s.Calls()
	if err := g.reset(a, 3*gridSS); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls() - calls; got != 5 {
		t.Fatalf("reset of 3 slots made %d calls, want unmap, 2 reservations, tail release, 1 reservation", got)
	}
	for k := 3; k < 6; k++ {
		if r, _ := s.Query(g.slotAddr(k)); r.Start != g.slotAddr(k) || r.End != g.slotEnd(k) || r.AllocBase != r.Start || r.State != mem.StateReserved {
			t.Fatalf("slot %d reads back as %+v", k, r)
		}
	}
	if err := g.reset(g.base, g.size); err != nil {
		t.Fatal(err)
	}
	gridNoHoles(t, g, "reset")
	gridCheck(t, s, g, "reset")
	if st := g.Stats(); st.Resets != 3 || st.Views != 0 {
		t.Fatalf("stats %+v", st)
	}
	if segs := g.reserved(g.base, g.size); len(segs) != 64 || segs[4].Owner != "grid slot 4/64" || segs[4].Start != g.slotAddr(4) {
		t.Fatalf("reserved after reset: %v", segs)
	}
	// The same slots take a file again.
	if err := g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	gridReleaseAll(t, s, g, "with a view")
}

func TestGridShortLastSlot(t *testing.T) {
	// A size that is not a multiple of the slot: the last slot is short,
	// and takes a file that fits it.
	s := gridSim()
	g := gridNew(t, s, 3*gridSS+128*gridKiB, 0, gridOptions{})
	if g.n != 4 || g.slotLen(3) != 128*gridKiB {
		t.Fatalf("%d slots, last %#x", g.n, g.slotLen(3))
	}
	small := gridOpen(t, s, 64*gridKiB)
	if err := g.mapFile(small, 0, g.slotAddr(3), 64*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	gridCheck(t, s, g, "mapped")
	if err := g.reset(g.slotAddr(3), 128*gridKiB); err != nil {
		t.Fatal(err)
	}
	gridNoHoles(t, g, "reset")
	gridCheck(t, s, g, "reset")
	gridReleaseAll(t, s, g, "short")
}

func TestGridCommitAcrossSlots(t *testing.T) {
	s := gridSim()
	g := gridNew(t, s, 8*gridSS, 0, gridOptions{})
	lo, hi := g.slotAddr(1)+600*gridKiB, g.slotAddr(3)+100*gridKiB
	calls := s.Calls()
	if err := g.commit(lo, hi-lo, mem.ProtRW); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls() - calls; got != 3 {
		t.Fatalf("commit over 3 slots made %d calls", got)
	}
	gridCheck(t, s, g, "committed")
	if err := g.protect(lo, hi-lo, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if r, _ := s.Query(g.slotAddr(2)); r.Prot != mem.ProtRead || r.State != mem.StateCommitted || r.End != g.slotEnd(2) {
		t.Fatalf("middle slot reads back as %+v", r)
	}
	// Decommit part, and decommit skips slots with nothing committed.
	calls = s.Calls()
	if err := g.decommit(g.slotAddr(2), 3*gridSS); err != nil {
		t.Fatal(err)
	}
	if got := s.Calls() - calls; got != 2 {
		t.Fatalf("decommit made %d calls, want 2 (slots 2 and 3)", got)
	}
	gridCheck(t, s, g, "decommitted")
	if err := g.protect(lo, hi-lo, mem.ProtRead); err == nil {
		t.Fatal("protect over decommitted pages succeeded")
	}
	if err := g.reset(g.base, g.size); err != nil {
		t.Fatal(err)
	}
	if runs := g.committedRuns(g.base, g.base+g.size); len(runs) != 0 {
		t.Fatalf("committed after reset: %v", runs)
	}
	gridCheck(t, s, g, "reset")
	gridReleaseAll(t, s, g, "commit")
}

func TestGridLostSlot(t *testing.T) {
	t.Run("hole taken", func(t *testing.T) {
		// Someone maps into the second slot the moment the grid releases
		// it: the map fails, the grid re-reserves what it can and reports
		// the slot lost.
		s := gridSim()
		h := &gridHookOS{OS: s}
		g := gridNew(t, h, 16*gridSS, 0, gridOptions{})
		big := gridOpen(t, s, 1536*gridKiB)
		a := g.slotAddr(4)
		foreign := g.slotAddr(5) + 128*gridKiB
		h.afterRelease = func(addr, size uintptr) {
			if addr == g.slotAddr(5) {
				h.afterRelease = nil
				if err := s.MapForeign(foreign, foreign+64*gridKiB, mem.ProtRW, ""); err != nil {
					t.Error(err)
				}
			}
		}
		err := g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRead)
		var le *SlotLostError
		if !errors.As(err, &le) || le.Addr != g.slotAddr(5) || le.Size != gridSS || !slices.Equal(le.Slots, []int{5}) || !errors.Is(err, mem.ErrExists) {
			t.Fatalf("got %v, want a *SlotLostError for slot 5", err)
		}
		t.Logf("%v", err)
		if g.slotState(4) != gridReserved || g.slotState(5) != gridLost || g.slotState(6) != gridReserved {
			t.Fatalf("slots 4-6: %v %v %v", g.slotState(4), g.slotState(5), g.slotState(6))
		}
		gridCheck(t, s, g, "lost", foreign)
		// The lost slot is never handed out again, nor reset.
		small := gridOpen(t, s, 64*gridKiB)
		if err := g.mapFile(small, 0, g.slotAddr(5), 64*gridKiB, mem.ProtRead); err == nil {
			t.Fatal("mapFile into a lost slot succeeded")
		}
		if err := g.commit(g.slotAddr(5), 4*gridKiB, mem.ProtRW); err == nil {
			t.Fatal("commit in a lost slot succeeded")
		}
		if err := g.reset(g.base, g.size); err != nil {
			t.Fatalf("reset over a lost slot: %v", err)
		}
		if segs := g.reserved(g.slotAddr(4), 3*gridSS); len(segs) != 3 || segs[1].Kind != aspacem.KindFree {
			t.Fatalf("reserved over a lost slot: %v", segs)
		}
		if got := g.lostIn(g.base, g.size); !slices.Equal(got, []mem.Range{{Start: g.slotAddr(5), End: g.slotEnd(5)}}) {
			t.Fatalf("lostIn: %v", got)
		}
		if got := g.lostIn(g.slotAddr(6), gridSS); len(got) != 0 {
			t.Fatalf("lostIn past the lost slot: %v", got)
		}
		if st := g.Stats(); st.Lost != 1 || st.Maps != 0 {
			t.Fatalf("stats %+v", st)
		}
		// Other slots still take the file.
		if err := g.mapFile(big, 0, g.slotAddr(8), 1536*gridKiB, mem.ProtRead); err != nil {
			t.Fatal(err)
		}
		gridCheck(t, s, g, "mapped elsewhere", foreign)
		gridReleaseAll(t, s, g, "lost", foreign)
		if rs, _ := s.Regions(s.Bounds()); len(rs) != 1 || rs[0].Start != foreign {
			t.Fatalf("release touched the foreign mapping: %v", rs)
		}
	})

	t.Run("hole taken and given back", func(t *testing.T) {
		// The intruder leaves again: the grid re-reserves, retries and
		// maps.
		s := gridSim()
		h := &gridHookOS{OS: s}
		g := gridNew(t, h, 16*gridSS, 0, gridOptions{})
		big := gridOpen(t, s, 1536*gridKiB)
		a := g.slotAddr(2)
		intruder := a + gridSS
		h.beforeMap = func(addr, size uintptr) {
			h.beforeMap = nil
			if err := s.MapForeign(intruder, intruder+64*gridKiB, mem.ProtNone, ""); err != nil {
				t.Error(err)
			}
		}
		h.afterMap = func(addr, size uintptr, err error) {
			if !errors.Is(err, mem.ErrExists) {
				t.Errorf("map with an intruder: %v", err)
			}
			h.afterMap = nil
			if err := s.Release(intruder, 64*gridKiB); err != nil {
				t.Error(err)
			}
		}
		if err := g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRead); err != nil {
			t.Fatal(err)
		}
		if st := g.Stats(); st.Maps != 1 || st.MapRetries != 1 || st.Lost != 0 {
			t.Fatalf("stats %+v", st)
		}
		gridNoHoles(t, g, "mapped")
		gridCheck(t, s, g, "mapped")
		gridReleaseAll(t, s, g, "retried")
	})

	t.Run("taken on every try", func(t *testing.T) {
		// The map fails with ErrExists every time while the slots can be
		// re-reserved each time: bounded tries, then a clear error.
		s := gridSim()
		g := gridNew(t, s, 16*gridSS, 0, gridOptions{mapTries: 2})
		big := gridOpen(t, s, 1536*gridKiB)
		// Calls: 3 releases, the map, 3 reservations; twice.
		s.FailCall(4, mem.ErrExists)
		s.FailCall(11, mem.ErrExists)
		err := g.mapFile(big, 0, g.slotAddr(1), 1536*gridKiB, mem.ProtRead)
		if !errors.Is(err, mem.ErrExists) || !strings.Contains(err.Error(), "2 tries") {
			t.Fatalf("got %v", err)
		}
		gridNoHoles(t, g, "after")
		gridCheck(t, s, g, "after")
		gridReleaseAll(t, s, g, "every try")
	})

	t.Run("tail taken", func(t *testing.T) {
		// Someone takes the tail while the view is mapped: the view is
		// unmapped, the run re-reserved but for its last slot, reported
		// lost.
		s := gridSim()
		h := &gridHookOS{OS: s}
		g := gridNew(t, h, 16*gridSS, 0, gridOptions{})
		big := gridOpen(t, s, 1536*gridKiB)
		a := g.slotAddr(6)
		foreign := g.slotAddr(8) + 512*gridKiB
		h.afterMap = func(addr, size uintptr, err error) {
			h.afterMap = nil
			if err := s.MapForeign(foreign, foreign+64*gridKiB, mem.ProtRW, ""); err != nil {
				t.Error(err)
			}
		}
		err := g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRead)
		var le *SlotLostError
		if !errors.As(err, &le) || !slices.Equal(le.Slots, []int{8}) {
			t.Fatalf("got %v, want slot 8 lost", err)
		}
		t.Logf("%v", err)
		if g.slotState(6) != gridReserved || g.slotState(7) != gridReserved {
			t.Fatal("the run's other slots were not re-reserved")
		}
		gridCheck(t, s, g, "tail lost", foreign)
		gridReleaseAll(t, s, g, "tail lost", foreign)
	})
}

// gridScenario is one grid operation for the fault tests: setup (not
// failed) and op (failed call by call).
type gridScenario struct {
	name  string
	setup func(t testing.TB, s *sim.OS, g *grid) any
	op    func(g *grid, x any) error
}

func gridScenarios(t testing.TB) []gridScenario {
	sizes := map[string]int{"1.5M": 1536 * gridKiB, "1.25M": 1280 * gridKiB, "64K": 64 * gridKiB, "100K": 100 * gridKiB}
	paths := make(map[string]string)
	for name, size := range sizes {
		paths[name] = gridTempFile(t, size)
	}
	files := func(t testing.TB, s *sim.OS) map[string]mem.Object {
		out := make(map[string]mem.Object)
		for name, path := range paths {
			obj, err := s.OpenFile(path)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = obj
		}
		return out
	}
	mapOp := func(name string, slot int, size uintptr) gridScenario {
		return gridScenario{
			name:  "map " + name,
			setup: func(t testing.TB, s *sim.OS, g *grid) any { return files(t, s)[name] },
			op: func(g *grid, x any) error {
				return g.mapFile(x.(mem.Object), 0, g.slotAddr(slot), size, mem.ProtRX)
			},
		}
	}
	mapped := func(t testing.TB, s *sim.OS, g *grid) any {
		fs := files(t, s)
		must := func(err error) {
			if err != nil {
				t.Fatal(err)
			}
		}
		must(g.mapFile(fs["1.5M"], 0, g.slotAddr(1), 1536*gridKiB, mem.ProtRX))
		must(g.commit(g.slotAddr(1)+1536*gridKiB, 64*gridKiB, mem.ProtRW))
		must(g.mapFile(fs["100K"], 0, g.slotAddr(5), 100*gridKiB, mem.ProtRead))
		must(g.commit(g.slotAddr(3)+600*gridKiB, gridSS, mem.ProtRW))
		return nil
	}
	committed := func(t testing.TB, s *sim.OS, g *grid) any {
		if err := g.commit(g.slotAddr(1)+600*gridKiB, 2*gridSS, mem.ProtRW); err != nil {
			t.Fatal(err)
		}
		return nil
	}
	return []gridScenario{
		mapOp("1.5M", 1, 1536*gridKiB),
		mapOp("1.25M", 2, 1280*gridKiB),
		mapOp("64K", 7, 64*gridKiB),
		mapOp("100K", 3, 100*gridKiB),
		{"commit across slots", committed, func(g *grid, _ any) error {
			return g.commit(g.slotAddr(2)+64*gridKiB, 2*gridSS, mem.ProtRX)
		}},
		{"decommit across slots", committed, func(g *grid, _ any) error {
			return g.decommit(g.slotAddr(1), 3*gridSS)
		}},
		{"protect across slots", committed, func(g *grid, _ any) error {
			return g.protect(g.slotAddr(1)+600*gridKiB, 2*gridSS, mem.ProtRead)
		}},
		{"protect a view", mapped, func(g *grid, _ any) error {
			return g.protect(g.slotAddr(1), 1536*gridKiB, mem.ProtRead)
		}},
		{"reset a view", mapped, func(g *grid, _ any) error {
			return g.reset(g.slotAddr(1), 3*gridSS)
		}},
		{"reset everything", mapped, func(g *grid, _ any) error {
			return g.reset(g.base, g.size)
		}},
		{"release", mapped, func(g *grid, _ any) error { return g.release() }},
	}
}

// TestGridFaults fails every OS call of every grid operation in turn,
// alone and in bursts (a burst as long as the grid's retries defeats
// them), with each error class that takes a different path, and checks
// after each: the OS holds exactly what the grid says; with a single
// fault no released slot is left unreserved; the error carries the
// class; and release then leaves nothing.
func TestGridFaults(t *testing.T) {
	const slots = 8
	classes := []error{mem.ErrInjected, mem.ErrExists}
	// Placement.
	for _, class := range classes {
		for _, burst := range []int{1, gridRestoreTries - 1} {
			for i := 1; ; i++ {
				s := gridSim()
				for j := range burst {
					s.FailCall(i+j, class)
				}
				g, err := newGrid(s, slots*gridSS, 0, gridOptions{attempts: 3})
				when := fmt.Sprintf("place, %v x%d at call %d", class, burst, i)
				if err != nil {
					if !errors.Is(err, class) {
						t.Fatalf("%s: %v does not carry the class", when, err)
					}
					if rs, _ := s.Regions(s.Bounds()); len(rs) != 0 {
						t.Fatalf("%s: failed placement left %v", when, rs)
					}
					continue
				}
				gridNoHoles(t, g, when)
				gridCheck(t, s, g, when)
				gridReleaseAll(t, s, g, when)
				if len(g.Stats().Attempts) == 1 {
					break // The fault fell after the placement.
				}
			}
		}
	}
	for _, sc := range gridScenarios(t) {
		t.Run(sc.name, func(t *testing.T) {
			// A clean run counts the operation's calls.
			s := gridSim()
			g := gridNew(t, s, slots*gridSS, 0, gridOptions{})
			x := sc.setup(t, s, g)
			before := s.Calls()
			if err := sc.op(g, x); err != nil {
				t.Fatalf("clean run: %v", err)
			}
			calls := s.Calls() - before
			if calls == 0 {
				t.Fatal("the operation made no call")
			}
			gridCheck(t, s, g, "clean run")
			gridReleaseAll(t, s, g, "clean run")
			runs := 0
			for _, class := range classes {
				for _, burst := range []int{1, gridRestoreTries - 1, gridRestoreTries} {
					for i := 1; i <= calls; i++ {
						when := fmt.Sprintf("%v x%d at call %d of %d", class, burst, i, calls)
						s := gridSim()
						g := gridNew(t, s, slots*gridSS, 0, gridOptions{})
						x := sc.setup(t, s, g)
						for j := range burst {
							s.FailCall(i+j, class)
						}
						err := sc.op(g, x)
						s.ClearFaults()
						runs++
						if err != nil && !errors.Is(err, class) {
							t.Fatalf("%s: %v does not carry the class", when, err)
						}
						gridCheck(t, s, g, when)
						if sc.name == "release" {
							gridReleaseAll(t, s, g, when)
							continue
						}
						if burst < gridRestoreTries {
							gridNoHoles(t, g, when)
						} else if err := g.reset(g.base, g.size); err != nil {
							// A longer burst may leave holes (or a view
							// half undone): reset puts them back.
							t.Fatalf("%s: reset after: %v", when, err)
						}
						gridCheck(t, s, g, when+", reset")
						gridReleaseAll(t, s, g, when)
					}
				}
			}
			t.Logf("%d calls, %d failure runs", calls, runs)
		})
	}
}

// TestGridConcurrent runs grid operations from many goroutines, each on
// its own slots, with two goroutines sharing one slot's pages (commit and
// decommit pin a slot; they do not claim it).
func TestGridConcurrent(t *testing.T) {
	const workers, per = 8, 6
	s := gridSim()
	g := gridNew(t, s, (workers*per+1)*gridSS, 0, gridOptions{})
	big := gridOpen(t, s, 1536*gridKiB)
	iters := 200
	if testing.Short() {
		iters = 20
	}
	var wg sync.WaitGroup
	errc := make(chan error, workers+2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := w * per
			a := g.slotAddr(first)
			for range iters {
				for _, err := range []error{
					g.mapFile(big, 0, a, 1536*gridKiB, mem.ProtRead),
					g.commit(g.slotAddr(first+3)+64*gridKiB, 2*gridSS, mem.ProtRW),
					g.protect(a, 1536*gridKiB, mem.ProtRX),
					g.protect(g.slotAddr(first+3)+64*gridKiB, gridSS, mem.ProtRead),
					g.decommit(g.slotAddr(first+4), gridSS),
					g.reset(a, per*gridSS),
				} {
					if err != nil {
						errc <- err
						return
					}
				}
			}
		}()
	}
	shared := g.slotAddr(workers * per)
	for half := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := shared + uintptr(half)*gridSS/2
			for range iters * 4 {
				if err := g.commit(a, 64*gridKiB, mem.ProtRW); err != nil {
					errc <- err
					return
				}
				if err := g.decommit(a, 64*gridKiB); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	gridNoHoles(t, g, "after")
	gridCheck(t, s, g, "after")
	if st := g.Stats(); st.Maps != workers*iters || st.Resets != workers*iters {
		t.Fatalf("stats %+v", st)
	}
	gridReleaseAll(t, s, g, "concurrent")
}

// TestGridAspacem records the grid in aspacem the way the VMM does and
// checks aspacem's SyncCheck against the simulator: every slot a
// reservation of its own "grid slot K/N"; after a map, the file view, the
// free gap up to the next granule, and the tail.
func TestGridAspacem(t *testing.T) {
	s := gridSim()
	g := gridNew(t, s, 32*gridSS, 0, gridOptions{})
	m, err := aspacem.New(aspacem.ConfigFor(s))
	if err != nil {
		t.Fatal(err)
	}
	record := func(segs ...aspacem.Segment) {
		t.Helper()
		for _, seg := range segs {
			if err := m.Update(seg); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(when string) {
		t.Helper()
		mism, err := m.SyncCheck(s)
		if err != nil || len(mism) != 0 {
			t.Fatalf("%s: SyncCheck: %v %v", when, err, mism)
		}
	}
	record(g.reserved(g.base, g.size)...)
	check("placed")
	var b strings.Builder
	if err := m.WriteMaps(&b, g.slotAddr(16), g.slotAddr(18)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "[grid slot 16/32]") || !strings.Contains(b.String(), "[grid slot 17/32]") {
		t.Fatalf("maps dump:\n%s", b.String())
	}
	t.Logf("maps dump:\n%s", b.String())

	obj := gridOpen(t, s, 100*gridKiB)
	a := g.slotAddr(4)
	if err := g.mapFile(obj, 0, a, 100*gridKiB, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	gap := g.afterMap(a, 100*gridKiB)
	if len(gap) != 1 || gap[0].Start != a+100*gridKiB || gap[0].End != a+128*gridKiB || gap[0].Kind != aspacem.KindFree {
		t.Fatalf("afterMap: %v", gap)
	}
	record(aspacem.Segment{Start: a, End: a + 100*gridKiB, Kind: aspacem.KindFile, Prot: mem.ProtRead, Owner: "privlib x", Name: obj.Name()})
	record(gap...)
	check("mapped")
	if got := g.afterMap(g.slotAddr(8), 64*gridKiB); len(got) != 0 {
		t.Fatalf("afterMap of a view ending on a granule: %v", got)
	}
	if err := g.reset(a, gridSS); err != nil {
		t.Fatal(err)
	}
	record(g.reserved(a, gridSS)...)
	check("reset")
	if err := g.release(); err != nil {
		t.Fatal(err)
	}
	record(aspacem.Segment{Start: g.base, End: g.base + g.size, Kind: aspacem.KindFree})
	check("released")
}

// BenchmarkGridPlace measures placing (and, untimed, releasing) a 2 GiB
// grid of 640 KiB slots: on the simulator, and on the native OS when it
// has Windows rules (Windows, or Wine: docs/ARCHITECTURE.md, "Windows under Wine", measured 9-35
// ms for the 3,277 reservations alone).
func BenchmarkGridPlace(b *testing.B) {
	bench := func(b *testing.B, o mem.OS) {
		for range b.N {
			g, err := newGrid(o, 2*gridGiB, 0, gridOptions{})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := g.release(); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.ReportMetric(3277, "slots/op")
	}
	b.Run("sim", func(b *testing.B) { bench(b, gridSim()) })
	if o := osmem.Native(); o.Rules() == mem.RulesWindows {
		b.Run("native", func(b *testing.B) { bench(b, o) })
	}
}

// TestGridBitmap checks the committed-page bitmap's run finder against a
// plain slice of booleans.
func TestGridBitmap(t *testing.T) {
	const pages = 300
	g := &grid{base: 0x10_0000_0000, page: 4 * gridKiB, size: pages * 4 * gridKiB, committed: make([]uint64, (pages+63)/64)}
	model := make([]bool, pages)
	rnd := uint64(1)
	next := func(n int) int {
		rnd = rnd*6364136223846793005 + 1442695040888963407
		return int((rnd >> 33) % uint64(n))
	}
	addr := func(i int) uintptr { return g.base + uintptr(i)*g.page }
	for iter := range 2000 {
		i := next(pages)
		j := i + 1 + next(pages-i)
		set := next(2) == 0
		g.markLocked(addr(i), addr(j), set)
		for p := i; p < j; p++ {
			model[p] = set
		}
		lo := next(pages)
		hi := lo + 1 + next(pages-lo)
		for _, want := range []bool{true, false} {
			var got, exp [][2]int
			g.runsLocked(addr(lo), addr(hi), want, func(a, e uintptr) {
				got = append(got, [2]int{int((a - g.base) / g.page), int((e - g.base) / g.page)})
			})
			for p := lo; p < hi; p++ {
				if model[p] != want {
					continue
				}
				if n := len(exp); n > 0 && exp[n-1][1] == p {
					exp[n-1][1]++
				} else {
					exp = append(exp, [2]int{p, p + 1})
				}
			}
			if !slices.Equal(got, exp) {
				t.Fatalf("iteration %d: runs of %v in [%d, %d): got %v, want %v", iter, want, lo, hi, got, exp)
			}
			if g.anyLocked(addr(lo), addr(hi), want) != (len(exp) > 0) {
				t.Fatalf("iteration %d: anyLocked disagrees", iter)
			}
		}
	}
}
