package vmm_test

import (
	"fmt"
	"testing"

	"github.com/reachvm/reachvm/vmm"
)

// sinkBytes keeps Go's allocations on the heap in BenchmarkAlloc.
var sinkBytes []byte

// BenchmarkAlloc measures one allocation and its free of 8, 64 and 512
// bytes, on one goroutine and on GOMAXPROCS (RunParallel), three ways:
//
//   - impl=alloc: Alloc and Free, vmheap's object allocator;
//   - impl=heappage: HeapAlloc and HeapFree, a page each (commit and
//     decommit: two system calls);
//   - impl=gomake: make([]byte, n) kept on Go's heap, freed by the
//     garbage collector (its cost shows in the ns/op).
//
// Compare with benchstat across impl.
func BenchmarkAlloc(b *testing.B) {
	v := newHeapVMM(b, 1<<30)
	defer v.Close()
	type impl struct {
		name string
		op   func(size uintptr) error
	}
	impls := []impl{
		{"alloc", func(size uintptr) error {
			a, err := v.Alloc(size)
			if err != nil {
				return err
			}
			return v.Free(a)
		}},
		{"heappage", func(size uintptr) error {
			a, err := v.HeapAlloc(size)
			if err != nil {
				return err
			}
			return v.HeapFree(a, size)
		}},
		{"gomake", func(size uintptr) error {
			sinkBytes = make([]byte, size)
			return nil
		}},
	}
	for _, par := range []bool{false, true} {
		mode := "serial"
		if par {
			mode = "parallel"
		}
		for _, size := range []uintptr{8, 64, 512} {
			for _, im := range impls {
				b.Run(fmt.Sprintf("mode=%s/size=%d/impl=%s", mode, size, im.name), func(b *testing.B) {
					b.ReportAllocs()
					if !par {
						for b.Loop() {
							if err := im.op(size); err != nil {
								b.Fatal(err)
							}
						}
						return
					}
					b.RunParallel(func(pb *testing.PB) {
						for pb.Next() {
							if err := im.op(size); err != nil {
								b.Error(err)
								return
							}
						}
					})
				})
			}
		}
	}
}

// BenchmarkAllocBatch allocates 256 objects of one size, then frees them:
// the slot stack's path over several runs, where BenchmarkAlloc reuses one
// slot.
func BenchmarkAllocBatch(b *testing.B) {
	v := newHeapVMM(b, 1<<30)
	defer v.Close()
	addrs := make([]uintptr, 256)
	for _, size := range []uintptr{8, 64, 512} {
		b.Run(fmt.Sprintf("size=%d/impl=alloc", size), func(b *testing.B) {
			for b.Loop() {
				for i := range addrs {
					a, err := v.Alloc(size)
					if err != nil {
						b.Fatal(err)
					}
					addrs[i] = a
				}
				for _, a := range addrs {
					if err := v.Free(a); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
	_ = vmm.MaxSmallObject
}
