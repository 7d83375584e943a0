//go:build linux

package vmm

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
)

// nativeDiscard returns, for the native backend, the function that gives
// the shared object's pages under a read-write range of the writable view
// back to the kernel: madvise(MADV_REMOVE), which punches a hole in the
// memfd (as fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE) would)
// and zaps both views' page tables. MADV_DONTNEED would only zap the page
// tables and leave the pages in the memfd. osmem has no such call (its
// Decommit is for private memory); the simulator models no memory, so it
// gets nil.
func nativeDiscard(o mem.OS) func(addr, size uintptr) error {
	if o != osmem.Native() {
		return nil
	}
	return func(addr, size uintptr) error {
		if err := unix.Madvise(rawmem.Bytes(addr, size), unix.MADV_REMOVE); err != nil {
			e := &mem.Error{Op: "discard", Addr: addr, Size: size, Class: mem.ErrInvalid, Detail: err.Error()}
			var errno unix.Errno
			if errors.As(err, &errno) {
				e.Code = uintptr(errno)
				switch errno {
				case unix.ENOMEM:
					e.Class = mem.ErrNotMapped
				case unix.EACCES, unix.EPERM, unix.EOPNOTSUPP:
					e.Class = mem.ErrNotSupported
				}
			}
			return e
		}
		return nil
	}
}
