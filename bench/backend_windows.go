//go:build windows

package bench

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/windows"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/mem"
)

// windowsBackend returns the native Windows backend for the matrix and an
// intruder that, in RaceRate percent of the race windows, reserves the
// window's first granule from another OS thread: a real VirtualAlloc by a
// thread the strategy does not know about, as a loader thread or Wine's own
// allocator would. Every reservation it makes is appended to foreign, so
// that the trial can free it after tear-down.
func windowsBackend(cfg Config, ri *rand.Rand, foreign *[][2]uintptr) (mem.OS, func(free mem.Range), error) {
	if wine := osmem.UnderWine(); wine != (cfg.Backend == "wine") {
		if wine {
			return nil, nil, fmt.Errorf("backend %s: this is Wine, not Windows: name it wine", cfg.Backend)
		}
		return nil, nil, fmt.Errorf("backend %s: this is Windows, not Wine", cfg.Backend)
	}
	raw := osmem.Native()
	intr := func(free mem.Range) {
		if cfg.RaceRate > 0 && ri.IntN(100) < cfg.RaceRate {
			if a, ok := intruderThread().reserve(raw, free.Start); ok {
				*foreign = append(*foreign, [2]uintptr{a, a + raw.Granularity()})
			}
		}
	}
	return raw, intr, nil
}

// intruderThread is the process's one intruder thread, started on first
// use and kept: every trial's intruder is the same other thread.
var intruderThread = sync.OnceValue(newOSThread)

// osThread is a goroutine locked to its own OS thread that runs functions
// on request. The requester waits for each to finish, so that the
// intrusion happens inside the window (between the release and the map)
// every time it is asked for, and the numbers depend on the seed, not the
// scheduler; the allocation itself is still made by another thread of the
// process, through the kernel (or Wine's server), not by the strategy's
// own thread.
type osThread struct {
	req  chan func()
	done chan struct{}
}

func newOSThread() *osThread {
	t := &osThread{req: make(chan func()), done: make(chan struct{})}
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread exits with the goroutine, so that no
		// other goroutine inherits whatever it did.
		for f := range t.req {
			f()
			t.done <- struct{}{}
		}
	}()
	return t
}

// do runs f on the thread and waits for it.
func (t *osThread) do(f func()) {
	t.req <- f
	<-t.done
}

// stop ends the thread.
func (t *osThread) stop() { close(t.req) }

// reserve reserves one granule at addr from the thread.
func (t *osThread) reserve(o mem.OS, addr uintptr) (uintptr, bool) {
	var a uintptr
	var err error
	t.do(func() { a, err = o.Reserve(addr, o.Granularity(), mem.Exact) })
	return a, err == nil
}

// The wall clock of real backends. Go's time.Now reads the interrupt
// time on Windows, which Wine advances in steps of up to milliseconds
// (docs/ARCHITECTURE.md, "Windows under Wine"): too coarse for tear-downs of tens of
// microseconds. QueryPerformanceCounter is fine-grained on both.
var (
	qpcProc = windows.NewLazySystemDLL("kernel32.dll").NewProc("QueryPerformanceCounter")
	qpcFreq = func() int64 {
		var f int64
		p := windows.NewLazySystemDLL("kernel32.dll").NewProc("QueryPerformanceFrequency")
		if p.Find() != nil {
			return 0
		}
		if r, _, _ := p.Call(uintptr(unsafe.Pointer(&f))); r == 0 {
			return 0
		}
		return f
	}()
	wallEpoch = time.Now()
)

// wallNow reads a monotonic clock for the matrix's wall times.
func wallNow() time.Duration {
	if qpcFreq <= 0 || qpcProc.Find() != nil {
		return time.Since(wallEpoch)
	}
	var c int64
	qpcProc.Call(uintptr(unsafe.Pointer(&c)))
	// Split to avoid overflowing c*1e9.
	return time.Duration(c/qpcFreq)*time.Second + time.Duration(c%qpcFreq*int64(time.Second)/qpcFreq)
}
