//go:build linux && amd64

package jit

import (
	"bytes"
	"encoding/binary"
	"hash/adler32"
	"hash/crc32"
	"math/rand/v2"
	"os"
	"runtime"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

const zlibPath = "/usr/lib/x86_64-linux-gnu/libz.so.1"

// loadZlib loads the system's libz with privload into v, its libc imports
// bound to the host's libc.
func loadZlib(t testing.TB, v *vmm.VMM) *privload.Library {
	t.Helper()
	if _, err := os.Stat(zlibPath); err != nil {
		t.Skipf("no system libz: %v", err)
	}
	return loadLib(t, v, zlibPath)
}

func ptr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// TestZlibChecksums runs libz's crc32 and adler32 under the translator
// over a megabyte at several alignments and lengths: the results must
// equal the native calls' and Go's.
func TestZlibChecksums(t *testing.T) {
	for _, p := range placements {
		t.Run(p.name, func(t *testing.T) { testZlibChecksums(t, p.cfg) })
	}
}

func testZlibChecksums(t *testing.T, cfg vmm.Config) {
	m, _ := newTestMachine(t, cfg, nil)
	lib := loadZlib(t, m.v)
	crc, adler := lookup(t, lib, "crc32"), lookup(t, lib, "adler32")
	buf := make([]byte, 1<<20)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for _, c := range []struct{ off, n int }{{0, 0}, {0, 1}, {3, 7}, {1, 1000}, {5, 65536}, {0, 1 << 20}, {13, 1<<20 - 13}} {
		p := buf[c.off : c.off+c.n]
		wantCRC, wantAdler := crc32.ChecksumIEEE(p), adler32.Checksum(p)
		for _, k := range []struct {
			name string
			fn   uintptr
			seed uintptr
			want uint32
		}{{"crc32", crc, 0, wantCRC}, {"adler32", adler, 1, wantAdler}} {
			native := uint32(Call(k.fn, k.seed, ptr(p), uintptr(len(p))))
			got, err := m.Run(k.fn, k.seed, ptr(p), uintptr(len(p)))
			if err != nil {
				t.Fatal(err)
			}
			if native != k.want || uint32(got) != k.want {
				t.Errorf("%s of %d bytes at %d: translated %#x, native %#x, Go %#x", k.name, c.n, c.off, uint32(got), native, k.want)
			}
		}
	}
	runtime.KeepAlive(buf)
	t.Logf("%+v", m.Stats())
}

// TestZlibCompress runs libz's compress2 and uncompress under the
// translator: they call the host's libc (malloc, free, memcpy and memset,
// which glibc resolved to AVX2 or EVEX variants), so the translator runs
// code outside vmcode, TLS accesses through FS included. The compressed
// bytes must equal the native call's, and uncompressing must give the
// input back.
func TestZlibCompress(t *testing.T) {
	for _, p := range placements {
		t.Run(p.name, func(t *testing.T) { testZlibCompress(t, p.cfg) })
	}
}

func testZlibCompress(t *testing.T, cfg vmm.Config) {
	m, _ := newTestMachine(t, cfg, nil)
	lib := loadZlib(t, m.v)
	compress, uncompress := lookup(t, lib, "compress2"), lookup(t, lib, "uncompress")
	src := bytes.Repeat([]byte("reachvm runs libz under its translator; "), 4000)
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(src); i += 97 {
		src[i] = byte(r.Uint32())
	}
	bound := len(src) + len(src)/1000 + 64
	// The lengths compress2 and uncompress read and write live in
	// vmheap: the address of a Go local, passed as a uintptr, would go
	// stale when the goroutine's stack moves during Run (it grows while
	// the translator works), and the library would write the old stack.
	cell, err := m.v.HeapAlloc(8)
	if err != nil {
		t.Fatal(err)
	}
	sizeMem := rawmem.Bytes(cell, 8)
	setSize := func(n int) { binary.LittleEndian.PutUint64(sizeMem, uint64(n)) }
	getSize := func() int { return int(binary.LittleEndian.Uint64(sizeMem)) }
	run := func(translated bool, fn uintptr, args ...uintptr) uintptr {
		if !translated {
			return Call(fn, args...)
		}
		got, err := m.Run(fn, args...)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	var out [2][]byte
	for i, translated := range []bool{false, true} {
		dst := make([]byte, bound)
		setSize(len(dst))
		if rc := run(translated, compress, ptr(dst), cell, ptr(src), uintptr(len(src)), 6); rc != 0 {
			t.Fatalf("compress2 (translated %v) = %d", translated, int32(rc))
		}
		out[i] = dst[:getSize()]
		back := make([]byte, len(src))
		setSize(len(back))
		if rc := run(translated, uncompress, ptr(back), cell, ptr(out[i]), uintptr(len(out[i]))); rc != 0 {
			t.Fatalf("uncompress (translated %v) = %d", translated, int32(rc))
		}
		if !bytes.Equal(back[:getSize()], src) {
			t.Fatalf("uncompress (translated %v) did not give the input back", translated)
		}
		runtime.KeepAlive(dst)
		runtime.KeepAlive(back)
	}
	if !bytes.Equal(out[0], out[1]) {
		t.Errorf("compressed output differs: %d bytes native, %d translated", len(out[0]), len(out[1]))
	}
	runtime.KeepAlive(src)
	st := m.Stats()
	t.Logf("%d -> %d bytes; %+v", len(src), len(out[1]), st)
}
