package osmemtest

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

const (
	linuxEEXIST = 17
	linuxENOMEM = 12
)

// existsCode is the OS number for "range in use" under the rules of e.
func (e *env) existsCode() uintptr {
	if e.win {
		return osmem.WinErrorInvalidAddress
	}
	return linuxEEXIST
}

// notMappedCode is the OS number for "range not mapped as required".
func (e *env) notMappedCode() uintptr {
	if e.win {
		return osmem.WinErrorInvalidAddress
	}
	return linuxENOMEM
}

// notMappedCodes are the OS numbers accepted where Windows reports 487 and
// Wine 87 (see addrCodes).
func (e *env) notMappedCodes() []uintptr {
	if e.win {
		return e.addrCodes()
	}
	return []uintptr{linuxENOMEM}
}

// testBasics checks the constants every caller relies on.
func testBasics(e *env) {
	o := e.os
	if o.Name() == "" {
		e.t.Errorf("empty Name")
	}
	if e.page != 4096 {
		e.t.Errorf("PageSize() = %#x, want 4 KiB", e.page)
	}
	want := e.page
	if e.win {
		want = 64 << 10
	}
	if e.gran != want {
		e.t.Errorf("Granularity() = %#x under %v rules, want %#x", e.gran, o.Rules(), want)
	}
	lo, hi := o.Bounds()
	if lo == 0 || lo >= hi || lo%e.page != 0 || hi%e.page != 0 {
		e.t.Errorf("Bounds() = [%#x, %#x): empty, unaligned or including page 0", lo, hi)
	}
	if hi > 1<<47 {
		e.t.Errorf("Bounds() hi %#x beyond the 47-bit user address space", hi)
	}

	// Placement by the OS (the rest of the suite places with hints on a
	// native backend): aligned, within the bounds, reserved. Checked and
	// released at once: on a native backend the runtime may map into the
	// hole right after, so it is not leak-checked at the end.
	size := 2 * e.gran
	a, err := o.Reserve(0, size, osmem.Hint)
	e.must(err, "Reserve(0, %#x, Hint)", size)
	if a%e.gran != 0 || a < lo || a+size > hi {
		e.t.Errorf("Reserve(0, %#x, Hint) = %#x: unaligned or out of bounds", size, a)
	}
	e.owned = append(e.owned, span{a, a + size, false})
	e.expect(a, a+size, reserved(a, a+size, a))
	e.must(o.Release(a, size), "Release")
	e.drop(a, size)
	e.expectFree(a, a+size)
}

// testRoundTrip walks a reservation through commit, protect, decommit and
// release, checking Query and Regions after each step and, on a real
// backend, the memory itself.
func testRoundTrip(e *env) {
	p := e.page
	size := max(16*p, 4*e.gran)
	r := e.reserve(size)
	e.expect(r, r+size, reserved(r, r+size, r))
	e.expectQuery(r+p, r, r+size, reserved(r, r+size, r))

	c0, c1 := r+2*p, r+6*p
	e.must(e.os.Commit(c0, c1-c0, osmem.ProtRW), "Commit")
	e.expect(r, r+size, reserved(r, c0, r), committed(c0, c1, r, osmem.ProtRW), reserved(c1, r+size, r))
	e.expectQuery(c0+p, r, r+size, committed(c0, c1, r, osmem.ProtRW))
	data := pattern(int(c1-c0), 0x11)
	if e.real {
		b := e.bytes(c0, c1-c0)
		if !allZero(b) {
			e.t.Errorf("freshly committed memory is not zero")
		}
		copy(b, data)
	}

	e.must(e.os.Protect(c0, c1-c0, osmem.ProtRead), "Protect")
	e.must(e.os.Protect(c0+p, p, osmem.ProtRX), "Protect")
	e.expect(r, r+size, reserved(r, c0, r), committed(c0, c0+p, r, osmem.ProtRead),
		committed(c0+p, c0+2*p, r, osmem.ProtRX), committed(c0+2*p, c1, r, osmem.ProtRead), reserved(c1, r+size, r))
	if e.real && !bytes.Equal(e.bytes(c0, c1-c0), data) {
		e.t.Errorf("memory changed by Protect")
	}

	e.must(e.os.Decommit(c0, c1-c0), "Decommit")
	e.expect(r, r+size, reserved(r, r+size, r))
	e.must(e.os.Commit(c0, c1-c0, osmem.ProtRW), "Commit")
	if e.real && !allZero(e.bytes(c0, c1-c0)) {
		e.t.Errorf("memory kept its contents across Decommit and Commit")
	}
	// Committing over committed and reserved pages alike.
	e.must(e.os.Commit(r, size, osmem.ProtRW), "Commit")
	e.expect(r, r+size, committed(r, r+size, r, osmem.ProtRW))
	e.must(e.os.Decommit(r, size), "Decommit")
	e.expect(r, r+size, reserved(r, r+size, r))

	e.release(r, size)
	e.expectFree(r, r+size)
	e.expectQueryFree(r)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// testExactOverInUse checks that Exact never replaces anything: not a
// reservation, not part of one, not a view.
func testExactOverInUse(e *env) {
	g := e.gran
	size := 4 * g
	r := e.reserve(size)
	code := e.existsCode()
	_, err := e.reserveAt(r, size, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, code, "Reserve(Exact) over a reservation")
	_, err = e.reserveAt(r+g, g, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, code, "Reserve(Exact) inside a reservation")
	_, err = e.reserveAt(r+size-g, 2*g, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, code, "Reserve(Exact) across the end of a reservation")

	obj := e.shared("osmemtest-exact", uint64(g))
	_, err = e.mapObject(obj, 0, r, g, osmem.ProtRead, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, code, "MapObject(Exact) over a reservation")
	e.expect(r, r+size, reserved(r, r+size, r))

	v := e.mustMap(obj, 0, g, osmem.ProtRW)
	_, err = e.reserveAt(v, g, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, code, "Reserve(Exact) over a view")
	_, err = e.mapObject(obj, 0, v, g, osmem.ProtRead, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, code, "MapObject(Exact) over a view")
	e.expect(v, v+g, e.view(v, v+g, v, osmem.ProtRW, obj, 0))
	e.unmap(v, g)
	e.release(r, size)

	// Exact in free space is granted exactly.
	a := e.reserveExact(2 * g)
	e.expect(a, a+2*g, reserved(a, a+2*g, a))
	e.release(a, 2*g)
}

// testHintAvoidsInUse checks that a hint in use is not an error and is
// not honoured, and that a free one is.
func testHintAvoidsInUse(e *env) {
	size := 4 * e.gran
	r := e.reserve(size)
	a, err := e.reserveAt(r, size, osmem.Hint)
	e.must(err, "Reserve(%#x, Hint) over a reservation", r)
	if a < r+size && r < a+size {
		e.t.Errorf("Reserve(%#x, %#x, Hint) over a reservation = %#x: overlaps it", r, size, a)
	}
	e.expect(r, r+size, reserved(r, r+size, r))
	e.expect(a, a+size, reserved(a, a+size, a))
	e.release(a, size)
	e.release(r, size)

	for try := 0; ; try++ {
		f := e.free(size)
		got, err := e.reserveAt(f, size, osmem.Hint)
		e.must(err, "Reserve(%#x, Hint) in free space", f)
		e.release(got, size)
		if got == f {
			break
		}
		if try == 4 {
			e.t.Errorf("Reserve(%#x, %#x, Hint) in free space = %#x, want the hint", f, size, got)
			break
		}
	}
}

// testExactPartlyInUse checks what a grid's loss detection relies on
// (bench's D, E and vmm-grid map a library over several released slots,
// and another thread may have taken any one granule of them): an Exact
// reservation or view fails if any single granule of its range is in use,
// first, middle or last, and leaves everything as it was; and a view asked
// for with a hint that is in use (B's preferred base) goes elsewhere.
func testExactPartlyInUse(e *env) {
	u := e.unit()
	code := e.existsCode()
	obj := e.shared("osmemtest-partly", uint64(3*u))
	for i := uintptr(0); i < 3; i++ {
		// Three units free, then the i-th taken by "someone else".
		var a uintptr
		var err error
		for range 8 {
			a = e.free(3 * u)
			if _, err = e.reserveAt(a+i*u, u, osmem.Exact); err == nil {
				break
			}
		}
		e.must(err, "Reserve(Exact) of one unit of a free range")
		_, err = e.reserveAt(a, 3*u, osmem.Exact)
		e.wantErr(err, osmem.ErrExists, code, "Reserve(Exact) over a range whose unit %d is in use", i)
		_, err = e.mapObject(obj, 0, a, 3*u, osmem.ProtRX, osmem.Exact)
		e.wantErr(err, osmem.ErrExists, code, "MapObject(Exact) over a range whose unit %d is in use", i)
		for j := uintptr(0); j < 3; j++ {
			if j == i {
				e.expect(a+j*u, a+(j+1)*u, reserved(a+j*u, a+(j+1)*u, a+i*u))
			} else {
				e.expectFree(a+j*u, a+(j+1)*u)
			}
		}
		v, err := e.mapObject(obj, 0, a+i*u, u, osmem.ProtRead, osmem.Hint)
		e.must(err, "MapObject(Hint) at a unit in use")
		if v < a+(i+1)*u && a+i*u < v+u {
			e.t.Errorf("MapObject(%#x, Hint) over a reservation = %#x: overlaps it", a+i*u, v)
		}
		e.expect(a+i*u, a+(i+1)*u, reserved(a+i*u, a+(i+1)*u, a+i*u))
		e.unmap(v, u)
		e.release(a+i*u, u)
	}
}

// testNotMapped checks that Commit, Protect and Decommit need mapped space,
// and, under Windows rules, a committed range within one reservation.
func testNotMapped(e *env) {
	g, p := e.gran, e.page
	code := e.notMappedCode()
	f := e.free(2 * g)
	e.expectQueryFree(f + p)
	e.wantErr(e.os.Commit(f, p, osmem.ProtRW), osmem.ErrNotMapped, code, "Commit of free space")
	e.wantErrIn(e.os.Protect(f, p, osmem.ProtRead), osmem.ErrNotMapped, e.notMappedCodes(), "Protect of free space")
	e.wantErr(e.os.Decommit(f, p), osmem.ErrNotMapped, 0, "Decommit of free space")
	e.expectFree(f, f+2*g)

	// A range that runs off the end of a reservation into free space.
	u := e.unit()
	r := e.reserveBeforeHole(u)
	e.wantErr(e.os.Commit(r, 2*u, osmem.ProtRW), osmem.ErrNotMapped, code, "Commit past the end of a reservation")
	if !e.win {
		// mprotect is not atomic: it changes the mappings below the
		// first hole, then fails. The simulator must model that, or
		// code tested on it would believe a failed Commit changed
		// nothing.
		e.expect(r, r+u, committed(r, r+u, r, osmem.ProtRW))
	}
	e.wantErrIn(e.os.Protect(r, 2*u, osmem.ProtRead), osmem.ErrNotMapped, e.notMappedCodes(), "Protect past the end of a reservation")
	e.wantErr(e.os.Decommit(r, 2*u), osmem.ErrNotMapped, 0, "Decommit past the end of a reservation")
	e.expectFree(r+u, r+2*u)
	if e.win {
		// Windows checks the whole range first: nothing changed. (Linux's
		// mprotect changes the mapped pages before it finds the hole.)
		e.expect(r, r+u, reserved(r, r+u, r))
	}
	e.must(e.os.Decommit(r, u), "Decommit")
	e.expect(r, r+u, reserved(r, r+u, r))

	// Protect of reserved pages: an error on Windows (nothing committed to
	// protect), a commit on Linux (mprotect cannot tell).
	err := e.os.Protect(r, p, osmem.ProtRead)
	if e.win {
		e.wantErr(err, osmem.ErrNotMapped, code, "Protect of reserved pages")
		e.expect(r, r+u, reserved(r, r+u, r))
	} else {
		e.must(err, "Protect of reserved pages")
		e.expect(r, r+u, committed(r, r+p, r, osmem.ProtRead), reserved(r+p, r+u, r))
	}
	e.release(r, u)
}

// unit is the size tests use where a range must hold several pages and be
// a whole number of granules: 64 KiB on Windows, 4 pages on Linux.
func (e *env) unit() uintptr { return max(e.gran, 4*e.page) }

// reserveBeforeHole reserves size bytes, Exact, with size bytes of free
// space right above them, and returns the base.
func (e *env) reserveBeforeHole(size uintptr) uintptr {
	e.t.Helper()
	var err error
	for range 8 {
		a := e.free(2 * size)
		if _, err = e.reserveAt(a, size, osmem.Exact); err == nil {
			return a
		}
	}
	e.t.Fatalf("cannot reserve below a free range: %v", err)
	return 0
}

// testLinuxPartialRelease checks that under Linux rules any page-aligned
// part of a mapping can be released, and that releasing free space is not
// an error (munmap).
func testLinuxPartialRelease(e *env) {
	if e.win {
		e.t.Skip("Linux rules only")
	}
	p := e.page
	r := e.reserve(8 * p)
	e.must(e.os.Commit(r+4*p, 2*p, osmem.ProtRW), "Commit")
	e.release(r+2*p, 3*p) // across the reserved/committed boundary
	e.expect(r, r+8*p, reserved(r, r+2*p, 0), committed(r+5*p, r+6*p, 0, osmem.ProtRW), reserved(r+6*p, r+8*p, 0))
	e.release(r, p)
	e.expect(r, r+8*p, reserved(r+p, r+2*p, 0), committed(r+5*p, r+6*p, 0, osmem.ProtRW), reserved(r+6*p, r+8*p, 0))
	e.must(e.os.Release(r+2*p, 3*p), "Release of free space")
	e.release(r, 8*p) // holes and all
	e.expectFree(r, r+8*p)
}

// testLinuxFixedOverReservation checks MAP_FIXED into one's own
// reservation: atomic replacement with the reservation intact on both
// sides, and Unmap leaving a hole that Reserve(Fixed) fills again.
func testLinuxFixedOverReservation(e *env) {
	if e.win {
		e.t.Skip("Linux rules only")
	}
	p := e.page
	data := pattern(4*int(p), 0x5a)
	f := e.open(e.tempFile(data))
	r := e.reserve(8 * p)

	v, err := e.mapObject(f, uint64(p), r+2*p, 2*p, osmem.ProtRead, osmem.Fixed)
	e.must(err, "MapObject(Fixed) over a reservation")
	if v != r+2*p {
		e.t.Fatalf("MapObject(Fixed) at %#x = %#x", r+2*p, v)
	}
	e.expect(r, r+8*p, reserved(r, r+2*p, 0), e.view(r+2*p, r+4*p, 0, osmem.ProtRead, f, uint64(p)), reserved(r+4*p, r+8*p, 0))
	e.expectQuery(r+3*p, r, r+8*p, e.view(r+2*p, r+4*p, 0, osmem.ProtRead, f, uint64(p)))
	if e.real && !bytes.Equal(e.bytes(v, 2*p), data[p:3*p]) {
		e.t.Errorf("view of the file at offset %#x does not read the file", p)
	}

	// One Fixed map over reserved, committed and reserved pages.
	e.must(e.os.Commit(r+5*p, p, osmem.ProtRW), "Commit")
	_, err = e.mapObject(f, 0, r+4*p, 3*p, osmem.ProtRX, osmem.Fixed)
	e.must(err, "MapObject(Fixed) over mixed pages")
	e.expect(r, r+8*p, reserved(r, r+2*p, 0), e.view(r+2*p, r+4*p, 0, osmem.ProtRead, f, uint64(p)),
		e.view(r+4*p, r+7*p, 0, osmem.ProtRX, f, 0), reserved(r+7*p, r+8*p, 0))

	e.unmap(r+2*p, 2*p)
	e.expect(r, r+8*p, reserved(r, r+2*p, 0), e.view(r+4*p, r+7*p, 0, osmem.ProtRX, f, 0), reserved(r+7*p, r+8*p, 0))
	// Fill the hole again, as a caller keeping the range does.
	_, err = e.reserveAt(r+2*p, 2*p, osmem.Fixed)
	e.must(err, "Reserve(Fixed) into a hole")
	e.expect(r, r+8*p, reserved(r, r+4*p, 0), e.view(r+4*p, r+7*p, 0, osmem.ProtRX, f, 0), reserved(r+7*p, r+8*p, 0))
	e.release(r, 8*p)
}

// testLinuxFixedReplacesCommitted checks that Reserve(Fixed) over
// committed memory discards it.
func testLinuxFixedReplacesCommitted(e *env) {
	if e.win {
		e.t.Skip("Linux rules only")
	}
	p := e.page
	r := e.reserve(4 * p)
	e.must(e.os.Commit(r, 4*p, osmem.ProtRW), "Commit")
	data := pattern(4*int(p), 0x77)
	if e.real {
		copy(e.bytes(r, 4*p), data)
	}
	_, err := e.reserveAt(r+p, 2*p, osmem.Fixed)
	e.must(err, "Reserve(Fixed) over committed memory")
	e.expect(r, r+4*p, committed(r, r+p, 0, osmem.ProtRW), reserved(r+p, r+3*p, 0), committed(r+3*p, r+4*p, 0, osmem.ProtRW))
	e.must(e.os.Commit(r+p, 2*p, osmem.ProtRW), "Commit")
	if e.real {
		b := e.bytes(r, 4*p)
		if !bytes.Equal(b[:p], data[:p]) || !bytes.Equal(b[3*p:], data[3*p:]) || !allZero(b[p:3*p]) {
			e.t.Errorf("Reserve(Fixed) did not replace exactly the pages asked")
		}
	}
	e.release(r, 4*p)
}

// testWindowsRelease checks that under Windows rules only a whole
// reservation is released, from its base.
func testWindowsRelease(e *env) {
	if !e.win {
		e.t.Skip("Windows rules only")
	}
	g, p := e.gran, e.page
	size := 4 * g
	r := e.reserve(size)
	e.must(e.os.Commit(r+g, g, osmem.ProtRW), "Commit")
	e.wantErr(e.os.Release(r, size-p), osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "Release of all but a page")
	e.wantErr(e.os.Release(r, g), osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "Release of the first granule")
	e.wantErr(e.os.Release(r, size+g), osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "Release of more than the reservation")
	e.wantErrIn(e.os.Release(r+g, g), osmem.ErrNotMapped, e.addrCodes(), "Release from inside a reservation")
	e.expect(r, r+size, reserved(r, r+g, r), committed(r+g, r+2*g, r, osmem.ProtRW), reserved(r+2*g, r+size, r))

	f := e.free(g)
	e.wantErrIn(e.os.Release(f, g), osmem.ErrNotMapped, e.addrCodes(), "Release of free space")

	obj := e.shared("osmemtest-release", uint64(g))
	v := e.mustMap(obj, 0, g, osmem.ProtRW)
	e.wantErrIn(e.os.Release(v, g), osmem.ErrNotMapped, e.addrCodes(), "Release of a view")
	e.expect(v, v+g, e.view(v, v+g, v, osmem.ProtRW, obj, 0))
	e.unmap(v, g)

	e.release(r, size)
	e.expectFree(r, r+size)
}

// testWindowsAlignment checks 64 KiB bases: every placement is aligned, a
// small reservation still takes a whole granule, and an unaligned base is
// refused.
func testWindowsAlignment(e *env) {
	if !e.win {
		e.t.Skip("Windows rules only")
	}
	g, p := e.gran, e.page
	var bases []uintptr
	for range 4 {
		bases = append(bases, e.reserve(p)) // aligned: checked by reserve
	}
	for i, a := range bases {
		for _, b := range bases[:i] {
			if a/g == b/g {
				e.t.Errorf("reservations at %#x and %#x share a granule", a, b)
			}
		}
	}
	a := bases[0]
	e.expect(a, a+g, reserved(a, a+p, a))
	_, err := e.reserveAt(a+p, p, osmem.Exact)
	e.wantErr(err, osmem.ErrInvalid, 0, "Reserve(Exact) at an unaligned base")
	// A hint is rounded down, as VirtualAlloc does; a is in use, so the
	// reservation goes elsewhere, still aligned.
	h, err := e.reserveAt(a+p, p, osmem.Hint)
	e.must(err, "Reserve(Hint) at an unaligned base")
	if h%g != 0 || h/g == a/g {
		e.t.Errorf("Reserve(%#x, Hint) = %#x: unaligned or in a granule in use", a+p, h)
	}
	e.release(h, p)
	obj := e.shared("osmemtest-align", uint64(2*g))
	_, err = e.mapObject(obj, 0, a+p, p, osmem.ProtRead, osmem.Exact)
	e.wantErr(err, osmem.ErrInvalid, 0, "MapObject(Exact) at an unaligned base")
	_, err = e.mapObject(obj, uint64(p), 0, p, osmem.ProtRead, osmem.Hint)
	e.wantErr(err, osmem.ErrInvalid, 0, "MapObject at an offset not on the granularity")
	e.expect(a, a+g, reserved(a, a+p, a))
	for _, b := range bases {
		e.release(b, p)
	}
}

// testWindowsAllocationBounds checks that Commit, Protect and Decommit
// never cross from one reservation into the next, even adjacent, and that
// Protect needs committed pages.
func testWindowsAllocationBounds(e *env) {
	if !e.win {
		e.t.Skip("Windows rules only")
	}
	g, p := e.gran, e.page
	a := e.adjacentPair()
	b := a + g
	e.expect(a, a+2*g, reserved(a, b, a), reserved(b, b+g, b))
	code := osmem.WinErrorInvalidAddress
	e.wantErr(e.os.Commit(b-p, 2*p, osmem.ProtRW), osmem.ErrNotMapped, uintptr(code), "Commit across two reservations")
	e.expect(a, a+2*g, reserved(a, b, a), reserved(b, b+g, b))
	e.must(e.os.Commit(a, g, osmem.ProtRW), "Commit")
	e.must(e.os.Commit(b, g, osmem.ProtRW), "Commit")
	e.wantErrIn(e.os.Protect(b-p, 2*p, osmem.ProtRead), osmem.ErrNotMapped, e.addrCodes(), "Protect across two reservations")
	e.wantErr(e.os.Decommit(b-p, 2*p), osmem.ErrNotMapped, 0, "Decommit across two reservations")
	e.expect(a, a+2*g, committed(a, b, a, osmem.ProtRW), committed(b, b+g, b, osmem.ProtRW))

	e.must(e.os.Decommit(a, p), "Decommit")
	e.wantErr(e.os.Protect(a, p, osmem.ProtRead), osmem.ErrNotMapped, uintptr(code), "Protect of reserved pages")
	e.wantErr(e.os.Protect(a, 2*p, osmem.ProtRead), osmem.ErrNotMapped, uintptr(code), "Protect of reserved and committed pages")
	e.expect(a, a+2*g, reserved(a, a+p, a), committed(a+p, b, a, osmem.ProtRW), committed(b, b+g, b, osmem.ProtRW))
	e.release(a, g)
	e.release(b, g)
}

// adjacentPair reserves two adjacent granules as two reservations and
// returns the first base.
func (e *env) adjacentPair() uintptr {
	e.t.Helper()
	g := e.gran
	var err error
	for range 8 {
		a := e.free(2 * g)
		if _, err = e.reserveAt(a, g, osmem.Exact); err != nil {
			continue
		}
		if _, err = e.reserveAt(a+g, g, osmem.Exact); err != nil {
			e.release(a, g)
			continue
		}
		return a
	}
	e.t.Fatalf("cannot reserve two adjacent granules: %v", err)
	return 0
}

// testWindowsViewOverReservation checks the rule the Windows grid exists
// for: nothing maps over a reservation, but a released slot can be mapped
// exactly; and views are unmapped only whole, from their base.
func testWindowsViewOverReservation(e *env) {
	if !e.win {
		e.t.Skip("Windows rules only")
	}
	g := e.gran
	obj := e.shared("osmemtest-grid", uint64(2*g))
	r := e.reserve(2 * g)
	_, err := e.mapObject(obj, 0, r, 2*g, osmem.ProtRW, osmem.Exact)
	e.wantErr(err, osmem.ErrExists, osmem.WinErrorInvalidAddress, "MapObject(Exact) over a reservation")
	_, err = e.mapObject(obj, 0, r, 2*g, osmem.ProtRW, osmem.Fixed)
	e.wantErr(err, osmem.ErrNotSupported, 0, "MapObject(Fixed)")
	_, err = e.reserveAt(r, 2*g, osmem.Fixed)
	e.wantErr(err, osmem.ErrNotSupported, 0, "Reserve(Fixed)")
	e.expect(r, r+2*g, reserved(r, r+2*g, r))

	// The grid's way: release the slot, then map exactly there.
	e.release(r, 2*g)
	v, err := e.mapObject(obj, 0, r, 2*g, osmem.ProtRW, osmem.Exact)
	e.must(err, "MapObject(Exact) into a released slot")
	if v != r {
		e.t.Fatalf("MapObject(Exact) at %#x = %#x", r, v)
	}
	e.expect(r, r+2*g, e.view(r, r+2*g, r, osmem.ProtRW, obj, 0))
	e.expectQuery(r+g, r, r+2*g, e.view(r, r+2*g, r, osmem.ProtRW, obj, 0))
	e.wantErr(e.os.Unmap(r+g, g), osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "Unmap from inside a view")
	e.wantErr(e.os.Unmap(r, g), osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "Unmap of part of a view")
	e.wantErrIn(e.os.Release(r, 2*g), osmem.ErrNotMapped, e.addrCodes(), "Release of a view")
	e.expect(r, r+2*g, e.view(r, r+2*g, r, osmem.ProtRW, obj, 0))
	e.unmap(r, 2*g)

	v, err = e.mapObject(obj, uint64(g), r, g, osmem.ProtRead, osmem.Exact)
	e.must(err, "MapObject(Exact) at an offset")
	e.expect(v, v+g, e.view(v, v+g, v, osmem.ProtRead, obj, uint64(g)))
	e.unmap(v, g)
	e.expectFree(r, r+2*g)
}

// testDualMapping checks the W^X arrangement: one shared object viewed
// twice, executable and writable, the bytes written through one read
// through the other.
func testDualMapping(e *env) {
	g, p := e.gran, e.page
	size := max(4*p, 2*g)
	const name = "osmemtest-dual"
	obj := e.shared(name, uint64(size))
	if obj.Name() != name || obj.Size() != uint64(size) || !obj.Shared() {
		e.t.Errorf("CreateShared(%q, %#x) = %q, %#x, shared %v", name, size, obj.Name(), obj.Size(), obj.Shared())
	}
	rx := e.mustMap(obj, 0, size, osmem.ProtRX)
	rw := e.mustMap(obj, 0, size, osmem.ProtRW)
	if rx == rw {
		e.t.Fatalf("two views at the same address %#x", rx)
	}
	e.expect(rx, rx+size, e.view(rx, rx+size, rx, osmem.ProtRX, obj, 0))
	e.expect(rw, rw+size, e.view(rw, rw+size, rw, osmem.ProtRW, obj, 0))
	data := pattern(int(size), 0x42)
	if e.real {
		copy(e.bytes(rw, size), data)
		if !bytes.Equal(e.bytes(rx, size), data) {
			e.t.Errorf("bytes written through the RW view do not read back through the RX view")
		}
	}

	// A third view at an offset sees the same bytes.
	third := e.mustMap(obj, uint64(g), g, osmem.ProtRead)
	e.expect(third, third+g, e.view(third, third+g, third, osmem.ProtRead, obj, uint64(g)))
	if e.real && !bytes.Equal(e.bytes(third, g), data[g:2*g]) {
		e.t.Errorf("view at offset %#x does not see the object's bytes there", g)
	}

	e.must(e.os.Protect(rw, size, osmem.ProtRead), "Protect of a view")
	e.expect(rw, rw+size, e.view(rw, rw+size, rw, osmem.ProtRead, obj, 0))
	e.must(e.os.Protect(rw, size, osmem.ProtRW), "Protect of a view")
	err := e.os.Protect(rx, p, osmem.ProtRWX)
	if e.win {
		// The view was mapped without write access; Windows keeps it so.
		e.wantErr(err, osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "Protect(RWX) of an RX view")
		e.expect(rx, rx+size, e.view(rx, rx+size, rx, osmem.ProtRX, obj, 0))
	} else {
		e.must(err, "Protect(RWX) of an RX view of a memfd")
		e.must(e.os.Protect(rx, p, osmem.ProtRX), "Protect")
	}

	e.unmap(third, g)
	e.unmap(rw, size)
	if e.real && !bytes.Equal(e.bytes(rx, size), data) {
		e.t.Errorf("bytes lost when the RW view was unmapped")
	}
	e.unmap(rx, size)
	e.expectFree(rx, rx+size)
	e.expectFree(rw, rw+size)
}

// testFile checks private file views: names, offsets, contents, and that
// writes to them stay private.
func testFile(e *env) {
	g, p := e.gran, e.page
	n := int(g + 3*p + 100)
	data := pattern(n, 0x33)
	path := e.tempFile(data)
	f := e.open(path)
	if f.Size() != uint64(n) || f.Shared() {
		e.t.Errorf("OpenFile: size %#x shared %v, want %#x, false", f.Size(), f.Shared(), n)
	}
	if !e.win && f.Name() != path {
		e.t.Errorf("OpenFile(%q).Name() = %q", path, f.Name())
	}
	// Windows maps no byte past the end of the file, not even the rest of
	// its last page; Linux maps whole pages, zero-filled past the end.
	size, tail := g+4*p, 4*p
	if e.win {
		size, tail = g+3*p, 3*p
		_, err := e.mapObject(f, 0, 0, g+4*p, osmem.ProtRead, osmem.Hint)
		e.wantErr(err, osmem.ErrInvalid, 0, "MapObject of the rest of a file's last page")
	}
	v := e.mustMap(f, 0, size, osmem.ProtRead)
	e.expect(v, v+size, e.view(v, v+size, v, osmem.ProtRead, f, 0))
	if id, ok := f.(osmem.FileIdentity); ok {
		// Views carry the identity the object claims, so that records
		// made from the object match what Regions reports.
		dev, ino := id.FileID()
		for _, r := range e.regions(v, v+size) {
			if r.Dev != dev || r.Inode != ino {
				e.t.Errorf("view reports device %#x inode %d, the object %#x %d", r.Dev, r.Inode, dev, ino)
			}
		}
		if !e.win && runtime.GOOS == "linux" && ino == 0 {
			e.t.Errorf("FileID() of %s has no inode", path)
		}
	}
	if e.real && !bytes.Equal(e.bytes(v, size), fileBytes(data, 0, size)) {
		e.t.Errorf("view does not read the file, zero-filled past its end")
	}
	w := e.mustMap(f, uint64(g), tail, osmem.ProtRead)
	e.expect(w, w+tail, e.view(w, w+tail, w, osmem.ProtRead, f, uint64(g)))
	if e.real && !bytes.Equal(e.bytes(w, tail), fileBytes(data, g, tail)) {
		e.t.Errorf("view at offset %#x does not read the file there", g)
	}

	// Copy on write: a write to one view reaches neither the file nor
	// another view of it.
	e.must(e.os.Protect(v, p, osmem.ProtRW), "Protect of a private file view")
	e.expect(v, v+size, e.view(v, v+p, v, osmem.ProtRW, f, 0), e.view(v+p, v+size, v, osmem.ProtRead, f, uint64(p)))
	if e.real {
		b := e.bytes(v, p)
		for i := range b {
			b[i] = 0xee
		}
		u := e.mustMap(f, 0, p, osmem.ProtRead)
		if !bytes.Equal(e.bytes(u, p), data[:p]) {
			e.t.Errorf("a write to a private view reached another view")
		}
		e.unmap(u, p)
		if onDisk, err := os.ReadFile(path); err != nil || !bytes.Equal(onDisk, data) {
			e.t.Errorf("a write to a private view reached the file (%v)", err)
		}
	}
	e.unmap(w, tail)
	e.unmap(v, size)

	_, err := e.os.OpenFile(path + ".missing")
	e.wantErr(err, osmem.ErrInvalid, 0, "OpenFile of a missing file")
	_, err = e.os.OpenFile(filepath.Dir(path))
	e.wantErr(err, osmem.ErrInvalid, 0, "OpenFile of a directory")
}

// fileBytes returns what a view of size bytes at offset off of a file
// holding data reads: the file's bytes, then zeros.
func fileBytes(data []byte, off, size uintptr) []byte {
	b := make([]byte, size)
	if off < uintptr(len(data)) {
		copy(b, data[off:])
	}
	return b
}

// testObjectClose checks that views outlive their object's handle and that
// a closed object is unusable.
func testObjectClose(e *env) {
	g := e.gran
	obj := e.shared("osmemtest-close", uint64(g))
	v := e.mustMap(obj, 0, g, osmem.ProtRW)
	data := pattern(int(g), 0x99)
	if e.real {
		copy(e.bytes(v, g), data)
	}
	e.must(e.os.CloseObject(obj), "CloseObject")
	e.expect(v, v+g, e.view(v, v+g, v, osmem.ProtRW, obj, 0))
	if e.real && !bytes.Equal(e.bytes(v, g), data) {
		e.t.Errorf("view lost its bytes when the object was closed")
	}
	e.wantErr(e.os.CloseObject(obj), osmem.ErrInvalid, 0, "CloseObject twice")
	_, err := e.mapObject(obj, 0, 0, g, osmem.ProtRead, osmem.Hint)
	e.wantErr(err, osmem.ErrInvalid, 0, "MapObject of a closed object")
	e.unmap(v, g)
}

// knownBugs lists the reported, not yet fixed, deviations of native
// backends from the contract, by backend name and BadInput case. A listed
// case is logged instead of failing; once it passes it fails, so that the
// entry goes when the backend is fixed.
var knownBugs = map[string]string{}

// foreignObject is an Object no backend made.
type foreignObject struct{}

func (foreignObject) Name() string { return "foreign" }
func (foreignObject) Size() uint64 { return 1 << 20 }
func (foreignObject) Shared() bool { return true }

// testBadInput checks that malformed arguments fail with ErrInvalid, change
// nothing and never panic.
func testBadInput(e *env) {
	g, p := e.gran, e.page
	r := e.reserve(2 * g)
	obj := e.shared("osmemtest-bad", uint64(g))
	ovf := mem.AlignDown(^uintptr(0), g) // a range from here overflows
	_, hi := e.os.Bounds()

	type call struct {
		what string
		fn   func() error
	}
	reserve := func(a, n uintptr, m osmem.Mode) func() error {
		return func() error {
			got, err := e.os.Reserve(a, n, m)
			if err == nil {
				e.hold(got, n, false) // so that it is cleaned up
			}
			return err
		}
	}
	mapObj := func(o osmem.Object, off uint64, a, n uintptr, prot osmem.Prot, m osmem.Mode) func() error {
		return func() error {
			got, err := e.os.MapObject(o, off, a, n, prot, m)
			if err == nil {
				e.hold(got, n, e.win)
			}
			return err
		}
	}
	calls := []call{
		{"Reserve zero size", reserve(0, 0, osmem.Hint)},
		{"Reserve unaligned size", reserve(0, p+1, osmem.Hint)},
		{"Reserve(Exact) unaligned", reserve(r+1, p, osmem.Exact)},
		{"Reserve(Exact) overflowing", reserve(ovf, 2*g, osmem.Exact)},
		{"Reserve unknown mode", reserve(0, g, osmem.Mode(9))},
		{"Commit zero size", func() error { return e.os.Commit(r, 0, osmem.ProtRW) }},
		{"Commit unaligned", func() error { return e.os.Commit(r+1, p, osmem.ProtRW) }},
		{"Commit unaligned size", func() error { return e.os.Commit(r, p+1, osmem.ProtRW) }},
		{"Commit overflowing", func() error { return e.os.Commit(ovf, 2*g, osmem.ProtRW) }},
		{"Commit bad protection", func() error { return e.os.Commit(r, p, osmem.Prot(8)) }},
		{"Protect bad protection", func() error { return e.os.Protect(r, p, osmem.Prot(0xff)) }},
		{"Protect unaligned", func() error { return e.os.Protect(r+p/2, p, osmem.ProtRead) }},
		{"Protect overflowing", func() error { return e.os.Protect(ovf, 2*g, osmem.ProtRead) }},
		{"Decommit zero size", func() error { return e.os.Decommit(r, 0) }},
		{"Decommit overflowing", func() error { return e.os.Decommit(ovf, 2*g) }},
		{"Release zero size", func() error { return e.os.Release(r, 0) }},
		{"Release unaligned", func() error { return e.os.Release(r+1, p) }},
		{"Release overflowing", func() error { return e.os.Release(ovf, 2*g) }},
		{"Unmap unaligned", func() error { return e.os.Unmap(r+1, p) }},
		{"Unmap overflowing", func() error { return e.os.Unmap(ovf, 2*g) }},
		{"MapObject nil object", mapObj(nil, 0, 0, g, osmem.ProtRead, osmem.Hint)},
		{"MapObject foreign object", mapObj(foreignObject{}, 0, 0, g, osmem.ProtRead, osmem.Hint)},
		{"MapObject zero size", mapObj(obj, 0, 0, 0, osmem.ProtRead, osmem.Hint)},
		{"MapObject unaligned size", mapObj(obj, 0, 0, p-1, osmem.ProtRead, osmem.Hint)},
		{"MapObject unaligned offset", mapObj(obj, 1, 0, p, osmem.ProtRead, osmem.Hint)},
		{"MapObject(Exact) unaligned", mapObj(obj, 0, r+1, p, osmem.ProtRead, osmem.Exact)},
		{"MapObject(Exact) overflowing", mapObj(obj, 0, ovf, 2*g, osmem.ProtRead, osmem.Exact)},
		{"MapObject bad protection", mapObj(obj, 0, 0, p, osmem.Prot(16), osmem.Hint)},
		{"MapObject unknown mode", mapObj(obj, 0, 0, p, osmem.ProtRead, osmem.Mode(9))},
		{"CloseObject nil", func() error { return e.os.CloseObject(nil) }},
		{"CloseObject foreign", func() error { return e.os.CloseObject(foreignObject{}) }},
		{"CreateShared zero size", func() error { _, err := e.os.CreateShared("osmemtest-zero", 0); return err }},
		{"CreateShared unaligned size", func() error { _, err := e.os.CreateShared("osmemtest-odd", uint64(p)+1); return err }},
		{"OpenFile empty path", func() error { _, err := e.os.OpenFile(""); return err }},
		{"Regions inverted", func() error { _, err := e.os.Regions(r+g, r); return err }},
		{"Regions empty", func() error { _, err := e.os.Regions(r, r); return err }},
	}
	for _, c := range calls {
		e.noPanic(c.what, func() {
			err := c.fn()
			if bug, ok := knownBugs[e.os.Name()+"/"+c.what]; ok {
				if errors.Is(err, osmem.ErrInvalid) {
					e.t.Errorf("%s: known bug %q is fixed: remove it from knownBugs", c.what, bug)
				} else {
					e.t.Logf("%s: %v: known backend bug: %s", c.what, err, bug)
				}
				return
			}
			e.wantErr(err, osmem.ErrInvalid, 0, "%s", c.what)
		})
	}

	// Beyond the address space: invalid or out of memory, never granted.
	for _, c := range []call{
		{"Reserve huge", reserve(0, mem.AlignDown(^uintptr(0), g), osmem.Hint)},
		{"Reserve(Exact) beyond the top", reserve(hi, g, osmem.Exact)},
		{"Reserve(Exact) across the top", reserve(hi-g, 2*g, osmem.Exact)},
		{"MapObject(Exact) beyond the top", mapObj(obj, 0, hi, g, osmem.ProtRead, osmem.Exact)},
	} {
		e.noPanic(c.what, func() {
			err := c.fn()
			if err == nil || !(errors.Is(err, osmem.ErrInvalid) || errors.Is(err, osmem.ErrNoMemory)) {
				e.t.Errorf("%s: %v, want ErrInvalid or ErrNoMemory", c.what, err)
			}
		})
	}
	e.expect(r, r+2*g, reserved(r, r+2*g, r))
	e.release(r, 2*g)
}

// testRegionsClipping checks that Regions clips to the range asked,
// offsets of views included, and that Query reports whole regions.
func testRegionsClipping(e *env) {
	p, g := e.page, e.unit()
	r := e.reserve(4 * g)
	e.must(e.os.Commit(r+g, g, osmem.ProtRW), "Commit")
	e.expect(r, r+4*g, reserved(r, r+g, r), committed(r+g, r+2*g, r, osmem.ProtRW), reserved(r+2*g, r+4*g, r))
	e.expect(r+g-p, r+g+p, reserved(r+g-p, r+g, r), committed(r+g, r+g+p, r, osmem.ProtRW))
	e.expect(r+g+p, r+g+2*p, e.private(r+g+p, r+g+2*p, r, osmem.ProtRW))
	e.expect(r+3*g, r+3*g+p, reserved(r+3*g, r+3*g+p, r))
	e.expectQuery(r+g+p, r, r+4*g, committed(r+g, r+2*g, r, osmem.ProtRW))
	e.expectQuery(r+3*g, r, r+4*g, reserved(r+2*g, r+4*g, r))

	obj := e.shared("osmemtest-clip", uint64(2*g))
	v := e.mustMap(obj, 0, 2*g, osmem.ProtRead)
	e.expect(v+p, v+2*p, e.view(v+p, v+2*p, v, osmem.ProtRead, obj, uint64(p)))
	e.expect(v+g+p, v+2*g, e.view(v+g+p, v+2*g, v, osmem.ProtRead, obj, uint64(g+p)))
	e.unmap(v, 2*g)
	e.release(r, 4*g)
}
