package sim_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/osmem/sim"
)

// The simulator is checked against a model written the slow, obvious way:
// one record per page of a small address space, every rule applied page by
// page. Random operations run on both; after each, the results, the errors
// and the whole address space must agree, and the simulator's invariants
// must hold. The model shares the rules with the simulator (both follow the
// package documentation) but none of its data structures: what it checks
// is the segment tree, its splitting, merging and gap search.

const modelPage = 4 << 10

type mpage struct {
	mapped bool
	state  osmem.State
	typ    osmem.Type
	prot   osmem.Prot
	shared bool
	base   uintptr
	obj    osmem.Object
	name   string
	off    uint64
}

type malloc struct {
	end  uintptr
	view bool
	max  osmem.Prot
}

type model struct {
	win            bool
	lo, hi, gran   uintptr
	mmapBase       uintptr
	pages          []mpage // pages[i] is address i*modelPage, for [0, hi)
	allocs         map[uintptr]malloc
	closed         map[osmem.Object]bool
	dev, inode     map[osmem.Object]uint64
	memfdName      func(osmem.Object) string
	linuxStateFunc func(osmem.Type, osmem.Prot, bool) osmem.State
}

func newModel(rules osmem.Rules, s *sim.OS) *model {
	lo, hi := s.Bounds()
	return &model{
		win:      rules == osmem.RulesWindows,
		lo:       lo,
		hi:       hi,
		gran:     s.Granularity(),
		mmapBase: s.MmapBase(),
		pages:    make([]mpage, hi/modelPage),
		allocs:   map[uintptr]malloc{},
		closed:   map[osmem.Object]bool{},
	}
}

type merr struct {
	class error
	code  uintptr
}

func (m *model) codeOf(class error) uintptr {
	switch class {
	case osmem.ErrExists:
		if m.win {
			return 487
		}
		return 17
	case osmem.ErrNoMemory:
		if m.win {
			return 8
		}
		return 12
	case osmem.ErrNotMapped:
		if m.win {
			return 487
		}
		return 12
	}
	return 0
}

func (m *model) pg(a uintptr) *mpage { return &m.pages[a/modelPage] }

// used reports whether any page of [a, b) is mapped; pages beyond the
// model (at or above hi) count as free.
func (m *model) used(a, b uintptr) bool {
	for x := a; x < b && x < m.hi; x += modelPage {
		if m.pg(x).mapped {
			return true
		}
	}
	return false
}

func (m *model) checkRange(addr, size uintptr) *merr {
	if size == 0 || addr%modelPage != 0 || size%modelPage != 0 || addr+size < addr || addr+size > m.hi {
		return &merr{osmem.ErrInvalid, 0}
	}
	return nil
}

func linuxState(typ osmem.Type, prot osmem.Prot, shared bool) osmem.State {
	if prot == osmem.ProtNone && typ == osmem.TypePrivate && !shared {
		return osmem.StateReserved
	}
	return osmem.StateCommitted
}

// place mirrors placement: validation, then the address.
func (m *model) place(op string, addr, size uintptr, mode osmem.Mode) (uintptr, *merr) {
	if mode > osmem.Fixed {
		return 0, &merr{osmem.ErrInvalid, 0}
	}
	if mode == osmem.Fixed && m.win {
		return 0, &merr{osmem.ErrNotSupported, 0}
	}
	if mode == osmem.Hint && m.win {
		addr &^= m.gran - 1
	}
	if e := m.checkRange(addr, size); e != nil {
		return 0, e
	}
	if addr%m.gran != 0 {
		if op == "map" {
			return 0, &merr{osmem.ErrInvalid, 1132}
		}
		return 0, &merr{osmem.ErrInvalid, 0}
	}
	if mode == osmem.Hint {
		if addr != 0 && addr >= m.lo && !m.used(addr, addr+size) {
			return addr, nil
		}
		if m.win {
			for a := m.lo; a+size <= m.hi; a += m.gran {
				if !m.used(a, a+size) {
					return a, nil
				}
			}
		} else {
			if m.mmapBase >= size {
				for a := m.mmapBase - size; a >= m.lo && a+size > a; a -= modelPage {
					if !m.used(a, a+size) {
						return a, nil
					}
				}
			}
			for a := m.mmapBase; a+size <= m.hi; a += modelPage {
				if !m.used(a, a+size) {
					return a, nil
				}
			}
		}
		return 0, &merr{osmem.ErrNoMemory, m.codeOf(osmem.ErrNoMemory)}
	}
	if addr < m.lo {
		if m.win {
			return 0, &merr{osmem.ErrInvalid, 87}
		}
		return 0, &merr{osmem.ErrInvalid, 0}
	}
	if mode == osmem.Exact && m.used(addr, addr+size) {
		return 0, &merr{osmem.ErrExists, m.codeOf(osmem.ErrExists)}
	}
	return addr, nil
}

func (m *model) clear(a, b uintptr) {
	for x := a; x < b && x < m.hi; x += modelPage {
		*m.pg(x) = mpage{}
	}
}

func (m *model) reserve(addr, size uintptr, mode osmem.Mode) (uintptr, *merr) {
	a, e := m.place("reserve", addr, size, mode)
	if e != nil {
		return 0, e
	}
	m.clear(a, a+size)
	for x := a; x < a+size; x += modelPage {
		p := mpage{mapped: true, state: osmem.StateReserved, typ: osmem.TypePrivate}
		if m.win {
			p.base = a
		}
		*m.pg(x) = p
	}
	if m.win {
		m.allocs[a] = malloc{end: a + size, max: osmem.ProtRWX}
	}
	return a, nil
}

// mprotect mirrors Linux: change pages until a hole.
func (m *model) mprotect(addr, size uintptr, prot osmem.Prot) *merr {
	for x := addr; x < addr+size; x += modelPage {
		p := m.pg(x)
		if !p.mapped {
			return &merr{osmem.ErrNotMapped, 12}
		}
		p.prot = prot
		p.state = linuxState(p.typ, prot, p.shared)
	}
	return nil
}

// within mirrors the Windows one-allocation rule.
func (m *model) within(addr, size uintptr, protect bool) (malloc, *merr) {
	p := m.pg(addr)
	if !p.mapped {
		return malloc{}, &merr{osmem.ErrNotMapped, 487}
	}
	a := m.allocs[p.base]
	if addr+size > a.end {
		return malloc{}, &merr{osmem.ErrNotMapped, 487}
	}
	if a.view && !protect {
		return malloc{}, &merr{osmem.ErrNotMapped, 487}
	}
	if protect {
		for x := addr; x < addr+size; x += modelPage {
			if m.pg(x).state != osmem.StateCommitted {
				return malloc{}, &merr{osmem.ErrNotMapped, 487}
			}
		}
	}
	return a, nil
}

func (m *model) commit(addr, size uintptr, prot osmem.Prot) *merr {
	if e := m.checkRange(addr, size); e != nil {
		return e
	}
	if !prot.Valid() {
		return &merr{osmem.ErrInvalid, 0}
	}
	if !m.win {
		return m.mprotect(addr, size, prot)
	}
	if _, e := m.within(addr, size, false); e != nil {
		return e
	}
	for x := addr; x < addr+size; x += modelPage {
		m.pg(x).state, m.pg(x).prot = osmem.StateCommitted, prot
	}
	return nil
}

func (m *model) decommit(addr, size uintptr) *merr {
	if e := m.checkRange(addr, size); e != nil {
		return e
	}
	if !m.win {
		return m.mprotect(addr, size, osmem.ProtNone)
	}
	if _, e := m.within(addr, size, false); e != nil {
		return e
	}
	for x := addr; x < addr+size; x += modelPage {
		m.pg(x).state, m.pg(x).prot = osmem.StateReserved, osmem.ProtNone
	}
	return nil
}

func (m *model) protect(addr, size uintptr, prot osmem.Prot) *merr {
	if e := m.checkRange(addr, size); e != nil {
		return e
	}
	if !prot.Valid() {
		return &merr{osmem.ErrInvalid, 0}
	}
	if !m.win {
		return m.mprotect(addr, size, prot)
	}
	a, e := m.within(addr, size, true)
	if e != nil {
		return e
	}
	if prot&^a.max != 0 {
		return &merr{osmem.ErrInvalid, 87}
	}
	for x := addr; x < addr+size; x += modelPage {
		m.pg(x).prot = prot
	}
	return nil
}

func (m *model) release(addr, size uintptr, view bool) *merr {
	if e := m.checkRange(addr, size); e != nil {
		return e
	}
	if !m.win {
		m.clear(addr, addr+size)
		return nil
	}
	a, ok := m.allocs[addr]
	if !ok || a.view != view {
		return &merr{osmem.ErrNotMapped, 487}
	}
	if a.end-addr != size {
		return &merr{osmem.ErrInvalid, 87}
	}
	m.clear(addr, a.end)
	delete(m.allocs, addr)
	return nil
}

func (m *model) mapObject(obj osmem.Object, off uint64, addr, size uintptr, prot osmem.Prot, mode osmem.Mode) (uintptr, *merr) {
	if m.closed[obj] {
		return 0, &merr{osmem.ErrInvalid, map[bool]uintptr{false: 9, true: 6}[m.win]}
	}
	if !prot.Valid() {
		return 0, &merr{osmem.ErrInvalid, 0}
	}
	if off%uint64(m.gran) != 0 {
		return 0, &merr{osmem.ErrInvalid, map[bool]uintptr{false: 0, true: 1132}[m.win]}
	}
	if m.win {
		if off >= obj.Size() || uint64(size) > obj.Size()-off {
			return 0, &merr{osmem.ErrInvalid, 5}
		}
	}
	a, e := m.place("map", addr, size, mode)
	if e != nil {
		return 0, e
	}
	m.clear(a, a+size)
	name := obj.Name()
	if obj.Shared() && !m.win {
		name = "/memfd:" + name + " (deleted)"
	}
	for x := a; x < a+size; x += modelPage {
		p := mpage{mapped: true, typ: osmem.TypeMapped, prot: prot, shared: obj.Shared(), obj: obj, name: name, off: off + uint64(x-a)}
		if m.win {
			p.state, p.base = osmem.StateCommitted, a
		} else {
			p.state = linuxState(p.typ, prot, p.shared)
		}
		*m.pg(x) = p
	}
	if m.win {
		max := osmem.ProtRWX
		if obj.Shared() {
			max = osmem.ProtRead | prot&(osmem.ProtWrite|osmem.ProtExec)
		}
		m.allocs[a] = malloc{end: a + size, view: true, max: max}
	}
	return a, nil
}

// regions renders the model as maximal runs, as Snapshot does.
func (m *model) regions() []osmem.Region {
	var out []osmem.Region
	for i := range m.pages {
		p := &m.pages[i]
		if !p.mapped {
			continue
		}
		a := uintptr(i) * modelPage
		r := osmem.Region{Start: a, End: a + modelPage, State: p.state, Type: p.typ, Prot: p.prot, Shared: p.shared, AllocBase: p.base, Name: p.name}
		if p.typ != osmem.TypePrivate {
			r.Offset = p.off
			if id, ok := p.obj.(osmem.FileIdentity); ok {
				r.Dev, r.Inode = id.FileID()
			}
		}
		if n := len(out); n > 0 {
			q := &out[n-1]
			prev := &m.pages[i-1]
			if q.End == a && prev.mapped && prev.obj == p.obj && q.State == r.State && q.Type == r.Type && q.Prot == r.Prot &&
				q.Shared == r.Shared && q.AllocBase == r.AllocBase && q.Name == r.Name &&
				(p.typ == osmem.TypePrivate || prev.off+modelPage == p.off) {
				q.End = r.End
				continue
			}
		}
		out = append(out, r)
	}
	if !m.win {
		for i := range out {
			out[i].AllocBase = out[i].Start
		}
	}
	return out
}

func sameErr(got error, want *merr) bool {
	if want == nil {
		return got == nil
	}
	var oe *osmem.Error
	return errors.As(got, &oe) && oe.Class == want.class && oe.Code == want.code
}

// TestAgainstModel runs random operations on the simulator and the model.
func TestAgainstModel(t *testing.T) {
	path := tempFile(t)
	trials := 150
	if testing.Short() {
		trials = 30
	}
	for _, rules := range bothRules {
		for trial := range trials {
			runModelTrial(t, rules, uint64(trial), path)
			if t.Failed() {
				return
			}
		}
	}
}

func runModelTrial(t *testing.T, rules osmem.Rules, seed uint64, path string) {
	rng := rand.New(rand.NewPCG(seed, uint64(rules)))
	g := uintptr(modelPage)
	if rules == osmem.RulesWindows {
		g = 64 << 10
	}
	// A small space: a few dozen granules, so that placement runs out and
	// operations collide often.
	lo := g
	hi := lo + uintptr(8+rng.IntN(40))*g
	s := sim.New(rules, sim.Options{Lo: lo, Hi: hi, Seed: int64(seed)})
	m := newModel(rules, s)
	if m.mmapBase == 0 && rules == osmem.RulesLinux {
		t.Fatalf("no mmap base")
	}

	var objs []osmem.Object
	for i := range 3 {
		o, err := s.CreateShared(fmt.Sprintf("obj%d", i), uint64(1+rng.IntN(4))*uint64(g))
		if err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	f, err := s.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, f)

	// addr picks an address: mostly near existing allocations and
	// aligned, sometimes anything.
	addr := func() uintptr {
		switch rng.IntN(10) {
		case 0:
			return uintptr(rng.Uint64N(uint64(hi + 2*g)))
		case 1:
			return 0
		case 2, 3:
			return uintptr(rng.Uint64N(uint64(hi/g+2))) * g
		}
		return uintptr(rng.Uint64N(uint64(hi/modelPage+2))) * modelPage
	}
	size := func() uintptr {
		switch rng.IntN(10) {
		case 0:
			return uintptr(rng.Uint64N(3 * uint64(g)))
		case 1, 2, 3:
			return uintptr(1+rng.IntN(4)) * g
		}
		return uintptr(1+rng.IntN(8)) * modelPage
	}
	prot := func() osmem.Prot {
		if rng.IntN(20) == 0 {
			return osmem.Prot(8 + rng.IntN(8))
		}
		return osmem.Prot(rng.IntN(8))
	}
	mode := func() osmem.Mode {
		if rng.IntN(30) == 0 {
			return osmem.Mode(3)
		}
		return osmem.Mode(rng.IntN(3))
	}
	// Prefer existing allocation bases for Release and Unmap so that
	// Windows rules succeed sometimes.
	base := func() (uintptr, uintptr) {
		rs := s.Snapshot()
		if len(rs) == 0 || rng.IntN(4) == 0 {
			return addr(), size()
		}
		r := rs[rng.IntN(len(rs))]
		b := r.AllocBase
		var end uintptr
		for _, q := range rs {
			if q.AllocBase == b && q.End > end {
				end = q.End
			}
		}
		if rules == osmem.RulesLinux || rng.IntN(5) == 0 {
			return r.Start, r.End - r.Start
		}
		return b, end - b
	}

	for op := range 300 {
		var desc string
		var gotA, wantA uintptr
		var got error
		var want *merr
		switch k := rng.IntN(9); k {
		case 0, 1:
			a, n, md := addr(), size(), mode()
			desc = fmt.Sprintf("Reserve(%#x, %#x, %v)", a, n, md)
			gotA, got = s.Reserve(a, n, md)
			wantA, want = m.reserve(a, n, md)
		case 2:
			a, n, p := addr(), size(), prot()
			desc = fmt.Sprintf("Commit(%#x, %#x, %v)", a, n, p)
			got, want = s.Commit(a, n, p), m.commit(a, n, p)
		case 3:
			a, n := addr(), size()
			desc = fmt.Sprintf("Decommit(%#x, %#x)", a, n)
			got, want = s.Decommit(a, n), m.decommit(a, n)
		case 4:
			a, n, p := addr(), size(), prot()
			if rng.IntN(2) == 0 {
				a, n = base()
			}
			desc = fmt.Sprintf("Protect(%#x, %#x, %v)", a, n, p)
			got, want = s.Protect(a, n, p), m.protect(a, n, p)
		case 5:
			a, n := base()
			desc = fmt.Sprintf("Release(%#x, %#x)", a, n)
			got, want = s.Release(a, n), m.release(a, n, false)
		case 6:
			a, n := base()
			desc = fmt.Sprintf("Unmap(%#x, %#x)", a, n)
			got, want = s.Unmap(a, n), m.release(a, n, true)
		case 7:
			o := objs[rng.IntN(len(objs))]
			off := uint64(rng.IntN(3)) * uint64(g)
			if rng.IntN(10) == 0 {
				off += modelPage
			}
			a, n, p, md := addr(), size(), prot(), mode()
			desc = fmt.Sprintf("MapObject(%v, %#x, %#x, %#x, %v, %v)", o, off, a, n, p, md)
			gotA, got = s.MapObject(o, off, a, n, p, md)
			wantA, want = m.mapObject(o, off, a, n, p, md)
		case 8:
			if rng.IntN(10) != 0 {
				continue
			}
			i := rng.IntN(len(objs))
			desc = fmt.Sprintf("CloseObject(%v)", objs[i])
			got = s.CloseObject(objs[i])
			if m.closed[objs[i]] {
				want = &merr{osmem.ErrInvalid, map[bool]uintptr{false: 9, true: 6}[m.win]}
			}
			m.closed[objs[i]] = true
		}
		ctx := fmt.Sprintf("%v seed %d op %d: %s", rules, seed, op, desc)
		if !sameErr(got, want) || gotA != wantA {
			t.Fatalf("%s = %#x, %v; model says %#x, %+v", ctx, gotA, got, wantA, want)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("%s: %v", ctx, err)
		}
		if snap, mr := s.Snapshot(), m.regions(); (len(snap) != 0 || len(mr) != 0) && !reflect.DeepEqual(snap, mr) {
			t.Fatalf("%s: state differs\nsim   %v\nmodel %v", ctx, snap, mr)
		}
		rs, err := s.Regions(lo, hi)
		if err != nil || len(rs) > len(m.regions()) {
			t.Fatalf("%s: Regions: %v, %v", ctx, rs, err)
		}
	}
}
