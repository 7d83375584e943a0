// Package rawmem is the one place reachvm turns an address the OS handed
// out into a Go pointer. It makes no OS call and imports nothing of the
// module, so that every floor can use it: the OS backends (system call
// arguments), vmm (vmheap), vmcode, jit and privload (writing code, images
// and data into memory they own).
//
// Addresses are uintptr throughout reachvm: memory the OS maps for it is
// not Go memory, never moves, and is not scanned by the garbage
// collector. The conversions here read the uintptr through memory, so that
// go vet's unsafeptr check, which cannot know the address is not Go
// memory, stays quiet; they are sound only under their preconditions.
package rawmem

import "unsafe"

// Bytes returns the memory [addr, addr+size) as a byte slice.
//
// Preconditions: [addr, addr+size) is committed (or a view of committed
// memory) and stays mapped while the slice is used; it is not Go-managed
// memory.
func Bytes(addr, size uintptr) []byte {
	return unsafe.Slice((*byte)(Ptr(addr)), size)
}

// Ptr returns addr as an unsafe.Pointer, for a system call argument or a
// typed view of mapped memory.
//
// Preconditions: addr is not an address of Go-managed memory (or is 0);
// whatever is mapped there stays mapped while the pointer is used.
func Ptr(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}
