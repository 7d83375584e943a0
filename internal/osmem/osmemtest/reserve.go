package osmemtest

import (
	"bytes"
	"errors"

	"github.com/reachvm/reachvm/internal/osmem"
)

// reservedView is the region of uncommitted pages [a, b) of a view of a
// reserve object obj at offset off.
func (e *env) reservedView(a, b, base uintptr, obj osmem.Object, off uint64) osmem.Region {
	r := e.view(a, b, base, osmem.ProtNone, obj, off)
	r.State = osmem.StateReserved
	return r
}

// testReserveSection checks reserve-only shared objects
// (osmem.SharedReserver, a SEC_RESERVE section): views start reserved,
// Commit through one view commits the object's pages in every view, and
// committed pages cannot be decommitted. Under Linux rules, where a memfd
// needs no such thing, the object cannot be made (ErrNotSupported).
func testReserveSection(e *env) {
	const name = "osmemtest-reserve"
	g, p := e.gran, e.page
	size := 2 * g
	obj, err := osmem.CreateSharedReserve(e.os, name, uint64(size))
	if !e.win {
		e.wantErr(err, osmem.ErrNotSupported, 0, "CreateSharedReserve under Linux rules")
		return
	}
	e.must(err, "CreateSharedReserve(%q, %#x)", name, size)
	e.atEnd(func() { e.closeObject(obj) })
	if obj.Name() != name || obj.Size() != uint64(size) || !obj.Shared() {
		e.t.Errorf("CreateSharedReserve(%q, %#x) = %q, %#x, shared %v", name, size, obj.Name(), obj.Size(), obj.Shared())
	}
	rw := e.mustMap(obj, 0, size, osmem.ProtRW)
	rx := e.mustMap(obj, 0, size, osmem.ProtRX)
	e.expect(rw, rw+size, e.reservedView(rw, rw+size, rw, obj, 0))
	e.expect(rx, rx+size, e.reservedView(rx, rx+size, rx, obj, 0))
	e.wantErr(e.os.Protect(rw, p, osmem.ProtRead), osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "Protect of an uncommitted page of a view")

	// Commit of page 1 through the writable view: committed in both views,
	// read-write in the one, read-execute (its access) in the other.
	e.must(e.os.Commit(rw+p, p, osmem.ProtRW), "Commit of a page of a view")
	e.expect(rw, rw+size,
		e.reservedView(rw, rw+p, rw, obj, 0),
		e.view(rw+p, rw+2*p, rw, osmem.ProtRW, obj, uint64(p)),
		e.reservedView(rw+2*p, rw+size, rw, obj, uint64(2*p)))
	e.expect(rx, rx+size,
		e.reservedView(rx, rx+p, rx, obj, 0),
		e.view(rx+p, rx+2*p, rx, osmem.ProtRX, obj, uint64(p)),
		e.reservedView(rx+2*p, rx+size, rx, obj, uint64(2*p)))
	data := pattern(int(p), 0x5a)
	if e.real {
		copy(e.bytes(rw+p, p), data)
		if !bytes.Equal(e.bytes(rx+p, p), data) {
			e.t.Errorf("bytes written through the writable view do not read back through the executable one")
		}
	}

	// A protection the view was not mapped for is refused; its own is not.
	e.wantErr(e.os.Commit(rx+2*p, p, osmem.ProtRW), osmem.ErrInvalid, osmem.WinErrorInvalidParameter, "Commit(RW) through a read-execute view")
	e.must(e.os.Commit(rx+2*p, p, osmem.ProtRX), "Commit(RX) through a read-execute view")
	e.expect(rw+2*p, rw+3*p, e.view(rw+2*p, rw+3*p, rw, osmem.ProtRW, obj, uint64(2*p)))

	// Committing a range of committed and reserved pages commits the rest
	// and sets the protection of all, keeping the contents.
	e.must(e.os.Commit(rw, 4*p, osmem.ProtRead), "Commit over committed and reserved pages")
	e.expect(rw, rw+size,
		e.view(rw, rw+4*p, rw, osmem.ProtRead, obj, 0),
		e.reservedView(rw+4*p, rw+size, rw, obj, uint64(4*p)))
	e.expect(rx, rx+size,
		e.view(rx, rx+4*p, rx, osmem.ProtRX, obj, 0),
		e.reservedView(rx+4*p, rx+size, rx, obj, uint64(4*p)))
	if e.real && !bytes.Equal(e.bytes(rx+p, p), data) {
		e.t.Errorf("bytes lost when committed pages were committed again")
	}
	e.must(e.os.Protect(rw, 4*p, osmem.ProtRW), "Protect of committed pages of a view")
	e.wantErr(e.os.Protect(rw, 5*p, osmem.ProtRW), osmem.ErrNotMapped, osmem.WinErrorInvalidAddress, "Protect over committed and reserved pages")

	// No decommit of section pages; they stay committed.
	e.wantErr(e.os.Decommit(rw+p, p), osmem.ErrNotSupported, osmem.WinErrorInvalidParameter, "Decommit of a section page")
	e.expect(rw+p, rw+2*p, e.view(rw+p, rw+2*p, rw, osmem.ProtRW, obj, uint64(p)))

	// Discard keeps the pages committed.
	if err := osmem.Discard(e.os, rw+p, p); err != nil && !errors.Is(err, osmem.ErrNotSupported) {
		e.t.Errorf("Discard of a committed page of a view: %v", err)
	}
	e.expect(rw+p, rw+2*p, e.view(rw+p, rw+2*p, rw, osmem.ProtRW, obj, uint64(p)))

	// A view mapped later, at an offset, shows what is committed.
	third := e.mustMap(obj, 0, g, osmem.ProtRead)
	e.expect(third, third+g,
		e.view(third, third+4*p, third, osmem.ProtRead, obj, 0),
		e.reservedView(third+4*p, third+g, third, obj, uint64(4*p)))
	e.unmap(third, g)

	// Commit beyond the view fails and changes nothing.
	e.wantErrIn(e.os.Commit(rw+size-p, 2*p, osmem.ProtRW), osmem.ErrNotMapped, e.addrCodes(), "Commit beyond the end of a view")
	e.expect(rw+size-p, rw+size, e.reservedView(rw+size-p, rw+size, rw, obj, uint64(size-p)))

	e.unmap(rw, size)
	e.unmap(rx, size)
	e.expectFree(rw, rw+size)
	e.expectFree(rx, rx+size)
}
