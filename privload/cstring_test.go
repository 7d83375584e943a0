package privload_test

import (
	"github.com/reachvm/reachvm/aspacem"
	"strings"
	"testing"

	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/privload"
	"github.com/reachvm/reachvm/vmm"
)

// TestGoString reads NUL-terminated strings out of vmheap: short ones,
// one spanning a page boundary, and one whose NUL is the last byte before
// memory that is not committed (reading a byte further would fault).
func TestGoString(t *testing.T) {
	v, err := vmm.New(vmm.Config{VMCodeSize: 16 << 20, VMHeapSize: 16 << 20, WX: vmm.WXOff})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if got := privload.GoString(0); got != "" {
		t.Errorf("GoString(0) = %q", got)
	}
	// Two pages, the string ending at the last byte of the second: past
	// it lies vmheap's reservation, which faults on access.
	gran := v.OS().Granularity()
	size := 2 * gran
	page, err := v.HeapAlloc(size)
	if err != nil {
		t.Fatal(err)
	}
	if segs := v.Space().Segments(page+size, page+size+1); len(segs) != 1 || segs[0].Kind != aspacem.KindReservation {
		t.Fatalf("past the allocation: %v, want a bare reservation", segs)
	}
	b, err := v.Bytes(page, size)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Repeat("ab", mem.PageSize/2+10)
	start := len(b) - len(want) - 1
	copy(b[start:], want)
	b[len(b)-1] = 0
	if got := privload.GoString(page + uintptr(start)); got != want {
		t.Errorf("GoString across a page boundary, ending at the allocation's last byte: %d bytes, want %d", len(got), len(want))
	}
	if err := v.HeapFree(page, size); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "x", "reachvm", strings.Repeat("long ", 1000)} {
		a, err := v.CString(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := privload.GoString(a); got != s {
			t.Errorf("GoString(CString(%.20q)) = %.20q (%d bytes, want %d)", s, got, len(got), len(s))
		}
		if err := v.Free(a); err != nil {
			t.Fatal(err)
		}
	}
}
