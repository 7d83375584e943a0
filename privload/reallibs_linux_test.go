//go:build linux

package privload

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"crypto/md5"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"hash/adler32"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math"
	"math/big"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"

	"github.com/reachvm/reachvm/vmm"
)

// Unmodified libraries of the distribution, loaded privately into vmcode
// with their initialisers and used for real: each result is checked
// against an independent implementation (Go's standard library, or the
// host's own copy of the library loaded by the host's dynamic linker).
// Each library is one present on a Debian base system; a test skips if
// its library is missing.

const sysLibDir = "/usr/lib/x86_64-linux-gnu/"

// loadSystem loads a system library privately, checks that it and its
// private dependencies lie in vmcode with the right protections, and
// returns a function to find its exports.
func loadSystem(t *testing.T, soname string) (*vmm.VMM, *Library, func(string) Func) {
	t.Helper()
	path := sysLibDir + soname
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no %s: %v", soname, err)
	}
	v := newVMM(t)
	lib := loadOK(t, v, path, Options{})
	for _, im := range lib.Imports() {
		if im.How == BoundHost && (im.BoundTo >= lib.Base() && im.BoundTo < lib.Base()+lib.Size()) {
			t.Errorf("host import %+v points into the private image", im)
		}
	}
	return v, lib, func(name string) Func {
		t.Helper()
		f, err := lib.Func(name)
		if err != nil {
			t.Fatal(err)
		}
		if f.Addr() < lib.Base() || f.Addr() >= lib.Base()+lib.Size() {
			t.Fatalf("%s at %#x is not in the private image [%#x, +%#x)", name, f.Addr(), lib.Base(), lib.Size())
		}
		return f
	}
}

// testData is compressible, not trivially so.
func testData() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < 200<<10; i++ {
		b.WriteString("reachvm places private libraries in vmcode, ")
		b.WriteString(strings.Repeat("x", i%17))
		b.WriteByte(byte(i * 7))
	}
	return b.Bytes()
}

func p(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

// TestRealZlib: compress2 and uncompress agree with compress/zlib both
// ways; crc32 and adler32 with hash/crc32 and hash/adler32.
func TestRealZlib(t *testing.T) {
	_, lib, fn := loadSystem(t, "libz.so.1")
	data := testData()

	// libz compresses, Go decompresses.
	out := make([]byte, len(data)+1024)
	outLen := uint64(len(out))
	if rc := int32(ok(fn("compress2").Call(p(out), uintptr(unsafe.Pointer(&outLen)), p(data), uintptr(len(data)), 9))); rc != 0 {
		t.Fatalf("compress2 = %d", rc)
	}
	r, err := zlib.NewReader(bytes.NewReader(out[:outLen]))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Go's zlib reading libz's output: %v, equal %v", err, bytes.Equal(got, data))
	}
	t.Logf("compress2: %d -> %d bytes", len(data), outLen)

	// Go compresses, libz decompresses.
	var zb bytes.Buffer
	w, _ := zlib.NewWriterLevel(&zb, zlib.BestSpeed)
	w.Write(data)
	w.Close()
	in := zb.Bytes()
	dec := make([]byte, len(data))
	decLen := uint64(len(dec))
	if rc := int32(ok(fn("uncompress").Call(p(dec), uintptr(unsafe.Pointer(&decLen)), p(in), uintptr(len(in))))); rc != 0 || !bytes.Equal(dec[:decLen], data) {
		t.Fatalf("uncompress = %d, %d bytes, equal %v", rc, decLen, bytes.Equal(dec[:decLen], data))
	}

	for _, n := range []int{0, 1, 1000, len(data)} {
		b := append([]byte{0}, data[:n]...)[1:]
		var ptr uintptr
		if n > 0 {
			ptr = p(b)
		}
		if got, want := uint32(ok(fn("crc32").Call(0, ptr, uintptr(n)))), crc32.ChecksumIEEE(b); got != want {
			t.Errorf("crc32 of %d bytes = %#x, want %#x", n, got, want)
		}
		if got, want := uint32(ok(fn("adler32").Call(1, ptr, uintptr(n)))), adler32.Checksum(b); got != want {
			t.Errorf("adler32 of %d bytes = %#x, want %#x", n, got, want)
		}
		runtime.KeepAlive(b)
	}
	runtime.KeepAlive(out)
	runtime.KeepAlive(data)
	runtime.KeepAlive(dec)
	runtime.KeepAlive(in)
	_ = lib
}

// TestRealBzip2: BZ2_bzBuffToBuffCompress's output decompresses with
// compress/bzip2, and BZ2_bzBuffToBuffDecompress restores it.
func TestRealBzip2(t *testing.T) {
	_, _, fn := loadSystem(t, "libbz2.so.1.0")
	data := testData()
	out := make([]byte, len(data)+len(data)/100+600)
	outLen := uint32(len(out))
	if rc := int32(ok(fn("BZ2_bzBuffToBuffCompress").Call(p(out), uintptr(unsafe.Pointer(&outLen)), p(data), uintptr(len(data)), 9, 0, 30))); rc != 0 {
		t.Fatalf("BZ2_bzBuffToBuffCompress = %d", rc)
	}
	got, err := io.ReadAll(bzip2.NewReader(bytes.NewReader(out[:outLen])))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("compress/bzip2 reading libbz2's output: %v, equal %v", err, bytes.Equal(got, data))
	}
	dec := make([]byte, len(data))
	decLen := uint32(len(dec))
	if rc := int32(ok(fn("BZ2_bzBuffToBuffDecompress").Call(p(dec), uintptr(unsafe.Pointer(&decLen)), p(out), uintptr(outLen), 0, 0))); rc != 0 || !bytes.Equal(dec[:decLen], data) {
		t.Fatalf("BZ2_bzBuffToBuffDecompress = %d, equal %v", rc, bytes.Equal(dec[:decLen], data))
	}
	t.Logf("bzip2: %d -> %d bytes", len(data), outLen)
	runtime.KeepAlive(data)
	runtime.KeepAlive(out)
	runtime.KeepAlive(dec)
}

// TestRealLzma: lzma_crc32 and lzma_crc64 agree with hash/crc32 and
// hash/crc64 (ECMA, as .xz uses); an .xz stream made by
// lzma_easy_buffer_encode decodes back with lzma_stream_buffer_decode.
func TestRealLzma(t *testing.T) {
	_, _, fn := loadSystem(t, "liblzma.so.5")
	data := testData()
	if got, want := uint32(ok(fn("lzma_crc32").Call(p(data), uintptr(len(data)), 0))), crc32.ChecksumIEEE(data); got != want {
		t.Errorf("lzma_crc32 = %#x, want %#x", got, want)
	}
	if got, want := uint64(ok(fn("lzma_crc64").Call(p(data), uintptr(len(data)), 0))), crc64.Checksum(data, crc64.MakeTable(crc64.ECMA)); got != want {
		t.Errorf("lzma_crc64 = %#x, want %#x", got, want)
	}
	out := make([]byte, len(data)+4096)
	var outPos uint64
	const lzmaCheckCRC64 = 4
	if rc := ok(fn("lzma_easy_buffer_encode").Call(6, lzmaCheckCRC64, 0, p(data), uintptr(len(data)), p(out), uintptr(unsafe.Pointer(&outPos)), uintptr(len(out)))); rc != 0 {
		t.Fatalf("lzma_easy_buffer_encode = %d", rc)
	}
	if !bytes.HasPrefix(out, []byte("\xfd7zXZ\x00")) {
		t.Errorf("no .xz magic: % x", out[:6])
	}
	dec := make([]byte, len(data))
	memlimit := uint64(1 << 30)
	var inPos, decPos uint64
	if rc := ok(fn("lzma_stream_buffer_decode").Call(uintptr(unsafe.Pointer(&memlimit)), 0, 0, p(out), uintptr(unsafe.Pointer(&inPos)), uintptr(outPos), p(dec), uintptr(unsafe.Pointer(&decPos)), uintptr(len(dec)))); rc != 0 || !bytes.Equal(dec[:decPos], data) {
		t.Fatalf("lzma_stream_buffer_decode = %d, equal %v", rc, bytes.Equal(dec[:decPos], data))
	}
	t.Logf("xz: %d -> %d bytes", len(data), outPos)
	runtime.KeepAlive(data)
	runtime.KeepAlive(out)
	runtime.KeepAlive(dec)
}

// TestRealZstd: a ZSTD_compress frame decodes with ZSTD_decompress and
// declares its content size.
func TestRealZstd(t *testing.T) {
	_, _, fn := loadSystem(t, "libzstd.so.1")
	data := testData()
	bound := ok(fn("ZSTD_compressBound").Call(uintptr(len(data))))
	out := make([]byte, bound)
	n := ok(fn("ZSTD_compress").Call(p(out), bound, p(data), uintptr(len(data)), 9))
	if ok(fn("ZSTD_isError").Call(n)) != 0 {
		t.Fatalf("ZSTD_compress error %d", int64(n))
	}
	if !bytes.HasPrefix(out, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		t.Errorf("no zstd magic: % x", out[:4])
	}
	if sz := ok(fn("ZSTD_getFrameContentSize").Call(p(out), n)); sz != uintptr(len(data)) {
		t.Errorf("ZSTD_getFrameContentSize = %d, want %d", sz, len(data))
	}
	dec := make([]byte, len(data))
	m := ok(fn("ZSTD_decompress").Call(p(dec), uintptr(len(dec)), p(out), n))
	if ok(fn("ZSTD_isError").Call(m)) != 0 || m != uintptr(len(data)) || !bytes.Equal(dec, data) {
		t.Fatalf("ZSTD_decompress = %d, equal %v", int64(m), bytes.Equal(dec, data))
	}
	t.Logf("zstd -9: %d -> %d bytes", len(data), n)
	runtime.KeepAlive(data)
	runtime.KeepAlive(out)
	runtime.KeepAlive(dec)
}

// TestRealGMP: factorials and powers computed by libgmp's mpz functions
// agree with math/big.
func TestRealGMP(t *testing.T) {
	_, _, fn := loadSystem(t, "libgmp.so.10")
	libc, err := purego.Dlopen("libc.so.6", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	free, _ := purego.Dlsym(libc, "free")
	// mpz_t is {int alloc; int size; mp_limb_t *d}: no Go pointers. On
	// the heap, as the addresses outlive single calls: a local's address
	// goes stale when the stack grows between them.
	z, b := new([2]uint64), new([2]uint64)
	zp, bp := uintptr(unsafe.Pointer(z)), uintptr(unsafe.Pointer(b))
	ok(fn("__gmpz_init").Call(zp))
	ok(fn("__gmpz_init").Call(bp))
	str := func(x uintptr) string {
		s := ok(fn("__gmpz_get_str").Call(0, 10, x))
		defer func() { ok(FuncAt(free, "free").Call(s)) }()
		return cString(s, 1<<16)
	}
	for _, n := range []int64{0, 1, 20, 100, 500} {
		ok(fn("__gmpz_fac_ui").Call(zp, uintptr(n)))
		want := new(big.Int).MulRange(1, n)
		if n == 0 {
			want.SetInt64(1)
		}
		if got := str(zp); got != want.String() {
			t.Errorf("%d! = %s..., want %s...", n, got[:min(20, len(got))], want.String()[:min(20, len(want.String()))])
		}
	}
	ok(fn("__gmpz_set_si").Call(bp, uintptr(^uint64(6)))) // -7
	ok(fn("__gmpz_pow_ui").Call(zp, bp, 333))
	want := new(big.Int).Exp(big.NewInt(-7), big.NewInt(333), nil)
	if got := str(zp); got != want.String() {
		t.Errorf("(-7)^333 differs from math/big")
	}
	ok(fn("__gmpz_clear").Call(zp))
	ok(fn("__gmpz_clear").Call(bp))
	runtime.KeepAlive(z)
	runtime.KeepAlive(b)
	runtime.KeepAlive(&z)
	runtime.KeepAlive(&b)
}

// TestRealLibmd: MD5Data, SHA256Data and SHA512Data agree with crypto/*.
func TestRealLibmd(t *testing.T) {
	_, _, fn := loadSystem(t, "libmd.so.0")
	data := testData()
	buf := make([]byte, 129)
	for _, h := range []struct {
		name string
		sum  func([]byte) []byte
	}{
		{"MD5Data", func(b []byte) []byte { s := md5.Sum(b); return s[:] }},
		{"SHA256Data", func(b []byte) []byte { s := sha256.Sum256(b); return s[:] }},
		{"SHA512Data", func(b []byte) []byte { s := sha512.Sum512(b); return s[:] }},
	} {
		r := ok(fn(h.name).Call(p(data), uintptr(len(data)), p(buf)))
		if r != p(buf) {
			t.Errorf("%s returned %#x, want the buffer", h.name, r)
		}
		if got, want := cString(p(buf), len(buf)), hex.EncodeToString(h.sum(data)); got != want {
			t.Errorf("%s = %s, want %s", h.name, got, want)
		}
	}
	runtime.KeepAlive(data)
	runtime.KeepAlive(buf)
}

// TestRealLibcrypt: crypt (versioned crypt@@XCRYPT_2.0) gives the
// published SHA-crypt answers and what the host's own libcrypt gives.
func TestRealLibcrypt(t *testing.T) {
	_, lib, fn := loadSystem(t, "libcrypt.so.1")
	crypt := fn("crypt")
	if a, ok := lib.LookupVersion("crypt", "XCRYPT_2.0"); !ok || a != crypt.Addr() {
		t.Errorf("crypt@XCRYPT_2.0 = %#x %v, crypt %#x", a, ok, crypt.Addr())
	}
	host, err := purego.Dlopen(sysLibDir+"libcrypt.so.1", purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		t.Fatal(err)
	}
	defer purego.Dlclose(host)
	hostCrypt, err := purego.Dlsym(host, "crypt")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, salt, want string }{
		// Ulrich Drepper's SHA-crypt specification test vectors.
		{"Hello world!", "$5$saltstring", "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"},
		{"Hello world!", "$6$saltstring", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1"},
		{"reachvm", "$1$abcdefgh", ""},
	} {
		key, salt := []byte(tc.key+"\x00"), []byte(tc.salt+"\x00")
		got := cString(ok(crypt.Call(p(key), p(salt))), 256)
		want := cString(ok(FuncAt(hostCrypt, "crypt").Call(p(key), p(salt))), 256)
		if got != want || (tc.want != "" && got != tc.want) {
			t.Errorf("crypt(%q, %q) = %q, host %q, published %q", tc.key, tc.salt, got, want, tc.want)
		}
		runtime.KeepAlive(key)
		runtime.KeepAlive(salt)
	}
}

// TestRealLibmvec: glibc's vector math library, whose exports are
// indirect functions (STT_GNU_IFUNC) and whose internal calls go through
// IRELATIVE slots, all resolved by resolvers that read the CPU features
// the host's dynamic linker keeps (_rtld_global_ro, bound to the host's
// ld.so). The 2-lane SSE cos, called with Func.Invoke, gives lane 0 in
// XMM0: it must agree with math.Cos to a few ulps.
func TestRealLibmvec(t *testing.T) {
	_, lib, fn := loadSystem(t, "libmvec.so.1")
	irel := 0
	for _, tab := range [][]Reloc{lib.File().Rela, lib.File().PLTRela} {
		for _, r := range tab {
			if r.Type == 37 { // R_X86_64_IRELATIVE
				irel++
			}
		}
	}
	if irel == 0 {
		t.Error("libmvec has no IRELATIVE relocation")
	}
	hostRtld := false
	for _, im := range lib.Imports() {
		hostRtld = hostRtld || (im.Name == "_rtld_global_ro" && im.How == BoundHost && im.From == "ld-linux-x86-64.so.2")
	}
	if !hostRtld {
		t.Error("_rtld_global_ro is not bound to the host's dynamic linker")
	}
	cos := fn("_ZGVbN2v_cos")
	for _, x := range []float64{0, 0.5, 1, 2, math.Pi / 3, -3, 100.25} {
		got := ok(cos.Invoke(Float64(x))).Float64()
		if want := math.Cos(x); math.Abs(got-want) > 4e-16*math.Max(1, math.Abs(want)) {
			t.Errorf("libmvec cos(%g) = %.17g, math.Cos %.17g", x, got, want)
		}
	}
	t.Logf("%d IRELATIVE relocations resolved", irel)
}
