package strategy

import (
	"errors"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem/sim"
	"github.com/reachvm/reachvm/mem"
)

// hiddenOS models the mappings Wine makes on the Linux side of a Windows
// process: they hold their addresses, so a map over
// them fails, but VirtualQuery reports them free. The sim cannot show a
// range as free and refuse to map it, so the mappings are real sim
// mappings (MapForeign) that this decorator leaves out of Regions and
// Query. Query reports an address in a hidden range as free over that
// range alone, not over the whole gap around it; nearSearch, the code
// under test, looks only at Regions.
type hiddenOS struct {
	*sim.OS
	hide [][2]uintptr
}

// hideForeign maps [lo, hi) on the sim as someone else's and hides it.
func (h *hiddenOS) hideForeign(t *testing.T, lo, hi uintptr) {
	t.Helper()
	if err := h.OS.MapForeign(lo, hi, mem.ProtRW, ""); err != nil {
		t.Fatalf("hidden mapping [%#x, %#x): %v", lo, hi, err)
	}
	h.hide = append(h.hide, [2]uintptr{lo, hi})
}

func (h *hiddenOS) hidden(lo, hi uintptr) bool {
	for _, r := range h.hide {
		if r[0] <= lo && hi <= r[1] {
			return true
		}
	}
	return false
}

func (h *hiddenOS) Regions(lo, hi uintptr) ([]mem.Region, error) {
	rs, err := h.OS.Regions(lo, hi)
	out := rs[:0]
	for _, r := range rs {
		if !h.hidden(r.Start, r.End) {
			out = append(out, r)
		}
	}
	return out, err
}

func (h *hiddenOS) Query(addr uintptr) (mem.Region, error) {
	for _, r := range h.hide {
		if r[0] <= addr && addr < r[1] {
			return mem.Region{Start: r[0], End: r[1], State: mem.StateFree}, nil
		}
	}
	return h.OS.Query(addr)
}

// A near search that meets a hole the OS shows free but will not map
// (Wine's host mappings: F after B in one process under Wine 8.0 failed
// every trial, retrying the nearest hole) must give that hole up, count
// the failure as a lost race, and place in the next hole within reach;
// and it must not try the same hole again for the next library. Both
// strategies built on the near search, F (Windows rules) and linux-near
// (Linux rules), are checked, with the two holes nearest the region,
// just above and just below it, hidden.
func TestNearSkipsHiddenHoles(t *testing.T) {
	for _, st := range []Strategy{&F{}, &LinuxNear{}} {
		h := &hiddenOS{OS: newSim(st)}
		// A 4 GiB block the region's placement must avoid, released
		// after it, leaves free space on both sides of the region.
		const block = 4 << 30
		b, err := h.OS.Reserve(0, block, mem.Hint)
		if err != nil {
			t.Fatal(err)
		}
		mustSetup(t, st, h)
		if err := h.OS.Release(b, block); err != nil {
			t.Fatal(err)
		}
		region := st.Region()
		lo, hi := region.Start, region.End
		const n = 64 << 20
		gran := h.Granularity()
		if lo < n+2*gran {
			t.Fatalf("%s: region at %#x, no room below it", st.Name(), lo)
		}
		if rs, _ := h.OS.Regions(lo-n-gran, lo); len(rs) != 0 {
			t.Fatalf("%s: sim layout below the region: %+v", st.Name(), rs)
		}
		if rs, _ := h.OS.Regions(hi, hi+n+gran); len(rs) != 0 {
			t.Fatalf("%s: sim layout above the region: %+v", st.Name(), rs)
		}
		// Hidden next to the region, then a visible granule beyond each
		// hidden range, so that the next holes start past them (read-only,
		// so that Linux rules do not merge it into the hidden VMA).
		h.hideForeign(t, hi, hi+n)
		h.hideForeign(t, lo-n, lo)
		for _, r := range [][2]uintptr{{hi + n, hi + n + gran}, {lo - n - gran, lo - n}} {
			if err := h.OS.MapForeign(r[0], r[1], mem.ProtRead, ""); err != nil {
				t.Fatal(err)
			}
		}
		for i, size := range []uintptr{7373 << 10, 1740 << 10} {
			v, err := st.Place(lib(size), true)
			if err != nil {
				t.Fatalf("%s: library %d: %v", st.Name(), i, err)
			}
			if d := v.Distance(region); !v.Reachable(region) || d > mem.Rel32Max {
				t.Errorf("%s: library %d at %#x, out of reach", st.Name(), i, v.Addr)
			}
			for _, r := range h.hide {
				if v.Addr < r[1] && r[0] < v.Addr+v.Size {
					t.Errorf("%s: library %d at [%#x, +%#x) over a hidden mapping", st.Name(), i, v.Addr, v.Size)
				}
			}
			// The first library loses both hidden holes, once each; the
			// second remembers them.
			w, l := st.Races()
			if want := 3 + i; w != want || l != 2 {
				t.Errorf("%s: after library %d: %d windows, %d losses; want %d, 2", st.Name(), i, w, l, want)
			}
		}
		if err := st.Teardown(); err != nil {
			t.Errorf("%s: teardown: %v", st.Name(), err)
		}
	}
}

// C takes the OS's placement for its range and reserves it only at the
// end of init; a mapping there that no query shows (Wine's host mappings
// again) makes that reservation fail. The harness (package bench) counts it as a failed
// set-up, not as its own error: the error must wrap mem.ErrExists.
func TestCClaimFailsOverHidden(t *testing.T) {
	st := &C{}
	h := &hiddenOS{OS: newSim(st)}
	mustSetup(t, st, h)
	lo := st.Region().Start
	h.hideForeign(t, lo+(64<<20), lo+(65<<20))
	if _, err := st.Place(lib(1740<<10), false); err != nil {
		t.Fatal(err)
	}
	if err := st.EndInit(); !errors.Is(err, mem.ErrExists) {
		t.Errorf("C's end of init over a hidden mapping: %v, want a failed claim", err)
	}
	if err := st.Teardown(); err != nil {
		t.Errorf("teardown after a failed claim: %v", err)
	}
}
