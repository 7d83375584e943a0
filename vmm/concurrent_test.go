package vmm_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/reachvm/reachvm/internal/osmem"
	"github.com/reachvm/reachvm/internal/rawmem"
	"github.com/reachvm/reachvm/mem"
	"github.com/reachvm/reachvm/vmm"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// soakDuration is how long concurrency tests run: 2 s by default, 10 s
// with REACHVM_SOAK=1 (set by .ci/run for its -race pass).
func soakDuration() time.Duration {
	if os.Getenv("REACHVM_SOAK") == "1" {
		return 10 * time.Second
	}
	return 2 * time.Second
}

// TestConcurrentSlotsAndHeap runs 8 goroutines reserving, committing,
// protecting and releasing slots of mixed sizes and allocating and freeing
// vmheap, on the real kernel. Afterwards every byte is free again and
// aspacem matches the kernel.
func TestConcurrentSlotsAndHeap(t *testing.T) {
	// The goroutines commit a page of each unit and write it at its
	// executable address. Under W^X on Windows rules a unit's executable
	// view is read-execute only and maps whole grid slots (see vmm's
	// gridDual; TestGridWXNative covers it), so there the test runs
	// single-mapped.
	wx := vmm.WXAuto
	if osmem.Native().Rules() == mem.RulesWindows {
		wx = vmm.WXOff
	}
	v, err := vmm.New(vmm.Config{VMCodeSize: 256 << 20, VMHeapSize: 256 << 20, WX: wx})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	_, codeSize := v.VMCode()
	page := v.OS().PageSize()
	deadline := time.Now().Add(soakDuration())
	var wg sync.WaitGroup
	var mu sync.Mutex
	ops := 0
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 99))
			var live []*vmm.Slot
			var heap [][2]uintptr
			n := 0
			fail := func(format string, args ...any) {
				errs <- fmt.Errorf("goroutine %d: "+format, append([]any{g}, args...)...)
			}
			for time.Now().Before(deadline) {
				n++
				op := rng.IntN(6)
				// Keep each goroutine's share bounded: past 64 live slots
				// or heap blocks, free instead of allocating.
				if op <= 1 && len(live) >= 64 {
					op = 3
				}
				if op == 4 && len(heap) >= 64 {
					op = 5
				}
				switch op {
				case 0, 1:
					size := uintptr(1+rng.IntN(64)) * page
					reserve := v.ReserveUnit
					if rng.IntN(16) == 0 {
						reserve = v.ReserveSlot // file-capable: a whole grid slot on Windows
					}
					s, err := reserve(size, fmt.Sprintf("g%d.%d", g, n))
					if err != nil {
						fail("reserve %#x: %v", size, err)
						return
					}
					if err := s.Commit(s.Base(), page, mem.ProtRW); err != nil {
						fail("commit: %v", err)
						return
					}
					rawmem.Bytes(s.Base(), page)[0] = byte(g)
					live = append(live, s)
				case 2:
					if len(live) > 0 {
						s := live[rng.IntN(len(live))]
						if rawmem.Bytes(s.Base(), 1)[0] != byte(g) {
							fail("slot %#x lost its byte: another goroutine wrote it", s.Base())
							return
						}
						if err := s.Protect(s.Base(), page, mem.ProtRead); err != nil {
							fail("protect: %v", err)
							return
						}
					}
				case 3:
					if len(live) > 0 {
						i := rng.IntN(len(live))
						if err := live[i].Release(); err != nil {
							fail("release: %v", err)
							return
						}
						live = append(live[:i], live[i+1:]...)
					}
				case 4:
					size := uintptr(1+rng.IntN(16)) * page
					a, err := v.HeapAlloc(size)
					if err != nil {
						fail("heap alloc: %v", err)
						return
					}
					heap = append(heap, [2]uintptr{a, size})
				case 5:
					if len(heap) > 0 {
						i := rng.IntN(len(heap))
						if err := v.HeapFree(heap[i][0], heap[i][1]); err != nil {
							fail("heap free: %v", err)
							return
						}
						heap = append(heap[:i], heap[i+1:]...)
					}
				}
			}
			for _, s := range live {
				if err := s.Release(); err != nil {
					fail("final release: %v", err)
				}
			}
			for _, h := range heap {
				if err := v.HeapFree(h[0], h[1]); err != nil {
					fail("final heap free: %v", err)
				}
			}
			mu.Lock()
			ops += n
			mu.Unlock()
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v.FreeVMCode() != codeSize {
		t.Errorf("vmcode has %#x bytes free after everything was released, want %#x", v.FreeVMCode(), codeSize)
	}
	vmmtest.SyncCheck(t, v, "after the concurrent run")
	t.Logf("8 goroutines, %d operations in %v", ops, soakDuration())
}
