package aspacem

import (
	"testing"

	"github.com/reachvm/reachvm/mem"
)

// fakeOS is an mem.OS that only answers questions: its Regions are
// canned. It stands in for the simulator and the native backend where a
// test needs to control exactly what the kernel reports.
type fakeOS struct {
	rules    mem.Rules
	lo, hi   uintptr
	page     uintptr
	gran     uintptr
	regions  []mem.Region
	err      error
	regCalls int
}

func newFakeLinux() *fakeOS {
	return &fakeOS{rules: mem.RulesLinux, lo: 0x10000, hi: 0x7fff_ffff_0000, page: 0x1000, gran: 0x1000}
}

func newFakeWindows() *fakeOS {
	return &fakeOS{rules: mem.RulesWindows, lo: 0x10000, hi: 0x7fff_fffe_0000, page: 0x1000, gran: 0x10000}
}

func (f *fakeOS) Name() string {
	if f.rules == mem.RulesWindows {
		return "fake-windows"
	}
	return "fake-linux"
}
func (f *fakeOS) Rules() mem.Rules         { return f.rules }
func (f *fakeOS) PageSize() uintptr        { return f.page }
func (f *fakeOS) Granularity() uintptr     { return f.gran }
func (f *fakeOS) Bounds() (lo, hi uintptr) { return f.lo, f.hi }
func (f *fakeOS) notSupported(op string) error {
	return &mem.Error{Op: op, Class: mem.ErrNotSupported, Detail: "fakeOS only answers queries"}
}
func (f *fakeOS) Reserve(addr, size uintptr, mode mem.Mode) (uintptr, error) {
	return 0, f.notSupported("reserve")
}
func (f *fakeOS) Commit(addr, size uintptr, prot mem.Prot) error  { return f.notSupported("commit") }
func (f *fakeOS) Decommit(addr, size uintptr) error               { return f.notSupported("decommit") }
func (f *fakeOS) Protect(addr, size uintptr, prot mem.Prot) error { return f.notSupported("protect") }
func (f *fakeOS) Release(addr, size uintptr) error                { return f.notSupported("release") }
func (f *fakeOS) OpenFile(path string) (mem.Object, error)        { return nil, f.notSupported("open") }
func (f *fakeOS) CreateShared(name string, size uint64) (mem.Object, error) {
	return nil, f.notSupported("create shared")
}
func (f *fakeOS) CloseObject(obj mem.Object) error { return f.notSupported("close") }
func (f *fakeOS) MapObject(obj mem.Object, off uint64, addr, size uintptr, prot mem.Prot, mode mem.Mode) (uintptr, error) {
	return 0, f.notSupported("map")
}
func (f *fakeOS) Unmap(addr, size uintptr) error { return f.notSupported("unmap") }
func (f *fakeOS) Query(addr uintptr) (mem.Region, error) {
	for _, r := range f.regions {
		if r.Start <= addr && addr < r.End {
			return r, nil
		}
	}
	return mem.Region{Start: mem.AlignDown(addr, f.page), End: mem.AlignDown(addr, f.page) + f.page}, nil
}
func (f *fakeOS) Regions(lo, hi uintptr) ([]mem.Region, error) {
	f.regCalls++
	if f.err != nil {
		return nil, f.err
	}
	var out []mem.Region
	for _, r := range f.regions {
		if r.End <= lo || r.Start >= hi {
			continue
		}
		if r.Start < lo {
			if r.Name != "" {
				r.Offset += uint64(lo - r.Start)
			}
			r.Start = lo
		}
		r.End = min(r.End, hi)
		out = append(out, r)
	}
	return out, nil
}

var _ mem.OS = (*fakeOS)(nil)

// mustNew returns a new map of cfg or fails t.
func mustNew(t testing.TB, cfg Config) *Map {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// mustUpdate applies s and checks the invariants.
func mustUpdate(t testing.TB, m *Map, s Segment) {
	t.Helper()
	if err := m.Update(s); err != nil {
		t.Fatalf("Update(%v): %v", s, err)
	}
	if err := m.CheckInvariants(); err != nil {
		t.Fatalf("after Update(%v): %v", s, err)
	}
}

// smallConfig is a 1 MiB address space of 4 KiB pages.
func smallConfig() Config {
	return Config{Lo: 0x100000, Hi: 0x200000, PageSize: 0x1000, Granularity: 0x1000}
}
