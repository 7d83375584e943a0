package aspacem

import (
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
)

// fakeOS is an osmem.OS that only answers questions: its Regions are
// canned. It stands in for the simulator and the native backend where a
// test needs to control exactly what the kernel reports.
type fakeOS struct {
	rules    osmem.Rules
	lo, hi   uintptr
	page     uintptr
	gran     uintptr
	regions  []osmem.Region
	err      error
	regCalls int
}

func newFakeLinux() *fakeOS {
	return &fakeOS{rules: osmem.RulesLinux, lo: 0x10000, hi: 0x7fff_ffff_0000, page: 0x1000, gran: 0x1000}
}

func newFakeWindows() *fakeOS {
	return &fakeOS{rules: osmem.RulesWindows, lo: 0x10000, hi: 0x7fff_fffe_0000, page: 0x1000, gran: 0x10000}
}

func (f *fakeOS) Name() string {
	if f.rules == osmem.RulesWindows {
		return "fake-windows"
	}
	return "fake-linux"
}
func (f *fakeOS) Rules() osmem.Rules       { return f.rules }
func (f *fakeOS) PageSize() uintptr        { return f.page }
func (f *fakeOS) Granularity() uintptr     { return f.gran }
func (f *fakeOS) Bounds() (lo, hi uintptr) { return f.lo, f.hi }
func (f *fakeOS) notSupported(op string) error {
	return &osmem.Error{Op: op, Class: osmem.ErrNotSupported, Detail: "fakeOS only answers queries"}
}
func (f *fakeOS) Reserve(addr, size uintptr, mode osmem.Mode) (uintptr, error) {
	return 0, f.notSupported("reserve")
}
func (f *fakeOS) Commit(addr, size uintptr, prot osmem.Prot) error  { return f.notSupported("commit") }
func (f *fakeOS) Decommit(addr, size uintptr) error                 { return f.notSupported("decommit") }
func (f *fakeOS) Protect(addr, size uintptr, prot osmem.Prot) error { return f.notSupported("protect") }
func (f *fakeOS) Release(addr, size uintptr) error                  { return f.notSupported("release") }
func (f *fakeOS) OpenFile(path string) (osmem.Object, error)        { return nil, f.notSupported("open") }
func (f *fakeOS) CreateShared(name string, size uint64) (osmem.Object, error) {
	return nil, f.notSupported("create shared")
}
func (f *fakeOS) CloseObject(obj osmem.Object) error { return f.notSupported("close") }
func (f *fakeOS) MapObject(obj osmem.Object, off uint64, addr, size uintptr, prot osmem.Prot, mode osmem.Mode) (uintptr, error) {
	return 0, f.notSupported("map")
}
func (f *fakeOS) Unmap(addr, size uintptr) error { return f.notSupported("unmap") }
func (f *fakeOS) Query(addr uintptr) (osmem.Region, error) {
	for _, r := range f.regions {
		if r.Start <= addr && addr < r.End {
			return r, nil
		}
	}
	return osmem.Region{Start: addr &^ (f.page - 1), End: addr&^(f.page-1) + f.page}, nil
}
func (f *fakeOS) Regions(lo, hi uintptr) ([]osmem.Region, error) {
	f.regCalls++
	if f.err != nil {
		return nil, f.err
	}
	var out []osmem.Region
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

var _ osmem.OS = (*fakeOS)(nil)

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
