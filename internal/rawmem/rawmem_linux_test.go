//go:build linux

package rawmem

import (
	"bytes"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestBytesAndPtr views a real anonymous mapping through Bytes and Ptr:
// both see what the other writes, and Bytes has the length asked.
func TestBytesAndPtr(t *testing.T) {
	m, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	addr := uintptr(unsafe.Pointer(&m[0]))
	b := Bytes(addr+16, 32)
	if len(b) != 32 || cap(b) != 32 {
		t.Fatalf("Bytes: len %d cap %d, want 32", len(b), len(b))
	}
	for i, c := range []byte("written through Bytes") {
		b[i] = c
	}
	if !bytes.HasPrefix(m[16:], []byte("written through Bytes")) {
		t.Fatalf("the mapping holds %q", m[16:48])
	}
	*(*uint64)(Ptr(addr + 64)) = 0x1122334455667788
	if got := *(*uint64)(unsafe.Pointer(&m[64])); got != 0x1122334455667788 {
		t.Fatalf("read back %#x through the mapping", got)
	}
	if Ptr(0) != nil {
		t.Fatal("Ptr(0) is not nil")
	}
}
