//go:build linux

package vmm_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestFileObject maps a file through the object FileObject makes of an
// open *os.File: the view holds the bytes of the file that was opened even
// after its path names another file, aspacem records the view with the
// file's identity as the kernel shows it, and closing the object closes
// the *os.File. Bad files fail with a clear error and stay the caller's.
func TestFileObject(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, NoVMHeap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	page := v.OS().PageSize()
	size := 2 * page
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*7 + 1)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "image")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	obj, err := v.FileObject(f)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			v.OS().CloseObject(obj)
		}
	}()
	if obj.Name() != path || obj.Size() != uint64(size) || obj.Shared() {
		t.Fatalf("object %q, %d bytes, shared %v; want %q, %d bytes, private", obj.Name(), obj.Size(), obj.Shared(), path, size)
	}
	id, ok := obj.(mem.FileIdentity)
	if !ok {
		t.Fatalf("object %T has no file identity", obj)
	}
	if dev, ino := id.FileID(); dev != uint64(unix.Major(st.Dev))<<8|uint64(unix.Minor(st.Dev)) || ino != st.Ino {
		t.Fatalf("identity dev %#x inode %d, want the file's %#x:%#x inode %d", dev, ino, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	}
	// The path now names another file: the object still maps the one
	// that was opened.
	if err := os.Rename(path, path+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, make([]byte, size), 0o644); err != nil {
		t.Fatal(err)
	}

	s, err := v.ReserveSlot(size, "fileobject")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MapFile(obj, 0, s.Base(), size, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if got := rawmem.Bytes(s.Base(), size); !bytes.Equal(got, want) {
		t.Fatalf("the view does not hold the opened file's bytes: % x...", got[:16])
	}
	seg, ok := v.Space().Lookup(s.Base())
	if dev, ino := id.FileID(); !ok || seg.Name != path || seg.Dev != dev || seg.Inode != ino {
		t.Fatalf("aspacem records the view as %v", seg)
	}
	// The kernel's map names the view by the file's current path: put it
	// back where the object says it is.
	if err := os.Rename(path+".old", path); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after mapping the file object")

	// The view outlives the object; closing the object closes f.
	if err := v.OS().CloseObject(obj); err != nil {
		t.Fatal(err)
	}
	closed = true
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("f.Stat after CloseObject: %v, want os.ErrClosed", err)
	}
	if got := rawmem.Bytes(s.Base(), size); !bytes.Equal(got, want) {
		t.Fatal("the view changed after the object was closed")
	}
	if err := s.Release(); err != nil {
		t.Fatal(err)
	}
	vmmtest.SyncCheck(t, v, "after releasing the slot")

	// A directory is refused, and stays the caller's to close.
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := v.FileObject(d); !errors.Is(err, mem.ErrInvalid) {
		t.Fatalf("FileObject of a directory: %v, want mem.ErrInvalid", err)
	}
	if _, err := d.Stat(); err != nil {
		t.Fatalf("the directory was closed on error: %v", err)
	}
	// A closed file and no file are refused.
	if _, err := v.FileObject(f); !errors.Is(err, mem.ErrInvalid) {
		t.Fatalf("FileObject of a closed file: %v, want mem.ErrInvalid", err)
	}
	if _, err := v.FileObject(nil); !errors.Is(err, mem.ErrInvalid) {
		t.Fatalf("FileObject(nil): %v, want mem.ErrInvalid", err)
	}
}
