package osmemtest

import (
	"bytes"

	"github.com/reachvm/reachvm/internal/osmem"
)

// Errors of mmap and mremap: a writable shared view of a read-only
// descriptor, a range that is not one mapping, a bad new range.
const (
	linuxEACCES = 13
	linuxEFAULT = 14
	linuxEINVAL = 22
)

// testRemap checks mremap's rules (osmem.Remapper) under Linux rules:
// shrinking and growing in place, growing refused in place where the
// next page is mapped, a range of two mappings refused, moves to a fixed
// address (over a reservation) and where the OS chooses, contents and a
// file view's offsets carried along. Under Windows rules there is none.
func testRemap(e *env) {
	p := e.page
	if e.win {
		r := e.reserve(p)
		_, err := osmem.Remap(e.os, r, p, 2*p, osmem.Hint, 0)
		e.wantErr(err, osmem.ErrNotSupported, 0, "Remap under Windows rules")
		return
	}
	r := e.reserve(8 * p)
	e.must(e.os.Commit(r, 2*p, osmem.ProtRW), "Commit")
	if e.real {
		copy(e.bytes(r, 2*p), pattern(2*int(p), 0x31))
	}
	_, err := osmem.Remap(e.os, r, 2*p, 3*p, osmem.Exact, 0)
	e.wantErr(err, osmem.ErrNoMemory, linuxENOMEM, "Remap(Exact) grown into a reservation")
	_, err = osmem.Remap(e.os, r, 3*p, 4*p, osmem.Hint, 0)
	e.wantErr(err, osmem.ErrNotMapped, linuxEFAULT, "Remap growing two mappings")
	_, err = osmem.Remap(e.os, r+8*p, p, 2*p, osmem.Hint, 0)
	e.wantErr(err, osmem.ErrNotMapped, linuxEFAULT, "Remap of nothing")
	e.expect(r, r+8*p, committed(r, r+2*p, 0, osmem.ProtRW), reserved(r+2*p, r+8*p, 0))

	// Shrunk in place, then grown back in place into the freed page.
	got, err := osmem.Remap(e.os, r, 2*p, p, osmem.Exact, 0)
	e.must(err, "Remap(Exact) shrinking")
	if got != r {
		e.t.Fatalf("Remap(Exact) shrinking moved to %#x", got)
	}
	e.drop(r+p, p)
	e.expect(r, r+8*p, committed(r, r+p, 0, osmem.ProtRW), reserved(r+2*p, r+8*p, 0))
	got, err = osmem.Remap(e.os, r, p, 2*p, osmem.Hint, 0)
	e.must(err, "Remap(Hint) growing into free space")
	if got != r {
		e.t.Fatalf("Remap(Hint) with room after it moved to %#x", got)
	}
	e.hold(r+p, p, false)
	e.expect(r, r+8*p, committed(r, r+2*p, 0, osmem.ProtRW), reserved(r+2*p, r+8*p, 0))
	if e.real {
		want := append(pattern(int(p), 0x31), make([]byte, p)...)
		if !bytes.Equal(e.bytes(r, 2*p), want) {
			e.t.Error("shrunk and grown in place: the first page changed or the new one is not zero")
		}
	}

	// Moved over part of its own reservation.
	got, err = osmem.Remap(e.os, r, 2*p, 2*p, osmem.Fixed, r+5*p)
	e.must(err, "Remap(Fixed) moving")
	if got != r+5*p {
		e.t.Fatalf("Remap(Fixed) to %#x moved to %#x", r+5*p, got)
	}
	e.drop(r, 2*p)
	e.expect(r, r+8*p, reserved(r+2*p, r+5*p, 0), committed(r+5*p, r+7*p, 0, osmem.ProtRW), reserved(r+7*p, r+8*p, 0))
	_, err = osmem.Remap(e.os, r+5*p, 2*p, 2*p, osmem.Fixed, r+6*p)
	e.wantErr(err, osmem.ErrInvalid, linuxEINVAL, "Remap(Fixed) onto itself")
	if e.real && !bytes.Equal(e.bytes(r+5*p, p), pattern(int(p), 0x31)) {
		e.t.Error("moved: the contents did not follow")
	}

	// Grown where it cannot grow in place: moved where the OS chooses.
	got, err = osmem.Remap(e.os, r+5*p, 2*p, 4*p, osmem.Hint, 0)
	e.must(err, "Remap(Hint) moving")
	e.drop(r+5*p, 2*p)
	e.hold(got, 4*p, false)
	if got == r+5*p {
		e.t.Fatal("Remap(Hint) grew in place over a reservation")
	}
	e.expect(got, got+4*p, committed(got, got+4*p, 0, osmem.ProtRW))
	e.expectFree(r+5*p, r+7*p)
	if e.real && !bytes.Equal(e.bytes(got, p), pattern(int(p), 0x31)) {
		e.t.Error("moved by the OS: the contents did not follow")
	}

	// A file view: shrunk, then moved and grown, its offsets following.
	data := pattern(4*int(p), 0x47)
	f := e.open(e.tempFile(data))
	v := e.mustMap(f, uint64(p), 3*p, osmem.ProtRead)
	_, err = osmem.Remap(e.os, v, 3*p, 2*p, osmem.Hint, 0)
	e.must(err, "Remap of a view, shrinking")
	e.drop(v+2*p, p)
	got, err = osmem.Remap(e.os, v, 2*p, 3*p, osmem.Fixed, r+2*p)
	e.must(err, "Remap(Fixed) of a view, growing")
	e.drop(v, 2*p)
	e.drop(r+2*p, 3*p)
	e.hold(got, 3*p, false)
	e.expect(r+2*p, r+5*p, e.view(r+2*p, r+5*p, 0, osmem.ProtRead, f, uint64(p)))
	if e.real && !bytes.Equal(e.bytes(got, 3*p), data[p:4*p]) {
		e.t.Error("moved and grown view does not read the file from its offset")
	}
}
