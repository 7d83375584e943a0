//go:build linux

package privload

import (
	"hash/crc32"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"unsafe"

	"github.com/reachvm/reachvm/internal/demolib"
	"github.com/reachvm/reachvm/vmm/vmmtest"
)

// TestConcurrentLoads loads, uses and unloads libraries from several
// goroutines at once into one VMM: libz (bound to the host's libc), the
// demo library and the fixture chain, whose loads share the parse cache,
// the host symbol cache and vmcode. Run under -race by .ci/run.
func TestConcurrentLoads(t *testing.T) {
	v := newVMM(t)
	demo := writeTemp(t, demolib.Name, demolib.SO)
	paths := []string{demo}
	if _, err := os.Stat(zlibPath); err == nil {
		paths = append(paths, zlibPath)
	}
	var chain string
	if _, err := os.Stat("/usr/bin/gcc"); err == nil {
		chain = fxPath(t, "libfx_chain_a.so")
		paths = append(paths, chain)
	}
	free := v.FreeVMCode()
	const workers, rounds = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Native code writes the trace through an address held as
			// an integer, which neither the compiler nor the collector
			// sees: it must be a heap object (a stack one moves when
			// the goroutine's stack grows), alive until the last
			// finaliser has written it.
			trace := newTrace()
			defer runtime.KeepAlive(trace)
			opts := Options{Imports: map[string]uintptr{"fx_trace": uintptr(unsafe.Pointer(&trace[0]))}}
			if chain != "" {
				opts.SearchPath = []string{filepath.Join(filepath.Dir(chain), "search")}
			}
			buf := []byte("concurrent")
			for r := 0; r < rounds; r++ {
				p := paths[(w+r)%len(paths)]
				trace[0] = 0
				lib, err := Load(v, p, opts)
				if err != nil {
					errs <- err
					return
				}
				switch p {
				case demo:
					fn, _ := lib.Func(demolib.Compute)
					if got := int64(ok(fn.Call(6, 7))); got != demolib.Expected(6, 7) {
						t.Errorf("demo_compute = %d", got)
					}
				case zlibPath:
					fn, _ := lib.Func("crc32")
					if got := uint32(ok(fn.Call(0, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf))))); got != crc32.ChecksumIEEE(buf) {
						t.Errorf("crc32 = %#x", got)
					}
				case chain:
					fn, _ := lib.Func("fx_a")
					if got := ok(fn.Call(10)); got != 222 {
						t.Errorf("fx_a(10) = %d", got)
					}
				}
				if err := lib.Close(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	vmmtest.SyncCheck(t, v, "after the concurrent loads")
	if got := v.FreeVMCode(); got != free {
		t.Errorf("vmcode free bytes %#x, %#x before", got, free)
	}
}

// newTrace returns a trace array on the heap: the pointer it returns
// escapes, so the compiler cannot place the array on a goroutine's stack.
//
//go:noinline
func newTrace() *[64]int64 { return new([64]int64) }
