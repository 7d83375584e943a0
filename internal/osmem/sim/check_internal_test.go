package sim

import (
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
)

// TestCheckDetectsCorruption breaks each invariant by hand and expects
// Check to name it: a Check that cannot fail would make every test that
// calls it vacuous.
func TestCheckDetectsCorruption(t *testing.T) {
	const p = DefaultPageSize
	anon := func(a, b uintptr, prot osmem.Prot) seg {
		st := osmem.StateCommitted
		if prot == osmem.ProtNone {
			st = osmem.StateReserved
		}
		return seg{start: a, end: b, state: st, typ: osmem.TypePrivate, prot: prot}
	}
	cases := []struct {
		name  string
		rules osmem.Rules
		segs  []seg
		alloc []alloc
		want  string
	}{
		{"overlap", osmem.RulesLinux, []seg{anon(0x10000, 0x13000, osmem.ProtRW), anon(0x12000, 0x14000, osmem.ProtRead)}, nil, "overlap"},
		{"unmerged", osmem.RulesLinux, []seg{anon(0x10000, 0x11000, osmem.ProtRW), anon(0x11000, 0x12000, osmem.ProtRW)}, nil, "not merged"},
		{"unaligned", osmem.RulesLinux, []seg{anon(0x10000, 0x10800, osmem.ProtRW)}, nil, "not page aligned"},
		{"empty", osmem.RulesLinux, []seg{anon(0x10000, 0x10000, osmem.ProtRW)}, nil, "empty"},
		{"reserved with access", osmem.RulesLinux, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateReserved, typ: osmem.TypePrivate, prot: osmem.ProtRW}}, nil, "protection"},
		{"linux state", osmem.RulesLinux, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateCommitted, typ: osmem.TypePrivate}}, nil, "is committed, want reserved"},
		{"linux base", osmem.RulesLinux, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateReserved, typ: osmem.TypePrivate, base: 0x10000}}, nil, "allocation base"},
		{"anon offset", osmem.RulesLinux, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateReserved, typ: osmem.TypePrivate, off: p}}, nil, "offset"},
		{"no allocation", osmem.RulesWindows, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateReserved, typ: osmem.TypePrivate, base: 0x10000}}, nil, "outside its allocation"},
		{"uncovered allocation", osmem.RulesWindows, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateReserved, typ: osmem.TypePrivate, base: 0x10000}},
			[]alloc{{base: 0x10000, end: 0x12000, max: osmem.ProtRWX}}, "covered by"},
		{"unaligned allocation", osmem.RulesWindows, []seg{{start: 0x11000, end: 0x12000, state: osmem.StateReserved, typ: osmem.TypePrivate, base: 0x11000}},
			[]alloc{{base: 0x11000, end: 0x12000, max: osmem.ProtRWX}}, "malformed"},
		{"reserved view", osmem.RulesWindows, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateReserved, typ: osmem.TypeMapped, base: 0x10000}},
			[]alloc{{base: 0x10000, end: 0x11000, view: true, max: osmem.ProtRWX}}, "not committed"},
		{"private view", osmem.RulesWindows, []seg{{start: 0x10000, end: 0x11000, state: osmem.StateCommitted, typ: osmem.TypePrivate, base: 0x10000}},
			[]alloc{{base: 0x10000, end: 0x11000, view: true, max: osmem.ProtRWX}}, "of type"},
	}
	for _, c := range cases {
		s := New(c.rules, Options{})
		for _, g := range c.segs {
			s.sp.t.ReplaceOrInsert(g)
		}
		for _, a := range c.alloc {
			s.allocs[a.base] = a
		}
		err := s.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Check() = %v, want an error about %q", c.name, err, c.want)
		}
	}
	if err := New(osmem.RulesWindows, Options{}).Check(); err != nil {
		t.Errorf("empty simulator: %v", err)
	}
}
