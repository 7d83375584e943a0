//go:build linux

package vmm_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// resident counts the pages of [addr, addr+size) in memory. For a view of
// the shared object it is the object's own pages (mincore asks the page
// cache), whatever the view's protection.
func resident(t *testing.T, addr, size uintptr) int {
	t.Helper()
	vec := make([]byte, size/4096)
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, addr, size, uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, b := range vec {
		n += int(b & 1)
	}
	return n
}

// sharedFDs counts open file descriptors on vmcode's shared object.
func sharedFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil && strings.HasPrefix(l, "/memfd:"+vmm.SharedName) {
			n++
		}
	}
	return n
}

// TestWXNative runs the dual mapping on the kernel: bytes written through
// the writable view are the bytes at vmcode, the two views never share a
// protection that would make a page writable and executable, decommitted
// and released pages leave the shared object (the memory goes back to the
// kernel), a file view replaces the executable view and hides nothing in
// the writable one, and Close leaves neither view nor the memfd.
func TestWXNative(t *testing.T) {
	fds := sharedFDs(t)
	v, err := vmm.New(vmm.Config{VMCodeSize: 64 << 20, NoVMHeap: true, WX: vmm.WXOn})
	if err != nil {
		t.Fatal(err)
	}
	base, size := v.VMCode()
	rwBase, _ := v.WritableView()
	if got := sharedFDs(t); got != fds+1 {
		t.Fatalf("%d descriptors on the shared object after New, want %d", got, fds+1)
	}
	vmmtest.SyncCheck(t, v, "after New")

	const n = 4 * 4096
	sl, err := v.ReserveSlot(n, "slot")
	if err != nil {
		t.Fatal(err)
	}
	a := sl.Base()
	rw, _ := v.Writable(a)
	if err := sl.Commit(a, n, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	pattern := bytes.Repeat([]byte("reachvm!"), n/8)
	copy(rawmem.Bytes(rw, n), pattern)
	if !bytes.Equal(rawmem.Bytes(a, n), pattern) {
		t.Fatal("vmcode does not show what was written through the writable view")
	}
	if got := resident(t, rw, n); got != 4 {
		t.Fatalf("%d pages of the object resident after writing 4", got)
	}
	vmmtest.SyncCheck(t, v, "committed and written")

	// Decommit returns the pages: the object has none left there and a
	// new commit reads zeros.
	if err := sl.Decommit(a, 2*4096); err != nil {
		t.Fatal(err)
	}
	if got := resident(t, rw, 2*4096); got != 0 {
		t.Fatalf("%d decommitted pages still resident", got)
	}
	if err := sl.Commit(a, 2*4096, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rawmem.Bytes(a, 2*4096), make([]byte, 2*4096)) {
		t.Fatal("recommitted pages are not zero")
	}
	if !bytes.Equal(rawmem.Bytes(a+2*4096, 2*4096), pattern[2*4096:]) {
		t.Fatal("decommitting two pages changed the others")
	}
	vmmtest.SyncCheck(t, v, "decommitted and recommitted")

	// A file view over the last two pages: their object pages go.
	path := tempFile(t, 2*4096)
	obj, err := v.OS().OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	defer v.OS().CloseObject(obj)
	if err := sl.MapFile(obj, 0, a+2*4096, 2*4096, mem.ProtRead); err != nil {
		t.Fatal(err)
	}
	if b := rawmem.Bytes(a+2*4096, 2*4096); b[0] != 0 || b[4096] != 1 {
		t.Fatalf("the file view reads %#x %#x, want 0 1", b[0], b[4096])
	}
	if got := resident(t, rw+2*4096, 2*4096); got != 0 {
		t.Fatalf("%d object pages left under the file view", got)
	}
	if r, _ := v.OS().Query(rw + 2*4096); r.Prot != mem.ProtNone {
		t.Fatalf("the writable view under a file view is %v", r.Prot)
	}
	vmmtest.SyncCheck(t, v, "file view")

	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	if got := resident(t, rw, n); got != 0 {
		t.Fatalf("%d pages of a released slot still resident", got)
	}
	vmmtest.SyncCheck(t, v, "released")

	// A slot released fully committed keeps its pages for reuse until
	// Trim.
	sl, err = v.ReserveUnit(n, "unit")
	if err != nil {
		t.Fatal(err)
	}
	a = sl.Base()
	rw, _ = v.Writable(a)
	if err := sl.Commit(a, n, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	copy(rawmem.Bytes(rw, n), pattern)
	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	if got := resident(t, rw, n); got != 4 || v.Trimmable() != n {
		t.Fatalf("released unit: %d pages resident, %#x trimmable; want 4, %#x", got, v.Trimmable(), n)
	}
	vmmtest.SyncCheck(t, v, "freed")
	// Committed again, freed pages read zeros.
	sl, err = v.ReserveSlotAt(a, n, "unit again")
	if err != nil {
		t.Fatal(err)
	}
	if err := sl.Commit(a, n, mem.ProtRX); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rawmem.Bytes(a, n), make([]byte, n)) || v.Trimmable() != 0 {
		t.Fatalf("revived pages are not zero, or still trimmable (%#x)", v.Trimmable())
	}
	vmmtest.SyncCheck(t, v, "revived")
	if err := sl.Release(); err != nil {
		t.Fatal(err)
	}
	if err := v.Trim(); err != nil {
		t.Fatal(err)
	}
	if got := resident(t, rw, n); got != 0 {
		t.Fatalf("%d pages resident after Trim", got)
	}
	vmmtest.SyncCheck(t, v, "trimmed")

	if err := v.Close(); err != nil {
		t.Fatal(err)
	}
	assertNothingOwned(t, v, base, size, "after Close")
	if rs, err := v.OS().Regions(rwBase, rwBase+size); err != nil || len(rs) != 0 {
		t.Fatalf("after Close the writable view is left: %v %v", rs, err)
	}
	if got := sharedFDs(t); got != fds {
		t.Fatalf("%d descriptors on the shared object after Close, want %d", got, fds)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(maps), vmm.SharedName) {
		t.Fatalf("after Close /proc/self/maps still names %s:\n%s", vmm.SharedName, maps)
	}
}
