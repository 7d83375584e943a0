//go:build linux && amd64

package privload_test

import (
	"bytes"
	"compress/zlib"
	"fmt"
	"io"
	"log"
	"strings"
	"unsafe"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// Example_zlib compresses a buffer with the system's libz, loaded
// privately into vmcode (found by its soname, as dlopen finds it), and
// uncompresses it again: Go buffers and
// out-pointers go to Func.CallK as uintptr(unsafe.Pointer(...)) written in
// the call itself, which keeps them alive and in place for the call. Go's
// compress/zlib reads what libz wrote.
func Example_zlib() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()
	lib, err := privload.Load(v, "libz.so.1", privload.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer lib.Close()
	fn := func(name string) privload.Func {
		f, err := lib.Func(name)
		if err != nil {
			log.Fatal(err)
		}
		return f
	}
	zlibVersion, compressBound, compress2, uncompress := fn("zlibVersion"), fn("compressBound"), fn("compress2"), fn("uncompress")
	// A call fails only after lib.Close.
	must := func(r uintptr, err error) uintptr {
		if err != nil {
			log.Fatal(err)
		}
		return r
	}

	// const char *zlibVersion(void): a string in libz's image.
	fmt.Println("libz 1.x:", strings.HasPrefix(privload.GoString(must(zlibVersion.Call0())), "1."))

	src := []byte(strings.Repeat("reachvm loads libz privately into vmcode. ", 50))
	// uLong compressBound(uLong sourceLen)
	dst := make([]byte, must(compressBound.Call1(uintptr(len(src)))))
	// int compress2(Bytef *dest, uLongf *destLen, const Bytef *source,
	// uLong sourceLen, int level): destLen is in and out.
	dstLen := uint64(len(dst))
	rc := must(compress2.Call5(uintptr(unsafe.Pointer(&dst[0])), uintptr(unsafe.Pointer(&dstLen)), uintptr(unsafe.Pointer(&src[0])), uintptr(len(src)), 9))
	fmt.Printf("compress2: rc %d, %d bytes to fewer than %d: %v\n", int32(rc), len(src), len(src)/10, dstLen < uint64(len(src)/10))

	r, err := zlib.NewReader(bytes.NewReader(dst[:dstLen]))
	if err != nil {
		log.Fatal(err)
	}
	goOut, err := io.ReadAll(r)
	fmt.Println("compress/zlib reads it back:", err == nil && bytes.Equal(goOut, src))

	// int uncompress(Bytef *dest, uLongf *destLen, const Bytef *source,
	// uLong sourceLen)
	out := make([]byte, len(src))
	outLen := uint64(len(out))
	rc = must(uncompress.Call4(uintptr(unsafe.Pointer(&out[0])), uintptr(unsafe.Pointer(&outLen)), uintptr(unsafe.Pointer(&dst[0])), uintptr(dstLen)))
	fmt.Printf("uncompress: rc %d, round trip equal: %v\n", int32(rc), bytes.Equal(out[:outLen], src))

	// Z_BUF_ERROR (-5): the output does not fit.
	small := make([]byte, 16)
	smallLen := uint64(len(small))
	rc = must(uncompress.Call4(uintptr(unsafe.Pointer(&small[0])), uintptr(unsafe.Pointer(&smallLen)), uintptr(unsafe.Pointer(&dst[0])), uintptr(dstLen)))
	fmt.Printf("uncompress into 16 bytes: rc %d\n", int32(rc))
	// Output:
	// libz 1.x: true
	// compress2: rc 0, 2100 bytes to fewer than 210: true
	// compress/zlib reads it back: true
	// uncompress: rc 0, round trip equal: true
	// uncompress into 16 bytes: rc -5
}
