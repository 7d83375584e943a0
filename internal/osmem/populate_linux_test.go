package osmem_test

import (
	"errors"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

// TestPopulateNoAccess checks that populating pages the advice cannot
// apply to (PROT_NONE for writing, read-only for writing) is refused as
// invalid, not taken for a kernel without MADV_POPULATE_*: populating
// writable pages works after it.
func TestPopulateNoAccess(t *testing.T) {
	p, ok := osmem.Native().(mem.Populator)
	if !ok {
		t.Fatal("the native backend cannot populate")
	}
	rw, err := unix.Mmap(-1, 0, 4*mem.PageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(rw)
	base := uintptr(unsafe.Pointer(&rw[0]))
	if err := p.Populate(base, mem.PageSize, true); errors.Is(err, mem.ErrNotSupported) {
		t.Skipf("the kernel has no MADV_POPULATE_WRITE: %v", err)
	} else if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		prot  int
		write bool
	}{
		{"PROT_NONE for writing", unix.PROT_NONE, true},
		{"PROT_NONE for reading", unix.PROT_NONE, false},
		{"read-only for writing", unix.PROT_READ, true},
	} {
		if err := unix.Mprotect(rw[mem.PageSize:2*mem.PageSize], c.prot); err != nil {
			t.Fatal(err)
		}
		err := p.Populate(base, 4*mem.PageSize, c.write)
		if err == nil || !errors.Is(err, mem.ErrInvalid) {
			t.Errorf("%s: populating [%#x, +4 pages) = %v, want an ErrInvalid", c.name, base, err)
		}
		if err := unix.Mprotect(rw[mem.PageSize:2*mem.PageSize], unix.PROT_READ|unix.PROT_WRITE); err != nil {
			t.Fatal(err)
		}
		if err := p.Populate(base+2*mem.PageSize, 2*mem.PageSize, true); err != nil {
			t.Errorf("%s: populating writable pages after it: %v", c.name, err)
		}
	}
}
