package vmm

import (
	"fmt"
	"os"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

// FileObject returns a mem.Object of the regular file f, for Slot.MapFile:
// what v.OS().OpenFile(f.Name()) returns, for a caller that has opened and
// examined the file already (a loader that parsed its headers) and would
// otherwise open it a second time, by a path that may name another file by
// then. The object is named f.Name(), the path the kernel's map shows its
// mappings by; its size and identity (mem.FileIdentity) come from an fstat
// of f's descriptor, not from the path.
//
// On success the object owns f: close it with v.OS().CloseObject, which
// closes f, and do not close or use f otherwise. On error the caller still
// owns f.
//
// It needs the native backend on Linux. On another backend (a simulated
// one keeps no descriptors), and on Windows, where a section of a file
// needs the access the file was opened with, the error wraps
// mem.ErrNotSupported: open the file by path with v.OS().OpenFile instead.
// A directory or other non-regular file fails with mem.ErrInvalid.
func (v *VMM) FileObject(f *os.File) (mem.Object, error) {
	name := "<nil>"
	if f != nil {
		name = f.Name()
	}
	if v.os != osmem.Native() {
		return nil, fmt.Errorf("vmm: object of the open file %s: backend %s: %w", name, v.os.Name(), mem.ErrNotSupported)
	}
	obj, err := osmem.FileObject(f)
	if err != nil {
		return nil, fmt.Errorf("vmm: object of the open file %s: %w", name, err)
	}
	return obj, nil
}
