package osmem

import "unsafe"

// ptrOf converts an OS address to an unsafe.Pointer for a system call
// wrapper. Like Bytes, it reads the uintptr through memory so that go vet's
// unsafeptr check, which cannot know the address is not Go memory, stays
// quiet.
func ptrOf(addr uintptr) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&addr))
}
