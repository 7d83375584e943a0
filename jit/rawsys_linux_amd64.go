package jit

// System calls a program's start makes directly, where the standard
// library's way costs more than the call.

import (
	"io"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// openFile opens the file at path read-only, as os.Open does but with
// only the open itself (and os.NewFile's one fcntl): os.Open also makes
// the descriptor non-blocking, offers it to the Go runtime's poller
// (which refuses a regular file, or accepts a /proc one and starts the
// poller for a process with no other use for it) and makes it blocking
// again, five more calls for each file a program's start reads. With
// kernelName, the file is named as the kernel names it (fdPath) where
// that can be read, else path.
func openFile(path string, kernelName bool) (*os.File, error) {
	for {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		name := path
		if kernelName {
			if n, ok := fdPath(fd); ok {
				name = n
			}
		}
		return os.NewFile(uintptr(fd), name), nil
	}
}

// fdPath returns the path the kernel names the file open as fd by: the
// link /proc/self/fd/N, absolute with every symbolic link resolved, as
// /proc/self/maps names its mappings and /proc/self/exe a program's
// file; ok is false if it cannot be read, or names no path (a deleted
// file).
func fdPath(fd int) (string, bool) {
	var buf [unix.PathMax]byte
	n, err := unix.Readlink("/proc/self/fd/"+strconv.Itoa(fd), buf[:])
	if err != nil || n == 0 || n == len(buf) || buf[0] != '/' {
		return "", false
	}
	s := string(buf[:n])
	if len(s) > len(" (deleted)") && s[len(s)-len(" (deleted)"):] == " (deleted)" {
		return "", false
	}
	return s, true
}

// getrandom fills b from the kernel's getrandom(2), as the kernel fills
// AT_RANDOM: the system call itself, where unix.Getrandom goes through
// the vDSO, whose first call in a process sets up its state (an mmap of
// state pages, their first faults): 80 to 280 us measured, for the 16
// bytes a program's start wants once.
func getrandom(b []byte) (int, error) {
	for {
		n, _, e := unix.Syscall(unix.SYS_GETRANDOM, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return int(n), e
		}
		if int(n) < len(b) {
			return int(n), io.ErrShortBuffer
		}
		return int(n), nil
	}
}
