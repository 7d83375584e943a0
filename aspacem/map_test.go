package aspacem

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/mem"
)

func TestNewConfigErrors(t *testing.T) {
	good := smallConfig()
	tests := []struct {
		name string
		mod  func(c *Config)
		want string
	}{
		{"page not pow2", func(c *Config) { c.PageSize = 0x1800 }, "page size"},
		{"page zero", func(c *Config) { c.PageSize = 0 }, "page size"},
		{"gran not pow2", func(c *Config) { c.Granularity = 0x3000 }, "granularity"},
		{"gran below page", func(c *Config) { c.Granularity = 0x800 }, "below page size"},
		{"empty", func(c *Config) { c.Hi = c.Lo }, "empty"},
		{"unaligned", func(c *Config) { c.Hi += 0x800 }, "not aligned"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			_, err := New(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %v, want error containing %q", c, err, tt.want)
			}
		})
	}
	m := mustNew(t, good)
	if m.Len() != 1 {
		t.Fatalf("new map has %d segments, want 1", m.Len())
	}
	s, ok := m.Lookup(good.Lo)
	if !ok || s != (Segment{Start: good.Lo, End: good.Hi, Kind: KindFree}) {
		t.Fatalf("Lookup(Lo) = %v, %v", s, ok)
	}
	if m.Config() != good {
		t.Fatalf("Config() = %+v", m.Config())
	}
}

func TestConfigFor(t *testing.T) {
	w := ConfigFor(newFakeWindows())
	if !w.FoldCase || w.Granularity != 0x10000 || w.Rules != mem.RulesWindows || w.Lo != 0x10000 {
		t.Fatalf("windows config %+v", w)
	}
	l := ConfigFor(newFakeLinux())
	if l.FoldCase || l.Granularity != 0x1000 || l.Rules != mem.RulesLinux {
		t.Fatalf("linux config %+v", l)
	}
}

func TestKind(t *testing.T) {
	want := map[Kind]struct {
		s     string
		owned bool
	}{
		KindFree:        {"free", false},
		KindReservation: {"reservation", true},
		KindAnon:        {"anon", true},
		KindFile:        {"file", true},
		KindShared:      {"shared", true},
		KindForeign:     {"foreign", false},
		Kind(42):        {"Kind(42)", false},
	}
	for k, w := range want {
		if k.String() != w.s || k.Owned() != w.owned {
			t.Errorf("%d: String %q Owned %t, want %q %t", k, k.String(), k.Owned(), w.s, w.owned)
		}
	}
}

// TestUpdateBadInput feeds Update malformed segments: each must fail with a
// clear error, never panic, and leave the map as it was.
func TestUpdateBadInput(t *testing.T) {
	cfg := smallConfig()
	lo := cfg.Lo
	ok := Segment{Start: lo + 0x1000, End: lo + 0x3000, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"}
	tests := []struct {
		name string
		mod  func(s *Segment)
		want string
	}{
		{"unaligned start", func(s *Segment) { s.Start++ }, "start not aligned"},
		{"unaligned end", func(s *Segment) { s.End -= 0x10 }, "end not aligned"},
		{"empty", func(s *Segment) { s.End = s.Start }, "start not below end"},
		{"reversed", func(s *Segment) { s.Start, s.End = s.End, s.Start }, "start not below end"},
		{"below lo", func(s *Segment) { s.Start = lo - 0x1000 }, "outside the address space"},
		{"beyond hi", func(s *Segment) { s.End = cfg.Hi + 0x1000 }, "outside the address space"},
		{"overflowing", func(s *Segment) { s.Start = ^uintptr(0) &^ 0xfff; s.End = 0x1000 }, "start not below end"},
		{"end at top", func(s *Segment) { s.End = ^uintptr(0) &^ 0xfff }, "outside"},
		{"bad prot", func(s *Segment) { s.Prot = 0x10 }, "invalid protection 0x10"},
		{"bad kind", func(s *Segment) { s.Kind = 9 }, "unknown kind 9"},
		{"NUL in owner", func(s *Segment) { s.Owner = "vm\x00heap" }, "NUL byte 0x00 at offset 2"},
		{"newline in owner", func(s *Segment) { s.Owner = "vm\nheap" }, "control byte 0x0a at offset 2"},
		{"DEL in owner", func(s *Segment) { s.Owner = "x\x7f" }, "control byte 0x7f at offset 1"},
		{"bad utf8 in name", func(s *Segment) { s.Kind = KindFile; s.Name = "/lib/\xfflib.so" }, "invalid UTF-8 byte 0xff at offset 5"},
		{"C1 in name", func(s *Segment) { s.Kind = KindFile; s.Name = "/lib/\u0085" }, "C1 control character U+0085"},
		{"long name", func(s *Segment) { s.Kind = KindFile; s.Name = "/" + strings.Repeat("a", MaxNameLen) }, "bytes long"},
		{"tab in name", func(s *Segment) { s.Kind = KindFile; s.Name = "a\tb" }, "control byte 0x09"},
		{"free with prot", func(s *Segment) { s.Kind = KindFree; s.Owner = "" }, "free segment with attributes"},
		{"free with owner", func(s *Segment) { s.Kind = KindFree; s.Prot = 0 }, "free segment with owner"},
		{"foreign with owner", func(s *Segment) { s.Kind = KindForeign }, "foreign segment with owner"},
		{"reservation with prot", func(s *Segment) { s.Kind = KindReservation }, "reservation with protection rw-"},
		{"anon with name", func(s *Segment) { s.Name = "x" }, "anonymous segment with name"},
		{"anon shared", func(s *Segment) { s.Shared = true }, "anonymous segment marked shared"},
		{"file without name", func(s *Segment) { s.Kind = KindFile }, "file segment without a name"},
		{"file shared", func(s *Segment) { s.Kind = KindFile; s.Name = "/f"; s.Shared = true }, "file segment marked shared"},
		{"offset without name", func(s *Segment) { s.Offset = 0x1000 }, "offset 0x1000 without a name"},
		{"unaligned offset", func(s *Segment) { s.Kind = KindFile; s.Name = "/f"; s.Offset = 0x10 }, "offset 0x10 not aligned"},
		{"offset overflow", func(s *Segment) { s.Kind = KindFile; s.Name = "/f"; s.Offset = ^uint64(0) &^ 0xfff }, "overflows"},
	}
	m := mustNew(t, cfg)
	mustUpdate(t, m, ok)
	before := m.Segments(cfg.Lo, cfg.Hi)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ok
			tt.mod(&s)
			err := m.Update(s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Update(%v) = %v, want error containing %q", s, err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "aspacem: bad segment") {
				t.Errorf("error %q does not say where it comes from", err)
			}
			if after := m.Segments(cfg.Lo, cfg.Hi); !reflect.DeepEqual(before, after) {
				t.Fatalf("failed Update changed the map:\n%v\n%v", before, after)
			}
			if err := m.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestUpdateSplitMerge(t *testing.T) {
	cfg := smallConfig()
	m := mustNew(t, cfg)
	lo := cfg.Lo
	const P = 0x1000
	// Reserve 16 pages, commit the middle 4, then commit the rest
	// piecewise with the same attributes: it must merge back.
	mustUpdate(t, m, Segment{Start: lo, End: lo + 16*P, Kind: KindReservation, Owner: "vmcode"})
	if m.Len() != 2 {
		t.Fatalf("Len = %d, want 2", m.Len())
	}
	mustUpdate(t, m, Segment{Start: lo + 4*P, End: lo + 8*P, Kind: KindAnon, Prot: mem.ProtRX, Owner: "vmcode"})
	if m.Len() != 4 {
		t.Fatalf("Len = %d, want 4: %v", m.Len(), m.Segments(cfg.Lo, cfg.Hi))
	}
	mustUpdate(t, m, Segment{Start: lo + 4*P, End: lo + 8*P, Kind: KindReservation, Owner: "vmcode"})
	if m.Len() != 2 {
		t.Fatalf("Len = %d after undo, want 2: %v", m.Len(), m.Segments(cfg.Lo, cfg.Hi))
	}
	// A file view: pieces with contiguous offsets merge, others do not.
	mustUpdate(t, m, Segment{Start: lo, End: lo + 2*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Owner: "privlib x.so"})
	mustUpdate(t, m, Segment{Start: lo + 2*P, End: lo + 3*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Offset: 2 * P, Owner: "privlib x.so"})
	s, _ := m.Lookup(lo + P)
	if s.Start != lo || s.End != lo+3*P || s.Offset != 0 {
		t.Fatalf("contiguous views did not merge: %v", s)
	}
	mustUpdate(t, m, Segment{Start: lo + 3*P, End: lo + 4*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Offset: 0, Owner: "privlib x.so"})
	s, _ = m.Lookup(lo + 3*P)
	if s.Start != lo+3*P {
		t.Fatalf("discontiguous views merged: %v", s)
	}
	// Protect the middle page of the first view: it splits in three with
	// the offsets advanced.
	mustUpdate(t, m, Segment{Start: lo + P, End: lo + 2*P, Kind: KindFile, Prot: mem.ProtRX, Name: "/lib/x.so", Offset: P, Owner: "privlib x.so"})
	got := m.Segments(lo, lo+3*P)
	want := []Segment{
		{Start: lo, End: lo + P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Owner: "privlib x.so"},
		{Start: lo + P, End: lo + 2*P, Kind: KindFile, Prot: mem.ProtRX, Name: "/lib/x.so", Offset: P, Owner: "privlib x.so"},
		{Start: lo + 2*P, End: lo + 3*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Offset: 2 * P, Owner: "privlib x.so"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after protect:\n got %v\nwant %v", got, want)
	}
	// Segments clips and advances offsets.
	got = m.Segments(lo+2*P+0x800, lo+3*P)
	if len(got) != 1 || got[0].Start != lo+2*P+0x800 || got[0].Offset != 2*P+0x800 {
		t.Fatalf("clipped Segments = %v", got)
	}
	// Release everything: back to one free segment.
	mustUpdate(t, m, Segment{Start: cfg.Lo, End: cfg.Hi, Kind: KindFree})
	if m.Len() != 1 || len(m.Owned()) != 0 {
		t.Fatalf("after release: %v", m.Segments(cfg.Lo, cfg.Hi))
	}
	// A KindShared segment is recorded as shared.
	mustUpdate(t, m, Segment{Start: lo, End: lo + P, Kind: KindShared, Prot: mem.ProtRX, Name: "reachvm-dual", Owner: "vmcode"})
	if s, _ := m.Lookup(lo); !s.Shared {
		t.Fatalf("shared view not marked shared: %v", s)
	}
}

func TestLookupSegmentsBounds(t *testing.T) {
	cfg := smallConfig()
	m := mustNew(t, cfg)
	if _, ok := m.Lookup(cfg.Lo - 1); ok {
		t.Error("Lookup below Lo succeeded")
	}
	if _, ok := m.Lookup(cfg.Hi); ok {
		t.Error("Lookup at Hi succeeded")
	}
	if s, ok := m.Lookup(cfg.Hi - 1); !ok || s.Kind != KindFree {
		t.Error("Lookup at Hi-1 failed")
	}
	if got := m.Segments(cfg.Hi, cfg.Hi+0x1000); got != nil {
		t.Errorf("Segments beyond Hi = %v", got)
	}
	if got := m.Segments(cfg.Lo+0x2000, cfg.Lo+0x1000); got != nil {
		t.Errorf("Segments of reversed range = %v", got)
	}
	if got := m.Segments(0, ^uintptr(0)); len(got) != 1 || got[0].Start != cfg.Lo || got[0].End != cfg.Hi {
		t.Errorf("Segments(0, max) = %v", got)
	}
}

func TestFoldCase(t *testing.T) {
	cfg := smallConfig()
	cfg.FoldCase = true
	m := mustNew(t, cfg)
	lo := cfg.Lo
	const P = 0x1000
	mustUpdate(t, m, Segment{Start: lo, End: lo + P, Kind: KindFile, Prot: mem.ProtRead, Name: `C:\Lib\Demo.DLL`, Owner: "privlib demo.dll"})
	mustUpdate(t, m, Segment{Start: lo + P, End: lo + 2*P, Kind: KindFile, Prot: mem.ProtRead, Name: `c:\lib\demo.dll`, Offset: P, Owner: "privlib demo.dll"})
	// One file, whatever the case: the views merge, keeping the first
	// spelling.
	if s, _ := m.Lookup(lo + P); s.Start != lo || s.Name != `C:\Lib\Demo.DLL` {
		t.Fatalf("case-folded views did not merge: %v", s)
	}
	if got := m.SegmentsNamed(`C:\LIB\DEMO.DLL`); len(got) != 1 {
		t.Fatalf("SegmentsNamed under FoldCase = %v", got)
	}
	// Without FoldCase, names are exact.
	cfg.FoldCase = false
	m2 := mustNew(t, cfg)
	mustUpdate(t, m2, Segment{Start: lo, End: lo + P, Kind: KindFile, Prot: mem.ProtRead, Name: "/Lib/x.so"})
	mustUpdate(t, m2, Segment{Start: lo + P, End: lo + 2*P, Kind: KindFile, Prot: mem.ProtRead, Name: "/lib/x.so", Offset: P})
	if m2.Len() != 3 {
		t.Fatalf("names differing in case merged without FoldCase: %v", m2.Segments(cfg.Lo, cfg.Hi))
	}
	if got := m2.SegmentsNamed("/LIB/X.SO"); len(got) != 0 {
		t.Fatalf("SegmentsNamed folded case without FoldCase: %v", got)
	}
	if got := m2.SegmentsNamed("/lib/x.so"); len(got) != 1 {
		t.Fatalf("SegmentsNamed = %v", got)
	}
}

func TestSegmentString(t *testing.T) {
	s := Segment{Start: 0x1000, End: 0x3000, Kind: KindShared, Prot: mem.ProtRX, Shared: true, Owner: "vmcode", Name: "dual", Offset: 0x1000, Dev: 0xfe00, Inode: 7}
	want := `[0x1000-0x3000) shared r-x shared owner="vmcode" name="dual"+0x1000 dev=0xfe00 ino=7`
	if s.String() != want {
		t.Fatalf("String() = %q, want %q", s.String(), want)
	}
	if s.Size() != 0x2000 || !s.Contains(0x2fff) || s.Contains(0x3000) {
		t.Fatal("Size/Contains")
	}
}

func TestSanitizeText(t *testing.T) {
	for in, want := range map[string]string{
		"/lib/ok.so":   "/lib/ok.so",
		"a\nb":         `a\x0ab`,
		"\xff\x00":     `\xff\x00`,
		"é\u0085":      `é\xc2\x85`,
		"[anon:heap]":  "[anon:heap]",
		"/deleted\x7f": `/deleted\x7f`,
	} {
		if got := sanitizeText(in); got != want {
			t.Errorf("sanitizeText(%q) = %q, want %q", in, got, want)
		}
		if err := checkText("name", sanitizeText(in)); err != nil {
			t.Errorf("sanitized %q still bad: %v", in, err)
		}
	}
	long := sanitizeText(strings.Repeat("\x01", MaxNameLen))
	if len(long) > MaxNameLen || checkText("name", long) != nil {
		t.Errorf("long sanitized name: %d bytes", len(long))
	}
}

func TestLoadRefresh(t *testing.T) {
	f := newFakeLinux()
	f.regions = []mem.Region{
		{Start: 0x400000, End: 0x401000, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: mem.ProtRX, Name: "/bin/app", Offset: 0, Dev: 0xfe00, Inode: 12},
		{Start: 0x401000, End: 0x403000, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: mem.ProtRead, Name: "/bin/app", Offset: 0x1000, Dev: 0xfe00, Inode: 12},
		{Start: 0x500000, End: 0x510000, State: mem.StateCommitted, Type: mem.TypePrivate, Prot: mem.ProtRW, Name: "[heap]"},
		{Start: 0x600000, End: 0x700000, State: mem.StateReserved, Type: mem.TypePrivate},
		{Start: 0x7000_0000, End: 0x7000_1000, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: mem.ProtRead, Name: "/odd\nname", Offset: 0x10},
	}
	m, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	s, _ := m.Lookup(0x402000)
	if s.Kind != KindForeign || s.Name != "/bin/app" || s.Start != 0x401000 || s.Offset != 0x1000 || s.Inode != 12 {
		t.Fatalf("Lookup = %v", s)
	}
	s, _ = m.Lookup(0x600000)
	if s.Kind != KindForeign || s.Prot != mem.ProtNone || s.End != 0x700000 {
		t.Fatalf("reserved region = %v", s)
	}
	s, _ = m.Lookup(0x7000_0000)
	if s.Name != `/odd\x0aname` || s.Offset != 0 {
		t.Fatalf("odd region = %v", s)
	}
	if len(m.Owned()) != 0 {
		t.Fatal("Load produced owned segments")
	}

	// Own something where the kernel says the heap is, then refresh with
	// a changed kernel view: the owned segment stays, the rest follows
	// the kernel.
	mustUpdate(t, m, Segment{Start: 0x500000, End: 0x508000, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"})
	f.regions = []mem.Region{
		{Start: 0x400000, End: 0x403000, State: mem.StateCommitted, Type: mem.TypeMapped, Prot: mem.ProtRX, Name: "/bin/app"},
		{Start: 0x4f0000, End: 0x520000, State: mem.StateCommitted, Type: mem.TypePrivate, Prot: mem.ProtRead},
	}
	if err := m.Refresh(f); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	want := []Segment{
		{Start: 0x400000, End: 0x403000, Kind: KindForeign, Prot: mem.ProtRX, Name: "/bin/app"},
		{Start: 0x403000, End: 0x4f0000, Kind: KindFree},
		{Start: 0x4f0000, End: 0x500000, Kind: KindForeign, Prot: mem.ProtRead},
		{Start: 0x500000, End: 0x508000, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"},
		{Start: 0x508000, End: 0x520000, Kind: KindForeign, Prot: mem.ProtRead},
		{Start: 0x520000, End: 0x800000, Kind: KindFree},
	}
	if got := m.Segments(0x400000, 0x800000); !reflect.DeepEqual(got, want) {
		t.Fatalf("after Refresh:\n got %v\nwant %v", got, want)
	}
	// A second identical refresh changes nothing.
	before := m.Segments(f.lo, f.hi)
	if err := m.Refresh(f); err != nil {
		t.Fatal(err)
	}
	if after := m.Segments(f.lo, f.hi); !reflect.DeepEqual(before, after) {
		t.Fatal("idempotent Refresh changed the map")
	}

	// Errors: the OS failing, or reporting nonsense, change nothing.
	f.err = errors.New("boom")
	if err := m.Refresh(f); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("Refresh with failing OS = %v", err)
	}
	f.err = nil
	f.regions = []mem.Region{{Start: 0x400800, End: 0x401000, State: mem.StateCommitted}}
	if err := m.Refresh(f); err == nil || !strings.Contains(err.Error(), "malformed region") {
		t.Fatalf("Refresh with unaligned region = %v", err)
	}
	f.regions = []mem.Region{
		{Start: 0x400000, End: 0x402000, State: mem.StateCommitted},
		{Start: 0x401000, End: 0x403000, State: mem.StateCommitted},
	}
	if err := m.Refresh(f); err == nil || !strings.Contains(err.Error(), "overlapping") {
		t.Fatalf("Refresh with overlapping regions = %v", err)
	}
	if after := m.Segments(f.lo, f.hi); !reflect.DeepEqual(before, after) {
		t.Fatal("failed Refresh changed the map")
	}
	if _, err := Load(&fakeOS{rules: mem.RulesLinux, lo: 0, hi: 0, page: 0x1000, gran: 0x1000}); err == nil {
		t.Fatal("Load of an empty address space succeeded")
	}
}

// TestConcurrentUse hammers one map from several goroutines; run with
// -race. Each goroutine owns a disjoint slice of the space, so the final
// state is known.
func TestConcurrentUse(t *testing.T) {
	cfg := Config{Lo: 0x100000, Hi: 0x100000 + 4*256*P, PageSize: P, Granularity: P}
	m := mustNew(t, cfg)
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func(g int) {
			base := cfg.Lo + uintptr(g)*256*P
			var err error
			for i := 0; i < 300 && err == nil; i++ {
				a := base + uintptr(i%255)*P
				err = m.Update(Segment{Start: a, End: a + P, Kind: KindAnon, Prot: mem.ProtRW, Owner: "vmheap"})
				m.Lookup(a)
				m.Advise(4*P, 0, a, 1<<20)
				m.Segments(base, base+16*P)
				if i%50 == 0 {
					err = errors.Join(err, m.CheckInvariants())
				}
			}
			done <- err
		}(g)
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if err := m.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if n := len(m.Owned()); n != 4 {
		t.Fatalf("%d owned segments, want 4 (one per goroutine): %v", n, m.Owned())
	}
}
