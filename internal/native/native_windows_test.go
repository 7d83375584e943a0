//go:build windows

package native_test

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/internal/native"
)

// TestCallWindows calls kernel32 through syscall.SyscallN's path: no
// argument, three, and a pointer to a local.
func TestCallWindows(t *testing.T) {
	k32 := windows.NewLazySystemDLL("kernel32.dll")
	for _, p := range []*windows.LazyProc{k32.NewProc("GetCurrentProcessId"), k32.NewProc("MulDiv"), k32.NewProc("lstrlenA")} {
		if err := p.Find(); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := native.Call0(k32.NewProc("GetCurrentProcessId").Addr()), uintptr(windows.GetCurrentProcessId()); got != want {
		t.Errorf("GetCurrentProcessId = %d, want %d", got, want)
	}
	if got := int32(native.Call3(k32.NewProc("MulDiv").Addr(), 7, 6, 2)); got != 21 {
		t.Errorf("MulDiv(7, 6, 2) = %d, want 21", got)
	}
	s := [8]byte{'r', 'e', 'a', 'c', 'h', 0}
	if got := native.Call1(k32.NewProc("lstrlenA").Addr(), uintptr(unsafe.Pointer(&s[0]))); got != 5 {
		t.Errorf("lstrlenA(\"reach\") = %d, want 5", got)
	}
	fr := native.Frame{Fn: k32.NewProc("MulDiv").Addr()}
	fr.Ints[0], fr.Ints[1], fr.Ints[2] = 10, 10, 4
	fr.Call()
	if int32(fr.RAX) != 25 {
		t.Errorf("MulDiv(10, 10, 4) through a Frame = %d, want 25", int32(fr.RAX))
	}
}
