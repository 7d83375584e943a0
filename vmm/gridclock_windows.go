package vmm

import (
	"time"
	"unsafe"

	"golang.org/x/sys/windows"
)

var (
	gridKernel32 = windows.NewLazySystemDLL("kernel32.dll")
	gridQPCProc  = gridKernel32.NewProc("QueryPerformanceCounter")
	gridQPFProc  = gridKernel32.NewProc("QueryPerformanceFrequency")
)

// gridClock returns a clock reading QueryPerformanceCounter, or nil (the
// grid's default) if it is unavailable. Go's time.Since reads the
// interrupt time on Windows, which Wine updates in steps of up to
// milliseconds: too coarse for the release-to-map window the grid
// measures.
func gridClock() func() time.Duration {
	if gridQPCProc.Find() != nil || gridQPFProc.Find() != nil {
		return nil
	}
	var freq int64
	if r, _, _ := gridQPFProc.Call(uintptr(unsafe.Pointer(&freq))); r == 0 || freq <= 0 {
		return nil
	}
	return func() time.Duration {
		var c int64
		gridQPCProc.Call(uintptr(unsafe.Pointer(&c)))
		// Split to avoid overflowing c*1e9.
		return time.Duration(c/freq)*time.Second + time.Duration(c%freq*int64(time.Second)/freq)
	}
}
