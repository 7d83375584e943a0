//go:build linux && amd64

package privload_test

import (
	"errors"
	"fmt"
	"log"
	"strings"
	"unsafe"

	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// loadZlib loads the system's libz privately into a new VMM's vmcode.
func loadZlib() (*vmm.VMM, *privload.Library) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	lib, err := privload.Load(v, "libz.so.1", privload.Options{})
	if err != nil {
		log.Fatal(err)
	}
	return v, lib
}

// ExampleFunc_Call3 calls libz's adler32 in a private copy of libz: the
// raw call, integers and pointers as uintptr, no allocation. The pointer
// is converted in the call's argument list, so what it points to stays in
// place for the call.
func ExampleFunc_Call3() {
	v, lib := loadZlib()
	defer v.Close()
	defer lib.Close()

	adler32, err := lib.Func("adler32")
	if err != nil {
		log.Fatal(err)
	}
	data := []byte("Wikipedia")
	sum, err := adler32.Call3(1, uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("adler32(%q) = %#x\n", data, uint32(sum))
	// Output: adler32("Wikipedia") = 0x11e60398
}

// ExampleBind0 calls libz's zlibVersion, which returns a C string:
// bound with an unsafe.Pointer result, the address comes back as a
// pointer, not a uintptr to convert.
func ExampleBind0() {
	v, lib := loadZlib()
	defer v.Close()
	defer lib.Close()

	f, err := lib.Func("zlibVersion")
	if err != nil {
		log.Fatal(err)
	}
	zlibVersion := privload.Bind0[unsafe.Pointer](f)
	p, err := zlibVersion()
	if err != nil {
		log.Fatal(err)
	}
	n := 0
	for *(*byte)(unsafe.Add(p, n)) != 0 {
		n++
	}
	version := unsafe.String((*byte)(p), n)
	fmt.Println("libz 1.x:", strings.HasPrefix(version, "1."))
	// Output: libz 1.x: true
}

// ExampleBind3 binds libz's adler32 to a typed Go function: the types
// say how each argument travels (uint32 zero-extended, the buffer as an
// unsafe.Pointer, kept in place for the call), with no reflection per
// call.
func ExampleBind3() {
	v, lib := loadZlib()
	defer v.Close()
	defer lib.Close()

	f, err := lib.Func("adler32")
	if err != nil {
		log.Fatal(err)
	}
	adler32 := privload.Bind3[uint32, uint32, unsafe.Pointer, uint32](f)
	data := []byte("Wikipedia")
	sum, err := adler32(1, unsafe.Pointer(&data[0]), uint32(len(data)))
	fmt.Printf("%#x %v\n", sum, err)
	// Output: 0x11e60398 <nil>
}

// ExampleErrClosed: a function of a closed library is not called; the
// call returns ErrClosed.
func ExampleErrClosed() {
	v, lib := loadZlib()
	defer v.Close()

	zlibVersion, err := lib.Func("zlibVersion")
	if err != nil {
		log.Fatal(err)
	}
	if err := lib.Close(); err != nil {
		log.Fatal(err)
	}
	_, err = zlibVersion.Call0()
	fmt.Println(errors.Is(err, privload.ErrClosed))
	// Output: true
}
