package vmm_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/reachvm/reachvm/vmm"
)

// ExampleVMM_Alloc allocates small native buffers in vmheap, writes one
// through its checked byte view, and frees them by address alone; a
// second free is refused.
func ExampleVMM_Alloc() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	a, err := v.Alloc(8)
	if err != nil {
		log.Fatal(err)
	}
	b, err := v.Alloc(24)
	if err != nil {
		log.Fatal(err)
	}
	hb, hs := v.VMHeap()
	fmt.Println("in vmheap:", a-hb < hs && b-hb < hs, "aligned:", a%vmm.ObjectAlign == 0 && b%vmm.ObjectAlign == 0, "apart:", a != b)

	buf, err := v.Bytes(b, 24)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("zeroed:", buf[0] == 0 && buf[23] == 0)
	copy(buf, "native memory")
	if _, err := v.Bytes(b, 25); err != nil {
		fmt.Println("25 bytes of a 24-byte buffer: refused")
	}

	fmt.Println("free:", v.Free(a), v.Free(b))
	fmt.Println("again:", errors.Is(v.Free(a), vmm.ErrNotAllocated))
	// Output:
	// in vmheap: true aligned: true apart: true
	// zeroed: true
	// 25 bytes of a 24-byte buffer: refused
	// free: <nil> <nil>
	// again: true
}

// ExampleVMM_CString copies a Go string into vmheap for native code that
// takes a const char *.
func ExampleVMM_CString() {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: 64 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer v.Close()

	s, err := v.CString("hello")
	if err != nil {
		log.Fatal(err)
	}
	defer v.Free(s)
	b, err := v.Bytes(s, 6)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", b)
	_, err = v.CString("a\x00b")
	fmt.Println(err)
	// Output:
	// "hello\x00"
	// vmm: CString: the string holds a NUL at byte 1 of 3
}
