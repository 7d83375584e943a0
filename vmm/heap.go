package vmm

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/reachvm/reachvm/aspacem"
	"github.com/reachvm/reachvm/mem"
)

// OwnerVMHeap annotates vmheap in aspacem.
const OwnerVMHeap = "vmheap"

// Heap is vmheap: reachvm's memory for everything that need not be
// rel32-reachable (DynamoRIO's split of vmcode and vmheap, its #1132),
// reserved once and handed out by the same extent allocator as vmcode.
// Allocations are committed read-write and decommitted when freed, so the
// reservation costs address space only.
type Heap struct {
	// os and space are the VMM's. Immutable.
	os    mem.OS
	space *aspacem.Map
	// base and size bound the reservation. Immutable.
	base, size uintptr
	// alloc hands out granularity-aligned ranges; it has its own lock.
	alloc *extentAllocator
}

// newHeap reserves size bytes (0: DefaultVMHeapSize) wherever the OS
// chooses, and records it.
func newHeap(o mem.OS, space *aspacem.Map, size uintptr) (*Heap, error) {
	if size == 0 {
		size = DefaultVMHeapSize
		if bits.UintSize == 32 {
			size = 256 << 20
		}
	}
	gran := o.Granularity()
	if err := mem.CheckRange("vmheap", 0, size, gran); err != nil {
		return nil, fmt.Errorf("vmm: bad vmheap size: %w", err)
	}
	base, err := o.Reserve(0, size, mem.Hint)
	if err != nil {
		return nil, fmt.Errorf("vmm: reserving %#x bytes of vmheap: %w", size, err)
	}
	if err := space.Update(aspacem.Segment{Start: base, End: base + size, Kind: aspacem.KindReservation, Owner: OwnerVMHeap}); err != nil {
		_ = o.Release(base, size)
		return nil, fmt.Errorf("vmm: recording vmheap: %w", err)
	}
	return &Heap{os: o, space: space, base: base, size: size, alloc: newExtentAllocator(base, size, gran)}, nil
}

// close releases the reservation. On failure nothing changes.
func (h *Heap) close() error {
	if err := h.os.Release(h.base, h.size); err != nil {
		return fmt.Errorf("vmm: releasing vmheap: %w", err)
	}
	if err := h.space.Update(aspacem.Segment{Start: h.base, End: h.base + h.size, Kind: aspacem.KindFree}); err != nil {
		return fmt.Errorf("vmm: recording vmheap's release: %w", err)
	}
	return nil
}

// ErrNoVMHeap is returned by heap operations of a VMM made with NoVMHeap.
var ErrNoVMHeap = errors.New("vmm: no vmheap")

// VMHeap returns vmheap's bounds, or zeros without one.
func (v *VMM) VMHeap() (base, size uintptr) {
	v.life.RLock()
	defer v.life.RUnlock()
	if v.heap == nil {
		return 0, 0
	}
	return v.heap.base, v.heap.size
}

// HeapAlloc returns size bytes (rounded up to the granularity) of zeroed,
// read-write vmheap memory.
func (v *VMM) HeapAlloc(size uintptr) (uintptr, error) {
	if err := v.acquire(); err != nil {
		return 0, err
	}
	defer v.life.RUnlock()
	h := v.heap
	if h == nil {
		return 0, ErrNoVMHeap
	}
	gran := v.os.Granularity()
	if size == 0 || size > h.size {
		return 0, fmt.Errorf("vmm: vmheap allocation of %#x bytes: zero or larger than vmheap (%#x)", size, h.size)
	}
	size = (size + gran - 1) &^ (gran - 1)
	addr, err := h.alloc.alloc(OwnerVMHeap, size, gran)
	if err != nil {
		return 0, err
	}
	if err := v.os.Commit(addr, size, mem.ProtRW); err != nil {
		_ = h.alloc.release(OwnerVMHeap, addr, size)
		return 0, fmt.Errorf("vmm: committing vmheap: %w", err)
	}
	if err := h.space.Update(aspacem.Segment{Start: addr, End: addr + size, Kind: aspacem.KindAnon, Prot: mem.ProtRW, Owner: OwnerVMHeap}); err != nil {
		return 0, fmt.Errorf("vmm: recording vmheap: %w", err)
	}
	return addr, nil
}

// HeapFree returns [addr, addr+size), which HeapAlloc returned, to vmheap
// and its pages to the OS. Freeing anything else is refused.
func (v *VMM) HeapFree(addr, size uintptr) error {
	if err := v.acquire(); err != nil {
		return err
	}
	defer v.life.RUnlock()
	h := v.heap
	if h == nil {
		return ErrNoVMHeap
	}
	gran := v.os.Granularity()
	size = (size + gran - 1) &^ (gran - 1)
	if size == 0 || addr < h.base || addr-h.base > h.size || size > h.size-(addr-h.base) {
		return fmt.Errorf("vmm: vmheap free of [%#x, +%#x): not inside vmheap [%#x, +%#x)", addr, size, h.base, h.size)
	}
	// Check the range is allocated before touching the OS: decommitting
	// memory someone else still uses would be silent corruption.
	for _, seg := range h.space.Segments(addr, addr+size) {
		if seg.Kind != aspacem.KindAnon || seg.Owner != OwnerVMHeap {
			return fmt.Errorf("vmm: vmheap free of [%#x, +%#x): [%#x, %#x) is not allocated", addr, size, seg.Start, seg.End)
		}
	}
	if err := v.os.Decommit(addr, size); err != nil {
		return fmt.Errorf("vmm: decommitting vmheap: %w", err)
	}
	if err := h.space.Update(aspacem.Segment{Start: addr, End: addr + size, Kind: aspacem.KindReservation, Owner: OwnerVMHeap}); err != nil {
		return fmt.Errorf("vmm: recording vmheap: %w", err)
	}
	return h.alloc.release(OwnerVMHeap, addr, size)
}
