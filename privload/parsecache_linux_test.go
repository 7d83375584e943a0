//go:build linux

package privload

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"

	"github.com/reachvm/reachvm/internal/demolib"
)

// TestParseCacheRewrite rewrites a library in place (same inode, same
// size, within the same timestamp tick) between loads: the second load
// must see the new bytes, not the cached parse of the old ones.
func TestParseCacheRewrite(t *testing.T) {
	v := newVMM(t)
	path := writeTemp(t, demolib.Name, demolib.SO)
	lib, err := Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	first := lib.File()
	if got, want := call(lookup(t, lib, demolib.Compute), 6, 7), demolib.Expected(6, 7); got != want {
		t.Fatalf("demo_compute = %d, want %d", got, want)
	}
	if err := lib.Close(); err != nil {
		t.Fatal(err)
	}

	// The same bytes again: a cache hit, the same parsed file.
	lib, err = Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lib.File() != first {
		t.Error("a second load of an unchanged file parsed it again")
	}
	lib.Close()

	// demo_scale's initial value, 7, becomes 9.
	x := newFixture(t)
	_, sym, _ := x.f.Lookup(demolib.Scale)
	binary.LittleEndian.PutUint64(x.data[x.fileOff(sym.Value):], 9)
	rewrite(t, path, x.data)
	lib, err = Load(v, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if lib.File() == first {
		t.Error("the rewritten file was served from the cache")
	}
	if got, want := call(lookup(t, lib, demolib.Compute), 6, 7), demolib.ExpectedWith(6, 7, 9); got != want {
		t.Errorf("after the rewrite demo_compute = %d, want %d", got, want)
	}
	lib.Close()

	// demo_helper renamed demo_helpeR in the string table: a parse sees
	// that the hash table no longer matches; a stale cache entry would
	// not.
	nameOff := bytes.Index(x.data, []byte(demolib.Helper+"\x00"))
	x.data[nameOff+len(demolib.Helper)-1] = 'R'
	rewrite(t, path, x.data)
	if lib, err := Load(v, path, Options{}); err == nil {
		lib.Close()
		t.Error("a file whose hash table no longer matches its names loaded: served from the cache?")
	}
}

// rewrite writes data over the file at path, in place.
func rewrite(t *testing.T, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(data, 0); err != nil {
		t.Fatal(err)
	}
}

// TestWarmPath: a library whose status has not changed since it was
// parsed (and had not for a while before) is served without reading it;
// a file just written is not, since a rewrite within the same clock tick
// would not change its status.
func TestWarmPath(t *testing.T) {
	if _, err := os.Stat(zlibPath); err != nil {
		t.Skip(err)
	}
	v := newVMM(t)
	for i := 0; i < 2; i++ {
		lib, err := Load(v, zlibPath, Options{})
		if err != nil {
			t.Fatal(err)
		}
		lib.Close()
	}
	before := warmHits.Load()
	lib, err := Load(v, zlibPath, Options{})
	if err != nil {
		t.Fatal(err)
	}
	lib.Close()
	if warmHits.Load() != before+1 {
		t.Error("the third load of libz did not take the warm path")
	}
	path := writeTemp(t, demolib.Name, demolib.SO)
	for i := 0; i < 3; i++ {
		lib, err := Load(v, path, Options{})
		if err != nil {
			t.Fatal(err)
		}
		lib.Close()
	}
	if warmHits.Load() != before+1 {
		t.Error("a file written just now took the warm path")
	}
}
