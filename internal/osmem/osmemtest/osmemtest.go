// Package osmemtest is the conformance suite of osmem.OS: one set of tests
// that every backend must pass, the simulator under either rules and the
// native Linux and Windows backends alike.
//
// It is what makes the simulator trustworthy: every rule the simulator
// enforces is checked here, and the same checks run against the real
// kernel, so a rule the simulator gets wrong fails on one side. Where Linux
// and Windows differ the suite branches on Rules(); where only a real
// backend can show something (the bytes behind a mapping) it branches on
// the backend's name, real backends being those whose name does not start
// with "sim".
//
// Tests on a native backend share the process's address space with the Go
// runtime. They therefore only touch ranges they reserved or mapped
// themselves, keep the time between releasing a range and re-using it
// short, clean up everything they mapped, and check at the end that
// nothing is left in the ranges they used. So that the runtime's own
// mappings do not land in those ranges once released (the kernel places
// them top-down, in the highest hole, which is where a released Hint-0
// reservation was), tests on a native backend place their memory with
// hints into an arena far from the runtime's: a random spot in
// [16 TiB, 32 TiB) on Linux, and low, from 4 GiB up, on Windows, where
// Wine's own allocations take released holes high up (docs/ARCHITECTURE.md, "Windows under Wine").
package osmemtest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// Run runs the suite, one subtest per rule. newOS returns the backend to
// test; it is called once per subtest, so a simulator can be fresh each
// time while a native backend is the same process-wide one.
func Run(t *testing.T, newOS func(t *testing.T) osmem.OS) {
	tests := []struct {
		name string
		fn   func(*env)
	}{
		{"Basics", testBasics},
		{"RoundTrip", testRoundTrip},
		{"ExactOverInUse", testExactOverInUse},
		{"HintAvoidsInUse", testHintAvoidsInUse},
		{"ExactPartlyInUse", testExactPartlyInUse},
		{"NotMapped", testNotMapped},
		{"LinuxPartialRelease", testLinuxPartialRelease},
		{"LinuxFixedOverReservation", testLinuxFixedOverReservation},
		{"LinuxFixedReplacesCommitted", testLinuxFixedReplacesCommitted},
		{"WindowsRelease", testWindowsRelease},
		{"WindowsAlignment", testWindowsAlignment},
		{"WindowsAllocationBounds", testWindowsAllocationBounds},
		{"WindowsViewOverReservation", testWindowsViewOverReservation},
		{"DualMapping", testDualMapping},
		{"ReserveSection", testReserveSection},
		{"File", testFile},
		{"ObjectClose", testObjectClose},
		{"BadInput", testBadInput},
		{"RegionsClipping", testRegionsClipping},
		{"Remap", testRemap},
		{"SharedFile", testSharedFile},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, newOS(t))
			defer e.finish()
			tc.fn(e)
		})
	}
}

// env is one subtest's view of the backend, with the bookkeeping that lets
// it clean up and check for leaks.
type env struct {
	t    *testing.T
	os   osmem.OS
	real bool
	win  bool
	page uintptr
	gran uintptr
	// owned is what the test holds now: Linux ranges, or Windows
	// allocations (reservations and views) from their bases.
	owned []span
	// used is every range the test ever held; all must be free at the end.
	used []span
	// cleanups run at the end, last first, before the leak check.
	cleanups []func()
	// cursor is the next hint in the arena on a native backend; 0 on a
	// simulator, whose placement of Hint 0 is exercised instead.
	cursor uintptr
}

// span is a range the test holds.
type span struct {
	base, end uintptr
	// view is set for a Windows view, which is unmapped rather than
	// released.
	view bool
}

func newEnv(t *testing.T, o osmem.OS) *env {
	e := &env{
		t:    t,
		os:   o,
		real: !strings.HasPrefix(o.Name(), "sim"),
		win:  o.Rules() == osmem.RulesWindows,
		page: o.PageSize(),
		gran: o.Granularity(),
	}
	if e.real {
		const gib = 1 << 30
		if e.win {
			e.cursor = 4*gib + uintptr(rand.IntN(1000))*gib
		} else {
			e.cursor = 16<<40 + uintptr(rand.IntN(16<<10))*gib
		}
	}
	return e
}

// hint returns where to ask for size bytes: 0 on a simulator, the next
// spot of the arena on a native backend (see the package comment).
func (e *env) hint(size uintptr) uintptr {
	if e.cursor == 0 {
		return 0
	}
	a := e.cursor
	n, _ := mem.AlignUp(size, e.gran) // test sizes are small
	e.cursor += n + e.gran            // a gap: no merging
	return a
}

// finish releases what the test still holds and checks that every range it
// used is free again.
func (e *env) finish() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
	for i := len(e.owned) - 1; i >= 0; i-- {
		s := e.owned[i]
		var err error
		switch {
		case s.view:
			err = e.os.Unmap(s.base, s.end-s.base)
		default:
			err = e.os.Release(s.base, s.end-s.base)
		}
		if err != nil {
			e.t.Errorf("cleanup of [%#x, %#x): %v", s.base, s.end, err)
		}
	}
	e.owned = nil
	for _, s := range e.used {
		rs, err := e.os.Regions(s.base, s.end)
		if err != nil {
			e.t.Errorf("leak check of [%#x, %#x): %v", s.base, s.end, err)
			continue
		}
		if len(rs) > 0 {
			e.t.Errorf("leak: [%#x, %#x) still holds %s", s.base, s.end, fmtRegions(rs))
		}
	}
}

// atEnd registers fn to run at the end of the test, before the leak check.
func (e *env) atEnd(fn func()) { e.cleanups = append(e.cleanups, fn) }

// hold records that the test now holds [base, base+size).
func (e *env) hold(base, size uintptr, view bool) {
	e.owned = append(e.owned, span{base, base + size, view})
	e.used = append(e.used, span{base, base + size, view})
}

// drop records that the test gave back [base, base+size): under Windows
// rules a whole allocation, under Linux rules any range (which may split
// what is held).
func (e *env) drop(base, size uintptr) {
	end := base + size
	var out []span
	for _, s := range e.owned {
		if s.end <= base || s.base >= end {
			out = append(out, s)
			continue
		}
		if e.win {
			continue // whole allocations only
		}
		if s.base < base {
			out = append(out, span{s.base, base, s.view})
		}
		if s.end > end {
			out = append(out, span{end, s.end, s.view})
		}
	}
	e.owned = out
}

// reserve reserves size bytes anywhere, or fails the test.
func (e *env) reserve(size uintptr) uintptr {
	e.t.Helper()
	h := e.hint(size)
	a, err := e.os.Reserve(h, size, osmem.Hint)
	if err != nil {
		e.t.Fatalf("Reserve(%#x, %#x, Hint): %v", h, size, err)
	}
	e.hold(a, size, false)
	if a == 0 || a%e.gran != 0 {
		e.t.Fatalf("Reserve(%#x, %#x, Hint) = %#x: not aligned to the granularity %#x", h, size, a, e.gran)
	}
	return a
}

// reserveAt reserves [addr, addr+size) with mode and records it on success.
func (e *env) reserveAt(addr, size uintptr, mode osmem.Mode) (uintptr, error) {
	a, err := e.os.Reserve(addr, size, mode)
	if err == nil {
		if mode == osmem.Fixed {
			e.drop(a, size)
		}
		e.hold(a, size, false)
	}
	return a, err
}

// release releases [addr, addr+size), which must succeed.
func (e *env) release(addr, size uintptr) {
	e.t.Helper()
	if err := e.os.Release(addr, size); err != nil {
		e.t.Fatalf("Release(%#x, %#x): %v", addr, size, err)
	}
	e.drop(addr, size)
}

// mapObject maps obj and records the view on success.
func (e *env) mapObject(obj osmem.Object, off uint64, addr, size uintptr, prot osmem.Prot, mode osmem.Mode) (uintptr, error) {
	a, err := e.os.MapObject(obj, off, addr, size, prot, mode)
	if err == nil {
		if mode == osmem.Fixed {
			e.drop(a, size)
		}
		e.hold(a, size, e.win)
	}
	return a, err
}

// mustMap maps obj anywhere, or fails the test.
func (e *env) mustMap(obj osmem.Object, off uint64, size uintptr, prot osmem.Prot) uintptr {
	e.t.Helper()
	h := e.hint(size)
	a, err := e.mapObject(obj, off, h, size, prot, osmem.Hint)
	if err != nil {
		e.t.Fatalf("MapObject(%q, %#x, %#x, %#x, %v, Hint): %v", obj.Name(), off, h, size, prot, err)
	}
	if a == 0 || a%e.gran != 0 {
		e.t.Fatalf("MapObject(%q) = %#x: not aligned to the granularity %#x", obj.Name(), a, e.gran)
	}
	return a
}

// unmap unmaps the view [addr, addr+size), which must succeed.
func (e *env) unmap(addr, size uintptr) {
	e.t.Helper()
	if err := e.os.Unmap(addr, size); err != nil {
		e.t.Fatalf("Unmap(%#x, %#x): %v", addr, size, err)
	}
	e.drop(addr, size)
}

// must fails the test if err is not nil.
func (e *env) must(err error, what string, args ...any) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("%s: %v", fmt.Sprintf(what, args...), err)
	}
}

// wantErr checks that err is an *osmem.Error of class and, if code is not
// 0, carries the OS error number code.
func (e *env) wantErr(err error, class error, code uintptr, what string, args ...any) {
	e.t.Helper()
	var codes []uintptr
	if code != 0 {
		codes = []uintptr{code}
	}
	e.wantErrIn(err, class, codes, what, args...)
}

// addrCodes are the OS numbers accepted for an ERROR_INVALID_ADDRESS
// failure: Wine 8.0 reports ERROR_INVALID_PARAMETER (87) where Windows
// reports 487 for VirtualProtect or VirtualFree of free space, VirtualProtect
// or MEM_DECOMMIT across two allocations, and MEM_RELEASE of a view
// (measured). The class, which callers test, must still be ErrNotMapped.
func (e *env) addrCodes() []uintptr {
	if e.real {
		return []uintptr{osmem.WinErrorInvalidAddress, osmem.WinErrorInvalidParameter}
	}
	return []uintptr{osmem.WinErrorInvalidAddress}
}

// wantErrIn checks that err is an *osmem.Error of class carrying one of
// the OS error numbers codes (any, if codes is empty).
func (e *env) wantErrIn(err error, class error, codes []uintptr, what string, args ...any) {
	e.t.Helper()
	what = fmt.Sprintf(what, args...)
	if err == nil {
		e.t.Errorf("%s succeeded, want %v", what, class)
		return
	}
	var oe *osmem.Error
	if !errors.As(err, &oe) {
		e.t.Errorf("%s: error %T (%v) is not an *osmem.Error", what, err, err)
		return
	}
	if !errors.Is(err, class) {
		e.t.Errorf("%s: %v, want class %v", what, err, class)
	}
	if len(codes) > 0 && !slices.Contains(codes, oe.Code) {
		e.t.Errorf("%s: %v, want os error in %d", what, err, codes)
	}
}

// free returns the start of a granularity-aligned free range of size bytes
// that the test does not hold: reserved and released at once, so that an
// Exact placement can be tried there. On a native backend the range could
// be taken by someone else before it is used; callers retry.
func (e *env) free(size uintptr) uintptr {
	e.t.Helper()
	h := e.hint(size)
	a, err := e.os.Reserve(h, size, osmem.Hint)
	if err != nil {
		e.t.Fatalf("Reserve(%#x, %#x, Hint): %v", h, size, err)
	}
	if err := e.os.Release(a, size); err != nil {
		e.t.Fatalf("Release(%#x, %#x): %v", a, size, err)
	}
	// Not recorded as used: on a native backend the runtime may map
	// there before the end of the test, which is no leak of the test's.
	return a
}

// reserveExact reserves size bytes with Exact at an address it finds free,
// retrying a few times if someone else takes it first (native backends).
func (e *env) reserveExact(size uintptr) uintptr {
	e.t.Helper()
	var err error
	for range 8 {
		a := e.free(size)
		var got uintptr
		if got, err = e.reserveAt(a, size, osmem.Exact); err == nil {
			if got != a {
				e.t.Fatalf("Reserve(%#x, %#x, Exact) = %#x", a, size, got)
			}
			return a
		}
		if !errors.Is(err, osmem.ErrExists) {
			break
		}
	}
	e.t.Fatalf("Reserve(Exact) in a range just found free: %v", err)
	return 0
}

// regions returns Regions(lo, hi) normalised: adjacent regions with equal
// attributes merged (a kernel may keep two VMAs where the simulator has
// one), and, under Linux rules, AllocBase, which Linux does not have,
// zeroed.
func (e *env) regions(lo, hi uintptr) []osmem.Region {
	e.t.Helper()
	rs, err := e.os.Regions(lo, hi)
	if err != nil {
		e.t.Fatalf("Regions(%#x, %#x): %v", lo, hi, err)
	}
	for i, r := range rs {
		if r.Start < lo || r.End > hi || r.Start >= r.End || (i > 0 && rs[i-1].End > r.Start) {
			e.t.Fatalf("Regions(%#x, %#x): region %d [%#x, %#x) out of order or not clipped: %s", lo, hi, i, r.Start, r.End, fmtRegions(rs))
		}
		if r.State == osmem.StateFree {
			e.t.Errorf("Regions(%#x, %#x) reports free space [%#x, %#x)", lo, hi, r.Start, r.End)
		}
	}
	return e.normalise(rs)
}

func (e *env) normalise(rs []osmem.Region) []osmem.Region {
	var out []osmem.Region
	for _, r := range rs {
		if !e.win {
			r.AllocBase = 0
		}
		if r.Type == osmem.TypePrivate {
			// Anonymous memory has no backing object; its offset means
			// nothing.
			r.Offset = 0
		}
		if n := len(out); n > 0 && e.sameRun(out[n-1], r) {
			out[n-1].End = r.End
			continue
		}
		out = append(out, r)
	}
	return out
}

// sameRun reports whether a, immediately below b, continues the same run of
// identical pages.
func (e *env) sameRun(a, b osmem.Region) bool {
	if a.End != b.Start || a.State != b.State || a.Type != b.Type || a.Prot != b.Prot ||
		a.Shared != b.Shared || a.AllocBase != b.AllocBase || a.Name != b.Name ||
		a.Dev != b.Dev || a.Inode != b.Inode {
		return false
	}
	return a.Type == osmem.TypePrivate || a.Offset+uint64(a.End-a.Start) == b.Offset
}

// expect checks that Regions(lo, hi) is want. Fields the backend cannot
// know are not compared: Dev and Inode always; Name when want's is empty
// on a mapped region (a native backend may not know it); Offset on
// anonymous memory.
func (e *env) expect(lo, hi uintptr, want ...osmem.Region) {
	e.t.Helper()
	got := e.regions(lo, hi)
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		g.Dev, g.Inode = 0, 0
		if w.Name == "" && w.Type != osmem.TypePrivate {
			g.Name = ""
		}
		if !e.win {
			w.AllocBase = 0
		}
		ok = g == w
	}
	if !ok {
		e.t.Errorf("Regions(%#x, %#x):\n got %s\nwant %s", lo, hi, fmtRegions(got), fmtRegions(want))
	}
}

// expectQuery checks that Query(addr) reports the region want, part of a
// range [lo, hi) the test holds. Backends differ in where the reported
// region starts: Linux reports the whole mapping (which the kernel may
// have merged with a neighbour outside the range), Windows' VirtualQuery
// starts it at addr's page. So the region must contain addr's page, end
// where want ends (within the range), start no earlier than want (within
// the range), and carry want's attributes.
func (e *env) expectQuery(addr, lo, hi uintptr, want osmem.Region) {
	e.t.Helper()
	q, err := e.os.Query(addr)
	if err != nil {
		e.t.Errorf("Query(%#x): %v", addr, err)
		return
	}
	pa := mem.AlignDown(addr, e.page)
	cs, ce := max(q.Start, lo), min(q.End, hi)
	ok := q.Start <= pa && pa < q.End && ce == want.End && cs >= want.Start &&
		q.State == want.State && q.Type == want.Type && q.Prot == want.Prot && q.Shared == want.Shared &&
		(!e.win || q.AllocBase == want.AllocBase) && (want.Name == "" || q.Name == want.Name)
	if ok && want.Type != osmem.TypePrivate {
		ok = q.Offset+uint64(cs-q.Start) == want.Offset+uint64(cs-want.Start)
	}
	if !ok {
		e.t.Errorf("Query(%#x) = %s\nwant within %s", addr, fmtRegions([]osmem.Region{q}), fmtRegions([]osmem.Region{want}))
	}
}

// expectQueryFree checks that Query(addr) reports free space around addr.
func (e *env) expectQueryFree(addr uintptr) {
	e.t.Helper()
	q, err := e.os.Query(addr)
	if err != nil {
		e.t.Errorf("Query(%#x): %v", addr, err)
		return
	}
	if q.State != osmem.StateFree || q.Start > addr || q.End <= addr {
		e.t.Errorf("Query(%#x) of free space = %s", addr, fmtRegions([]osmem.Region{q}))
	}
}

// expectFree checks that nothing is mapped in [lo, hi).
func (e *env) expectFree(lo, hi uintptr) {
	e.t.Helper()
	if rs := e.regions(lo, hi); len(rs) != 0 {
		e.t.Errorf("Regions(%#x, %#x) = %s, want nothing", lo, hi, fmtRegions(rs))
	}
}

// reserved is the region of reserved pages [a, b) of the allocation at
// base.
func reserved(a, b, base uintptr) osmem.Region {
	return osmem.Region{Start: a, End: b, State: osmem.StateReserved, Type: osmem.TypePrivate, AllocBase: base}
}

// committed is the region of committed private pages [a, b).
func committed(a, b, base uintptr, p osmem.Prot) osmem.Region {
	return osmem.Region{Start: a, End: b, State: osmem.StateCommitted, Type: osmem.TypePrivate, Prot: p, AllocBase: base}
}

// private is what the rules report for private anonymous pages of
// protection p: Linux cannot tell PROT_NONE memory from a reservation.
func (e *env) private(a, b, base uintptr, p osmem.Prot) osmem.Region {
	if p == osmem.ProtNone && !e.win {
		return reserved(a, b, base)
	}
	return committed(a, b, base, p)
}

// view is the region of a view [a, b) of obj at offset off.
func (e *env) view(a, b, base uintptr, p osmem.Prot, obj osmem.Object, off uint64) osmem.Region {
	return osmem.Region{Start: a, End: b, State: osmem.StateCommitted, Type: osmem.TypeMapped, Prot: p,
		Shared: obj.Shared(), AllocBase: base, Name: e.viewName(obj), Offset: off}
}

// viewName is the Name a view of obj reports: the object's name, except
// for a shared object under Linux rules, which /proc/self/maps shows as a
// deleted memfd; and "" (not compared) for a shared object on a native
// Windows backend, which may not know it.
func (e *env) viewName(obj osmem.Object) string {
	if obj.Shared() && !e.win {
		return "/memfd:" + obj.Name() + " (deleted)"
	}
	return obj.Name()
}

func fmtRegions(rs []osmem.Region) string {
	if len(rs) == 0 {
		return "[]"
	}
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "\n\t[%#x, %#x) %v %v %v shared=%v base=%#x off=%#x %q", r.Start, r.End, r.State, r.Type, r.Prot, r.Shared, r.AllocBase, r.Offset, r.Name)
	}
	return b.String()
}

// bytes returns the memory [a, a+n) on a real backend.
func (e *env) bytes(a, n uintptr) []byte {
	if !e.real {
		e.t.Fatalf("bytes on a simulator")
	}
	return rawmem.Bytes(a, n)
}

// tempFile creates a file holding data and returns its path, which a
// native backend reports as the name of views of it. The file and its
// directory are removed at the end of the test (with os.Remove: Wine's
// t.TempDir clean-up fails).
func (e *env) tempFile(data []byte) string {
	e.t.Helper()
	dir, err := os.MkdirTemp("", "osmemtest-*")
	e.must(err, "MkdirTemp")
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	path := filepath.Join(dir, "data.bin")
	e.atEnd(func() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			e.t.Errorf("removing %s: %v", path, err)
		}
		if err := os.Remove(dir); err != nil {
			e.t.Errorf("removing %s: %v", dir, err)
		}
	})
	e.must(os.WriteFile(path, data, 0o644), "WriteFile")
	return path
}

// open opens path with the backend and closes it at the end of the test.
func (e *env) open(path string) osmem.Object {
	e.t.Helper()
	obj, err := e.os.OpenFile(path)
	e.must(err, "OpenFile(%q)", path)
	e.atEnd(func() { e.closeObject(obj) })
	return obj
}

// shared creates a shared object and closes it at the end of the test.
func (e *env) shared(name string, size uint64) osmem.Object {
	e.t.Helper()
	obj, err := e.os.CreateShared(name, size)
	e.must(err, "CreateShared(%q, %#x)", name, size)
	e.atEnd(func() { e.closeObject(obj) })
	return obj
}

// closeObject closes obj unless the test already did.
func (e *env) closeObject(obj osmem.Object) {
	if err := e.os.CloseObject(obj); err != nil && !errors.Is(err, osmem.ErrInvalid) {
		e.t.Errorf("CloseObject(%q): %v", obj.Name(), err)
	}
}

// pattern returns n bytes that differ from page to page and from zero.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7+i/4096) ^ seed | 1
	}
	return b
}

// noPanic runs fn and turns a panic into a test failure naming what.
func (e *env) noPanic(what string, fn func()) {
	e.t.Helper()
	defer func() {
		if r := recover(); r != nil {
			e.t.Errorf("%s panicked: %v", what, r)
		}
	}()
	fn()
}
