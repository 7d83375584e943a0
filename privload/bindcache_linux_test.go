//go:build linux

package privload

import (
	"hash/crc32"
	"os"
	"testing"
	"unsafe"
)

// TestBindCache loads libz twice at once: the second load is bound from
// the binding cache, and binds exactly as the first, its own symbols
// moved by the difference of the two biases. Both copies compute crc32.
func TestBindCache(t *testing.T) {
	if _, err := os.Stat(zlibPath); err != nil {
		t.Skip(err)
	}
	v := newVMM(t)
	// A first load fills the cache (if no earlier test did).
	lib0 := loadOK(t, v, zlibPath, Options{})
	before := bindHits.Load()
	lib1 := loadOK(t, v, zlibPath, Options{})
	lib2 := loadOK(t, v, zlibPath, Options{})
	if got := bindHits.Load() - before; got != 2 {
		t.Errorf("%d of two loads of libz bound from the cache", got)
	}
	imp0, imp1, imp2 := lib0.Imports(), lib1.Imports(), lib2.Imports()
	if len(imp1) != len(imp0) || len(imp2) != len(imp0) || len(imp0) == 0 {
		t.Fatalf("imports: %d, %d and %d", len(imp0), len(imp1), len(imp2))
	}
	self := 0
	for i := range imp0 {
		a, b, c := imp0[i], imp1[i], imp2[i]
		if a.Name != b.Name || a.How != b.How || a.From != b.From || a.Name != c.Name {
			t.Errorf("import %d: %+v, %+v, %+v", i, a, b, c)
			continue
		}
		wantB, wantC := a.BoundTo, a.BoundTo
		if a.How == BoundSelf {
			self++
			wantB, wantC = a.BoundTo-lib0.Base()+lib1.Base(), a.BoundTo-lib0.Base()+lib2.Base()
		}
		if b.BoundTo != wantB || c.BoundTo != wantC {
			t.Errorf("%s (%s): bound to %#x, %#x and %#x", a.Name, a.How, a.BoundTo, b.BoundTo, c.BoundTo)
		}
	}
	data := []byte("the binding cache binds as binding does")
	want := crc32.ChecksumIEEE(data)
	for _, lib := range []*Library{lib0, lib1, lib2} {
		fn := lookup(t, lib, "crc32")
		if got := uint32(call(fn, 0, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)))); got != want {
			t.Errorf("crc32 of the copy at %#x = %#x, want %#x", lib.Base(), got, want)
		}
	}
	t.Logf("%d imports, %d of them the library's own", len(imp0), self)
}

// TestBindCacheIFunc loads the relocation fixture, whose relocations
// bind to its own indirect functions, three times in turn: the later
// loads are bound from the cache and still call each resolver once and
// bind to its choice.
func TestBindCacheIFunc(t *testing.T) {
	path := fxPath(t, "libfx_relocs.so")
	v := newVMM(t)
	free := v.FreeVMCode()
	before := bindHits.Load()
	for i := 0; i < 3; i++ {
		lib := loadOK(t, v, path, Options{})
		if got := call(lookup(t, lib, "fx_check")); got != 0x1ff {
			t.Errorf("load %d: fx_check() = %#x, want 0x1ff", i, got)
		}
		ifn := lookup(t, lib, "fx_ifunc")
		if got := uintptr(call(lookup(t, lib, "fx_addr_of_ifunc"))); got != ifn {
			t.Errorf("load %d: &fx_ifunc in the library = %#x, Lookup = %#x", i, got, ifn)
		}
		if n := call(lookup(t, lib, "fx_resolver_calls")); n != 1 {
			t.Errorf("load %d: the resolver ran %d times", i, n)
		}
		closeChecked(t, v, lib, free)
	}
	if got := bindHits.Load() - before; got < 2 {
		t.Errorf("%d of three loads bound from the cache, want at least 2", got)
	}
}
