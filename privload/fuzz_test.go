package privload

import (
	"errors"
	"os"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/mem"
)

// FuzzParse feeds arbitrary bytes to the parser: it must never panic, must
// fail only with a *FormatError naming the file, and whatever it accepts
// must satisfy the invariants the loader relies on.
func FuzzParse(f *testing.F) {
	f.Add(demolib.SO)
	f.Add(demolib.SO[:ehdrSize])
	f.Add([]byte{})
	for _, p := range systemLibs(f, 4, 256<<10) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	if parseSeeds != nil {
		for _, s := range parseSeeds(f) {
			f.Add(s)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.so"
		file, err := Parse(name, data)
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != name || (fe.Class != ErrMalformed && fe.Class != ErrUnsupported) {
				t.Fatalf("error %v (%T) is not a *FormatError for %s", err, err, name)
			}
			return
		}
		checkInvariants(t, file, data)
	})
}

// parseSeeds, if set (on Linux, where gcc builds the fixture suite),
// returns more seeds for FuzzParse.
var parseSeeds func(testing.TB) [][]byte

// checkInvariants verifies what Load takes for granted of a parsed file.
func checkInvariants(t *testing.T, f *File, data []byte) {
	t.Helper()
	if len(f.Loads) == 0 {
		t.Fatal("accepted a file with no PT_LOAD")
	}
	for i, s := range f.Loads {
		if s.Filesz > s.Memsz || s.Offset > uint64(len(data)) || s.Filesz > uint64(len(data))-s.Offset {
			t.Fatalf("PT_LOAD %d %+v escapes the file (%d bytes)", i, s, len(data))
		}
		if s.Vaddr%pageSize != s.Offset%pageSize {
			t.Fatalf("PT_LOAD %d %+v misaligned", i, s)
		}
		if i > 0 && f.Loads[i-1].Vaddr+f.Loads[i-1].Memsz > s.Vaddr {
			t.Fatalf("PT_LOAD %d overlaps or precedes the previous one", i)
		}
	}
	if last := f.Loads[len(f.Loads)-1]; last.Vaddr+last.Memsz-mem.AlignDown(f.Loads[0].Vaddr, pageSize) > maxSpan {
		t.Fatal("span too large")
	}
	for _, tab := range [][]Reloc{f.Rela, f.PLTRela} {
		for _, r := range tab {
			if !f.writable(r.Off) {
				t.Fatalf("relocation %+v outside writable segments", r)
			}
			if int(r.Sym) >= max(f.NumSymbols, 1) {
				t.Fatalf("relocation %+v names a missing symbol", r)
			}
		}
	}
	for _, off := range f.Relr {
		if !f.writable(off) {
			t.Fatalf("RELR offset %#x outside writable segments", off)
		}
	}
	if tls := f.TLS; tls != nil {
		// Every thread's block copies the image from the mapped file.
		if tls.Filesz > tls.Memsz || tls.Memsz > maxTLS || tls.Align == 0 || tls.Align&(tls.Align-1) != 0 || tls.Align > pageSize {
			t.Fatalf("PT_TLS %+v: bad sizes or alignment", *tls)
		}
		if tls.Filesz > 0 {
			if s, ok := f.segmentAt(tls.Vaddr, tls.Filesz); !ok || tls.Vaddr-s.Vaddr+tls.Filesz > s.Filesz {
				t.Fatalf("PT_TLS %+v: image not in the file-backed part of a PT_LOAD", *tls)
			}
		}
	}
	if h := f.EHFrameHdr; h.Size > 0 {
		if _, ok := f.segmentAt(h.Vaddr, h.Size); !ok || h.Size < 8 {
			t.Fatalf("PT_GNU_EH_FRAME %+v not in one PT_LOAD", h)
		}
	}
	if f.Relro.Size > 0 {
		if s, ok := f.segmentAt(f.Relro.Vaddr, f.Relro.Size); !ok || s.Prot&mem.ProtWrite == 0 {
			t.Fatalf("RELRO %+v not in a writable segment", f.Relro)
		}
	}
	for _, arr := range []Range{f.InitArray, f.FiniArray} {
		if arr.Size > 0 {
			if _, ok := f.segmentAt(arr.Vaddr, arr.Size); !ok {
				t.Fatalf("init/fini array %+v outside the image", arr)
			}
		}
	}
	for _, fn := range []uint64{f.Init, f.Fini} {
		if fn != 0 && !f.IsCode(fn) {
			t.Fatalf("init/fini %#x not in code", fn)
		}
	}
	// Every symbol decodes, and every exported one is found by name
	// through each hash table the file has, unless an earlier symbol of
	// the same name (a malformed duplicate) shadows it.
	for i, s := range f.Symbols() {
		got, _, ok := f.Lookup(s.Name)
		if exported(s) && !ok {
			t.Fatalf("exported symbol %d %q not found", i+1, s.Name)
		}
		if ok {
			if g, ok := f.Symbol(got); !ok || g.Name != s.Name {
				t.Fatalf("lookup of %q found symbol %d called %q", s.Name, got, g.Name)
			}
		}
		f.lookupSysV(s.Name)
		f.lookupGNU(s.Name)
	}
	f.Lookup("")
	f.Lookup("demo_compute")
}
