package osmemtest

import (
	"bytes"
	"os"

	"github.com/reachvm/reachvm/internal/osmem"
)

// testSharedFile checks shared views of a file (osmem.SharedFileOpener)
// under Linux rules: the views are shared and named by the file's path,
// a write through one shows in the other and in the file, and a writable
// view of a file open read-only is refused (EACCES) while a readable one
// is not. Under Windows rules there is none.
func testSharedFile(e *env) {
	p := e.page
	if e.win {
		_, err := osmem.OpenSharedFile(e.os, -1, "none")
		e.wantErr(err, osmem.ErrNotSupported, 0, "OpenSharedFile under Windows rules")
		return
	}
	data := pattern(2*int(p), 0x3c)
	path := e.tempFile(data)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	e.must(err, "OpenFile(%q, O_RDWR)", path)
	defer f.Close()
	obj, err := osmem.OpenSharedFile(e.os, int(f.Fd()), path)
	e.must(err, "OpenSharedFile")
	e.atEnd(func() { e.closeObject(obj) })
	if !obj.Shared() || obj.Size() != uint64(len(data)) {
		e.t.Fatalf("object shared=%v size %#x, want shared, %#x", obj.Shared(), obj.Size(), len(data))
	}
	a := e.mustMap(obj, 0, 2*p, osmem.ProtRW)
	b := e.mustMap(obj, uint64(p), p, osmem.ProtRead)
	// Shown by the file's path, as the kernel's map shows it (not as a
	// memfd).
	view := func(a, b uintptr, prot osmem.Prot, off uint64) osmem.Region {
		return osmem.Region{Start: a, End: b, State: osmem.StateCommitted, Type: osmem.TypeMapped, Prot: prot,
			Shared: true, Name: path, Offset: off}
	}
	e.expect(a, a+2*p, view(a, a+2*p, osmem.ProtRW, 0))
	e.expect(b, b+p, view(b, b+p, osmem.ProtRead, uint64(p)))
	if e.real {
		e.bytes(a, 2*p)[p+5] = 0xee
		if got := e.bytes(b, p)[5]; got != 0xee {
			e.t.Errorf("a write through one view reads %#x through the other", got)
		}
		var c [1]byte
		if _, err := f.ReadAt(c[:], int64(p)+5); err != nil || c[0] != 0xee {
			e.t.Errorf("the file reads %#x (%v) after a write through a view", c[0], err)
		}
		if !bytes.Equal(e.bytes(a, p), data[:p]) {
			e.t.Error("the first page of the view does not read the file")
		}
	}
	ro, err := os.Open(path)
	e.must(err, "Open(%q)", path)
	defer ro.Close()
	robj, err := osmem.OpenSharedFile(e.os, int(ro.Fd()), path)
	e.must(err, "OpenSharedFile of a read-only descriptor")
	e.atEnd(func() { e.closeObject(robj) })
	if e.real {
		_, err = e.mapObject(robj, 0, e.hint(p), p, osmem.ProtRW, osmem.Hint)
		e.wantErr(err, osmem.ErrNotSupported, linuxEACCES, "a writable shared view of a read-only descriptor")
	}
	e.mustMap(robj, 0, p, osmem.ProtRead)
}
